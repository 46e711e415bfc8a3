"""Reading request bodies: capped in size before they are read whole, decoded as strict JSON, and
off the event loop when large.

Strict means what the store and the upstream can take: UTF-8 without lone surrogates, no NaN or
Infinity, integers within 64 bits, nesting at most :data:`MAX_DEPTH` deep. Anything else is a 400
(413 for size) with the project's error shape, before a lookup, a store or an upstream call.
"""

from __future__ import annotations

import json
import math
from typing import Any

import anyio.to_thread
from fastapi import Request
from pydantic import BaseModel, ValidationError

from semcache.errors import InvalidRequest, PromptTooLarge, UnsupportedMediaType
from semcache.store.records import INT64

MAX_DEPTH = 64
# Bodies larger than this are decoded in a worker thread, so a big one never stalls the event loop.
THREAD_DECODE_BYTES = 64 * 1024


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The raw body, refused with 413 as soon as it is known to pass ``max_bytes``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PromptTooLarge(f"the body is {int(declared)} bytes; the limit is {max_bytes}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PromptTooLarge(f"the body is over the limit of {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, max_bytes: int) -> Any:
    """The body as strict JSON (see the module's docstring), declared as JSON: a body sent as
    ``text/plain`` or a form (what a page on another site can make a browser send without asking) is a
    415, so no cross-origin request can write."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaType(
            f"send the body as JSON with Content-Type: application/json (got {media or 'no Content-Type'!r})"
        )
    raw = await read_body(request, max_bytes)
    if len(raw) > THREAD_DECODE_BYTES:
        return await anyio.to_thread.run_sync(decode, raw)
    return decode(raw)


def decode(raw: bytes) -> Any:
    """Strict JSON from bytes, or :class:`InvalidRequest` saying what is wrong."""
    try:
        value = json.loads(
            raw.decode("utf-8"), parse_constant=_no_constant, parse_float=_finite, parse_int=_int64
        )
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"the body is not valid UTF-8: {exc}") from exc
    except RecursionError as exc:
        raise InvalidRequest(f"the body nests deeper than {MAX_DEPTH} levels") from exc
    except ValueError as exc:  # JSONDecodeError, or an integer of more digits than Python converts
        raise InvalidRequest(f"the body is not valid JSON: {exc}") from exc
    check(value)
    return value


def check(value: Any) -> None:
    """Refuse lone surrogates and nesting past :data:`MAX_DEPTH` (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InvalidRequest(f"the body nests deeper than {MAX_DEPTH} levels")
        if isinstance(node, str):
            _text(node)
        elif isinstance(node, dict):
            for key, item in node.items():
                _text(key)
                stack.append((item, depth + 1))
        elif isinstance(node, list):
            stack.extend((item, depth + 1) for item in node)


def _text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidRequest(
            f"the body holds a lone surrogate escape ({text[exc.start : exc.end]!r})"
        ) from exc


def _no_constant(name: str) -> float:
    raise InvalidRequest(f"{name} is not a JSON number; send a finite number")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise InvalidRequest(f"{text[:40]} is out of range for a finite number")
    return number


def _int64(text: str) -> int:
    number = int(text)
    if not -INT64 <= number < INT64:
        raise InvalidRequest(f"{text[:40]} does not fit in a 64-bit integer")
    return number


def parse_model(cls: type[BaseModel], payload: Any) -> Any:
    """``payload`` as a ``cls`` model, or :class:`InvalidRequest` naming the first problems."""
    try:
        return cls.model_validate(payload)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise InvalidRequest(f"invalid request: {problems}") from exc
