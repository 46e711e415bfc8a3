"""Calibration to a false-hit budget, and which threshold serves a budget."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from semcache.cli import app as cli_app
from semcache.decision.calibration import clopper_pearson_upper, fit_threshold, summary, sweep
from semcache.decision.thresholds import Thresholds
from semcache.store.records import GLOBAL
from semcache.store.sqlite import Store


def test_clopper_pearson_upper_bound() -> None:
    assert clopper_pearson_upper(0, 100) == pytest.approx(0.0295, abs=5e-4)  # the "rule of three" region
    assert clopper_pearson_upper(5, 100) > 0.05 > 5 / 100 * 0.9
    assert clopper_pearson_upper(0, 0) == 1.0
    assert clopper_pearson_upper(3, 3) == 1.0


def test_fit_threshold_keeps_the_upper_bound_within_budget() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 4000)
    scores = np.clip(labels * 0.35 + rng.normal(0.4, 0.15, 4000), 0, 1)
    points = sweep(scores, labels)
    chosen = fit_threshold(points, 0.02)
    assert chosen is not None and chosen.false_hit_upper <= 0.02 and chosen.false_hit_rate < 0.02
    looser = fit_threshold(points, 0.10)
    assert looser.threshold <= chosen.threshold and looser.recall >= chosen.recall
    assert fit_threshold(points, 1e-6) is None
    assert summary(points)["recall_at_p99"] <= summary(points)["recall_at_p90"]


@given(
    st.lists(st.tuples(st.floats(0, 1), st.integers(0, 1)), min_size=5, max_size=200),
    st.floats(0.01, 0.3),
    st.floats(0.01, 0.3),
)
def test_a_stricter_budget_never_lowers_the_threshold(rows: list, budget_a: float, budget_b: float) -> None:
    scores, labels = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
    points = sweep(scores, labels)
    strict, loose = sorted([budget_a, budget_b])
    strict_point, loose_point = fit_threshold(points, strict), fit_threshold(points, loose)
    assert strict_point is None or (
        loose_point is not None and loose_point.threshold <= strict_point.threshold
    )


def test_thresholds_resolve_repo_then_global_then_shipped(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    thresholds = Thresholds(store, "learned@test", {0.01: 0.9, 0.05: 0.6})
    assert thresholds.resolve("acme", 0.02) == 0.9  # the stricter shipped 0.01, never the looser 0.05
    assert thresholds.resolve("acme", 0.05) == 0.6
    assert thresholds.resolve("acme", 0.001) == math.inf  # nothing calibrated that strict: never hit
    thresholds.save(GLOBAL, 0.02, 0.8, 1000)
    thresholds.save("acme", 0.02, 0.95, 500)
    assert thresholds.resolve("acme", 0.02) == 0.95
    assert thresholds.resolve("other", 0.03) == 0.8
    assert Thresholds(store, "cosine", {}).resolve("acme", 0.02) is None
    store.close()


def test_tune_cli_fits_saves_reports_and_uses_wrong_hit_reports(tmp_path: Path, settings, embedder) -> None:
    from semcache.cache.semantic import SemanticCache
    from tests.helpers import completion, request

    paraphrases = [
        ("How do I reverse a list in Python?", "How can I reverse a list in python?"),
        ("What is a monad?", "What's a monad?"),
        ("Explain quicksort", "Please explain quicksort"),
    ] * 60
    unrelated = [
        ("How do I reverse a list in Python?", "What is the capital of France?"),
        ("How do I center a div in CSS?", "Best pizza in Naples"),
    ] * 75  # budget 0.02 at 95 % needs 149 pairs of each label
    pairs_file = tmp_path / "pairs.jsonl"
    pairs_file.write_text(
        "".join(
            json.dumps({"a": a, "b": b, "label": lab}) + "\n"
            for rows, lab in ((paraphrases, 1), (unrelated, 0))
            for a, b in rows
        )
    )
    cache = SemanticCache(settings, embedder=embedder)
    entry = cache.store(request("Cancel my subscription"), completion("Cancelled."))
    cache.report_wrong_hit("acme", entry, "Don't cancel my subscription")
    cache.close()
    env = {"SEMCACHE_DECISION": "cosine", "SEMCACHE_EMBEDDING_DIR": str(settings.model_dir)}
    args = [
        "tune",
        "--pairs",
        str(pairs_file),
        "--repo",
        "acme",
        "--budget",
        "0.02",
        "--data-dir",
        str(settings.data_dir),
        "--report-dir",
        str(tmp_path / "reports"),
    ]
    result = CliRunner().invoke(cli_app, args, env=env)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "reports" / "tune-acme-cosine-0.02.json").read_text())
    assert (tmp_path / "reports" / "tune-acme-cosine-0.02.png").stat().st_size > 1000
    assert report["pairs"] == 331 and report["chosen"]["false_hit_upper"] <= 0.02
    # The reported wrong hit (cosine 0.97) is a labelled negative now, so the threshold sits above it.
    assert report["chosen"]["threshold"] > 0.97
    reopened = Store(settings.db_path)
    assert reopened.thresholds("cosine")["acme"][0.02] == report["chosen"]["threshold"]
    reopened.close()
    failing = CliRunner().invoke(
        cli_app, [*args[:-4], "--budget", "0.0001", "--data-dir", str(settings.data_dir)], env=env
    )
    # Budget 0.0001 needs 29 956 pairs of each label: refused before anything is scored.
    assert failing.exit_code == 1
    assert "Missing: 29776 more pairs labelled 1" in " ".join(failing.output.split())  # rich wraps lines
