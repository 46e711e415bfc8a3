"""The tiered model router. A library of its own: it never imports ``semcache``."""

from router.breaker import BreakerSnapshot, BreakerState, CircuitBreaker
from router.classifier import Classification, TierClassifier, TrainedTierModel
from router.errors import ConfigError, RequestError, RouterError, RoutingFailed, UpstreamError
from router.execute import Attempt
from router.ledger import (
    BudgetAlert,
    CallRecord,
    LabelledPrompt,
    Ledger,
    ShadowRecord,
    TierStats,
    total_stats,
)
from router.registry import ModelSpec, Registry, TierSpec, load_registry
from router.results import BatchItem, RouteMeta, RouteResult, Usage
from router.router import Router
from router.upstream import OpenAIUpstream, classify_error

__all__ = [
    "Attempt",
    "BatchItem",
    "BreakerSnapshot",
    "BreakerState",
    "BudgetAlert",
    "CallRecord",
    "CircuitBreaker",
    "Classification",
    "ConfigError",
    "LabelledPrompt",
    "Ledger",
    "ModelSpec",
    "OpenAIUpstream",
    "Registry",
    "RequestError",
    "RouteMeta",
    "RouteResult",
    "Router",
    "RouterError",
    "RoutingFailed",
    "ShadowRecord",
    "TierClassifier",
    "TierSpec",
    "TierStats",
    "TrainedTierModel",
    "UpstreamError",
    "Usage",
    "classify_error",
    "load_registry",
    "total_stats",
]
