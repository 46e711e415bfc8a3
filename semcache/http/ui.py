"""The dashboard at ``GET /ui``: a static page (HTML, CSS and one small script, shipped in the package)
that shows one repo's panel, rendered by the server at ``GET /ui/repos/{repo}``, and sends purges and
wrong-hit reports through the cache API. The page itself holds no data, so it needs no key; the panel,
the activity JSON, purges and reports take the same key checks as the API.

The latest hits and per-minute counts come from :class:`~semcache.http.recent.RecentActivity`: this
process's memory, not the store.
"""

from __future__ import annotations

from dataclasses import asdict
from importlib.resources import files
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from semcache.errors import NotFound
from semcache.http.auth import require_repo
from semcache.http.chat import Gateway
from semcache.http.ui_render import RepoView, render_panel
from semcache.http.upstream import spend_summary
from semcache.keys import validate_repo

ui = APIRouter()

STATIC = {"ui.css": "text/css", "ui.js": "text/javascript"}
# The page runs only its own script and talks only to this server; no other site may frame it.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _static(name: str) -> str:
    return files("semcache.http").joinpath("static", name).read_text(encoding="utf-8")


def _gateway(request: Request) -> Gateway:
    return request.app.state.gateway


@ui.get("/ui", include_in_schema=False)
async def dashboard() -> HTMLResponse:
    """The dashboard page (no data in it: the script fetches each repo's panel with the key given)."""
    return HTMLResponse(_static("ui.html"), headers=PAGE_HEADERS)


@ui.get("/ui/static/{name}", include_in_schema=False)
async def static_file(name: str) -> Response:
    """The page's stylesheet and script."""
    if name not in STATIC:
        raise NotFound(f"no static file {name!r}")
    return Response(_static(name), media_type=STATIC[name], headers={"X-Content-Type-Options": "nosniff"})


@ui.get("/ui/repos/{repo}", include_in_schema=False)
async def repo_panel(repo: str, request: Request) -> HTMLResponse:
    """One repo's panel as an HTML fragment (a key of the repo)."""
    await require_repo(request, validate_repo(repo))
    view = await anyio.to_thread.run_sync(_view, _gateway(request), validate_repo(repo))
    return HTMLResponse(render_panel(view), headers=PAGE_HEADERS)


@ui.get("/v1/cache/repos/{repo}/activity")
async def activity(repo: str, request: Request, minutes: int = 60) -> dict[str, Any]:
    """The repo's latest hits (newest first) and lookups per minute (oldest first), as this sidecar has
    seen them since it started (a key of the repo)."""
    await require_repo(request, validate_repo(repo))
    recent = _gateway(request).recent
    return {
        "repo": repo,
        "hits": [asdict(hit) for hit in recent.hits(repo)],
        "minutes": [
            {"start": m.start, **m.counts, "hit_rate": m.hit_rate}
            for m in recent.timeline(repo, max(1, min(minutes, 180)))
        ],
    }


def _view(service: Gateway, repo: str) -> RepoView:
    """The panel's data, read in a worker thread (the store and the ledger block)."""
    stats = service.cache.stats(repo)
    decision = service.cache.decision(repo)
    return RepoView(
        repo=repo,
        stats=stats,
        purging=service.cache.purging(repo),
        decision=decision,
        spend=spend_summary(service.spend(repo)),
        minutes=service.recent.timeline(repo, 60),
        hits=service.recent.hits(repo),
    )
