"""The keys a process has verified, and what each may reach.

A key is verified with its slow hash the first time a process sees it (in a worker thread); the result,
right or wrong, is remembered under the key's SHA-256, so a request pays one dictionary lookup. Unknown
ids are checked against a dummy hash, so a wrong key and a right one take the same time the first time
as every later time. Every second a background thread checks whether keys were added or revoked (by any
replica or the CLI: they share the store) and, if so, forgets what it verified.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
import threading
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

from semcache.access.tokens import hash_secret, matches, new_salt, parse
from semcache.periodic import Periodic
from semcache.store.api_keys import KeyRecord, KeyStore


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: a key's id, name, admin flag, repo patterns and default repo."""

    key_id: str
    name: str
    admin: bool
    repos: tuple[str, ...]
    default_repo: str | None
    _pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        joined = "|".join(f"(?:{fnmatch.translate(p)})" for p in self.repos) or "(?!)"
        object.__setattr__(self, "_pattern", re.compile(joined))

    @classmethod
    def of(cls, record: KeyRecord) -> Principal:
        """The principal a stored key stands for."""
        return cls(record.id, record.name, record.admin, record.repos, record.default_repo)

    def may_use(self, repo: str) -> bool:
        """Whether this key reaches ``repo`` (an admin key reaches every repo)."""
        return self.admin or self._pattern.fullmatch(repo) is not None

    @property
    def actor(self) -> str:
        """How the admin log names this key."""
        return f"key:{self.name}"


class Keyring:
    """Verifies keys against the store and remembers the outcome; thread-safe."""

    def __init__(self, keys: KeyStore, recheck_s: float = 1.0, remember: int = 10_000) -> None:
        self.keys = keys
        self._remember = remember
        self._known: OrderedDict[bytes, Principal | None] = OrderedDict()
        self._lock = threading.Lock()
        self._version = keys.version()
        self._usage: dict[str, Counter[str]] = {}
        self._dummy_salt = new_salt()
        self._dummy_hash = hash_secret("not-a-key", self._dummy_salt)
        self._refresher = Periodic("semcache-keys", self.refresh, recheck_s)

    def recall(self, token: str) -> tuple[bool, Principal | None]:
        """From memory only: (whether this key was verified before, its principal or None)."""
        digest = hashlib.sha256(token.encode()).digest()
        with self._lock:
            if digest in self._known:
                self._known.move_to_end(digest)
                return True, self._known[digest]
        return False, None

    def verify(self, token: str) -> Principal | None:
        """Check a key with its slow hash (blocking, about 50 ms) and remember the outcome."""
        parsed = parse(token)
        record = self.keys.get(parsed[0]) if parsed else None
        salt, expected = (record.salt, record.hash) if record else (self._dummy_salt, self._dummy_hash)
        right = matches(parsed[1] if parsed else token, salt, expected)
        principal = Principal.of(record) if record and right and record.revoked_at is None else None
        digest = hashlib.sha256(token.encode()).digest()
        with self._lock:
            self._known[digest] = principal
            while len(self._known) > self._remember:
                self._known.popitem(last=False)
        return principal

    def count(self, key_id: str, what: str) -> None:
        """Count one request, hit or denial of a key (written to the store once a second)."""
        with self._lock:
            self._usage.setdefault(key_id, Counter())[what] += 1

    def refresh(self) -> None:
        """Write the usage counts; forget verified keys if any key was added or revoked."""
        with self._lock:
            usage, self._usage = self._usage, {}
        if usage:
            self.keys.add_usage({k: dict(c) for k, c in usage.items()}, time.time())
        version = self.keys.version()
        if version != self._version:
            with self._lock:
                self._known.clear()
            self._version = version

    def start(self) -> None:
        """Check for changed keys and write usage every interval, in a background thread."""
        self._refresher.start()

    def stop(self) -> None:
        """Stop the thread and write the usage counts."""
        self._refresher.stop()
