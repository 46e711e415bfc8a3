"""An index save cut short (a full disk) leaves no partial file behind and the previous file whole."""

from __future__ import annotations

import resource
import signal
from pathlib import Path

import numpy as np
import pytest

from semcache.index.ann import FlatIndex
from semcache.index.sets import RepoIndex


def filled(n: int, seed: int = 0) -> RepoIndex:
    vectors = np.random.default_rng(seed).normal(size=(n, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = RepoIndex(FlatIndex.empty(384))
    index.add(np.arange(1, n + 1), vectors)
    return index


def test_a_failed_save_removes_its_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "index" / "acme.faiss"
    filled(10).save(path)
    before = path.read_bytes()
    big = filled(5000, seed=1)
    # RLIMIT_FSIZE is a full disk for this process: writes past it fail with EFBIG (SIGXFSZ ignored)
    previous_signal = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (len(before) + 4096, hard))
    try:
        with pytest.raises(Exception):  # noqa: B017 - faiss reports a failed write as a RuntimeError
            big.save(path)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous_signal)
    assert not path.with_suffix(".tmp").exists()
    assert path.read_bytes() == before and big.dirty  # the old index stays, the new one is still to save


def _delete(path: Path) -> None:
    path.unlink()


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)
    data[:8] = b"notfaiss"
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_delete, _truncate, _corrupt], ids=["deleted", "truncated", "corrupted"])
def test_a_damaged_index_file_is_rebuilt_from_the_store(settings, embedder, damage) -> None:
    import httpx

    from semcache.http.app import create_app
    from tests.servers import serve

    def ask(url: str, prompt: str) -> str:
        body = {"model": "rel-index", "messages": [{"role": "user", "content": prompt}]}
        response = httpx.post(
            f"{url}/v1/chat/completions", json=body, headers={"X-Semcache-Repo": "acme"}, timeout=30
        )
        assert response.status_code == 200
        return response.headers["x-semcache"]

    with serve(create_app(settings, embedder=embedder)) as url:
        assert ask(url, "How do I reverse a list in Python?") == "miss"
    damage(settings.index_dir / "acme.faiss")
    with serve(create_app(settings, embedder=embedder)) as url:
        assert ask(url, "How can I reverse a Python list?") == "hit-semantic"
        assert httpx.get(f"{url}/healthz").json()["status"] == "ok"
