"""Registry loading and fallback-graph validation."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router import ConfigError, load_registry
from router.registry import parse_registry
from tests.router.conftest import model_toml, write_registry

URL = "http://127.0.0.1:9/v1"


def test_example_config_loads_and_chains_end() -> None:
    registry = load_registry(Path(__file__).parents[2] / "config" / "models.example.toml")
    assert set(registry.tiers) == {"bulk", "standard", "structured", "complex"}
    for spec in registry.models.values():
        chain = registry.chain(spec.id)
        assert len({s.id for s in chain}) == len(chain)
    assert registry.premium_tier == "complex"


def test_unknown_fallback_is_refused(tmp_path: Path) -> None:
    path = write_registry(tmp_path / "r.toml", [model_toml("a", "standard", URL, fallback="ghost")])
    with pytest.raises(ConfigError, match="'a' falls back to unknown model 'ghost'"):
        load_registry(path)


def test_cycle_is_refused_with_its_path(tmp_path: Path) -> None:
    models = [
        model_toml("a", "standard", URL, fallback="b"),
        model_toml("b", "standard", URL, fallback="c"),
        model_toml("c", "standard", URL, fallback="a"),
    ]
    with pytest.raises(ConfigError, match="fallback cycle: a -> b -> c -> a"):
        load_registry(write_registry(tmp_path / "r.toml", models))


def test_self_fallback_is_a_cycle(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="fallback cycle: a -> a"):
        load_registry(write_registry(tmp_path / "r.toml", [model_toml("a", "standard", URL, fallback="a")]))


def test_missing_file_and_bad_toml_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_registry(tmp_path / "nope.toml")
    (tmp_path / "bad.toml").write_text("[[models]\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_registry(tmp_path / "bad.toml")


def test_unknown_default_tier_and_policy_keys_are_refused(tmp_path: Path) -> None:
    models = [model_toml("a", "standard", URL)]
    with pytest.raises(ConfigError, match="default_tier 'premium'"):
        load_registry(write_registry(tmp_path / "r.toml", models, default_tier="premium"))
    with pytest.raises(ConfigError, match="unknown BreakerPolicy keys: colour"):
        parse_registry({"models": [_model("a", None)], "breaker": {"colour": "red"}})


def test_prices_come_from_the_file(tmp_path: Path) -> None:
    path = write_registry(tmp_path / "r.toml", [model_toml("a", "standard", URL, prices=(3.0, 15.0, 0.3))])
    spec = load_registry(path).model("a")
    # 1M input of which 200k cached, 100k output: 0.8*3 + 0.2*0.3 + 0.1*15
    assert spec.cost_usd(1_000_000, 100_000, 200_000) == pytest.approx(2.4 + 0.06 + 1.5)


def test_api_key_comes_from_the_named_env_var(tmp_path: Path) -> None:
    path = write_registry(tmp_path / "r.toml", [model_toml("a", "standard", URL, api_key_env="A_KEY")])
    assert load_registry(path).api_keys({"A_KEY": "sk-test"}) == {"a": "sk-test"}


def _model(model_id: str, fallback: str | None) -> dict:
    entry = {"id": model_id, "base_url": URL, "tier": "standard", "input_per_1m": 1, "output_per_1m": 1}
    return entry | ({"fallback": fallback} if fallback else {})


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(0, 7)), min_size=1, max_size=8))
def test_any_fallback_graph_either_loads_acyclic_or_is_refused(targets: list[int | None]) -> None:
    """No configuration can make the router loop: a loaded registry's every chain ends."""
    models = [_model(f"m{i}", None if t is None else f"m{t}") for i, t in enumerate(targets)]
    try:
        registry = parse_registry({"models": models})
    except ConfigError as exc:
        assert "cycle" in str(exc) or "unknown model" in str(exc)
        return
    for spec in registry.models.values():
        chain = registry.chain(spec.id)
        assert len(chain) <= len(models)
        assert chain[-1].fallback is None
