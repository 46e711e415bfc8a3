"""The HTTP sidecar: ``create_app(settings)`` is the composition root. Routes validate, make one
service call and shape the response; every error is mapped to a status in one table."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from router.errors import RequestError, UpstreamError
from semcache.cache import SemanticCache
from semcache.config import Settings
from semcache.embedding import Embedder
from semcache.errors import (
    Conflict,
    InvalidRepo,
    InvalidRequest,
    NotFound,
    PromptTooLarge,
    SemcacheError,
    StoreError,
)
from semcache.gateway import Gateway, Upstream
from semcache.keys import CacheRequest, parse_chat_request, validate_repo
from semcache.metrics import CONTENT_TYPE_LATEST, SidecarMetrics, monitor_loop_lag
from semcache.misses import build_upstream, spend_summary

log = logging.getLogger(__name__)

ERROR_STATUS: dict[type[SemcacheError], int] = {
    InvalidRepo: 400,
    PromptTooLarge: 413,
    InvalidRequest: 400,
    NotFound: 404,
    Conflict: 409,
    StoreError: 500,
}


def error_body(kind: str, message: str) -> dict[str, Any]:
    """The JSON error shape every route uses."""
    return {"error": {"type": kind, "message": message}}


class StoreBody(BaseModel):
    """Body of ``POST /v1/cache/repos/{repo}/entries``: a chat request and the answer to keep."""

    model_config = ConfigDict(extra="forbid")
    request: dict[str, Any]
    response: dict[str, Any]


class FeedbackBody(BaseModel):
    """Body of ``POST /v1/cache/repos/{repo}/feedback``: a hit that served a wrong answer."""

    model_config = ConfigDict(extra="forbid")
    entry_id: int
    prompt: str = Field(min_length=1)
    similarity: float | None = None


def freeze_startup_objects() -> None:
    """Move everything allocated so far (models, libraries) out of the garbage collector's reach. A
    full collection walks them all and stops every thread, the event loop too: 35 ms on an idle core
    for the 130 k objects a server holds after start-up (160 ms for 440 k while the first start still
    loaded torch for the model export); under load, one loop-lag sample of 250 to 500 ms was seen."""
    gc.collect()
    gc.freeze()


def create_app(
    settings: Settings, *, upstream: Upstream | None = None, embedder: Embedder | None = None
) -> FastAPI:
    """Build the sidecar. Nothing is loaded until the app starts (lifespan)."""
    metrics = SidecarMetrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Lookups and stores run on worker threads; a few keep 2 cores busy, and dozens only fight the
        # event loop for the GIL (its lag under 64 clients).
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.worker_threads
        cache = SemanticCache(settings, embedder=embedder)
        await anyio.to_thread.run_sync(cache.start)
        freeze_startup_objects()
        miss_path = upstream or build_upstream(settings, cache.embedder)
        app.state.gateway = Gateway(cache, miss_path, metrics)
        sweeper = asyncio.create_task(_sweep_forever(cache, settings.sweep_interval_s))
        lag_monitor = asyncio.create_task(monitor_loop_lag(metrics))
        try:
            yield
        finally:
            sweeper.cancel()
            lag_monitor.cancel()
            if upstream is None:
                await miss_path.aclose()
            await anyio.to_thread.run_sync(cache.close)

    app = FastAPI(title="semcache", version="0.1.0", lifespan=lifespan)
    _install_error_handlers(app)
    _install_routes(app, settings)

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return app


async def _sweep_forever(cache: SemanticCache, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            removed = await anyio.to_thread.run_sync(cache.sweep)
            if removed:
                log.info("swept %d expired entries", removed)
        except Exception:  # a failed sweep is retried next interval; the server keeps serving
            log.exception("sweep failed")


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SemcacheError)
    async def semcache_error(request: Request, exc: SemcacheError) -> JSONResponse:
        status = next((code for cls, code in ERROR_STATUS.items() if isinstance(exc, cls)), 500)
        return JSONResponse(error_body(exc.kind, exc.message), status_code=status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
        return JSONResponse(error_body("invalid_request_error", problems), status_code=400)

    @app.exception_handler(RequestError)
    async def router_request_error(request: Request, exc: RequestError) -> JSONResponse:
        return JSONResponse(error_body("invalid_request_error", str(exc)), status_code=400)

    @app.exception_handler(UpstreamError)
    async def upstream_error(request: Request, exc: UpstreamError) -> JSONResponse:
        headers = {"Retry-After": str(int(exc.retry_after_s))} if exc.retry_after_s is not None else None
        return JSONResponse(error_body(exc.kind, exc.message), status_code=exc.status, headers=headers)


async def _json(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"the body is not valid JSON: {exc}") from exc


def _model(cls: type[BaseModel], payload: Any) -> Any:
    try:
        return cls.model_validate(payload)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise InvalidRequest(f"invalid request: {problems}") from exc


def _install_routes(app: FastAPI, settings: Settings) -> None:
    def gateway(request: Request) -> Gateway:
        return request.app.state.gateway

    async def chat_request(request: Request, repo: str | None = None) -> CacheRequest:
        payload = await _json(request)
        header_repo = repo or request.headers.get("x-semcache-repo")
        return parse_chat_request(
            payload, header_repo=header_repo, max_prompt_chars=settings.max_prompt_chars
        )

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        chat = await chat_request(request)
        if chat.stream:
            reply = await gateway(request).chat_stream(chat)
            return StreamingResponse(reply.events, media_type="text/event-stream", headers=reply.headers)
        answer = await gateway(request).chat(chat)
        return JSONResponse(answer.completion, headers=answer.headers)

    @app.get("/healthz")
    async def healthz(request: Request) -> dict[str, Any]:
        cache = gateway(request).cache
        repos = await anyio.to_thread.run_sync(cache.repos)
        return {"status": "ok", "repos": len(repos), "decision": cache.decision()}

    @app.get("/v1/cache/repos")
    async def list_repos(request: Request) -> dict[str, Any]:
        repos = await anyio.to_thread.run_sync(gateway(request).cache.repos)
        return {"repos": [{"repo": name, "entries": count} for name, count in repos.items()]}

    @app.get("/v1/cache/repos/{repo}/stats")
    async def repo_stats(repo: str, request: Request) -> dict[str, Any]:
        service = gateway(request)
        stats = await anyio.to_thread.run_sync(service.cache.stats, validate_repo(repo))
        spend = spend_summary(await anyio.to_thread.run_sync(service.upstream.spend, repo))
        return {
            "repo": stats.repo, "entries": stats.entries, "purging": service.cache.purging(stats.repo),
            "hits": stats.hits, "hits_exact": stats.hits_exact,
            "hits_semantic": stats.hits_semantic, "misses": stats.misses, "hit_rate": stats.hit_rate,
            "tokens_saved": stats.tokens_saved,
            "cost_saved_usd": spend["total"]["saved_usd"] if spend["total"] else None,
            "spend": spend,
        }  # fmt: skip

    @app.delete("/v1/cache/repos/{repo}", response_model=None)
    async def purge(
        repo: str, request: Request, context_file: str | None = None, wait: bool = True
    ) -> dict[str, Any] | JSONResponse:
        cache = gateway(request).cache
        if context_file is not None:
            removed = await anyio.to_thread.run_sync(
                cache.purge_context_file, validate_repo(repo), context_file
            )
        elif not wait:  # a big repo takes a minute: answer now, purge in the background
            entries = await anyio.to_thread.run_sync(cache.purge_in_background, validate_repo(repo))
            return JSONResponse({"repo": repo, "purging": True, "entries": entries}, status_code=202)
        else:
            removed = await anyio.to_thread.run_sync(cache.purge, validate_repo(repo))
        return {"repo": repo, "removed": removed}

    @app.post("/v1/cache/repos/{repo}/lookup")
    async def lookup(repo: str, request: Request) -> dict[str, Any]:
        chat = await chat_request(request, validate_repo(repo))
        found = await anyio.to_thread.run_sync(gateway(request).cache.lookup, chat, False)
        if found.hit is None:
            return {"hit": False}
        hit = found.hit
        return {"hit": True, "kind": hit.kind, "similarity": hit.similarity, "entry_id": hit.entry.id,
                "response": hit.entry.response}  # fmt: skip

    @app.post("/v1/cache/repos/{repo}/entries", status_code=201)
    async def put_entry(repo: str, request: Request) -> dict[str, Any]:
        body = _model(StoreBody, await _json(request))
        chat = parse_chat_request(
            body.request, header_repo=validate_repo(repo), max_prompt_chars=settings.max_prompt_chars
        )
        entry_id = await anyio.to_thread.run_sync(gateway(request).cache.put, chat, body.response)
        return {"entry_id": entry_id}

    @app.get("/v1/cache/repos/{repo}/entries/{entry_id}")
    async def get_entry(repo: str, entry_id: int, request: Request) -> dict[str, Any]:
        entry = await anyio.to_thread.run_sync(gateway(request).cache.get, validate_repo(repo), entry_id)
        return {"entry_id": entry.id, "prompt": entry.prompt, "model": entry.model, "response": entry.response,
                "created_at": entry.created_at, "expires_at": entry.expires_at, "hit_count": entry.hit_count}  # fmt: skip

    @app.delete("/v1/cache/repos/{repo}/entries/{entry_id}", status_code=204)
    async def delete_entry(repo: str, entry_id: int, request: Request) -> Response:
        await anyio.to_thread.run_sync(gateway(request).cache.delete, validate_repo(repo), entry_id)
        return Response(status_code=204)

    @app.post("/v1/cache/repos/{repo}/feedback")
    async def feedback(repo: str, request: Request) -> dict[str, Any]:
        body = _model(FeedbackBody, await _json(request))
        cache = gateway(request).cache
        feedback_id = await anyio.to_thread.run_sync(
            cache.report_wrong_hit, validate_repo(repo), body.entry_id, body.prompt, body.similarity
        )
        return {"evicted": True, "feedback_id": feedback_id}
