"""The sidecar over real HTTP, in front of the stub provider."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest
from typer.testing import CliRunner

from semcache.cli import app as cli_app
from semcache.config import Settings
from tests.helpers import chat, stream_events, streamed_text, upstream_calls
from tests.servers import wait_for

PROMPT = "How do I reverse a list in Python?"
PARAPHRASE = "How can I reverse a list in python?"


@pytest.fixture
def stub_url(stub_url: str, pg_stub_url: str, store_kind: str) -> str:
    """Each store's run counts upstream calls on a stub of its own."""
    return pg_stub_url if store_kind == "postgres" else stub_url


@pytest.fixture
def settings(any_store_settings: Settings) -> Settings:
    """This module's tests run on both stores (SQLite + FAISS, PostgreSQL + pgvector)."""
    return any_store_settings


def test_miss_then_exact_then_semantic_hit(sidecar: str, stub_url: str) -> None:
    first = chat(sidecar, PROMPT, model="m-basic")
    assert first.status_code == 200 and first.headers["x-semcache"] == "miss"
    answer = first.json()["choices"][0]["message"]["content"]
    exact = chat(sidecar, PROMPT, model="m-basic")
    assert exact.headers["x-semcache"] == "hit-exact"
    assert exact.json()["choices"][0]["message"]["content"] == answer
    semantic = chat(sidecar, PARAPHRASE, model="m-basic")
    assert semantic.headers["x-semcache"] == "hit-semantic"
    assert float(semantic.headers["x-semcache-similarity"]) > 0.9
    assert semantic.headers["x-semcache-entry-id"] == exact.headers["x-semcache-entry-id"]
    assert semantic.json()["choices"][0]["message"]["content"] == answer
    assert upstream_calls(stub_url, "m-basic") == 1
    assert chat(sidecar, "What is the capital of France?", model="m-basic").headers["x-semcache"] == "miss"


