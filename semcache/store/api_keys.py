"""Client and admin keys, hashed, and the log of admin writes, kept in the store so every replica shares
them. Secrets are never stored: only a salt and a slow hash (see :mod:`semcache.access.tokens`)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from semcache.errors import Conflict, NotFound
from semcache.store.sqlite import Store

USAGE = ("requests", "hits", "denied")


@dataclass(frozen=True)
class KeyRecord:
    """One key as stored: who it is, what it may reach, and its counts."""

    id: str
    name: str
    salt: bytes
    hash: bytes
    repos: tuple[str, ...]
    default_repo: str | None
    admin: bool
    created_at: float
    revoked_at: float | None = None
    requests: int = 0
    hits: int = 0
    denied: int = 0
    last_used_at: float | None = None

    def public(self) -> dict[str, Any]:
        """Everything but the salt and hash: what listing a key shows."""
        return {
            "id": self.id,
            "name": self.name,
            "repos": list(self.repos),
            "default_repo": self.default_repo,
            "admin": self.admin,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
            "requests": self.requests,
            "hits": self.hits,
            "denied": self.denied,
            "last_used_at": self.last_used_at,
        }


class KeyStore:
    """Keys and the admin log in the cache's store; thread-safe like the store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def add(self, record: KeyRecord) -> None:
        """Keep a new key; a name already taken is a :class:`Conflict`."""
        if self.find(record.name) is not None:
            raise Conflict(f"a key named {record.name!r} exists; pick another name")
        row = {**record.__dict__, "repos": json.dumps(list(record.repos)), "admin": int(record.admin)}
        with self._store.write() as db:
            db["api_keys"].insert(row)

    def get(self, key_id: str) -> KeyRecord | None:
        """The key with this id (revoked or not), or None."""
        rows = self._store.read("SELECT * FROM api_keys WHERE id = ?", [key_id])
        return _record(rows[0]) if rows else None

    def find(self, id_or_name: str) -> KeyRecord | None:
        """The key with this id or name, or None."""
        rows = self._store.read("SELECT * FROM api_keys WHERE id = ? OR name = ?", [id_or_name, id_or_name])
        return _record(rows[0]) if rows else None

    def all(self) -> list[KeyRecord]:
        """Every key, oldest first."""
        return [_record(row) for row in self._store.read("SELECT * FROM api_keys ORDER BY created_at")]

    def active(self) -> int:
        """How many keys are not revoked."""
        return int(
            self._store.read("SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL", plain=True)[0][0]
        )

    def revoke(self, id_or_name: str, now: float | None = None) -> KeyRecord:
        """Revoke a key (it stays listed); :class:`NotFound` when no key has this id or name."""
        record = self.find(id_or_name)
        if record is None:
            raise NotFound(f"no key with id or name {id_or_name!r}")
        if record.revoked_at is None:
            with self._store.write() as db:
                db.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ?", [now or time.time(), record.id])
        return self.get(record.id) or record

    def version(self) -> tuple[int, float]:
        """Changes whenever a key is added or revoked (anywhere: replicas and the CLI share the store)."""
        sql = "SELECT COUNT(*), COALESCE(MAX(revoked_at), 0) FROM api_keys"
        count, revoked = self._store.read(sql, plain=True)[0]
        return int(count), float(revoked)

    def add_usage(self, usage: dict[str, dict[str, int]], now: float) -> None:
        """Add per-key counts (:data:`USAGE`) in one transaction."""
        rows = [(*(counts.get(c, 0) for c in USAGE), now, key_id) for key_id, counts in usage.items()]
        with self._store.write() as db:
            db.conn.executemany(
                "UPDATE api_keys SET requests = requests + ?, hits = hits + ?, denied = denied + ?, "
                "last_used_at = ? WHERE id = ?",
                rows,
            )

    def log(self, actor: str, action: str, target: str, detail: str = "", now: float | None = None) -> None:
        """Record one admin write: who, what, on what, when."""
        row = {"at": now or time.time(), "actor": actor, "action": action, "target": target, "detail": detail}
        with self._store.write() as db:
            db["admin_log"].insert(row)

    def log_entries(self, limit: int = 100) -> list[dict[str, Any]]:
        """The latest admin writes, newest first."""
        return self._store.read("SELECT * FROM admin_log ORDER BY id DESC LIMIT ?", [limit])


def _record(row: dict[str, Any]) -> KeyRecord:
    return KeyRecord(**{**row, "repos": tuple(json.loads(row["repos"])), "admin": bool(row["admin"])})
