"""The learned decision: the numpy head equals the torch head it was trained as, the shipped model
serves paraphrases at the default budget, and calibration by lookup replays a stream as a cache would."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from semcache.cli import app as cli_app
from semcache.decision import Encoded, make_decision
from semcache.decision.head import HeadWeights, logit, project, unpack
from semcache.decision.learned import MODEL_DIR, LearnedDecision
from semcache.decision.literals import features
from semcache.decision.replay import StreamLookups, neighbours, replay, served, stream_sweep
from semcache.decision.scorer import OnnxScorer
from semcache.decision.thresholds import pick_threshold
from training.export_head import export_onnx
from training.head_model import InteractionHead


def test_the_numpy_head_computes_what_the_torch_head_trained(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = InteractionHead(width=16, hidden=8).eval()
    np.savez(tmp_path / "head.npz", **model.export())
    weights = HeadWeights.load(tmp_path / "head.npz")
    rng = np.random.default_rng(0)
    q, c = rng.normal(size=(7, 384)).astype(np.float32), rng.normal(size=(11, 384)).astype(np.float32)
    literal = np.array([1.0, 0.0, 1.0], dtype=np.float32)
    # Padded as in a training batch: the padding must not change the score.
    pad = lambda x, n: np.vstack([x, np.zeros((n - len(x), 384), np.float32)])  # noqa: E731
    mask = lambda x, n: np.r_[np.ones(len(x)), np.zeros(n - len(x))].astype(np.float32)  # noqa: E731
    with torch.no_grad():
        expected = model(
            torch.tensor(pad(q, 13))[None],
            torch.tensor(mask(q, 13))[None],
            torch.tensor(pad(c, 13))[None],
            torch.tensor(mask(c, 13))[None],
            torch.tensor([0.8]),
            torch.tensor(literal)[None],
        ).item()
    qp = model.project(torch.tensor(q)).detach().numpy()
    cp = model.project(torch.tensor(c)).detach().numpy()
    assert logit(weights, qp, cp, 0.8, literal) == pytest.approx(expected, abs=1e-4)
    # Stored as int8, the scores move by little.
    stored = logit(weights, unpack(project(weights, q)), unpack(project(weights, c)), 0.8, literal)
    assert stored == pytest.approx(expected, abs=0.05)
    assert logit(weights, cp, qp, 0.8, literal) == pytest.approx(expected, abs=1e-4)  # symmetric


@pytest.mark.parametrize("literals", [0, 2, 3])
def test_the_exported_graph_scores_a_padded_batch_as_numpy_scores_each_pair(
    tmp_path: Path, literals: int
) -> None:
    torch.manual_seed(1)
    np.savez(tmp_path / "head.npz", **InteractionHead(width=16, hidden=8, literals=literals).eval().export())
    export_onnx(tmp_path)
    weights = HeadWeights.load(tmp_path / "head.npz")
    assert weights.literals == literals
    scorer = OnnxScorer(tmp_path / "head.onnx", weights)
    rng = np.random.default_rng(1)
    query = unpack(project(weights, rng.normal(size=(5, 384)).astype(np.float32)))
    candidates = [unpack(project(weights, rng.normal(size=(n, 384)).astype(np.float32))) for n in (3, 12, 7)]
    cosines = np.array([0.91, 0.8, 0.72])
    literal = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 1]], dtype=np.float32)
    expected = [
        logit(weights, query, c, s, row) for c, s, row in zip(candidates, cosines, literal, strict=True)
    ]
    assert scorer.logits(query, candidates, cosines, literal) == pytest.approx(expected, abs=1e-4)
    # One candidate alone scores as it does among others (padding changes nothing).
    assert scorer.logits(query, candidates[:1], cosines[:1], literal[:1]) == pytest.approx(
        expected[:1], abs=1e-4
    )


def test_the_decision_scores_alike_with_its_graph_and_without(tmp_path: Path, embedder) -> None:
    torch.manual_seed(4)
    np.savez(tmp_path / "head.npz", **InteractionHead(width=16, hidden=8, literals=2).eval().export())
    with_graph = tmp_path / "graph"
    with_graph.mkdir()
    (with_graph / "head.npz").write_bytes((tmp_path / "head.npz").read_bytes())
    export_onnx(with_graph)
    numpy_only, graph = LearnedDecision(tmp_path), LearnedDecision(with_graph)
    assert numpy_only.model_id == graph.model_id  # the weights name the model; the graph is how it runs
    texts = ["Resize the image to 1024 px", "Resize the picture to 2048 px", "How do I resize an image?"]
    vectors, states = embedder.encode_states(texts)
    query = Encoded(texts[0], numpy_only.tokens(states[0]))
    candidates = [Encoded(t, numpy_only.tokens(s)) for t, s in zip(texts[1:], states[1:], strict=True)]
    similarities = vectors[1:] @ vectors[0]
    assert graph.score(query, candidates, similarities) == pytest.approx(
        numpy_only.score(query, candidates, similarities), abs=1e-5
    )
    with pytest.raises(ValueError, match="no token states"):
        graph.score(query, [Encoded("empty", np.zeros((0, 16), np.int8))], similarities[:1])
    with pytest.raises(ValueError, match="similarities"):
        graph.score(query, candidates, similarities[:1])


def test_a_graph_that_does_not_match_its_weights_is_refused(tmp_path: Path) -> None:
    torch.manual_seed(2)
    np.savez(tmp_path / "head.npz", **InteractionHead(width=16, hidden=8).eval().export())
    export_onnx(tmp_path)
    torch.manual_seed(3)  # other weights, the old graph left beside them
    np.savez(tmp_path / "head.npz", **InteractionHead(width=16, hidden=8).eval().export())
    with pytest.raises(ValueError, match=r"does not match head\.npz"):
        OnnxScorer(tmp_path / "head.onnx", HeadWeights.load(tmp_path / "head.npz"))


def test_literal_features_see_numbers_and_identifiers() -> None:
    assert features("Resize to 1024 px", "Resize to 2048 px").tolist() == [1.0, 0.0, 0.0]
    assert features("Set the limit to 512 MB", "Set the limit to 512 GB").tolist() == [0.0, 0.0, 1.0]
    assert features("What does os.path.join do?", "What does os.path.split do?").tolist() == [0.0, 1.0, 0.0]
    assert features("How do I reverse a list?", "How can I reverse a list?").tolist() == [0.0, 0.0, 0.0]


@pytest.fixture(scope="module")
def learned() -> LearnedDecision:
    return LearnedDecision()


def _score(embedder, decision, a: str, b: str) -> float:
    vectors, states = embedder.encode_states([a, b])
    query, cached = (Encoded(t, decision.tokens(s)) for t, s in zip([a, b], states, strict=True))
    return float(decision.score(query, [cached], np.array([vectors[0] @ vectors[1]]))[0])


def test_the_shipped_decision_serves_a_paraphrase_at_the_default_budget(embedder, learned) -> None:
    threshold = pick_threshold(learned.shipped_thresholds(), 0.05)
    assert threshold is not None, "the default budget must be certified by the shipped table"
    paraphrase = _score(
        embedder, learned, "How can I reverse a Python list?", "How do I reverse a list in Python?"
    )
    assert paraphrase >= threshold
    other = _score(embedder, learned, "What is the capital of France?", "What is the capital of Germany?")
    assert other < threshold
    assert make_decision("learned").model_id == learned.model_id
    provenance = json.loads((MODEL_DIR / "provenance.json").read_text())
    assert provenance["data"] and provenance["script"] and provenance["args"]["seed"] == "0"


def test_a_stream_replay_serves_the_first_earlier_prompt_that_reaches_the_threshold() -> None:
    vectors = np.array([[1, 0], [0.99, 0.141], [0.98, 0.199], [0, 1]], dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    found, cosines = neighbours(vectors, top_n=2, floor=0.5)
    assert cosines[2, 0] == pytest.approx(float(vectors[2] @ vectors[1]))
    assert found[0].tolist() == [-1, -1]  # nothing before the first prompt
    assert found[2].tolist() == [1, 0]  # most similar earlier prompt first
    assert found[3].tolist() == [-1, -1]  # nothing above the floor
    clusters = np.array([0, 1, 0, 2])
    lookups = replay(vectors, clusters, lambda q, c, s: np.where(c == 1, 0.2, 0.9), top_n=2, floor=0.5)
    hit, right = served(lookups, 0.5)
    assert hit.tolist() == [False, True, True, False] and right.tolist() == [False, False, True, False]
    assert lookups.oracle.tolist() == [False, False, True, False]
    points = {round(p.threshold, 2): p for p in stream_sweep(lookups)}
    assert points[0.9].served == 2 and points[0.9].wrong == 1 and points[0.9].recall == 1.0


def test_stream_sweep_counts_the_wrong_share_of_hits() -> None:
    scores = np.array([[0.9, 0.8], [0.7, -np.inf], [0.95, 0.6]])
    right = np.array([[True, False], [False, False], [False, True]])
    lookups = StreamLookups(scores, right, np.array([True, False, True]), np.array([[0, 1], [0, -1], [0, 1]]))
    strict = next(p for p in stream_sweep(lookups) if p.threshold == pytest.approx(0.95))
    assert (strict.served, strict.wrong) == (1, 1)
    loose = next(p for p in stream_sweep(lookups) if p.threshold == pytest.approx(0.6))
    assert (loose.served, loose.wrong, loose.recall) == (3, 2, 0.5)


def test_tune_by_stream_fits_a_threshold_from_a_replayed_cache(tmp_path: Path, settings) -> None:
    clusters = [
        [
            "How do I reverse a list in Python?",
            "How can I reverse a Python list?",
            "What's the way to reverse a list in python?",
        ],
        ["How do I sort a dict by value?", "Sort a Python dictionary by its values"],
        ["What is the capital of France?"],
        ["What is the capital of Germany?"],
        ["How do I center a div?", "Centering a div in CSS"],
    ] * 30
    rows = [
        {"prompt": f"{text} (case {i})", "cluster": f"{i}-{k}"}
        for i, group in enumerate(clusters)
        for k, text in [(0, t) for t in group]
    ]
    stream = tmp_path / "stream.jsonl"
    stream.write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = {"SEMCACHE_DECISION": "learned", "SEMCACHE_EMBEDDING_DIR": str(settings.model_dir)}
    args = [
        "tune",
        "--stream",
        str(stream),
        "--budget",
        "0.2",
        "--data-dir",
        str(settings.data_dir),
        "--report-dir",
        str(tmp_path / "reports"),
    ]
    result = CliRunner().invoke(cli_app, args, env=env)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "reports" / "tune-global-learned-0.2.json").read_text())
    assert report["pairs"] == len(rows) and report["positives"] > 0
    assert report["chosen"]["false_hit_upper"] <= 0.2 and report["chosen"]["served"] > 0
    both = CliRunner().invoke(cli_app, [*args, "--pairs", str(stream)], env=env)
    assert both.exit_code == 1 and "exactly one" in both.output


def test_a_default_sidecar_serves_paraphrases_and_says_when_a_budget_is_uncalibrated(
    tmp_path: Path, model_dir: Path, stub_url: str, embedder
) -> None:
    from semcache.config import Settings
    from semcache.http.app import create_app
    from tests.servers import serve

    defaults = Settings(
        data_dir=tmp_path / "data",
        embedding_dir=model_dir,
        upstream_base_url=f"{stub_url}/v1",
        upstream_api_key_env="SEMCACHE_TEST_NO_KEY",
    )
    assert defaults.decision == "learned" and defaults.false_hit_budget <= 0.05
    with serve(create_app(defaults, embedder=embedder)) as url:

        def ask(text: str, **options: object) -> httpx.Response:
            body = {
                "model": "m-default",
                "messages": [{"role": "user", "content": text}],
                "semcache": options,
            }
            return httpx.post(
                f"{url}/v1/chat/completions", json=body, headers={"X-Semcache-Repo": "acme"}, timeout=30
            )

        assert ask("How do I reverse a list in Python?").headers["x-semcache"] == "miss"
        hit = ask("How can I reverse a Python list?")
        assert hit.headers["x-semcache"] == "hit-semantic", hit.headers
        assert "x-semcache-semantic" not in hit.headers
        strict = ask("What is the best way to reverse a list in Python?", false_hit_budget=0.0001)
        assert strict.headers["x-semcache"] == "miss"
        assert strict.headers["x-semcache-semantic"].startswith("off")
        stats = httpx.get(f"{url}/v1/cache/repos/acme/stats").json()
        assert stats["decision"]["semantic_hits"] and stats["decision"]["false_hit_budget"] == 0.05
        assert 0.05 in stats["decision"]["calibrated_budgets"]
