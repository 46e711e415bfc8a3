"""The audit and online calibration over real HTTP and real SQLite: free labels on near misses, audited
hits, wrong-hit reports, a full queue, purges, the off switch, and thresholds moving under a budget."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from stub_upstream import create_stub_app

from semcache.cache.calibrator import Calibrator
from semcache.config import Settings
from semcache.decision import CosineDecision
from semcache.http.app import create_app
from semcache.store.labels import REPORT, Label, LabelStore
from semcache.store.records import NewEntry
from semcache.store.sqlite import Store
from tests.helpers import sidecar_settings
from tests.servers import serve, wait_for

LIST = "How do I reverse a list in Python?"
LIST_AGAIN = "How can I reverse a Python list?"
STRING = "How do I reverse a string in Python?"
MORE = {
    "Reverse a list in Python": "list",
    "What is the way to reverse a list in Python?": "list",
    "How can I reverse a Python string?": "string",
    "Reverse a string in Python": "string",
}
CLUSTERS = {LIST: "list", LIST_AGAIN: "list", STRING: "string", **MORE}
REPO = {"X-Semcache-Repo": "acme"}


@pytest.fixture(scope="module")
def cluster_stub() -> Iterator[str]:
    with serve(create_stub_app(CLUSTERS)) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def audited(
    request: pytest.FixtureRequest, tmp_path: Path, model_dir: Path, cluster_stub: str
) -> Callable[..., Settings]:
    """Audited sidecar settings, on each store in turn (labels and their counters live in the store)."""
    store = {"store_url": request.getfixturevalue("pg_url")} if request.param == "postgres" else {}

    def make(**overrides: Any) -> Settings:
        audit = dict(min_similarity=0.8, decision_min_similarity=0.5, audit_rate=1.0, audit_judge="exact")
        return sidecar_settings(tmp_path / "data", model_dir, cluster_stub, **{**audit, **store, **overrides})

    return make


def chat(url: str, prompt: str, model: str = "stub") -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": prompt}]}
    response = httpx.post(f"{url}/v1/chat/completions", json=body, headers=REPO, timeout=30)
    assert response.status_code == 200, response.text
    return response


def decision(url: str) -> dict[str, Any]:
    return httpx.get(f"{url}/v1/cache/repos/acme/stats").json()["decision"]


def upstream_calls(stub: str) -> int:
    return httpx.get(f"{stub}/_stub/calls").json()["total"]


def test_a_near_miss_is_labelled_without_an_upstream_call(audited, embedder, cluster_stub) -> None:
    settings = audited(min_similarity=0.99)  # the paraphrase is a near miss, not a hit
    with serve(create_app(settings, embedder=embedder)) as url:
        chat(url, LIST)
        before = upstream_calls(cluster_stub)
        assert chat(url, LIST_AGAIN).headers["X-Semcache"] == "miss"
        wait_for(lambda: decision(url)["labels"]["near_miss"] == 1)
        assert upstream_calls(cluster_stub) == before + 1  # the miss itself; the label cost nothing
        chat(url, STRING)  # its nearest candidate holds another cluster's answer: a wrong label
        wait_for(lambda: decision(url)["labels"]["near_miss"] == 2)
        report = decision(url)
    assert report["audit"]["judge"] == "exact" and report["audit"]["audits"] == 0
    assert report["audit"]["judge_moves_threshold"]
    assert report["source"] == "setting" and report["labels"]["total"] == 2


def test_a_share_of_hits_is_audited_in_the_background(audited, embedder, cluster_stub) -> None:
    with serve(create_app(audited(audit_rate=0.5), embedder=embedder)) as url:
        hits = 0
        for i in range(12):  # a model of its own each time: a scope where the paraphrase is new
            chat(url, LIST, model=f"stub-{i}")
            response = chat(url, LIST_AGAIN, model=f"stub-{i}")
            hits += response.headers["X-Semcache"] == "hit-exact"
            assert response.json()["choices"][0]["message"]["content"] == "cluster list"
        wait_for(lambda: decision(url)["audit"]["audits"] == decision(url)["labels"]["audit"])
        report = decision(url)
    assert hits == 0
    assert 0 < report["audit"]["audits"] < 12  # about half of twelve semantic hits
    assert report["labels"]["false_hit_share"]["estimate"] == 0.0  # every audited hit was right


def test_a_wrong_hit_report_is_a_label(audited, embedder) -> None:
    with serve(create_app(audited(), embedder=embedder)) as url:
        chat(url, LIST)
        entry = chat(url, LIST_AGAIN).headers["X-Semcache-Entry-Id"]
        report = httpx.post(
            f"{url}/v1/cache/repos/acme/feedback", json={"entry_id": int(entry), "prompt": LIST_AGAIN}
        )
        assert report.status_code == 200
        assert decision(url)["labels"]["feedback"] == 1


def test_a_failing_upstream_makes_no_label(audited, embedder, cluster_stub) -> None:
    with serve(create_app(audited(), embedder=embedder)) as url:
        body = {
            "request": {"model": "stub-500", "messages": [{"role": "user", "content": LIST}]},
            "response": {
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "cluster list"},
                        "finish_reason": "stop",
                    }
                ]
            },
        }
        assert httpx.post(f"{url}/v1/cache/repos/acme/entries", json=body).status_code == 201
        assert chat(url, LIST_AGAIN, model="stub-500").headers["X-Semcache"] == "hit-semantic"
        wait_for(lambda: decision(url)["audit"]["audits"] == 1)
        time.sleep(0.3)
        assert decision(url)["labels"]["total"] == 0


def test_a_full_queue_drops_and_counts_without_delaying_answers(audited, embedder) -> None:
    with serve(create_app(audited(audit_queue_size=1), embedder=embedder)) as url:
        body = {
            "request": {"model": "stub-slow-3000ms", "messages": [{"role": "user", "content": LIST}]},
            "response": {
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "cluster list"},
                        "finish_reason": "stop",
                    }
                ]
            },
        }
        httpx.post(f"{url}/v1/cache/repos/acme/entries", json=body)
        for _ in range(5):
            assert chat(url, LIST_AGAIN, model="stub-slow-3000ms").headers["X-Semcache"] == "hit-semantic"
        # one job runs (its audit call sleeps 3 s), one waits, the other three are dropped
        assert decision(url)["audit"]["overflow"] == 3
        assert 'semcache_repo_audit_overflow{repo="acme"} 3.0' in httpx.get(f"{url}/metrics").text


def test_purge_removes_labels_and_the_off_switch_makes_none(audited, embedder, cluster_stub) -> None:
    with serve(create_app(audited(min_similarity=0.99), embedder=embedder)) as url:
        chat(url, LIST)
        chat(url, LIST_AGAIN)
        wait_for(lambda: decision(url)["labels"]["total"] == 1)
        assert httpx.delete(f"{url}/v1/cache/repos/acme").status_code == 200
        assert decision(url)["labels"]["total"] == 0
    with serve(create_app(audited(audit_rate=0.0), embedder=embedder)) as url:
        chat(url, LIST)
        before = upstream_calls(cluster_stub)
        assert chat(url, LIST_AGAIN).headers["X-Semcache"] == "hit-semantic"
        chat(url, "What is the capital of France?")
        time.sleep(0.5)
        report = decision(url)
        assert upstream_calls(cluster_stub) == before + 1  # the miss only: no audit call
    assert report["labels"]["total"] == 0 and report["audit"]["audits"] == 0 and report["audit"]["rate"] == 0


def test_a_repo_with_enough_labels_decides_by_them(audited, embedder) -> None:
    # Near misses only (threshold 0.99): six labels, some wrong. Six labels cannot bound a 5 % budget, so
    # once they are in, the repo's own fit turns semantic hits off where the 0.8 setting served them.
    settings = audited(min_similarity=0.99, online_min_labels=5)
    with serve(create_app(settings, embedder=embedder)) as url:
        for prompt in [LIST, LIST_AGAIN, STRING, *MORE]:
            chat(url, prompt)
        wait_for(lambda: decision(url)["labels"]["total"] == 6)
        report = decision(url)
        assert report["source"] == "online" and report["threshold"] is None
        response = chat(url, "How would I reverse a list in Python?")
        metrics = httpx.get(f"{url}/metrics").text
        assert 'semcache_repo_threshold_online{repo="acme"} 1.0' in metrics
        assert 'semcache_repo_threshold_source{repo="acme",source="online"} 1.0' in metrics
        assert 'semcache_repo_threshold_source{repo="acme",source="setting"} 0.0' in metrics
        assert 'semcache_repo_false_hit_share_lower{repo="acme"}' in metrics
    assert response.headers["X-Semcache"] == "miss" and "X-Semcache-Semantic" in response.headers


def synthetic_labels(rng: np.random.Generator, n: int) -> list[tuple[float, int]]:
    """Cosines of a repo's lookups and whether serving was right: above 0.93 right 99 % of the time,
    below it right 60 % of the time (as a cache meets more near-topic neighbours)."""
    cosines = rng.uniform(0.75, 1.0, n)
    right = rng.uniform(size=n) < np.where(cosines >= 0.93, 0.99, 0.6)
    return list(zip(cosines.tolist(), right.astype(int).tolist(), strict=True))


def labelled_calibrator(tmp_path: Path, judge: str = "exact", **settings: Any) -> tuple[Calibrator, Store]:
    """A cosine decision at 0.8 in a real store, with 1 500 synthetic labels of ``judge`` for repo acme."""
    config = Settings(
        data_dir=tmp_path, decision="cosine", min_similarity=0.8, online_min_labels=200, **settings
    )
    store = Store(tmp_path / "semcache.db")
    calibrator = Calibrator(store, CosineDecision(), config)
    assert calibrator.policy("acme", 0.05).threshold == 0.8  # the setting, until labels say otherwise
    add_labels(calibrator, judge)
    return calibrator, store


def add_labels(calibrator: Calibrator, judge: str, source: str = "near_miss", n: int = 1500) -> None:
    expires = time.time() + 3600
    for i, (cosine, right) in enumerate(synthetic_labels(np.random.default_rng(0), n)):
        label = Label("acme", i, "cosine", cosine, cosine, right, 1.0, source, expires, judge)
        calibrator.add_label(label)


def test_online_threshold_moves_under_the_budget(tmp_path: Path) -> None:
    calibrator, store = labelled_calibrator(tmp_path)
    loose, strict = calibrator.policy("acme", 0.1), calibrator.policy("acme", 0.05)
    assert strict.source == "online"
    # 0.8 served about 30 % wrong on these labels; the budget moves the cut past the noisy band
    assert strict.combined(0.8, 0.8) < strict.threshold <= strict.combined(0.95, 0.95)
    assert loose.threshold <= strict.threshold
    report = calibrator.describe("acme")["labels"]["false_hit_share"]
    assert report["interval"][1] <= 0.06 and report["estimate"] <= 0.05
    assert calibrator.policy("other", 0.05).source == "setting"  # labels are per repo
    store.close()


def test_the_embedding_judges_labels_are_shown_but_move_nothing(tmp_path: Path) -> None:
    # No router and no judge set: the embedding judge, whose labels move no threshold unless listed.
    calibrator, store = labelled_calibrator(tmp_path / "default", judge="embedding")
    report = calibrator.describe("acme")
    assert report["audit"]["judge"] == "embedding" and not report["audit"]["judge_moves_threshold"]
    assert report["source"] == "setting" and report["threshold"] == 0.8
    assert report["labels"]["total"] == 1500 and report["labels"]["false_hit_share"]["estimate"] > 0.2
    calibrator.use_judge("exact")  # another judge now: its labels count, the embedding judge's still do not
    assert calibrator.describe("acme")["audit"]["judge_moves_threshold"]
    calibrator.load()  # as a restart would
    assert calibrator.policy("acme", 0.05).source == "setting"
    add_labels(calibrator, "exact")
    assert calibrator.policy("acme", 0.05).source == "online"
    store.close()
    listed, store = labelled_calibrator(
        tmp_path / "listed", "embedding", online_judges=["exact", "embedding"]
    )
    assert listed.policy("acme", 0.05).source == "online"
    store.close()


def test_wrong_hit_reports_count_whatever_the_judge(tmp_path: Path) -> None:
    calibrator, store = labelled_calibrator(tmp_path, judge="embedding")
    add_labels(calibrator, REPORT, source="feedback", n=300)  # reports are labels people made
    arrays = calibrator.labels.arrays("acme", "cosine", time.time(), 5000, calibrator.fitted_judges)
    assert len(arrays) == 300 and len(calibrator.labels.arrays("acme", "cosine", time.time(), 5000)) == 1800
    assert calibrator.policy("acme", 0.05).source == "online"
    store.close()


def stored(url: str, prompt: str, model: str) -> int:
    """Store ``prompt`` with the answer of LIST's cluster through the management API; its entry id."""
    body = {
        "request": {"model": model, "messages": [{"role": "user", "content": prompt}]},
        "response": {
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "cluster list"},
                    "finish_reason": "stop",
                }
            ]
        },
    }
    response = httpx.post(f"{url}/v1/cache/repos/acme/entries", json=body)
    assert response.status_code == 201, response.text
    return int(response.json()["entry_id"])


