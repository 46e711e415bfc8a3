"""The model registry: tiers, models, prices, fallbacks and router policy, loaded from one TOML file.

Prices and fallbacks live in the file so they change without code changes. The fallback graph is
validated at load: an unknown id or a cycle is refused with a message that names the models involved.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from router.errors import ConfigError


@dataclass(frozen=True)
class ModelSpec:
    """One model a tier can call, with its prices (USD per 1M tokens) and limits."""

    id: str
    base_url: str
    tier: str
    input_per_1m: float
    output_per_1m: float
    cached_input_per_1m: float
    max_context_tokens: int
    timeout_s: float
    api_key_env: str = ""
    provider_model: str = ""
    fallback: str | None = None

    @property
    def upstream_name(self) -> str:
        """The model name sent to the provider (defaults to the registry id)."""
        return self.provider_model or self.id

    def cost_usd(self, input_tokens: int, output_tokens: int, cached_tokens: int = 0) -> float:
        """Price a call; ``cached_tokens`` is the part of ``input_tokens`` served from the prompt cache."""
        cached = min(max(cached_tokens, 0), input_tokens)
        return (
            (input_tokens - cached) * self.input_per_1m
            + cached * self.cached_input_per_1m
            + output_tokens * self.output_per_1m
        ) / 1_000_000


@dataclass(frozen=True)
class TierSpec:
    """A tier: the model it starts with, and an optional shadow candidate."""

    name: str
    model: str
    description: str = ""
    shadow_model: str | None = None
    shadow_share: float = 0.0


@dataclass(frozen=True)
class RetryPolicy:
    """How one model is retried before its fallback takes over."""

    max_attempts: int = 3
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 8.0
    jitter_s: float = 0.25
    max_retry_after_s: float = 30.0


@dataclass(frozen=True)
class BreakerPolicy:
    """When a model's circuit breaker opens: failure rate over the last ``window`` calls."""

    window: int = 20
    min_calls: int = 5
    failure_rate: float = 0.5
    open_s: float = 30.0


@dataclass(frozen=True)
class Budgets:
    """Monthly spend limits in USD; crossing one raises an alert (log + metric)."""

    global_monthly_usd: float | None = None
    repo_monthly_usd: Mapping[str, float] = field(default_factory=dict)
    default_repo_monthly_usd: float | None = None

    def for_repo(self, repo: str) -> float | None:
        """The monthly limit of ``repo``, or None when it has none."""
        return self.repo_monthly_usd.get(repo, self.default_repo_monthly_usd)


