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

from benchmarks.evalkit import train_split
from semcache.calibration import clopper_pearson_upper, fit_threshold, summary, sweep
from semcache.cli import app as cli_app
from semcache.store import GLOBAL, Store
from semcache.thresholds import Thresholds


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


@given(st.lists(st.tuples(st.floats(0, 1), st.integers(0, 1)), min_size=5, max_size=200),
       st.floats(0.01, 0.3), st.floats(0.01, 0.3))  # fmt: skip
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
    thresholds = Thresholds(store, "cross-encoder", {0.01: 0.9, 0.05: 0.6})
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
    from semcache.cache import SemanticCache
    from tests.test_cache import completion, request

    paraphrases = [("How do I reverse a list in Python?", "How can I reverse a list in python?"),
                   ("What is a monad?", "What's a monad?"),
                   ("Explain quicksort", "Please explain quicksort")] * 60  # fmt: skip
    unrelated = [("How do I reverse a list in Python?", "What is the capital of France?"),
                 ("How do I center a div in CSS?", "Best pizza in Naples")] * 60  # fmt: skip
    pairs_file = tmp_path / "pairs.jsonl"
    pairs_file.write_text("".join(json.dumps({"a": a, "b": b, "label": lab}) + "\n"
                                  for rows, lab in ((paraphrases, 1), (unrelated, 0)) for a, b in rows))  # fmt: skip
    cache = SemanticCache(settings, embedder=embedder)
    entry = cache.store(request("Cancel my subscription"), completion("Cancelled."))
    cache.report_wrong_hit("acme", entry, "Don't cancel my subscription")
    cache.close()
    env = {"SEMCACHE_VERIFIER": "cosine", "SEMCACHE_EMBEDDING_DIR": str(settings.model_dir)}
    args = ["tune", "--pairs", str(pairs_file), "--repo", "acme", "--budget", "0.02",
            "--data-dir", str(settings.data_dir), "--report-dir", str(tmp_path / "reports")]  # fmt: skip
    result = CliRunner().invoke(cli_app, args, env=env)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "reports" / "tune-acme-cosine-0.02.json").read_text())
    assert (tmp_path / "reports" / "tune-acme-cosine-0.02.png").stat().st_size > 1000
    assert report["pairs"] == 301 and report["chosen"]["false_hit_upper"] <= 0.02
    # The reported wrong hit (cosine 0.97) is a labelled negative now, so the threshold sits above it.
    assert report["chosen"]["threshold"] > 0.97
    reopened = Store(settings.db_path)
    assert reopened.thresholds("cosine")["acme"][0.02] == report["chosen"]["threshold"]
    reopened.close()
    failing = CliRunner().invoke(
        cli_app, [*args[:-4], "--budget", "0.0001", "--data-dir", str(settings.data_dir)], env=env
    )
    assert failing.exit_code == 1 and "no threshold" in failing.output


def test_the_verifier_trains_and_calibrates_on_disjoint_qqp_pairs() -> None:
    train, held = train_split(1000, 0, 200, seed=0)
    assert len(held) == 200 and len(train) == 800 and not set(train) & set(held)
    assert sorted(train + held) == list(range(1000))
    assert train_split(1000, 0, 200, seed=0) == (train, held)  # rebuilt the same from provenance
    limited, held_again = train_split(1000, 300, 200, seed=0)
    assert held_again == held and limited == train[:300]