def test_system_prompt_and_earlier_turns_keep_entries_apart(sidecar: str) -> None:
    chat(sidecar, PROMPT, model="m-scope")
    system = [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": PROMPT}]
    body = {"model": "m-scope", "messages": system}
    response = httpx.post(f"{sidecar}/v1/chat/completions", json=body, headers={"X-Semcache-Repo": "acme"})
    assert response.headers["x-semcache"] == "miss"
    turns = [
        {"role": "user", "content": "I use Python 2."},
        {"role": "assistant", "content": "OK."},
        {"role": "user", "content": PROMPT},
    ]
    body = {"model": "m-scope", "messages": turns}
    response = httpx.post(f"{sidecar}/v1/chat/completions", json=body, headers={"X-Semcache-Repo": "acme"})
    assert response.headers["x-semcache"] == "miss"


def test_streaming_miss_is_passed_through_and_stored_then_replayed(sidecar: str, stub_url: str) -> None:
    miss = chat(sidecar, PROMPT, model="m-stream", stream=True)
    assert miss.status_code == 200 and miss.headers["x-semcache"] == "miss"
    events = stream_events(miss)
    assert events[-1] == "[DONE]"
    text = streamed_text(events)
    assert text == f"[m-stream] answer to: {PROMPT}"
    hit = chat(sidecar, PARAPHRASE, model="m-stream", stream=True)
    assert hit.headers["x-semcache"] == "hit-semantic"
    replayed = stream_events(hit)
    assert replayed[-1] == "[DONE]" and streamed_text(replayed) == text
    assert chat(sidecar, PROMPT, model="m-stream").json()["choices"][0]["message"]["content"] == text
    assert upstream_calls(stub_url, "m-stream") == 1


@pytest.mark.parametrize("model", ["m-500", "m-429-ra0", "m-400", "m-length", "m-empty", "m-tool"])
def test_failed_or_unusable_answers_are_never_cached(sidecar: str, stub_url: str, model: str) -> None:
    first = chat(sidecar, PROMPT, model=model)
    second = chat(sidecar, PROMPT, model=model)
    assert second.headers.get("x-semcache") in (None, "miss")
    assert upstream_calls(stub_url, model) == 2
    assert first.status_code == second.status_code
    if model in ("m-500", "m-429-ra0", "m-400"):
        assert first.status_code == {"m-500": 502, "m-429-ra0": 429, "m-400": 400}[model]
        assert first.json()["error"]["message"]


def test_broken_stream_is_reported_and_not_cached(sidecar: str, stub_url: str) -> None:
    broken = chat(sidecar, PROMPT, model="m-broken-stream", stream=True)
    events = stream_events(broken)
    assert "error" in events[-1] and "[DONE]" not in events
    again = chat(sidecar, PROMPT, model="m-broken-stream", stream=True)
    assert again.headers["x-semcache"] == "miss"
    assert upstream_calls(stub_url, "m-broken-stream") == 2


def test_unreachable_upstream_is_a_502_and_caches_nothing(settings: Settings, embedder) -> None:
    from semcache.http.app import create_app
    from tests.servers import free_port, serve

    settings = settings.model_copy(update={"upstream_base_url": f"http://127.0.0.1:{free_port()}/v1"})
    with serve(create_app(settings, embedder=embedder)) as url:
        response = chat(url, PROMPT)
        assert response.status_code == 502 and response.json()["error"]["type"] == "upstream_unavailable"
        assert httpx.get(f"{url}/v1/cache/repos/acme/stats").json()["entries"] == 0


@pytest.mark.parametrize(
    ("content", "headers", "status", "needle"),
    [
        (b"{not json", {"X-Semcache-Repo": "acme"}, 400, "not valid JSON"),
        (json.dumps({"model": "m"}).encode(), {"X-Semcache-Repo": "acme"}, 400, "messages"),
        (
            json.dumps({"model": "m", "messages": [{"role": "wizard", "content": "x"}]}).encode(),
            {"X-Semcache-Repo": "acme"},
            400,
            "role",
        ),
        (
            json.dumps({"model": "m", "messages": [{"role": "user", "content": "x" * 300_000}]}).encode(),
            {"X-Semcache-Repo": "acme"},
            413,
            "limit",
        ),
        (
            json.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}]}).encode(),
            {},
            400,
            "repo",
        ),
        (
            json.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}]}).encode(),
            {"X-Semcache-Repo": "../../etc"},
            400,
            "invalid repo",
        ),
        (
            json.dumps(
                {
                    "model": "m",
                    "messages": [{"role": "user", "content": "x"}],
                    "semcache": {"min_similarity": 2},
                }
            ).encode(),
            {"X-Semcache-Repo": "acme"},
            400,
            "min_similarity",
        ),
        (
            json.dumps(
                {"model": "m", "messages": [{"role": "user", "content": "x"}], "semcache": {"ttl_s": 1e12}}
            ).encode(),
            {"X-Semcache-Repo": "acme"},
            400,
            "ttl_s",
        ),
    ],
    ids=["malformed", "no-messages", "bad-role", "oversize", "no-repo", "bad-repo", "bad-threshold", "ttl"],
)
def test_bad_input_gets_a_clear_4xx(
    sidecar: str, content: bytes, headers: dict, status: int, needle: str
) -> None:
    response = httpx.post(
        f"{sidecar}/v1/chat/completions",
        content=content,
        headers={"content-type": "application/json", **headers},
    )
    assert response.status_code == status
    assert needle in response.json()["error"]["message"]
    assert httpx.get(f"{sidecar}/v1/cache/repos").json() == {"repos": []}


