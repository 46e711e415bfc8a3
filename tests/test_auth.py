"""Keys, scopes and auth modes: unit tests of the pieces, then over real HTTP with the OpenAI SDK."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from semcache.access.issuing import issue_key
from semcache.access.keyring import Keyring
from semcache.access.limits import RateLimit
from semcache.access.mode import auth_mode, is_loopback
from semcache.errors import ConfigError, InvalidRequest
from semcache.store.api_keys import KeyStore
from semcache.store.sqlite import Store
from tests.helpers import completion, sidecar_settings, upstream_calls
from tests.servers import serve, wait_for

ROOT = Path(__file__).resolve().parent.parent


# -- pieces --------------------------------------------------------------------------------------


def test_auth_mode_is_on_off_loopback_and_refuses_to_start_open() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.5") and not is_loopback("example.org")
    assert not auth_mode("auto", "127.0.0.1", 0).on
    assert auth_mode("auto", "127.0.0.1", 1).on  # once keys exist they are used
    assert auth_mode("auto", "0.0.0.0", 1).on
    assert not auth_mode("off", "0.0.0.0", 0).on
    for setting, host in (("auto", "0.0.0.0"), ("required", "127.0.0.1")):
        with pytest.raises(ConfigError, match="semcache keys create --admin"):
            auth_mode(setting, host, 0)


def test_keys_are_stored_hashed_verified_and_revoked(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    keys = KeyStore(store)
    token, record = issue_key(keys, "ci", ["acme.*"], default_repo="acme.api")
    assert token not in repr(keys.all()) and record.hash != token.encode()
    ring = Keyring(keys)
    principal = ring.verify(token)
    assert principal is not None and principal.may_use("acme.web") and not principal.may_use("acmes")
    assert ring.recall(token) == (True, principal)
    assert ring.verify(token[:-1] + ("A" if token[-1] != "A" else "B")) is None  # wrong secret
    assert ring.verify("sck-000000000000-" + "x" * 43) is None  # unknown id
    assert ring.verify("not a key") is None
    keys.revoke("ci")
    ring.refresh()  # what the background thread does every second
    assert ring.recall(token) == (False, None)
    assert ring.verify(token) is None
    with pytest.raises(InvalidRequest, match="at least one"):
        issue_key(keys, "nothing", [])
    with pytest.raises(InvalidRequest, match="outside"):
        issue_key(keys, "odd", ["acme.*"], default_repo="beta")
    store.close()


def test_rate_limit_refills_over_time() -> None:
    now = [0.0]
    limit = RateLimit(per_minute=2, clock=lambda: now[0])
    assert limit.take("k") == 0 and limit.take("k") == 0
    assert limit.take("k") == pytest.approx(30.0)
    assert limit.take("other") == 0
    now[0] += 30.0
    assert limit.take("k") == 0


# -- over HTTP -----------------------------------------------------------------------------------


@dataclass
class Authed:
    url: str
    admin: str
    client: str  # acme.* with default repo acme.api
    other: str  # beta only
    stub_url: str


@pytest.fixture
def authed(tmp_path: Path, model_dir: Path, stub_url: str, embedder) -> Iterator[Authed]:
    from semcache.http.app import create_app

    settings = sidecar_settings(
        tmp_path / "data", model_dir, stub_url, auth="required", feedback_per_minute=2
    )
    store = Store(settings.db_path)
    keys = KeyStore(store)
    admin, _ = issue_key(keys, "admin", [], admin=True)
    client, _ = issue_key(keys, "acme-ci", ["acme.*"], default_repo="acme.api")
    other, _ = issue_key(keys, "beta-ci", ["beta"])
    store.close()
    with serve(create_app(settings, embedder=embedder)) as url:
        yield Authed(url, admin, client, other, stub_url)


def _h(token: str | None, **extra: str) -> dict[str, str]:
    return ({"Authorization": f"Bearer {token}"} if token else {}) | extra


def _body(prompt: str, model: str) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": prompt}]}


def test_requests_without_a_right_key_are_401_in_the_error_shape(authed: Authed) -> None:
    for headers in ({}, _h("sck-000000000000-" + "y" * 43), {"Authorization": "Basic abc"}):
        r = httpx.post(f"{authed.url}/v1/chat/completions", json=_body("hi", "auth-a"), headers=headers)
        assert r.status_code == 401 and r.json()["error"]["type"] == "unauthorized"
        assert r.headers["www-authenticate"] == "Bearer"
    assert upstream_calls(authed.stub_url, "auth-a") == 0
    assert httpx.get(f"{authed.url}/healthz").json()["auth"]["on"] is True


def test_the_sdk_key_is_the_client_key_and_its_default_repo_applies(authed: Authed) -> None:
    sdk = OpenAI(base_url=f"{authed.url}/v1", api_key=authed.client)
    first = sdk.chat.completions.with_raw_response.create(
        model="auth-b", messages=[{"role": "user", "content": "How do I reverse a list in Python?"}]
    )
    again = sdk.chat.completions.with_raw_response.create(
        model="auth-b", messages=[{"role": "user", "content": "How do I reverse a list in Python?"}]
    )
    assert first.headers["x-semcache"] == "miss" and again.headers["x-semcache"] == "hit-exact"
    stats = httpx.get(f"{authed.url}/v1/cache/repos/acme.api/stats", headers=_h(authed.client))
    assert stats.status_code == 200 and stats.json()["hits"] == 1

    def counted() -> bool:
        me = httpx.get(f"{authed.url}/v1/keys/self", headers=_h(authed.client)).json()
        return me["requests"] == 2 and me["hits"] == 1

    wait_for(counted)


def test_out_of_scope_is_403_before_any_lookup_or_upstream_call(authed: Authed) -> None:
    r = httpx.post(
        f"{authed.url}/v1/chat/completions",
        json=_body("What is a monad?", "auth-c"),
        headers=_h(authed.other, **{"X-Semcache-Repo": "acme.api"}),
    )
    assert r.status_code == 403 and r.json()["error"]["type"] == "forbidden"
    assert upstream_calls(authed.stub_url, "auth-c") == 0
    for method, path in (
        ("GET", "/v1/cache/repos/acme.api/stats"),
        ("POST", "/v1/cache/repos/acme.api/lookup"),
        ("GET", "/v1/cache/repos/acme.api/entries/1"),
        ("POST", "/v1/cache/repos/acme.api/feedback"),
    ):
        r = httpx.request(method, f"{authed.url}{path}", json=_body("x", "auth-c"), headers=_h(authed.other))
        assert r.status_code == 403, path


def test_management_needs_an_admin_key_and_is_logged(authed: Authed) -> None:
    entry = {"request": _body("What is HTTP?", "auth-d"), "response": completion("A protocol.")}
    for method, path, body in (
        ("DELETE", "/v1/cache/repos/acme.api", None),
        ("POST", "/v1/cache/repos/acme.api/entries", entry),
        ("DELETE", "/v1/cache/repos/acme.api/entries/1", None),
        ("GET", "/v1/cache/repos", None),
        ("GET", "/v1/keys", None),
        ("POST", "/v1/keys", {"name": "mine", "admin": True}),
        ("GET", "/metrics", None),
        ("GET", "/v1/admin/log", None),
    ):
        r = httpx.request(method, f"{authed.url}{path}", json=body, headers=_h(authed.client))
        assert r.status_code == 403, path
    admin = _h(authed.admin)
    stored = httpx.post(f"{authed.url}/v1/cache/repos/acme.api/entries", json=entry, headers=admin)
    assert stored.status_code == 201
    assert httpx.delete(f"{authed.url}/v1/cache/repos/acme.api", headers=admin).json()["removed"] == 1
    assert httpx.get(f"{authed.url}/metrics", headers=admin).status_code == 200
    log = httpx.get(f"{authed.url}/v1/admin/log", headers=admin).json()["entries"]
    assert [(e["actor"], e["action"], e["target"]) for e in log[:2]] == [
        ("key:admin", "purge", "acme.api"),
        ("key:admin", "store", "acme.api"),
    ]


def test_feedback_evicts_only_in_scope_and_is_rate_limited(authed: Authed) -> None:
    admin = _h(authed.admin)
    ids = []
    for i in range(3):
        entry = {"request": _body(f"question {i}", "auth-e"), "response": completion(f"answer {i}")}
        ids.append(
            httpx.post(f"{authed.url}/v1/cache/repos/acme.api/entries", json=entry, headers=admin).json()
        )
    url = f"{authed.url}/v1/cache/repos/acme.api/feedback"
    report = {"entry_id": ids[0]["entry_id"], "prompt": "another question"}
    assert httpx.post(url, json=report, headers=_h(authed.other)).status_code == 403
    assert httpx.get(
        f"{authed.url}/v1/cache/repos/acme.api/entries/{ids[0]['entry_id']}", headers=admin
    ).is_success
    for i in range(2):
        report = {"entry_id": ids[i]["entry_id"], "prompt": "another question"}
        assert httpx.post(url, json=report, headers=_h(authed.client)).status_code == 200
    report = {"entry_id": ids[2]["entry_id"], "prompt": "another question"}
    limited = httpx.post(url, json=report, headers=_h(authed.client))
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert httpx.get(
        f"{authed.url}/v1/cache/repos/acme.api/entries/{ids[2]['entry_id']}", headers=admin
    ).is_success


def test_bodies_not_sent_as_json_are_refused(authed: Authed) -> None:
    raw = '{"model": "auth-f", "messages": [{"role": "user", "content": "hi"}]}'
    for media in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = _h(authed.client) | ({"Content-Type": media} if media else {})
        r = httpx.post(f"{authed.url}/v1/chat/completions", content=raw, headers=headers)
        assert r.status_code == 415 and r.json()["error"]["type"] == "unsupported_media_type"
    assert upstream_calls(authed.stub_url, "auth-f") == 0


def test_keys_made_and_revoked_over_http(authed: Authed) -> None:
    admin = _h(authed.admin)
    made = httpx.post(f"{authed.url}/v1/keys", json={"name": "temp", "repos": ["gamma"]}, headers=admin)
    assert made.status_code == 201
    token = made.json()["key"]
    listed = httpx.get(f"{authed.url}/v1/keys", headers=admin).json()["keys"]
    assert "temp" in {k["name"] for k in listed} and all("hash" not in k for k in listed)
    own = httpx.get(f"{authed.url}/v1/cache/repos/gamma/stats", headers=_h(token))
    assert own.status_code == 200
    assert httpx.delete(f"{authed.url}/v1/keys/temp", headers=admin).json()["revoked_at"] is not None
    wait_for(
        lambda: httpx.get(f"{authed.url}/v1/cache/repos/gamma/stats", headers=_h(token)).status_code == 401
    )


# -- the CLI -------------------------------------------------------------------------------------


def _cli(*args: str, data_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "semcache.cli", *args, "--data-dir", str(data_dir)]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)


def test_cli_prints_the_key_alone_on_its_last_line_and_refuses_to_serve_open(tmp_path: Path) -> None:
    refused = _cli("serve", "--host", "0.0.0.0", "--port", "1", data_dir=tmp_path)
    assert refused.returncode == 1 and "semcache keys create --admin" in refused.stdout
    made = _cli("keys", "create", "--repo", "acme.*", "--name", "ci", data_dir=tmp_path)
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip().splitlines()[-1].startswith("sck-")
    listed = _cli("keys", "list", data_dir=tmp_path)
    assert "ci" in listed.stdout and "acme.*" in listed.stdout
    assert _cli("keys", "revoke", "ci", data_dir=tmp_path).returncode == 0
    log = _cli("admin-log", data_dir=tmp_path).stdout
    assert "revoke key" in log and "create key" in log
