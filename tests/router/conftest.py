"""Fixtures for the router tests: one stub provider over real HTTP, and registries written as TOML."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from stub_upstream import create_stub_app

from router import Router, load_registry
from router.ledger import Ledger
from tests.servers import serve

# Fast policies so the whole suite stays quick: tiny backoffs, short breaker cool-down.
FAST_RETRY = {
    "max_attempts": 3,
    "backoff_initial_s": 0.01,
    "backoff_max_s": 0.05,
    "jitter_s": 0.01,
    "max_retry_after_s": 1.0,
}
FAST_BREAKER = {"window": 4, "min_calls": 2, "failure_rate": 0.5, "open_s": 0.3}
# A breaker that does not open within one test, for tests about retries alone.
LENIENT_BREAKER = {"window": 20, "min_calls": 20}


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """Async tests run on asyncio (through anyio's pytest plugin)."""
    return "asyncio"


@pytest.fixture(scope="session")
def stub_url() -> Iterator[str]:
    """Base URL of the stub provider (``.../v1``), shared by the session."""
    with serve(create_stub_app()) as url:
        yield f"{url}/v1"


@pytest.fixture()
def stub(stub_url: str) -> StubClient:
    """The stub's control endpoints, with its call counters reset for this test."""
    client = StubClient(stub_url.removesuffix("/v1"))
    client.reset()
    return client


class StubClient:
    """Reads and resets the stub provider's per-model call counters."""

    def __init__(self, base: str) -> None:
        self.base = base

    def reset(self) -> None:
        httpx.post(f"{self.base}/_stub/reset").raise_for_status()

    def calls(self, model: str | None = None) -> int:
        data = httpx.get(f"{self.base}/_stub/calls").json()
        return int(data["total"] if model is None else data["by_model"].get(model, 0))


def model_toml(
    model_id: str,
    tier: str,
    base_url: str,
    *,
    fallback: str | None = None,
    timeout_s: float = 5.0,
    max_context_tokens: int = 32_000,
    prices: tuple[float, float, float] = (1.0, 2.0, 0.5),
    api_key_env: str = "",
) -> str:
    """One ``[[models]]`` entry."""
    lines = [
        "[[models]]",
        f'id = "{model_id}"',
        f'base_url = "{base_url}"',
        f'tier = "{tier}"',
        f"input_per_1m = {prices[0]}",
        f"output_per_1m = {prices[1]}",
        f"cached_input_per_1m = {prices[2]}",
        f"max_context_tokens = {max_context_tokens}",
        f"timeout_s = {timeout_s}",
    ]
    if fallback:
        lines.append(f'fallback = "{fallback}"')
    if api_key_env:
        lines.append(f'api_key_env = "{api_key_env}"')
    return "\n".join(lines) + "\n"


def write_registry(
    path: Path,
    models: list[str],
    extra: str = "",
    default_tier: str = "standard",
    retry: dict[str, float] | None = None,
    breaker: dict[str, float] | None = None,
) -> Path:
    """Write a registry file: router policy, fast retry/breaker settings (overridable), ``extra``, models."""
    retry_lines = "\n".join(f"{k} = {v}" for k, v in {**FAST_RETRY, **(retry or {})}.items())
    breaker_lines = "\n".join(f"{k} = {v}" for k, v in {**FAST_BREAKER, **(breaker or {})}.items())
    text = (
        f'[router]\ndefault_tier = "{default_tier}"\nmin_confidence = 0.3\n\n'
        f"[retry]\n{retry_lines}\n\n[breaker]\n{breaker_lines}\n\n{extra}\n"
    )
    path.write_text(text + "\n".join(models), encoding="utf-8")
    return path


def make_router(
    tmp_path: Path,
    models: list[str],
    extra: str = "",
    *,
    retry: dict[str, float] | None = None,
    breaker: dict[str, float] | None = None,
    **kwargs: Any,
) -> Router:
    """A router over a fresh registry and ledger under ``tmp_path``."""
    registry_path = write_registry(tmp_path / "models.toml", models, extra, retry=retry, breaker=breaker)
    return Router.from_config(registry_path, tmp_path / "ledger.db", seed=7, **kwargs)


def make_ledger(tmp_path: Path, models: list[str], extra: str = "") -> Ledger:
    """A ledger over a fresh registry under ``tmp_path``."""
    registry = load_registry(write_registry(tmp_path / "models.toml", models, extra))
    return Ledger(tmp_path / "ledger.db", registry)


def chat(text: str, system: str | None = None) -> dict[str, Any]:
    """A chat request body."""
    messages = [{"role": "system", "content": system}] if system else []
    return {"model": "auto", "messages": [*messages, {"role": "user", "content": text}]}
