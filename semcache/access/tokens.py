"""API keys as strings: ``sck-<id>-<secret>``. The id (12 hex digits) finds the stored record; the
secret (256 random bits) is kept only as a salted scrypt hash and compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

PREFIX = "sck-"
TOKEN = re.compile(r"sck-([0-9a-f]{12})-([A-Za-z0-9_\-]{43})")
# scrypt cost: about 50 ms a verification on this project's 2-core machine; a key is verified once per
# process and then remembered (:class:`~semcache.access.keyring.Keyring`), so requests never pay it.
SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


def new_token() -> tuple[str, str, str]:
    """A fresh key: its id, its secret and the whole string the client sends."""
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    return key_id, secret, f"{PREFIX}{key_id}-{secret}"


def parse(token: str) -> tuple[str, str] | None:
    """The id and secret of a well-formed key string, else None."""
    match = TOKEN.fullmatch(token)
    return (match.group(1), match.group(2)) if match else None


def new_salt() -> bytes:
    """A random salt for one key."""
    return secrets.token_bytes(16)


def hash_secret(secret: str, salt: bytes) -> bytes:
    """The slow, salted hash that is stored instead of the secret."""
    return hashlib.scrypt(secret.encode(), salt=salt, **SCRYPT)


def matches(secret: str, salt: bytes, expected: bytes) -> bool:
    """Whether ``secret`` hashes to ``expected``, compared in constant time."""
    return hmac.compare_digest(hash_secret(secret, salt), expected)