def test_management_api(sidecar: str) -> None:
    body = {
        "model": "m-admin",
        "messages": [{"role": "user", "content": "What is a monad?"}],
        "semcache": {"context_files": [{"path": "docs/fp.md", "sha": "1"}]},
    }
    answer = {
        "object": "chat.completion",
        "model": "m-admin",
        "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "A burrito."}}
        ],
    }
    put = httpx.post(f"{sidecar}/v1/cache/repos/acme/entries", json={"request": body, "response": answer})
    assert put.status_code == 201
    entry_id = put.json()["entry_id"]
    query = {**body, "messages": [{"role": "user", "content": "What's a monad?"}]}
    found = httpx.post(f"{sidecar}/v1/cache/repos/acme/lookup", json=query).json()
    assert (
        found["hit"]
        and found["entry_id"] == entry_id
        and found["response"]["choices"][0]["message"]["content"] == "A burrito."
    )
    assert (
        httpx.get(f"{sidecar}/v1/cache/repos/acme/entries/{entry_id}").json()["prompt"] == "What is a monad?"
    )
    assert httpx.get(f"{sidecar}/v1/cache/repos").json() == {"repos": [{"repo": "acme", "entries": 1}]}
    health = httpx.get(f"{sidecar}/healthz").json()
    assert (health["status"], health["repos"]) == ("ok", 1)
    decision = {
        k: health["decision"][k]
        for k in (
            "decision",
            "model",
            "false_hit_budget",
            "threshold",
            "source",
            "semantic_hits",
            "calibrated_budgets",
        )
    }
    assert decision == {
        "decision": "cosine",
        "model": "cosine",
        "false_hit_budget": 0.05,
        "threshold": 0.85,
        "source": "setting",
        "semantic_hits": True,
        "calibrated_budgets": [],
    }
    purged = httpx.delete(f"{sidecar}/v1/cache/repos/acme", params={"context_file": "docs/fp.md"})
    assert purged.json()["removed"] == 1
    assert httpx.get(f"{sidecar}/v1/cache/repos/acme/entries/{entry_id}").status_code == 404
    bad = httpx.post(
        f"{sidecar}/v1/cache/repos/acme/entries", json={"request": body, "response": {"choices": []}}
    )
    assert bad.status_code == 400
    assert httpx.delete(f"{sidecar}/v1/cache/repos/acme/entries/999").status_code == 404
    assert httpx.get(f"{sidecar}/v1/cache/repos/acme/entries/abc").status_code == 400


def test_delete_purge_stats_and_wrong_hit_feedback(sidecar: str) -> None:
    chat(sidecar, "Cancel my subscription", model="m-fb")
    chat(sidecar, "Cancel my subscription", repo="other", model="m-fb")
    wrong = chat(sidecar, "Don't cancel my subscription", model="m-fb")
    assert wrong.headers["x-semcache"] == "hit-semantic"  # plain cosine cannot tell these apart
    entry_id = int(wrong.headers["x-semcache-entry-id"])
    report = httpx.post(
        f"{sidecar}/v1/cache/repos/acme/feedback",
        json={"entry_id": entry_id, "prompt": "Don't cancel my subscription"},
    )
    assert report.status_code == 200 and report.json()["evicted"]
    assert httpx.post(f"{sidecar}/v1/cache/repos/acme/feedback", json={"entry_id": "x"}).status_code == 400
    stats = httpx.get(f"{sidecar}/v1/cache/repos/acme/stats").json()
    assert (stats["entries"], stats["hits_semantic"], stats["misses"]) == (0, 1, 1)
    assert stats["hit_rate"] == 0.5
    chat(sidecar, "Cancel my subscription", model="m-fb")
    assert httpx.delete(f"{sidecar}/v1/cache/repos/acme").json()["removed"] == 1
    assert httpx.get(f"{sidecar}/v1/cache/repos/other/stats").json()["entries"] == 1
    assert (
        chat(sidecar, "Cancel my subscription", repo="other", model="m-fb").headers["x-semcache"]
        == "hit-exact"
    )


