"""The tiered model router. A library of its own: it never imports ``semcache``."""

from router.errors import ConfigError, RouterError, UpstreamError
from router.upstream import OpenAIUpstream, classify_error

__all__ = ["ConfigError", "OpenAIUpstream", "RouterError", "UpstreamError", "classify_error"]
