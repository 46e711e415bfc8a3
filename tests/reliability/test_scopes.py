"""Scopes hold under random traffic: random keys with random repo patterns send thousands of random
operations over real HTTP, checked against a model of what each repo must hold.

Answers stored by the admin are tagged with their repo, so an answer served, looked up or read in the
wrong repo is seen at once. Every call outside a key's scope must be a 403 that changes nothing; every
so often the store's entry counts are compared with the model's.
"""

from __future__ import annotations

import fnmatch
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from semcache.access.issuing import issue_key
from semcache.store.api_keys import KeyStore
from semcache.store.sqlite import Store
from tests.helpers import completion, sidecar_settings
from tests.servers import serve

REPOS = ["r0", "r1", "r2", "r3", "r4"]
PATTERNS = [["r0"], ["r1"], ["r[01]"], ["r2", "r3"], ["r*"], ["r4"], ["r[2-4]"]]
PROMPTS = [
    "How do I reverse a list in Python?",
    "What does HTTP status 418 mean?",
    "How do I rename a git branch?",
    "What is the capital of Australia?",
    "How do I parse JSON in Go?",
    "Explain the CAP theorem briefly.",
]
MODEL = "rel-scope"
OPERATIONS = 5_000


@dataclass
class Key:
    token: str
    patterns: list[str] | None  # None: the admin key

    def reaches(self, repo: str) -> bool:
        """The model's own reading of a scope (not the code under test's)."""
        return self.patterns is None or any(fnmatch.fnmatchcase(repo, p) for p in self.patterns)


@dataclass
class World:
    """What each repo must hold: prompt -> answer text, and the ids of the entries stored."""

    answers: dict[str, dict[str, str]] = field(default_factory=lambda: {r: {} for r in REPOS})
    ids: dict[int, tuple[str, str]] = field(default_factory=dict)  # entry id -> (repo, prompt)

    def tag(self, repo: str, prompt: str) -> str:
        return f"<{repo}> stored answer to: {prompt}"

    def allowed(self, text: str, repo: str, prompt: str) -> bool:
        """Whether ``text`` may be served for ``prompt`` in ``repo``: the upstream's answer or that repo's."""
        return text in (f"[{MODEL}] answer to: {prompt}", self.tag(repo, prompt)) or text.startswith(
            f"<{repo}>"
        )


@pytest.fixture
def world(tmp_path: Path, model_dir: Path, stub_url: str, embedder) -> Iterator[tuple[str, list[Key], Key]]:
    from semcache.http.app import create_app

    settings = sidecar_settings(
        tmp_path / "data", model_dir, stub_url, auth="required", feedback_per_minute=1e9, min_similarity=0.99
    )
    store = Store(settings.db_path)
    keys = KeyStore(store)
    admin_token, _ = issue_key(keys, "admin", [], admin=True)
    clients = []
    for i, patterns in enumerate(PATTERNS):
        token, _ = issue_key(keys, f"client-{i}", patterns)
        clients.append(Key(token, patterns))
    store.close()
    with serve(create_app(settings, embedder=embedder)) as url:
        yield url, clients, Key(admin_token, None)


def _chat_body(prompt: str) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": prompt}]}