def test_a_purge_that_does_not_wait_answers_202_and_finishes_in_the_background(sidecar: str) -> None:
    chat(sidecar, "Cancel my subscription", model="m-bg")
    chat(sidecar, "Cancel my subscription", repo="other", model="m-bg")
    accepted = httpx.delete(f"{sidecar}/v1/cache/repos/acme", params={"wait": "false"})
    assert accepted.status_code == 202 and accepted.json() == {"repo": "acme", "purging": True, "entries": 1}
    for _ in range(500):
        stats = httpx.get(f"{sidecar}/v1/cache/repos/acme/stats").json()
        if not stats["purging"]:
            break
        time.sleep(0.01)
    assert (stats["purging"], stats["entries"]) == (False, 0)
    assert chat(sidecar, "Cancel my subscription", model="m-bg").headers["x-semcache"] == "miss"
    assert (
        chat(sidecar, "Cancel my subscription", repo="other", model="m-bg").headers["x-semcache"]
        == "hit-exact"
    )


def test_cli_purge_is_seen_by_the_running_server(sidecar: str, settings: Settings) -> None:
    chat(sidecar, PROMPT, model="m-cli")
    assert chat(sidecar, PARAPHRASE, model="m-cli").headers["x-semcache"] == "hit-semantic"
    # the CLI finds the store as the server does: the data dir, or the shared database's URL
    runner = CliRunner(env={"SEMCACHE_STORE_URL": settings.store_url} if settings.store_url else None)
    data_dir = ["--data-dir", str(settings.data_dir)]
    listed = runner.invoke(cli_app, ["repos", *data_dir])
    assert listed.exit_code == 0 and "acme" in listed.output
    # the server writes its hit and miss counts once a second: another process sees them within one
    wait_for(lambda: "50.0%" in runner.invoke(cli_app, ["stats", "acme", *data_dir]).output, timeout_s=5)
    shown = runner.invoke(cli_app, ["stats", "acme", *data_dir])
    assert shown.exit_code == 0 and "acme semantic decision: learned, budget" in shown.output
    purged = runner.invoke(cli_app, ["purge", "acme", *data_dir])
    assert purged.exit_code == 0 and "1 entries removed" in purged.output
    assert chat(sidecar, PARAPHRASE, model="m-cli").headers["x-semcache"] == "miss"
    bad = runner.invoke(cli_app, ["purge", "a/b", *data_dir])
    assert bad.exit_code == 1 and "invalid repo" in bad.output


@pytest.mark.sqlite_only
def test_restart_keeps_the_cache_and_rebuilds_a_lost_index(settings: Settings, embedder) -> None:
    from semcache.http.app import create_app
    from tests.servers import serve

    with serve(create_app(settings, embedder=embedder)) as url:
        assert chat(url, PROMPT, model="m-restart").headers["x-semcache"] == "miss"
    (settings.index_dir / "acme.faiss").unlink()
    with serve(create_app(settings, embedder=embedder)) as url:
        assert chat(url, PARAPHRASE, model="m-restart").headers["x-semcache"] == "hit-semantic"


def test_openai_client_end_to_end(sidecar: str, stub_url: str) -> None:
    client = openai.OpenAI(
        base_url=f"{sidecar}/v1", api_key="unused", default_headers={"X-Semcache-Repo": "sdk"}
    )
    messages = [{"role": "user", "content": PROMPT}]
    first = client.chat.completions.with_raw_response.create(model="m-sdk", messages=messages)
    assert first.headers["x-semcache"] == "miss"
    again = client.chat.completions.with_raw_response.create(
        model="m-sdk",
        messages=[{"role": "user", "content": PARAPHRASE}],
        extra_body={"semcache": {"ttl_s": 600}},
    )
    assert again.headers["x-semcache"] == "hit-semantic"
    assert again.parse().choices[0].message.content == first.parse().choices[0].message.content
    stream = client.chat.completions.create(model="m-sdk", messages=messages, stream=True)
    assert (
        "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        == first.parse().choices[0].message.content
    )
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="m-sdk", messages=messages, extra_body={"semcache": {"min_similarity": 7}}
        )
    assert upstream_calls(stub_url, "m-sdk") == 1
