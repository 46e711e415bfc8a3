"""The router's exception tree.

RouterError
├── UpstreamError            a provider call failed; ``status`` is the HTTP status to report,
│   │                        ``retryable`` says whether another attempt (or a fallback) may succeed
│   └── RoutingFailed        every model of the chain failed or was skipped; carries ``attempts``
├── RequestError             the request itself cannot be routed (status 400)
└── ConfigError              the registry file is missing or invalid

Third-party (openai / httpx) errors are translated into these in exactly one place,
``router.upstream.classify_error``, and chained with ``from exc``.
"""

from __future__ import annotations


class RouterError(Exception):
    """Base class of every error the router raises."""


class UpstreamError(RouterError):
    """A call to an OpenAI-compatible provider failed."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        retryable: bool,
        retry_after_s: float | None = None,
        kind: str = "upstream_error",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        self.kind = kind


class ConfigError(RouterError):
    """The router's configuration cannot be used."""


class RequestError(RouterError):
    """The request cannot be routed as given (no messages, unknown forced tier or model)."""

    status = 400


class RoutingFailed(UpstreamError):
    """No model in the chain produced an answer.

    ``attempts`` lists what each model did, in order; ``status``/``retryable``/``kind`` come from the
    error that ended the chain (a non-retryable one stops it at once; otherwise the last model's).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        retryable: bool,
        attempts: list,
        retry_after_s: float | None = None,
        kind: str = "upstream_error",
    ) -> None:
        super().__init__(message, status=status, retryable=retryable, retry_after_s=retry_after_s, kind=kind)
        self.attempts = attempts
