"""The HTTP routes of keys and the admin log: create, list and revoke keys (admin), a key's own record
and counts (any key), and the log of admin writes (admin)."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from semcache.access.issuing import issue_key
from semcache.errors import NotFound
from semcache.http.auth import access_of, log_admin_write, require_admin
from semcache.http.bodies import parse_model, read_json

keys_api = APIRouter()


class NewKeyBody(BaseModel):
    """Body of ``POST /v1/keys``."""

    model_config = ConfigDict(extra="forbid")
    name: str
    repos: list[str] = Field(default_factory=list)
    admin: bool = False
    default_repo: str | None = None


@keys_api.get("/v1/keys")
async def list_keys(request: Request) -> dict[str, Any]:
    """Every key, without its hash (admin)."""
    await require_admin(request)
    records = await anyio.to_thread.run_sync(request.app.state.keys.all)
    return {"keys": [record.public() for record in records]}


@keys_api.post("/v1/keys", status_code=201)
async def create_key(request: Request) -> dict[str, Any]:
    """Create a key (admin; logged). The answer is the only place the key string ever appears."""
    principal = await require_admin(request)
    body = parse_model(NewKeyBody, await read_json(request, request.app.state.settings.max_body_bytes))
    keys = request.app.state.keys
    token, record = await anyio.to_thread.run_sync(
        lambda: issue_key(keys, body.name, body.repos, body.admin, body.default_repo)
    )
    await log_admin_write(request, principal, "create key", record.name, ",".join(record.repos))
    return {"key": token, **record.public()}


@keys_api.delete("/v1/keys/{id_or_name}")
async def revoke_key(id_or_name: str, request: Request) -> dict[str, Any]:
    """Revoke a key by id or name (admin; logged); every replica refuses it within a second or two."""
    principal = await require_admin(request)
    keys = request.app.state.keys
    record = await anyio.to_thread.run_sync(keys.revoke, id_or_name)
    await log_admin_write(request, principal, "revoke key", record.name)
    return record.public()


@keys_api.get("/v1/keys/self")
async def own_key(request: Request) -> dict[str, Any]:
    """The calling key's record and counts (requests, hits, denied)."""
    principal = await access_of(request).principal(request)
    if principal is None:
        raise NotFound("auth is off: requests carry no key")
    record = await anyio.to_thread.run_sync(request.app.state.keys.get, principal.key_id)
    return record.public()


@keys_api.get("/v1/admin/log")
async def admin_log(request: Request, limit: int = 100) -> dict[str, Any]:
    """The latest admin writes, newest first (admin)."""
    await require_admin(request)
    entries = await anyio.to_thread.run_sync(request.app.state.keys.log_entries, max(1, min(limit, 1000)))
    return {"entries": entries}
