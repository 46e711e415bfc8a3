"""Helpers the test modules share: chat requests and completions, calls over HTTP, SSE parsing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from semcache.config import Settings
from semcache.keys import CacheRequest, parse_chat_request


def sidecar_settings(data_dir: Path, model_dir: Path, stub_url: str, **overrides: Any) -> Settings:
    """A test sidecar's settings: the stub upstream, the cosine decision for cache mechanics (the
    learned one is covered by tests/test_decision.py), and no audit, so upstream call counts stay exact
    (tests/test_audit.py turns it on)."""
    values: dict[str, Any] = dict(
        data_dir=data_dir,
        embedding_dir=model_dir,
        upstream_base_url=f"{stub_url}/v1",
        upstream_api_key_env="SEMCACHE_TEST_NO_KEY",
        min_similarity=0.85,
        decision="cosine",
        audit_rate=0.0,
    )
    return Settings(**{**values, **overrides})


def request(prompt: str, repo: str = "acme", **extra: object) -> CacheRequest:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}], **extra}
    return parse_chat_request(body, header_repo=repo)


def completion(text: str, finish: str = "stop") -> dict:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


def chat(
    url: str, content: str, repo: str = "acme", model: str = "gpt-test", **extra: object
) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": content}], **extra}
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers={"X-Semcache-Repo": repo}, timeout=30)


def upstream_calls(stub_url: str, model: str) -> int:
    return httpx.get(f"{stub_url}/_stub/calls").json()["by_model"].get(model, 0)


def stream_events(response: httpx.Response) -> list[dict | str]:
    events = []
    for line in response.text.splitlines():
        if line.startswith("data: "):
            data = line[len("data: ") :]
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


def streamed_text(events: list[dict | str]) -> str:
    return "".join(
        choice["delta"].get("content") or ""
        for e in events
        if isinstance(e, dict)
        for choice in e.get("choices", [])
    )
