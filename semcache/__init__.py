"""semcache: a semantic response cache for LLM traffic."""

from semcache.cache.semantic import CacheHit, Lookup, SemanticCache, is_cacheable
from semcache.config import Settings
from semcache.errors import InvalidRepo, InvalidRequest, NotFound, PromptTooLarge, SemcacheError, StoreError
from semcache.keys import CacheRequest, parse_chat_request

__all__ = [
    "CacheHit",
    "CacheRequest",
    "InvalidRepo",
    "InvalidRequest",
    "Lookup",
    "NotFound",
    "PromptTooLarge",
    "SemanticCache",
    "SemcacheError",
    "Settings",
    "StoreError",
    "is_cacheable",
    "parse_chat_request",
]
