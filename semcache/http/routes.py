"""The sidecar's HTTP routes: the OpenAI-compatible chat endpoint, the health check, and the cache's own
API (repos, stats, purges, lookups, entries, wrong-hit feedback). ``semcache.http.app`` builds the app,
its lifespan and error handlers, and mounts :data:`api`."""

from __future__ import annotations

import functools
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from semcache.errors import SemcacheError
from semcache.http.auth import access_of, log_admin_write, require_admin, require_repo
from semcache.http.bodies import THREAD_DECODE_BYTES, parse_model, read_json
from semcache.http.chat import Gateway
from semcache.http.upstream import spend_summary
from semcache.keys import CacheRequest, parse_chat_request, validate_repo
from semcache.store.records import INT64

api = APIRouter()
# Entry ids are SQLite rowids: anything outside 1 .. 2^63 - 1 is a client's mistake (400), never a 500.
EntryId = Annotated[int, Field(ge=1, lt=INT64)]
EntryIdPath = Annotated[int, PathParam(ge=1, lt=INT64)]


class StoreBody(BaseModel):
    """Body of ``POST /v1/cache/repos/{repo}/entries``: a chat request and the answer to keep."""

    model_config = ConfigDict(extra="forbid")
    request: dict[str, Any]
    response: dict[str, Any]


class FeedbackBody(BaseModel):
    """Body of ``POST /v1/cache/repos/{repo}/feedback``: a hit that served a wrong answer."""

    model_config = ConfigDict(extra="forbid")
    entry_id: EntryId
    prompt: str = Field(min_length=1)
    similarity: float | None = None


# The bodies' JSON schemas, for the OpenAPI document (the routes read and check bodies themselves, strictly:
# see semcache.http.bodies and semcache.keys).
_MESSAGE = {
    "type": "object",
    "required": ["role", "content"],
    "properties": {
        "role": {"type": "string", "enum": ["system", "developer", "user", "assistant", "tool"]},
        "content": {"type": "string"},
    },
}
CHAT_SCHEMA = {
    "type": "object",
    "required": ["model", "messages"],
    "properties": {
        "model": {"type": "string", "minLength": 1},
        "messages": {"type": "array", "minItems": 1, "items": _MESSAGE},
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
        "stream": {"type": "boolean"},
        "semcache": {
            "type": "object",
            "description": "cache options: repo, context_files, ttl_s, "
            "min_similarity, false_hit_budget, no_cache, no_store, tier",
        },
    },
}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _gateway(request: Request) -> Gateway:
    return request.app.state.gateway


async def _json(request: Request) -> Any:
    return await read_json(request, request.app.state.settings.max_body_bytes)


