"""Schemathesis against the sidecar's own OpenAPI document: every route, bodies drawn from its schemas,
never an internal server error, and every error in the project's shape."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from semcache.http.app import create_app
from tests.helpers import sidecar_settings
from tests.servers import serve


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, model_dir, embedder, stub_url: str) -> Iterator[object]:
    config = sidecar_settings(tmp_path_factory.mktemp("schemathesis"), model_dir, stub_url)
    with serve(create_app(config, embedder=embedder)) as url:
        yield schemathesis.openapi.from_url(f"{url}/openapi.json")


def test_no_route_fails_inside(api) -> None:
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 10  # every route of semcache.http.routes, /metrics and /healthz
    calls = [call_drawn_cases(operation) for operation in operations]
    assert sum(calls) >= 100


def call_drawn_cases(operation) -> int:
    """Call the operation with cases drawn from its schema; returns how many were called."""
    called = []

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=operation.as_strategy())
    def check(case) -> None:
        response = case.call(headers={"X-Semcache-Repo": "acme"}, timeout=30)
        called.append(response.status_code)
        # 502 / 504 are the upstream's failures (a drawn model name can ask the stub for one); 500 is ours
        assert response.status_code != 500, (case.method, case.path, response.text[:300])
        if response.status_code >= 400 and operation.path != "/metrics":
            assert set(response.json()["error"]) == {"type", "message"}, response.text[:300]

    check()
    return len(called)
