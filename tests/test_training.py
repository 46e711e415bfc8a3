"""The verifier's training core (scripts/verifier_training.py): batches cover every row once, and a tiny
distillation run exports a model the sidecar's verifier loads, whose logits are its raw scores."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from scripts.verifier_training import Recipe, batches, export, logits, train
from semcache.embedding import packaged_model_path
from semcache.verifier import CrossEncoderVerifier

ROWS = [
    ("how do I cancel my subscription", "how can I cancel my subscription", 1),
    ("how do I cancel my subscription", "how do I keep my subscription", 0),
    ("what is the capital of France", "which city is France's capital", 1),
    ("what is the capital of France", "what is the capital of Spain", 0),
    ("convert 5 km to miles", "how many miles is 5 km", 1),
    ("convert 5 km to miles", "convert 50 km to miles", 0),
    ("rename foo.py to bar.py", "move foo.py to bar.py", 1),
    ("rename foo.py to bar.py", "rename bar.py to foo.py", 0),
]


def test_batches_cover_every_row_once_in_runs_of_similar_length() -> None:
    rows = [("x" * n, "y", 0) for n in range(100)]
    cut = list(batches(rows, 8, random.Random(0), pool=4))
    assert sorted(i for ids in cut for i in ids) == list(range(100))
    assert all(len(ids) <= 8 for ids in cut)
    # A batch is a slice of a sorted run of 32 random rows, so its lengths lie close together: the mean
    # spread is about 24 here, against about 78 for batches of 8 drawn at random.
    assert np.mean([max(ids) - min(ids) for ids in cut]) < 40


def test_a_distilled_model_exports_and_the_verifier_loads_it(tmp_path: Path) -> None:
    base = packaged_model_path()
    soft = np.array([4.0 if label else -4.0 for _, _, label in ROWS], dtype=np.float32)
    recipe = Recipe(epochs=1, batch=4, max_length=32, layers=1, alpha=0.5)
    model, tokenizer, steps, _ = train(ROWS, recipe, base, "cpu", soft)
    assert steps == 2
    expected = logits(model, tokenizer, [(a, b) for a, b, _ in ROWS], 32)
    export(model, tokenizer, tmp_path, base)
    (tmp_path / "provenance.json").write_text('{"args": {"max_length": "32"}}')
    verifier = CrossEncoderVerifier(tmp_path)
    got = verifier.logits([(a, b) for a, b, _ in ROWS])
    # int8 weights: close to the torch model's logits, not equal.
    assert np.allclose(got, expected, atol=0.01)
    probabilities = verifier.score([(a, b) for a, b, _ in ROWS])
    assert np.all((probabilities >= 0) & (probabilities <= 1))