def test_the_label_audit_corrects_the_false_hit_share_both_ways() -> None:
    from benchmarks.label_audit import estimate, interval, pair_key
    from semcache.tuning import LabelledPair

    pairs = [LabelledPair(f"q{i}", f"p{i}", int(i < 6)) for i in range(10)]
    served = np.array([True] * 9 + [False])  # 6 labelled right and 3 labelled wrong are served
    audit = {pair_key(pairs[6]): "same", pair_key(pairs[7]): "different", pair_key(pairs[9]): "different"}
    one_sided = estimate(pairs, served, audit)
    assert one_sided["measured_false_hit_share"] == pytest.approx(3 / 9)
    # pairs[9] is not served: its verdict does not count. No served positive is audited: no estimate.
    assert one_sided["audited_negatives"] == 2 and one_sided["negatives_really_wrong"] == 1
    assert one_sided["audited_positives"] == 0 and np.isnan(one_sided["corrected_false_hit_share"])
    audit |= {pair_key(pairs[0]): "same", pair_key(pairs[1]): "different"}
    result = estimate(pairs, served, audit)
    assert result["audited_positives"] == 2 and result["positives_really_wrong"] == 1
    # Half the labelled-wrong hits are wrong (1.5 of 3), and half the labelled-right ones (3 of 6).
    assert result["corrected_false_hit_share"] == pytest.approx((3 * 0.5 + 6 * 0.5) / 9)
    low, high = result["corrected_interval"]
    assert 0 < low < result["corrected_false_hit_share"] < high < 1
    low, high = interval(1, 2)
    assert 0 < low < 0.5 < high < 1
    assert interval(0, 5)[0] == 0.0 and interval(5, 5)[1] == 1.0


def test_the_stream_audit_corrects_a_run_both_ways_by_the_verdicts_drawn_from_it() -> None:
    import hashlib

    from benchmarks.stream_sim import corrected

    wrong_hits = [[f"asked {i}", f"served {i}"] for i in range(4)]
    right_hits = [[f"asked {i}", f"served {i}"] for i in range(4, 10)]
    run = {"decision": "verifier, budget 0.2", "hits": 10, "wrong": 4, "right": 6, "oracle_hits": 12,
           "wrong_hits": wrong_hits, "right_hits": right_hits}  # fmt: skip
    key = [hashlib.sha1(f"{a}\x00{s}".encode()).hexdigest() for a, s in wrong_hits + right_hits]
    here, other = (
        {"limit 10, seed 0, floor 0.7, verifier, budget 0.2"},
        {"limit 10, seed 0, floor 0.7, verifier, budget 0.3"},
    )
    right = {"limit 10, seed 0, floor 0.7, verifier, budget 0.2, right hits"}
    audit = {key[0]: ("same", here), key[1]: ("different", here), key[2]: ("different", here | other),
             key[3]: ("different", other), "unrelated": ("same", here),
             key[4]: ("same", right), key[5]: ("same", right), key[6]: ("different", right)}  # fmt: skip
    result = corrected(run, audit, "limit 10, seed 0, floor 0.7", least=3)
    # key[3] was drawn from another run's wrong hits: its verdict does not count for this one.
    assert result["audited"] == [3, 3] and result["really_wrong"] == [2, 1]
    assert result["wrong_share"] == pytest.approx((4 * 2 / 3 + 6 * 1 / 3) / 10)
    assert result["right_of_oracle"] == pytest.approx(10 * (1 - result["wrong_share"]) / 12)
    low, high = result["interval"]
    assert 0 < low < result["wrong_share"] < high < 1
    assert corrected(run, audit, "limit 10, seed 0, floor 0.7", least=4) is None
    assert corrected(run, audit, "limit 20, seed 0, floor 0.7", least=1) is None
    assert corrected(run, {}, "limit 10, seed 0, floor 0.7", least=0) is None


def test_the_lookup_sweep_serves_the_first_candidate_that_reaches_the_threshold() -> None:
    from benchmarks.lookup_sweep import Lookup, at_threshold

    lookups = [
        Lookup(oracle=False, exact=None, candidates=[(0.95, False), (0.99, True)]),  # most similar first
        Lookup(oracle=True, exact=None, candidates=[(0.5, False), (0.9, True)]),
        Lookup(oracle=True, exact=True),  # an exact repeat is a hit at any threshold
        Lookup(oracle=True, exact=None, candidates=[]),
    ]
    strict = at_threshold(lookups, 0.96)
    assert (strict["hits"], strict["wrong"]) == (2, 0) and strict["right_of_oracle"] == pytest.approx(2 / 3)
    loose = at_threshold(lookups, 0.4)
    assert (loose["hits"], loose["wrong"]) == (3, 2) and loose["wrong_share"] == pytest.approx(2 / 3)