def test_an_audit_answer_the_cache_would_not_store_makes_no_label(audited, embedder) -> None:
    with serve(create_app(audited(), embedder=embedder)) as url:
        stored(url, LIST, "stub-length")  # the audit's fresh answer comes back cut off
        assert chat(url, LIST_AGAIN, model="stub-length").headers["X-Semcache"] == "hit-semantic"
        wait_for(lambda: decision(url)["audit"]["audits"] == 1)
        wait_for(
            lambda: 'semcache_audit_jobs_total{outcome="skipped"} 1.0' in httpx.get(f"{url}/metrics").text
        )
        assert decision(url)["labels"]["total"] == 0


def test_labels_outlive_a_deleted_entry_and_reports_are_counted(audited, embedder) -> None:
    with serve(create_app(audited(min_similarity=0.99), embedder=embedder)) as url:
        first = int(chat(url, LIST).headers["X-Semcache-Entry-Id"])
        chat(url, LIST_AGAIN)  # a near miss of the first entry: one label
        wait_for(lambda: decision(url)["labels"]["near_miss"] == 1)
        assert httpx.delete(f"{url}/v1/cache/repos/acme/entries/{first}").status_code == 204
        assert decision(url)["labels"]["total"] == 1  # kept for the entry's lifetime: a fair sample
        kept = stored(url, "How do I flatten a list in Python?", "stub")
        report = {"entry_id": kept, "prompt": "How do I flatten a nested list?"}
        assert httpx.post(f"{url}/v1/cache/repos/acme/feedback", json=report).status_code == 200
        assert decision(url)["labels"]["feedback"] == 1
        assert 'semcache_audit_jobs_total{outcome="feedback"} 1.0' in httpx.get(f"{url}/metrics").text


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_labels_keep_their_entries_lifetime_whatever_happens_to_them(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if kind == "postgres":
        from semcache.store.postgres import PostgresStore

        store: Store = PostgresStore(request.getfixturevalue("pg_url"), 4)
    else:
        store = Store(tmp_path / "semcache.db")
    labels = LabelStore(store)
    ids = []
    for i, path in enumerate(["a.py", "b.py", "c.py"]):
        entry = NewEntry(
            repo="acme",
            scope_key="s",
            exact_key=f"k{i}",
            prompt=f"p{i}",
            response={},
            model="m",
            embedding=np.eye(4, dtype=np.float32)[i],
            expires_at=1000.0 * (i + 1),
            context_files=[(path, "hash")],
        )
        ids.append(store.insert(entry)[0])
        labels.add(Label("acme", ids[-1], "m", 0.9, 0.9, i % 2, 1.0, "near_miss", 1000.0 * (i + 1), "exact"))
    labels.add(Label("other", 99, "m", 0.9, 0.9, 1, 1.0, "near_miss", 5000.0, "exact"))

    def live(now: float) -> int:
        return len(labels.arrays("acme", "m", now, 100))

    # Evicted, deleted or purged with a context file, an entry's label stays: eviction keeps what was
    # hit and deletions pick wrong answers, so labels going with them would bias the sample.
    assert store.purge_context_file("acme", "a.py") == [ids[0]] and store.delete("acme", ids[1])
    assert store.evict_over("acme", 0) == [ids[2]] and live(0.0) == 3
    assert labels.expire(1500.0) == ["acme"] and live(0.0) == 2  # the first entry's lifetime is over
    assert labels.expire(1500.0) == [] and labels.expire(4000.0) == ["acme"] and live(0.0) == 0
    assert len(labels.arrays("other", "m", 0.0, 100)) == 1
    store.close()


def test_expired_labels_leave_the_fit_at_the_next_sweep(tmp_path: Path, embedder) -> None:
    from semcache.cache.semantic import SemanticCache

    now = [time.time()]
    settings = Settings(data_dir=tmp_path, decision="cosine", min_similarity=0.8, online_min_labels=200)
    cache = SemanticCache(settings, embedder=embedder, decision=CosineDecision(), clock=lambda: now[0])
    cache.start()
    for i, (cosine, right) in enumerate(synthetic_labels(np.random.default_rng(0), 1500)):
        label = Label("acme", i, "cosine", cosine, cosine, right, 1.0, "near_miss", now[0] + 600, "exact")
        cache.calibrator.add_label(label)
    assert cache.calibrator.policy("acme", 0.05).source == "online"
    cache.sweep()
    assert cache.calibrator.policy("acme", 0.05).source == "online"  # nothing expired yet
    now[0] += 601
    cache.sweep()
    assert cache.calibrator.policy("acme", 0.05).source == "setting"
    assert cache.calibrator.describe("acme")["labels"]["total"] == 0
    cache.close()
