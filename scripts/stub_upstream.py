"""A small OpenAI-compatible chat server for tests and local trials: the only fake in the project.

Behaviour is picked by the model name (substrings, case-insensitive):

  ok (default)     answers "[<model>] answer to: <last user message>", finish_reason "stop"
  slow[-<N>ms]     sleeps N ms (default 1000) first, then answers like ok
  429              HTTP 429 with ``Retry-After: 1`` ("429-ra<S>" sets S seconds)
  500 / 503        HTTP 500 / 503
  400 / 401 / 404  that HTTP status with an OpenAI-shaped error body
  flaky-<N>        the first N calls for this model answer 500, later ones answer like ok
  broken-stream    streams two chunks and then drops the connection
  length           finish_reason "length" (a truncated answer)
  empty            an empty answer
  tool             a tool call instead of content

The question of semcache's ``llm`` judge is answered "yes" exactly when its two answers are the same text.

With ``--clusters FILE`` (JSONL rows ``{"prompt": ..., "cluster": ...}``) an ok answer to a prompt of the
file is "cluster <id>" instead, the same for every prompt of a cluster, so a client can tell whether a
cached answer served to a prompt was stored for a prompt of its cluster; other prompts are answered as
above.

``GET /_stub/calls`` returns call counts, ``POST /_stub/reset`` clears them.
Run it by hand with ``python scripts/stub_upstream.py --port 8766 [--clusters FILE]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            return str(content or "")
    return ""


def _count_tokens(messages: list[dict[str, Any]]) -> int:
    return sum(len(str(m.get("content") or "").split()) + 3 for m in messages)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": "stub_error", "code": status}}
    return JSONResponse(body, status_code=status, headers=headers)


# The question semcache's llm judge asks (semcache/http/judges.py); the stub answers it like a strict judge.
JUDGE_QUESTION = re.compile(r"\nAnswer A:\n(.*)\n\nAnswer B:\n(.*)\n\nDoes answer A serve", re.S)


def load_clusters(path: Path) -> dict[str, str]:
    """Each prompt of a JSONL file of ``{"prompt", "cluster"}`` rows, mapped to its cluster id as text."""
    with path.open() as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    return {str(row["prompt"]): str(row["cluster"]) for row in rows}


def _answer(
    model: str, messages: list[dict[str, Any]], clusters: dict[str, str] | None = None
) -> tuple[str, str, list[dict] | None]:
    """Return (content, finish_reason, tool_calls) for a model's behaviour (and the prompt's cluster)."""
    name = model.lower()
    if "length" in name:
        return "a truncated answ", "length", None
    if "empty" in name:
        return "", "stop", None
    if "tool" in name:
        call = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
        return "", "tool_calls", [call]
    prompt = _last_user_text(messages)
    judged = JUDGE_QUESTION.search(prompt)
    if judged:  # semcache's llm judge: "yes" exactly when the two answers are the same text
        return ("yes" if judged.group(1).strip() == judged.group(2).strip() else "no"), "stop", None
    if clusters is not None and prompt in clusters:
        return f"cluster {clusters[prompt]}", "stop", None
    return f"[{model}] answer to: {prompt}", "stop", None


def create_stub_app(clusters: dict[str, str] | None = None) -> FastAPI:
    """Build the stub provider app; each app keeps its own call counters.

    ``clusters`` maps prompts to cluster ids: an ok answer to one of them is "cluster <id>".
    """
    app = FastAPI()
    calls: Counter[str] = Counter()

    @app.get("/_stub/calls")
    async def stub_calls() -> dict[str, Any]:
        return {"total": sum(calls.values()), "by_model": dict(calls)}

    @app.post("/_stub/reset")
    async def stub_reset() -> dict[str, bool]:
        calls.clear()
        return {"ok": True}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        body = await request.json()
        model = str(body.get("model", "stub"))
        calls[model] += 1
        failure = await _failure_for(model, calls[model])
        if failure is not None:
            return failure
        messages = body.get("messages", [])
        content, finish, tool_calls = _answer(model, messages, clusters)
        usage = {"prompt_tokens": _count_tokens(messages), "completion_tokens": len(content.split())}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            gen = _stream(model, content, finish, usage if include_usage else None, "broken" in model.lower())
            return StreamingResponse(gen, media_type="text/event-stream")
        message: dict[str, Any] = {"role": "assistant", "content": content or None}
        if tool_calls:
            message["tool_calls"] = tool_calls
        return {
            "id": f"chatcmpl-stub-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage,
        }

    return app


async def _failure_for(model: str, call_number: int) -> JSONResponse | None:
    name = model.lower()
    slow = re.search(r"slow(?:-(\d+)ms)?", name)
    if slow:
        await asyncio.sleep(int(slow.group(1) or 1000) / 1000)
    flaky = re.search(r"flaky-(\d+)", name)
    if flaky and call_number <= int(flaky.group(1)):
        return _error(500, f"flaky failure {call_number}")
    rate = re.search(r"429(?:-ra([\d.]+))?", name)
    if rate:
        return _error(429, "rate limited", headers={"Retry-After": rate.group(1) or "1"})
    for status in (500, 503, 400, 401, 404):
        if str(status) in name:
            return _error(status, f"stub {status}")
    return None


async def _stream(
    model: str, content: str, finish: str, usage: dict[str, int] | None, broken: bool
) -> AsyncIterator[bytes]:
    base = {
        "id": f"chatcmpl-stub-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }

    def event(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}
        return f"data: {json.dumps(chunk)}\n\n".encode()

    yield event({"role": "assistant", "content": ""})
    words = content.split(" ") if content else []
    for i, word in enumerate(words):
        yield event({"content": word if i == 0 else " " + word})
        if broken and i == 1:
            raise RuntimeError("stub: stream broken on purpose")
    yield event({}, finish)
    if usage is not None:
        yield f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n".encode()
    yield b"data: [DONE]\n\n"


def main() -> None:
    """Serve the stub on 127.0.0.1."""
    import uvicorn

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument(
        "--clusters", type=Path, help='JSONL of {"prompt", "cluster"}: their answer is "cluster <id>"'
    )
    args = parser.parse_args()
    clusters = load_clusters(args.clusters) if args.clusters else None
    uvicorn.run(create_stub_app(clusters), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
