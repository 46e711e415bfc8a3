"""Every upstream fault kind, streamed and not, is answered in the project's error shape (or passed on as
the upstream's own unusable answer) and never cached: asked twice, the upstream is asked twice."""

from __future__ import annotations

import httpx
import pytest

from semcache.config import Settings
from semcache.http.app import create_app
from tests.servers import serve

FAULTS = [
    "rel-500",
    "rel-503",
    "rel-429-ra0",
    "rel-400",
    "rel-401",
    "rel-404",
    "rel-length",
    "rel-empty",
    "rel-tool",
    "rel-broken-stream",
    "rel-slow-900ms",
]


def calls(stub: str, model: str) -> int:
    return httpx.get(f"{stub}/_stub/calls").json()["by_model"].get(model, 0)


@pytest.mark.parametrize("stream", [False, True])
def test_no_fault_is_ever_cached(settings: Settings, embedder, stub_url: str, stream: bool) -> None:
    impatient = settings.model_copy(update={"upstream_timeout_s": 0.5})  # the slow model times out
    with serve(create_app(impatient, embedder=embedder)) as url:
        for model in FAULTS if stream else [m for m in FAULTS if "stream" not in m]:  # it breaks streams only
            before = calls(stub_url, model)
            body = {
                "model": model,
                "stream": stream,
                "messages": [{"role": "user", "content": f"Which fault is {model}?"}],
            }
            for _ in range(2):
                response = httpx.post(
                    f"{url}/v1/chat/completions", json=body, headers={"X-Semcache-Repo": "acme"}, timeout=30
                )
                assert response.headers.get("x-semcache") in (None, "miss"), model
                if response.status_code >= 400:
                    assert set(response.json()["error"]) == {"type", "message"}, model
            assert calls(stub_url, model) >= before + 2, model  # asked again: nothing was stored
        assert httpx.get(f"{url}/v1/cache/repos/acme/stats").json()["entries"] == 0
