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


def test_the_decision_package_does_not_import_the_store_or_http() -> None:
    for path, names in imported("semcache/decision").items():
        bad = {
            n
            for n in names
            if n in {"semcache.store", "semcache.server", "semcache.routes", "semcache.gateway"}
        }
        assert not bad, f"{path} imports {bad}"


def test_the_cache_core_never_imports_the_audit_or_http() -> None:
    core = ("semcache/cache.py", "semcache/calibrator.py", "semcache/labels.py", "semcache/lookups.py")
    upper = {"semcache.audit", "semcache.judges", "semcache.gateway", "semcache.routes", "semcache.server"}
    for path, names in imported("semcache").items():
        if path in core:
            assert not names & upper, f"{path} imports {names & upper}"


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