@dataclass(frozen=True)
class Registry:
    """Everything the router knows from its configuration file."""

    models: Mapping[str, ModelSpec]
    tiers: Mapping[str, TierSpec]
    default_tier: str
    min_confidence: float = 0.5
    classifier_path: Path | None = None
    log_prompts: bool = True
    intent_tiers: Mapping[str, str] = field(default_factory=dict)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    budgets: Budgets = field(default_factory=Budgets)

    def model(self, model_id: str) -> ModelSpec:
        """The spec of ``model_id``; a ConfigError names the known ids when it is unknown."""
        try:
            return self.models[model_id]
        except KeyError:
            known = ", ".join(sorted(self.models))
            raise ConfigError(f"unknown model {model_id!r} (known: {known})") from None

    def tier(self, name: str) -> TierSpec:
        """The spec of tier ``name``."""
        try:
            return self.tiers[name]
        except KeyError:
            known = ", ".join(self.tiers)
            raise ConfigError(f"unknown tier {name!r} (known: {known})") from None

    def chain(self, model_id: str) -> list[ModelSpec]:
        """``model_id`` followed by its fallbacks, in order; never repeats a model."""
        chain: list[ModelSpec] = []
        seen: set[str] = set()
        current: str | None = model_id
        while current is not None and current not in seen:
            seen.add(current)
            spec = self.model(current)
            chain.append(spec)
            current = spec.fallback
        return chain

    @property
    def premium_tier(self) -> str:
        """The tier whose first model has the highest output price (the benchmark's baseline)."""
        return max(self.tiers.values(), key=lambda t: self.models[t.model].output_per_1m).name

    @property
    def cheapest_tier(self) -> str:
        """The tier whose first model has the lowest output price (where the cache's judge asks)."""
        return min(self.tiers.values(), key=lambda t: self.models[t.model].output_per_1m).name

    def api_keys(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """Each model's API key, read from the env var its spec names (empty when unset)."""
        env = os.environ if environ is None else environ
        return {m.id: env.get(m.api_key_env, "") if m.api_key_env else "" for m in self.models.values()}


def load_registry(path: str | Path) -> Registry:
    """Read and validate a registry TOML file (see ``config/models.example.toml``)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"registry file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"registry file {path} is not valid TOML: {exc}") from exc
    return parse_registry(data, base_dir=path.parent)


def parse_registry(data: Mapping[str, Any], base_dir: Path | None = None) -> Registry:
    """Build a :class:`Registry` from already-parsed TOML data and validate it."""
    models = _parse_models(data.get("models", []))
    tiers = _parse_tiers(data.get("tiers", {}), models)
    policy = dict(data.get("router", {}))
    default_tier = str(policy.get("default_tier", "standard"))
    if default_tier not in tiers:
        raise ConfigError(f"default_tier {default_tier!r} is not a declared tier ({', '.join(tiers)})")
    classifier = policy.get("classifier_path")
    classifier_path = Path(classifier) if classifier else None
    if classifier_path is not None and not classifier_path.is_absolute() and base_dir is not None:
        classifier_path = base_dir / classifier_path
    intent_tiers = {str(k): str(v) for k, v in dict(policy.get("intent_tiers", {})).items()}
    unknown = sorted(t for t in intent_tiers.values() if t not in tiers)
    if unknown:
        raise ConfigError(f"intent_tiers maps to undeclared tiers: {', '.join(unknown)}")
    registry = Registry(
        models=models,
        tiers=tiers,
        default_tier=default_tier,
        min_confidence=float(policy.get("min_confidence", 0.5)),
        classifier_path=classifier_path,
        log_prompts=bool(policy.get("log_prompts", True)),
        intent_tiers=intent_tiers,
        retry=_section(RetryPolicy, data.get("retry", {})),
        breaker=_section(BreakerPolicy, data.get("breaker", {})),
        budgets=_parse_budgets(data.get("budgets", {})),
    )
    validate_fallbacks(registry.models)
    return registry


def validate_fallbacks(models: Mapping[str, ModelSpec]) -> None:
    """Refuse fallbacks to unknown ids and fallback cycles, naming the models involved."""
    for spec in models.values():
        if spec.fallback is not None and spec.fallback not in models:
            raise ConfigError(f"model {spec.id!r} falls back to unknown model {spec.fallback!r}")
    for start in models:
        path = [start]
        current = models[start].fallback
        while current is not None:
            if current in path:
                cycle = " -> ".join([*path[path.index(current) :], current])
                raise ConfigError(f"fallback cycle: {cycle}")
            path.append(current)
            current = models[current].fallback


def _parse_models(raw: Any) -> dict[str, ModelSpec]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError("registry declares no models: add [[models]] entries")
    models: dict[str, ModelSpec] = {}
    for entry in raw:
        spec = _model_spec(entry)
        if spec.id in models:
            raise ConfigError(f"model {spec.id!r} is declared twice")
        models[spec.id] = spec
    return models


def _model_spec(entry: Mapping[str, Any]) -> ModelSpec:
    missing = [k for k in ("id", "base_url", "tier", "input_per_1m", "output_per_1m") if k not in entry]
    if missing:
        raise ConfigError(f"model {entry.get('id', '?')!r} lacks {', '.join(missing)}")
    try:
        spec = ModelSpec(
            id=str(entry["id"]),
            base_url=str(entry["base_url"]),
            tier=str(entry["tier"]),
            input_per_1m=float(entry["input_per_1m"]),
            output_per_1m=float(entry["output_per_1m"]),
            cached_input_per_1m=float(entry.get("cached_input_per_1m", entry["input_per_1m"])),
            max_context_tokens=int(entry.get("max_context_tokens", 128_000)),
            timeout_s=float(entry.get("timeout_s", 60.0)),
            api_key_env=str(entry.get("api_key_env", "")),
            provider_model=str(entry.get("provider_model", "")),
            fallback=str(entry["fallback"]) if entry.get("fallback") else None,
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model {entry.get('id')!r} has an invalid field: {exc}") from exc
    if min(spec.input_per_1m, spec.output_per_1m, spec.cached_input_per_1m) < 0:
        raise ConfigError(f"model {spec.id!r} has a negative price")
    if spec.timeout_s <= 0 or spec.max_context_tokens <= 0:
        raise ConfigError(f"model {spec.id!r} needs a positive timeout_s and max_context_tokens")
    return spec


def _parse_tiers(raw: Mapping[str, Any], models: Mapping[str, ModelSpec]) -> dict[str, TierSpec]:
    names = list(dict.fromkeys([*raw, *(m.tier for m in models.values())]))
    tiers: dict[str, TierSpec] = {}
    for name in names:
        entry = dict(raw.get(name, {}))
        first = next((m.id for m in models.values() if m.tier == name), None)
        model = str(entry.get("model", first or ""))
        if model not in models:
            raise ConfigError(f"tier {name!r} starts at unknown model {model!r}")
        shadow = entry.get("shadow_model")
        if shadow is not None and shadow not in models:
            raise ConfigError(f"tier {name!r} shadows with unknown model {shadow!r}")
        share = float(entry.get("shadow_share", 0.0 if shadow is None else 0.05))
        if not 0.0 <= share <= 1.0:
            raise ConfigError(f"tier {name!r}: shadow_share must be within [0, 1], got {share}")
        tiers[name] = TierSpec(name, model, str(entry.get("description", "")), shadow, share)
    return tiers


def _parse_budgets(raw: Mapping[str, Any]) -> Budgets:
    repos = {str(k): float(v) for k, v in dict(raw.get("repos", {})).items()}
    glob = raw.get("global_monthly_usd")
    default = raw.get("repo_monthly_usd")
    return Budgets(
        global_monthly_usd=float(glob) if glob is not None else None,
        repo_monthly_usd=repos,
        default_repo_monthly_usd=float(default) if default is not None else None,
    )


def _section(cls: type, raw: Mapping[str, Any]) -> Any:
    known = set(cls.__dataclass_fields__)
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} keys: {', '.join(sorted(unknown))}")
    try:
        return cls(**raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid {cls.__name__}: {exc}") from exc