async def _chat(
    request: Request, payload: Any, repo: str | None, default_repo: str | None = None
) -> CacheRequest:
    """Validate a chat body and hash its keys; a large one in a worker thread, off the event loop."""
    settings = request.app.state.settings
    parse = functools.partial(
        parse_chat_request,
        payload,
        header_repo=repo,
        default_repo=default_repo,
        max_prompt_chars=settings.max_prompt_chars,
        max_messages=settings.max_messages,
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > THREAD_DECODE_BYTES:
        return await anyio.to_thread.run_sync(parse)
    return parse()


@api.post("/v1/chat/completions", openapi_extra=_body(CHAT_SCHEMA))
async def chat_completions(request: Request) -> Response:
    """The OpenAI-compatible endpoint: a hit from the cache, or the router's answer (then stored)."""
    access = access_of(request)
    principal, refused = await access.attempt(request)
    default_repo = principal.default_repo if principal else None
    try:
        chat = await _chat(
            request, await _json(request), request.headers.get("x-semcache-repo"), default_repo
        )
    except SemcacheError:
        if refused is not None:
            raise refused from None
        raise
    if refused is not None:  # only now: a 401 costs what a 403 does, so timing tells nothing
        raise refused
    access.check_repo(principal, chat.repo)
    if chat.stream:
        reply = await _gateway(request).chat_stream(chat)
        access.count(principal, reply.headers.get("X-Semcache", "").startswith("hit"))
        return StreamingResponse(reply.events, media_type="text/event-stream", headers=reply.headers)
    answer = await _gateway(request).chat(chat)
    access.count(principal, answer.headers.get("X-Semcache", "").startswith("hit"))
    return JSONResponse(answer.completion, headers=answer.headers)


@api.get("/healthz")
async def healthz(request: Request) -> dict[str, Any]:
    """Liveness, the number of repos, the hit decision in force, and whether auth is on."""
    cache = _gateway(request).cache
    try:
        repos, decision = await anyio.to_thread.run_sync(lambda: (cache.repos(), cache.decision()))
    except SemcacheError as exc:  # the store cannot be read: alive, degraded, and saying why
        repos, decision = None, None
        cache.health.failed("lookups", exc)
    reason = cache.health.reason
    return {
        "status": "degraded" if reason else "ok",
        "reason": reason,
        "repos": None if repos is None else len(repos),
        "decision": decision,
        "auth": {"on": access_of(request).mode.on, "reason": access_of(request).mode.reason},
    }


@api.get("/v1/cache/repos")
async def list_repos(request: Request) -> dict[str, Any]:
    """Every repo with its entry count (admin)."""
    await require_admin(request)
    repos = await anyio.to_thread.run_sync(_gateway(request).cache.repos)
    return {"repos": [{"repo": name, "entries": count} for name, count in repos.items()]}


@api.get("/v1/cache/repos/{repo}/stats")
async def repo_stats(repo: str, request: Request) -> dict[str, Any]:
    """A repo's entries, hits, misses, tokens and cost saved, and its spend on the miss path."""
    await require_repo(request, validate_repo(repo))
    service = _gateway(request)
    stats = await anyio.to_thread.run_sync(service.cache.stats, validate_repo(repo))
    spend = spend_summary(await anyio.to_thread.run_sync(service.spend, repo))
    return {
        "repo": stats.repo,
        "entries": stats.entries,
        "purging": service.cache.purging(stats.repo),
        "hits": stats.hits,
        "hits_exact": stats.hits_exact,
        "hits_semantic": stats.hits_semantic,
        "misses": stats.misses,
        "hit_rate": stats.hit_rate,
        "tokens_saved": stats.tokens_saved,
        "decision": _decision(service, stats.repo),
        "cost_saved_usd": spend["total"]["saved_usd"] if spend["total"] else None,
        "spend": spend,
    }


def _decision(service: Gateway, repo: str) -> dict[str, Any]:
    """The repo's decision report, with the audit's spend on the miss path."""
    report = service.cache.decision(repo)
    rows = service.spend(repo)
    report["audit"]["spend_usd"] = sum(row.audit_spend_usd for row in rows) if rows else None
    return report


@api.delete("/v1/cache/repos/{repo}", response_model=None)
async def purge(
    repo: str, request: Request, context_file: str | None = None, wait: bool = True
) -> dict[str, Any] | JSONResponse:
    """Drop a repo's entries (or only those built on one context file); ``wait=false`` answers 202 at
    once and purges in the background (admin; logged)."""
    principal = await require_admin(request)
    cache = _gateway(request).cache
    await log_admin_write(
        request,
        principal,
        "purge",
        validate_repo(repo),
        f"context_file={context_file}" if context_file else "",
    )
    if context_file is not None:
        removed = await anyio.to_thread.run_sync(cache.purge_context_file, validate_repo(repo), context_file)
    elif not wait:  # a big repo takes a minute: answer now, purge in the background
        entries = await anyio.to_thread.run_sync(cache.purge_in_background, validate_repo(repo))
        _gateway(request).recent.forget_hits(repo)
        return JSONResponse({"repo": repo, "purging": True, "entries": entries}, status_code=202)
    else:
        removed = await anyio.to_thread.run_sync(cache.purge, validate_repo(repo))
    if context_file is None:
        _gateway(request).recent.forget_hits(repo)  # the dashboard's latest hits point at purged entries
    return {"repo": repo, "removed": removed}


@api.post("/v1/cache/repos/{repo}/lookup", openapi_extra=_body(CHAT_SCHEMA))
async def lookup(repo: str, request: Request) -> dict[str, Any]:
    """What the cache would answer for a chat request, without counting it or asking the router."""
    await require_repo(request, validate_repo(repo))
    chat = await _chat(request, await _json(request), validate_repo(repo))
    found = await anyio.to_thread.run_sync(_gateway(request).cache.lookup, chat, False)
    if found.hit is None:
        return {"hit": False}
    hit = found.hit
    return {
        "hit": True,
        "kind": hit.kind,
        "similarity": hit.similarity,
        "entry_id": hit.entry.id,
        "response": hit.entry.response,
    }


@api.post(
    "/v1/cache/repos/{repo}/entries",
    status_code=201,
    openapi_extra=_body(
        {
            "type": "object",
            "required": ["request", "response"],
            "properties": {"request": CHAT_SCHEMA, "response": {"type": "object"}},
        }
    ),
)
async def put_entry(repo: str, request: Request) -> dict[str, Any]:
    """Store an answer an operator sends directly (admin; logged)."""
    principal = await require_admin(request)
    body = parse_model(StoreBody, await _json(request))
    chat = await _chat(request, body.request, validate_repo(repo))
    entry_id = await anyio.to_thread.run_sync(_gateway(request).cache.put, chat, body.response)
    await log_admin_write(request, principal, "store", repo, f"entry {entry_id}")
    return {"entry_id": entry_id}


@api.get("/v1/cache/repos/{repo}/entries/{entry_id}")
async def get_entry(repo: str, entry_id: EntryIdPath, request: Request) -> dict[str, Any]:
    """One entry: its prompt, answer, model, times and hit count."""
    await require_repo(request, validate_repo(repo))
    entry = await anyio.to_thread.run_sync(_gateway(request).cache.get, validate_repo(repo), entry_id)
    return {
        "entry_id": entry.id,
        "prompt": entry.prompt,
        "model": entry.model,
        "response": entry.response,
        "created_at": entry.created_at,
        "expires_at": entry.expires_at,
        "hit_count": entry.hit_count,
    }


@api.delete("/v1/cache/repos/{repo}/entries/{entry_id}", status_code=204)
async def delete_entry(repo: str, entry_id: EntryIdPath, request: Request) -> Response:
    """Delete one entry (admin; logged)."""
    principal = await require_admin(request)
    await anyio.to_thread.run_sync(_gateway(request).cache.delete, validate_repo(repo), entry_id)
    await log_admin_write(request, principal, "delete", repo, f"entry {entry_id}")
    return Response(status_code=204)


@api.post("/v1/cache/repos/{repo}/feedback", openapi_extra=_body(FeedbackBody.model_json_schema()))
async def feedback(repo: str, request: Request) -> dict[str, Any]:
    """Report a hit that served a wrong answer: the entry is evicted and the pair kept for re-tuning (a
    key of the repo, rate-limited per key)."""
    principal = await require_repo(request, validate_repo(repo))
    access_of(request).check_feedback(principal)
    body = parse_model(FeedbackBody, await _json(request))
    cache = _gateway(request).cache
    feedback_id = await anyio.to_thread.run_sync(
        cache.report_wrong_hit, validate_repo(repo), body.entry_id, body.prompt, body.similarity
    )
    _gateway(request).recent.mark_reported(repo, body.entry_id)
    if cache.audit_rate(repo) > 0:  # the report is a label of the repo's online calibration too
        _gateway(request).metrics.audit_jobs.labels("feedback").inc()
    return {"evicted": True, "feedback_id": feedback_id}
