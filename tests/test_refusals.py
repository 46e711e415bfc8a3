"""Tools that refuse to mislead: every HTTP error in the project's shape, the id of the entry a streaming
miss made, the CLI on unknown repos, and ``semcache tune`` on data that cannot support a threshold."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import numpy as np
import pytest
from openai import OpenAI
from typer.testing import CliRunner

from semcache.cli import app as cli_app
from semcache.config import Settings
from semcache.decision.calibration import clopper_pearson_upper, min_support
from semcache.decision.tuning import PairScores, check_support, pair_support, stream_support, tune
from semcache.store.sqlite import Store
from tests.helpers import chat


def test_unknown_routes_and_methods_answer_in_the_error_shape(sidecar: str) -> None:
    missing = httpx.get(f"{sidecar}/v1/no/such/route")
    assert missing.status_code == 404
    assert missing.json() == {"error": {"type": "not_found", "message": "no route GET /v1/no/such/route"}}
    wrong = httpx.put(f"{sidecar}/healthz")
    assert wrong.status_code == 405 and wrong.json()["error"]["type"] == "method_not_allowed"
    assert "GET" in wrong.headers["allow"]
    assert httpx.get(f"{sidecar}/ui/static/secrets.txt").json()["error"]["type"] == "not_found"


def test_a_streaming_miss_names_the_entry_it_stored(sidecar: str) -> None:
    prompt = "What does a streaming miss store?"
    miss = chat(sidecar, prompt, model="refuse-stream", stream=True)
    assert miss.headers["x-semcache"] == "miss" and "x-semcache-entry-id" not in miss.headers
    found = re.search(r"^: X-Semcache-Entry-Id: (\d+)\n\ndata: \[DONE\]\n\n$", miss.text, re.MULTILINE)
    assert found is not None, miss.text[-300:]
    entry = httpx.get(f"{sidecar}/v1/cache/repos/acme/entries/{found[1]}").json()
    assert entry["prompt"] == prompt
    # The comment is invisible to an SDK reading the stream.
    client = OpenAI(base_url=f"{sidecar}/v1", api_key="unused", default_headers={"X-Semcache-Repo": "acme"})
    chunks = client.chat.completions.create(
        model="refuse-stream", messages=[{"role": "user", "content": "Another streamed miss"}], stream=True
    )
    assert "Another streamed miss" in "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def cli(settings: Settings, *args: str) -> tuple[int, str]:
    env = {"SEMCACHE_EMBEDDING_DIR": str(settings.model_dir), "SEMCACHE_DECISION": "cosine"}
    result = CliRunner().invoke(cli_app, [*args, "--data-dir", str(settings.data_dir)], env=env)
    return result.exit_code, " ".join(result.output.split())  # rich wraps long lines


def test_cli_commands_on_an_unknown_repo_exit_non_zero(settings: Settings, sidecar: str) -> None:
    assert (
        chat(sidecar, "What makes a repo known?", repo="known.repo", model="refuse-known").status_code == 200
    )
    for args in (("stats", "no.such.repo"), ("purge", "no.such.repo")):
        code, output = cli(settings, *args)
        assert code == 1 and "no repo 'no.such.repo'" in output, output
    code, output = cli(settings, "stats", "known.repo")
    assert code == 0 and "known" in output  # the table may wrap the name
    code, output = cli(settings, "stats", "bad/name")
    assert code == 1 and "error" in output


def test_a_bad_setting_is_named_and_list_settings_take_commas(settings: Settings) -> None:
    env = {"SEMCACHE_ONLINE_JUDGES": "exact,bogus", "SEMCACHE_AUDIT_RATES": "{not json"}
    for name, value in env.items():
        result = CliRunner().invoke(
            cli_app, ["repos", "--data-dir", str(settings.data_dir)], env={name: value}
        )
        output = " ".join(result.output.split())
        assert result.exit_code == 1 and "bad setting" in output and "Traceback" not in output, output
    assert "SEMCACHE_ONLINE_JUDGES" in " ".join(
        CliRunner().invoke(cli_app, ["repos"], env={"SEMCACHE_ONLINE_JUDGES": "bogus"}).output.split()
    )
    listed = Settings(_env_file=None, online_judges="exact, embedding", router_aliases='["auto", "smart"]')
    assert listed.online_judges == ["exact", "embedding"] and listed.router_aliases == ["auto", "smart"]


def write_pairs(path: Path, positives: int, negatives: int) -> Path:
    rows = [
        {"a": f"How do I sort list {i}?", "b": f"How can I sort list {i}?", "label": 1}
        for i in range(positives)
    ]
    rows += [
        {"a": f"What is {i} plus one?", "b": f"Best pizza number {i}", "label": 0} for i in range(negatives)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_tune_refuses_data_without_enough_of_each_kind_and_writes_nothing(
    settings: Settings, tmp_path: Path, sidecar: str
) -> None:
    positives_only = write_pairs(tmp_path / "mock.jsonl", 999, 0)  # like GPTCache's mock pairs
    code, output = cli(settings, "tune", "--pairs", str(positives_only), "--budget", "0.05")
    assert code == 1
    assert "999 pairs labelled 1" in output and "0 pairs labelled 0" in output
    assert "Missing: 59 more pairs labelled 0 (different answers)" in output
    few = write_pairs(tmp_path / "few.jsonl", 40, 100)
    code, output = cli(settings, "tune", "--pairs", str(few), "--budget", "0.05")
    assert code == 1 and "Missing: 19 more pairs labelled 1" in output
    stream = tmp_path / "stream.jsonl"
    stream.write_text("".join(json.dumps({"prompt": f"Say {i}", "cluster": "one"}) + "\n" for i in range(50)))
    code, output = cli(settings, "tune", "--stream", str(stream), "--budget", "0.2")
    assert code == 1 and "Missing: 14 more prompts opening a new cluster" in output
    code, output = cli(settings, "tune", "--pairs", str(positives_only), "--repo", "no.such.repo")
    assert code == 1 and "no repo 'no.such.repo'" in output
    store = Store(settings.db_path)
    assert store.thresholds("cosine") == {}
    store.close()


def test_min_support_is_where_the_bound_first_reaches_the_budget() -> None:
    for budget, confidence in ((0.05, 0.95), (0.02, 0.95), (0.01, 0.99), (0.2, 0.9)):
        n = min_support(budget, confidence)
        assert clopper_pearson_upper(0, n, confidence) <= budget < clopper_pearson_upper(0, n - 1, confidence)
    assert min_support(0.05) == 59
    assert stream_support(["a", "a", "b", "a", "c"]) == stream_support(["x", "x", "y", "x", "z"])
    support = stream_support(["a", "a", "b", "a", "c"])
    assert (support.positives, support.negatives) == (2, 2)
    check_support(pair_support([1] * 59 + [0] * 59), 0.05, 0.95)
    with pytest.raises(ValueError, match="Missing: 1 more pairs labelled 0"):
        check_support(pair_support([1] * 59 + [0] * 58), 0.05, 0.95)


def test_enough_data_where_no_threshold_holds_the_budget_fits_none() -> None:
    labels = np.array([1] * 100 + [0] * 100)
    scores = np.r_[np.linspace(0.1, 0.5, 100), np.linspace(0.6, 0.9, 100)]  # the wrong ones score higher
    result = tune(PairScores(labels, scores, scores), "learned", 0.05)
    assert result.chosen is None and result.cosine_chosen is None
