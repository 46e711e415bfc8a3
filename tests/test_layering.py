"""The layering docs/architecture.md sets out, checked on the source with ``ast``."""

from __future__ import annotations

import ast
from pathlib import Path

import semcache

ROOT = Path(__file__).resolve().parent.parent


def imported(package: str) -> dict[str, set[str]]:
    """Top-level modules each file of ``package`` imports (absolute imports only)."""
    out = {}
    for path in (ROOT / package).rglob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module)
        out[str(path.relative_to(ROOT))] = names
    return out


def test_runtime_code_never_imports_training_benchmarks_scripts_or_tests() -> None:
    for path, names in imported("semcache").items():
        bad = {n for n in names if n.split(".")[0] in {"training", "benchmarks", "scripts", "tests"}}
        assert not bad, f"{path} imports {bad}"


def test_the_router_never_imports_semcache() -> None:
    for path, names in imported("router").items():
        assert not {n for n in names if n.split(".")[0] == "semcache"}, path


def imports_under(names: set[str], *packages: str) -> set[str]:
    """The names in ``names`` that are ``packages`` or modules inside them."""
    return {n for n in names if any(n == p or n.startswith(p + ".") for p in packages)}


def test_the_decision_package_imports_neither_the_cache_nor_http() -> None:
    for path, names in imported("semcache/decision").items():
        bad = imports_under(names, "semcache.cache", "semcache.http", "semcache.store.sqlite")
        assert not bad, f"{path} imports {bad}"


def test_the_cache_core_never_imports_http() -> None:
    for package in ("semcache/cache", "semcache/store", "semcache/index", "semcache/decision"):
        for path, names in imported(package).items():
            bad = imports_under(names, "semcache.http", "semcache.cli")
            assert not bad, f"{path} imports {bad}"


def test_the_store_and_indexes_never_import_the_cache_or_the_settings() -> None:
    for package in ("semcache/store", "semcache/index"):
        for path, names in imported(package).items():
            bad = imports_under(names, "semcache.cache", "semcache.decision", "semcache.config")
            assert not bad, f"{path} imports {bad}"


def test_runtime_modules_stay_small() -> None:
    for path in (ROOT / "semcache").rglob("*.py"):
        lines = len(path.read_text().splitlines())
        assert lines <= 420, f"{path.relative_to(ROOT)} has {lines} lines"


def test_tests_never_import_other_test_modules() -> None:
    for path, names in imported("tests").items():
        assert not {n for n in names if n.split(".")[-1].startswith("test_")}, path


def test_the_public_api_is_pinned() -> None:
    assert sorted(semcache.__all__) == [
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
