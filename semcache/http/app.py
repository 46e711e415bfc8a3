"""The HTTP sidecar: ``create_app(settings)`` is the composition root. It mounts the routes of
``semcache.http.routes`` (each validates, makes one service call and shapes the response) and maps every
error to a status in one table."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from router.errors import RequestError, UpstreamError
from semcache.access.keyring import Keyring
from semcache.access.limits import RateLimit
from semcache.access.mode import auth_mode
from semcache.cache.semantic import LOOKUPS, SemanticCache
from semcache.config import Settings
from semcache.embedding import Embedder
from semcache.errors import (
    Conflict,
    Forbidden,
    InvalidRepo,
    InvalidRequest,
    NotFound,
    PromptTooLarge,
    RateLimited,
    SemcacheError,
    StoreError,
    Unauthorized,
    UnsupportedMediaType,
)
from semcache.http.audit import Auditor
from semcache.http.auth import Access, require_admin
from semcache.http.chat import Gateway, Upstream
from semcache.http.key_routes import keys_api
from semcache.http.metrics import CONTENT_TYPE_LATEST, SidecarMetrics, monitor_loop_lag
from semcache.http.routes import api
from semcache.http.savings import SavingsBook
from semcache.http.ui import ui
from semcache.http.upstream import RoutedUpstream, build_judge, build_upstream
from semcache.store.api_keys import KeyStore

log = logging.getLogger(__name__)

ERROR_STATUS: dict[type[SemcacheError], int] = {
    InvalidRepo: 400,
    PromptTooLarge: 413,
    UnsupportedMediaType: 415,
    Unauthorized: 401,
    Forbidden: 403,
    RateLimited: 429,
    InvalidRequest: 400,
    NotFound: 404,
    Conflict: 409,
    StoreError: 503,  # the store cannot be used right now (a database outage, a full disk)
}


HTTP_ERROR_TYPES = {404: "not_found", 405: "method_not_allowed"}


def error_body(kind: str, message: str) -> dict[str, Any]:
    """The JSON error shape every route uses."""
    return {"error": {"type": kind, "message": message}}


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
    metrics = SidecarMetrics(max_repos=settings.metrics_max_repos)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Lookups and stores run on worker threads; a few keep 2 cores busy, and dozens only fight the
        # event loop for the GIL (its lag under 64 clients).
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.worker_threads
        cache = SemanticCache(settings, embedder=embedder)
        keys = KeyStore(cache.database)
        mode = auth_mode(settings.auth, settings.host, keys.active())  # refuses to start open off loopback
        log.log(logging.INFO if mode.on else logging.WARNING, "auth %s", mode.reason)
        keyring = Keyring(keys)
        keyring.start()
        app.state.keys = keys
        app.state.access = Access(mode, keyring, RateLimit(settings.feedback_per_minute), metrics)
        await anyio.to_thread.run_sync(cache.start)
        freeze_startup_objects()
        miss_path = upstream or build_upstream(settings, cache.embedder)
        judge = build_judge(settings, miss_path, cache.embedder)
        cache.calibrator.use_judge(judge.name)
        if isinstance(miss_path, RoutedUpstream):  # the router's spend, calls and budgets on /metrics
            metrics.watch(miss_path.router.metrics)
        auditor = Auditor(cache, miss_path, judge, metrics, settings.audit_queue_size)
        auditor.start()
        savings = savings_book(miss_path)
        app.state.gateway = Gateway(cache, miss_path, metrics, auditor, savings)
        sweeper = asyncio.create_task(_sweep_forever(cache, settings.sweep_interval_s))
        lag_monitor = asyncio.create_task(monitor_loop_lag(metrics))
        try:
            yield
        finally:
            sweeper.cancel()
            lag_monitor.cancel()
            await auditor.aclose()
            await anyio.to_thread.run_sync(keyring.stop)
            if savings is not None:
                await anyio.to_thread.run_sync(savings.stop)
            if upstream is None:
                await miss_path.aclose()
            await anyio.to_thread.run_sync(cache.close)

    app = FastAPI(title="semcache", version="0.1.0", lifespan=lifespan)
    _install_error_handlers(app)
    app.state.settings = settings
    app.include_router(api)
    app.include_router(keys_api)
    app.include_router(ui)

    @app.get("/metrics")
    async def prometheus_metrics(request: Request) -> Response:
        await require_admin(request)  # per-repo and per-key series: not for every tenant's eyes
        gateway = app.state.gateway
        await anyio.to_thread.run_sync(_observe_repos, gateway.cache, metrics, gateway.upstream)
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return app


def savings_book(upstream: Upstream) -> SavingsBook | None:
    """The book of what hits save, where the miss path is the router (it holds the prices)."""
    if not isinstance(upstream, RoutedUpstream):
        return None
    router = upstream.router
    book = SavingsBook(router.ledger, set(router.registry.models))
    book.start()
    return book


def _observe_repos(cache: SemanticCache, metrics: SidecarMetrics, upstream: Upstream) -> None:
    metrics.store_write_failures.set(cache.health.failures)
    metrics.store_available.set(0.0 if cache.health.failing(LOOKUPS) else 1.0)
    try:
        metrics.observe_repos(cache.repos(), cache.decision)  # at most SEMCACHE_METRICS_MAX_REPOS series
    except StoreError:  # an outage: the per-repo series wait; the rest is still scraped
        metrics.store_available.set(0.0)
    if isinstance(upstream, RoutedUpstream):
        metrics.observe_breakers(upstream.router.breaker_states())


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
        headers = {}
        if isinstance(exc, RateLimited):
            headers["Retry-After"] = str(max(1, round(exc.retry_after_s)))
        if isinstance(exc, Unauthorized):
            headers["WWW-Authenticate"] = "Bearer"
        return JSONResponse(error_body(exc.kind, exc.message), status_code=status, headers=headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        # Starlette's own answers (unknown route, method not allowed), in the same shape as the rest.
        kind = HTTP_ERROR_TYPES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no route {request.method} {request.url.path}"
        elif exc.status_code == 405 and message == "Method Not Allowed":
            message = f"{request.method} is not allowed on {request.url.path}"
        return JSONResponse(error_body(kind, message), status_code=exc.status_code, headers=exc.headers)

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
