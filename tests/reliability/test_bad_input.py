"""Bad input gets a clear 4xx with the project's error shape and loses nothing (issue 21, points 2-4,
6 and 7): each case reproduces a failure once seen from outside, over real HTTP and real SQLite."""

from __future__ import annotations

import sqlite3

import httpx
import pytest

from semcache.config import Settings

REPO = {"X-Semcache-Repo": "acme"}
ANSWER = {
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "A burrito."}, "finish_reason": "stop"}
    ]
}


def chat_body(content: str = "What is a monad?", **extra: object) -> dict:
    return {"model": "m", "messages": [{"role": "user", "content": content}], **extra}


def post(url: str, path: str, body: str | bytes, headers: dict | None = None) -> httpx.Response:
    return httpx.post(
        f"{url}{path}",
        content=body,
        headers={"content-type": "application/json", **REPO, **(headers or {})},
        timeout=30,
    )


def assert_error(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert set(response.json()["error"]) == {"type", "message"}


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/cache/repos/acme/lookup"])
def test_a_lone_surrogate_is_a_400(sidecar: str, path: str) -> None:
    assert_error(
        post(sidecar, path, '{"model": "m", "messages": [{"role": "user", "content": "hi \\ud800"}]}'), 400
    )


def test_a_lone_surrogate_in_a_stored_entry_is_a_400(sidecar: str) -> None:
    body = '{"request": {"model": "m", "messages": [{"role": "user", "content": "hi"}]}, "response": {"x": "\\udfff"}}'
    assert_error(post(sidecar, "/v1/cache/repos/acme/entries", body), 400)


def test_deep_nesting_is_a_400(sidecar: str) -> None:
    deep = "[" * 2000 + "]" * 2000
    assert_error(post(sidecar, "/v1/chat/completions", f'{{"model": "m", "messages": {deep}}}'), 400)
    assert_error(post(sidecar, "/v1/chat/completions", f'{{"model": "m", "x": {"[" * 70 + "]" * 70}}}'), 400)


def test_integers_past_64_bits_are_a_400(sidecar: str) -> None:
    huge = 2**63
    assert_error(httpx.get(f"{sidecar}/v1/cache/repos/acme/entries/{huge}"), 400)
    assert_error(httpx.delete(f"{sidecar}/v1/cache/repos/acme/entries/{huge}"), 400)
    assert_error(
        post(sidecar, "/v1/cache/repos/acme/feedback", f'{{"entry_id": {huge}, "prompt": "x"}}'), 400
    )
    usage = f'{{"request": {{"model": "m", "messages": [{{"role": "user", "content": "hi"}}]}}, "response": {{"choices": [{{"index": 0, "message": {{"role": "assistant", "content": "ok"}}, "finish_reason": "stop"}}], "usage": {{"prompt_tokens": {huge}}}}}}}'
    assert_error(post(sidecar, "/v1/cache/repos/acme/entries", usage), 400)
    assert_error(
        post(sidecar, "/v1/chat/completions", f'{{"model": "m", "seed": {"1" * 5000}, "messages": []}}'), 400
    )


@pytest.mark.parametrize(
    "response",
    [
        {"choices": ["x"]},
        {"choices": [{"index": 0, "message": "x", "finish_reason": "stop"}]},
        {**ANSWER, "usage": []},
        {**ANSWER, "usage": {"prompt_tokens": "abc"}},
    ],
)
def test_malformed_stored_responses_are_a_400(sidecar: str, response: dict) -> None:
    body = {"request": chat_body(), "response": response}
    assert_error(httpx.post(f"{sidecar}/v1/cache/repos/acme/entries", json=body), 400)


def test_nan_is_a_400_and_never_poisons_a_prompt(sidecar: str) -> None:
    nan_chat = (
        '{"model": "m", "temperature": NaN, "messages": [{"role": "user", "content": "What is a monad?"}]}'
    )
    assert_error(post(sidecar, "/v1/chat/completions", nan_chat), 400)  # not a 502 "upstream error"
    stored = '{"request": {"model": "m", "messages": [{"role": "user", "content": "What is a monad?"}]}, "response": {"choices": [{"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": "stop"}], "usage": {"prompt_tokens": NaN}}}'
    assert_error(post(sidecar, "/v1/cache/repos/acme/entries", stored), 400)
    assert httpx.post(f"{sidecar}/v1/chat/completions", json=chat_body(), headers=REPO).status_code == 200


def test_a_repo_name_with_a_trailing_newline_is_a_400(sidecar: str) -> None:
    body = chat_body(semcache={"repo": "acme\n"})
    assert_error(httpx.post(f"{sidecar}/v1/chat/completions", json=body), 400)


def test_purging_unknown_repos_leaves_no_rows(sidecar: str, settings: Settings) -> None:
    for i in range(20):
        assert httpx.delete(f"{sidecar}/v1/cache/repos/never.seen.{i}").status_code == 200
    assert httpx.get(f"{sidecar}/v1/cache/repos").json() == {"repos": []}
    with sqlite3.connect(settings.db_path) as db:
        assert db.execute("SELECT COUNT(*) FROM repo_stats WHERE repo LIKE 'never.seen.%'").fetchone()[0] == 0


@pytest.mark.parametrize("status", ["401", "404"])
def test_upstream_401_and_404_are_the_servers_problem(sidecar: str, status: str) -> None:
    response = httpx.post(
        f"{sidecar}/v1/chat/completions", json=chat_body(model=f"rel-{status}"), headers=REPO
    )
    assert_error(response, 502)
    assert response.json()["error"]["type"] in ("upstream_auth_error", "upstream_not_found")


def test_bodies_past_the_limit_are_a_413_and_fields_are_checked(settings: Settings, embedder) -> None:
    from semcache.http.app import create_app
    from tests.servers import serve

    small = settings.model_copy(update={"max_body_bytes": 100_000, "max_messages": 50})
    with serve(create_app(small, embedder=embedder)) as url:
        big = chat_body(content="x" * 200_000)
        assert_error(httpx.post(f"{url}/v1/chat/completions", json=big, headers=REPO), 413)
        many = {"model": "m", "messages": [{"role": "user", "content": "a"}] * 51}
        assert_error(httpx.post(f"{url}/v1/chat/completions", json=many, headers=REPO), 400)
        unknown = chat_body(extra_field="y" * 10)
        response = httpx.post(f"{url}/v1/chat/completions", json=unknown, headers=REPO)
        assert_error(response, 400)
        assert "extra_field" in response.json()["error"]["message"]
        assert httpx.get(f"{url}/healthz").json()["status"] == "ok"
