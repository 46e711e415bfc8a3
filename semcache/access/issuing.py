"""Making a key: checked patterns, a fresh secret, its hash stored; the key string is returned once."""

from __future__ import annotations

import re
import time

from semcache.access.keyring import Principal
from semcache.access.tokens import hash_secret, new_salt, new_token
from semcache.errors import InvalidRequest
from semcache.keys import validate_repo
from semcache.store.api_keys import KeyRecord, KeyStore

# A repo pattern: repo-name characters and the glob's * ? [ ] (fnmatch, matched against the whole name).
PATTERN = re.compile(r"[A-Za-z0-9._\-*?\[\]!]{1,128}")
NAME = re.compile(r"[A-Za-z0-9._\-@:]{1,64}")


def issue_key(
    keys: KeyStore,
    name: str,
    repos: list[str],
    admin: bool = False,
    default_repo: str | None = None,
) -> tuple[str, KeyRecord]:
    """Create and store a key; returns the key string (shown once, never stored) and its record."""
    if not NAME.fullmatch(name):
        raise InvalidRequest(f"invalid key name {name[:80]!r}: 1-64 letters, digits or . _ - @ :")
    bad = [p for p in repos if not PATTERN.fullmatch(p)]
    if bad:
        raise InvalidRequest(f"invalid repo pattern {bad[0][:80]!r}: repo-name characters and * ? [ ] only")
    if not admin and not repos:
        raise InvalidRequest("a client key needs at least one --repo pattern (or make it --admin)")
    key_id, secret, token = new_token()
    salt = new_salt()
    record = KeyRecord(
        id=key_id,
        name=name,
        salt=salt,
        hash=hash_secret(secret, salt),
        repos=tuple(repos),
        default_repo=validate_repo(default_repo) if default_repo else None,
        admin=admin,
        created_at=time.time(),
    )
    if record.default_repo and not Principal.of(record).may_use(record.default_repo):
        raise InvalidRequest(f"the default repo {record.default_repo!r} is outside the key's patterns")
    keys.add(record)
    return token, record