class Driver:
    """Sends one random operation at a time and checks its answer against the world."""

    def __init__(self, url: str, clients: list[Key], admin: Key, seed: int) -> None:
        self.http = httpx.Client(base_url=url, timeout=30)
        self.clients, self.admin = clients, admin
        self.rng = random.Random(seed)
        self.world = World()
        self.denied = 0

    def step(self) -> None:
        key = self.admin if self.rng.random() < 0.15 else self.rng.choice(self.clients)
        repo, prompt = self.rng.choice(REPOS), self.rng.choice(PROMPTS)
        op = self.rng.choice(["chat", "lookup", "store", "purge", "delete", "feedback", "stats", "entry"])
        inside = key.reaches(repo)
        needs_admin = op in {"store", "purge", "delete"}
        response = getattr(self, op)(key, repo, prompt)
        if not inside or (needs_admin and key.patterns is not None):
            assert response.status_code == 403, (op, repo, response.status_code, response.text)
            self.denied += 1
            return
        assert response.status_code < 400 or response.status_code == 404, (op, response.text)
        getattr(self, f"after_{op}", lambda *a: None)(response, repo, prompt)

    def _h(self, key: Key) -> dict[str, str]:
        return {"Authorization": f"Bearer {key.token}"}

    def chat(self, key: Key, repo: str, prompt: str) -> httpx.Response:
        headers = self._h(key) | {"X-Semcache-Repo": repo}
        return self.http.post("/v1/chat/completions", json=_chat_body(prompt), headers=headers)

    def after_chat(self, response: httpx.Response, repo: str, prompt: str) -> None:
        text = response.json()["choices"][0]["message"]["content"]
        assert self.world.allowed(text, repo, prompt), (repo, prompt, text)
        if response.headers["x-semcache"] == "miss":
            self.world.answers[repo][prompt] = text
            self.world.ids[int(response.headers["x-semcache-entry-id"])] = (repo, prompt)

    def lookup(self, key: Key, repo: str, prompt: str) -> httpx.Response:
        return self.http.post(f"/v1/cache/repos/{repo}/lookup", json=_chat_body(prompt), headers=self._h(key))

    def after_lookup(self, response: httpx.Response, repo: str, prompt: str) -> None:
        found = response.json()
        assert found["hit"] == (prompt in self.world.answers[repo]), (repo, prompt, found)
        if found["hit"]:
            text = found["response"]["choices"][0]["message"]["content"]
            assert text == self.world.answers[repo][prompt], (repo, prompt, text)

    def store(self, key: Key, repo: str, prompt: str) -> httpx.Response:
        body = {"request": _chat_body(prompt), "response": completion(self.world.tag(repo, prompt))}
        return self.http.post(f"/v1/cache/repos/{repo}/entries", json=body, headers=self._h(key))

    def after_store(self, response: httpx.Response, repo: str, prompt: str) -> None:
        self.world.answers[repo][prompt] = self.world.tag(repo, prompt)
        self.world.ids = {i: rp for i, rp in self.world.ids.items() if rp != (repo, prompt)}
        self.world.ids[response.json()["entry_id"]] = (repo, prompt)

    def purge(self, key: Key, repo: str, prompt: str) -> httpx.Response:
        return self.http.delete(f"/v1/cache/repos/{repo}", headers=self._h(key))

    def after_purge(self, response: httpx.Response, repo: str, prompt: str) -> None:
        assert response.json()["removed"] == len(self.world.answers[repo])
        self.world.answers[repo] = {}
        self.world.ids = {i: rp for i, rp in self.world.ids.items() if rp[0] != repo}

    def _some_id(self) -> int:
        return self.rng.choice(list(self.world.ids)) if self.world.ids else 1

    def delete(self, key: Key, repo: str, prompt: str) -> httpx.Response:
        self._target = self._some_id()
        return self.http.delete(f"/v1/cache/repos/{repo}/entries/{self._target}", headers=self._h(key))

    def after_delete(self, response: httpx.Response, repo: str, prompt: str) -> None:
        self._forget_if_in(response, repo, expect=204)

    def feedback(self, key: Key, repo: str, prompt: str) -> httpx.Response:
        self._target = self._some_id()
        body = {"entry_id": self._target, "prompt": prompt}
        return self.http.post(f"/v1/cache/repos/{repo}/feedback", json=body, headers=self._h(key))

    def after_feedback(self, response: httpx.Response, repo: str, prompt: str) -> None:
        self._forget_if_in(response, repo, expect=200)

    def _forget_if_in(self, response: httpx.Response, repo: str, expect: int) -> None:
        owner = self.world.ids.get(self._target)
        if owner is None or owner[0] != repo:  # another repo's entry: must be untouched
            assert response.status_code == 404, response.text
            return
        assert response.status_code == expect, response.text
        del self.world.ids[self._target]
        self.world.answers[repo].pop(owner[1], None)

    def stats(self, key: Key, repo: str, prompt: str) -> httpx.Response:
        return self.http.get(f"/v1/cache/repos/{repo}/stats", headers=self._h(key))

    def after_stats(self, response: httpx.Response, repo: str, prompt: str) -> None:
        assert response.json()["entries"] == len(self.world.answers[repo]), repo

    def entry(self, key: Key, repo: str, prompt: str) -> httpx.Response:
        self._target = self._some_id()
        return self.http.get(f"/v1/cache/repos/{repo}/entries/{self._target}", headers=self._h(key))

    def after_entry(self, response: httpx.Response, repo: str, prompt: str) -> None:
        owner = self.world.ids.get(self._target)
        if owner is None or owner[0] != repo:
            assert response.status_code == 404, response.text  # never another repo's entry
            return
        text = response.json()["response"]["choices"][0]["message"]["content"]
        assert text == self.world.answers[repo][owner[1]], (repo, owner, text)

    def check_counts(self) -> None:
        for repo in REPOS:
            stats = self.http.get(f"/v1/cache/repos/{repo}/stats", headers=self._h(self.admin)).json()
            assert stats["entries"] == len(self.world.answers[repo]), repo


def test_random_traffic_never_crosses_a_scope(world) -> None:
    url, clients, admin = world
    driver = Driver(url, clients, admin, seed=20261206)
    for i in range(OPERATIONS):
        driver.step()
        if i % 250 == 249:
            driver.check_counts()
    driver.check_counts()
    assert driver.denied > OPERATIONS // 5  # the scopes were really exercised
    wrong = driver.http.get("/v1/cache/repos/r0/stats", headers={"Authorization": "Bearer sck-nope"})
    assert wrong.status_code == 401
