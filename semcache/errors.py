"""The cache's exception tree; the HTTP layer maps each class to a status in one table.

SemcacheError
├── InvalidRequest      the request cannot be served as sent (400)
│   ├── InvalidRepo     the repo name is not allowed (400)
│   ├── PromptTooLarge  the prompt is over ``max_prompt_chars`` (413)
│   └── UnsupportedMediaType  the body is not sent as JSON (415)
├── Unauthorized        no key, or a wrong or revoked one (401)
├── Forbidden           the key may not do this, or not in this repo (403)
├── RateLimited         the key used up its allowance for this (429)
├── NotFound            the entry or repo does not exist (404)
├── Conflict            the repo is in a state that refuses the request, e.g. being purged (409)
├── StoreError          the store could not be read or written (500)
└── ConfigError         the settings cannot be built into a sidecar (at start)
"""

from __future__ import annotations


class SemcacheError(Exception):
    """Base class of every error semcache raises on purpose."""

    kind = "semcache_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(SemcacheError):
    """The request is malformed or asks for something not allowed."""

    kind = "invalid_request_error"


class InvalidRepo(InvalidRequest):
    """The repo name is missing or not allowed."""

    kind = "invalid_repo"


class PromptTooLarge(InvalidRequest):
    """The prompt is larger than the configured limit."""

    kind = "prompt_too_large"


class UnsupportedMediaType(InvalidRequest):
    """The body is not declared as JSON (a browser's cross-origin form or text/plain post)."""

    kind = "unsupported_media_type"


class Unauthorized(SemcacheError):
    """The request carries no key, or one that is wrong or revoked."""

    kind = "unauthorized"


class Forbidden(SemcacheError):
    """The key is valid but may not do this (or not in this repo)."""

    kind = "forbidden"


class RateLimited(SemcacheError):
    """The key used up its allowance; ``retry_after_s`` says when to try again."""

    kind = "rate_limited"

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class NotFound(SemcacheError):
    """The entry or repo asked for does not exist."""

    kind = "not_found"


class Conflict(SemcacheError):
    """The request conflicts with what the repo is doing (it is being purged)."""

    kind = "conflict"


class StoreError(SemcacheError):
    """The SQLite store failed."""

    kind = "store_error"


class ConfigError(SemcacheError):
    """The settings ask for something that cannot be built (raised at start, never per request)."""

    kind = "config_error"
