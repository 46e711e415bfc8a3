"""Per-repo indexes past the ANN threshold: real FAISS (HNSW) over a real SQLite store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from semcache.cache import SemanticCache
from semcache.config import Settings
from semcache.index import AnnParams, IndexSet, RepoIndex
from semcache.records import NewEntry
from semcache.store import Store
from tests.conftest import HashEmbedder
from tests.test_cache import completion, request

DIM = 16
PARAMS = AnnParams(min_entries=40, m=8, ef_construction=40, ef_search=64, exact_restricted_max=10)


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def put(
    store: Store, indexes: IndexSet | None, vectors: np.ndarray, repo: str = "r", scope: str = "s"
) -> list[int]:
    """Insert entries the way the cache does: store and index under the set's lock."""
    ids = []
    for vector in vectors:
        entry = NewEntry(repo=repo, scope_key=scope, exact_key=f"{repo}-{np.random.random()}", prompt="p",
                         response={}, model="m", embedding=vector, expires_at=2e9)  # fmt: skip
        new_id, _ = store.insert(entry)
        if indexes is not None:
            indexes.get(repo).add(np.array([new_id]), vector.reshape(1, -1))
        ids.append(new_id)
    return ids


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "semcache.db")


def hnsw_set(store: Store, tmp_path: Path, n: int = 60) -> tuple[IndexSet, list[int], np.ndarray]:
    indexes = IndexSet(store, tmp_path / "index", DIM, PARAMS)
    vectors = unit(np.random.default_rng(0), n)
    ids = put(store, indexes, vectors)
    assert indexes.get("r").kind == "flat"  # switching waits for maintenance, off the insert path
    assert indexes.maintain() == ["r"]
    return indexes, ids, vectors


def best(index: RepoIndex, vector: np.ndarray, k: int = 1, allowed: list[int] | None = None) -> list[int]:
    return [n.id for n in index.search(vector, k, allowed)]


def test_index_becomes_hnsw_past_the_threshold_and_finds_every_entry(store: Store, tmp_path: Path) -> None:
    indexes, ids, vectors = hnsw_set(store, tmp_path)
    index = indexes.get("r")
    assert (index.kind, index.size, index.tombstones) == ("hnsw", 60, 0)
    assert [best(index, v)[0] for v in vectors] == ids
    assert index.search(vectors[0], 1)[0].similarity == pytest.approx(1.0, abs=1e-5)
    assert indexes.maintain() == []  # nothing left to do


def test_removed_entries_become_tombstones_until_a_rebuild(store: Store, tmp_path: Path) -> None:
    indexes, ids, vectors = hnsw_set(store, tmp_path)
    index = indexes.get("r")
    gone = ids[:6]
    for entry_id in gone:
        assert store.delete("r", entry_id)
    assert index.remove(gone) == 6 and index.remove(gone) == 0
    assert (index.size, index.tombstones) == (54, 6)
    for vector in vectors[:6]:
        assert not set(best(index, vector, k=10)) & set(gone)
    assert list(index.ids()) == ids[6:]
    assert indexes.maintain() == ["r"]  # 6 tombstones > 10 % of 54: a fresh graph
    assert (indexes.get("r").kind, indexes.get("r").tombstones, indexes.get("r").size) == ("hnsw", 0, 54)
    for entry_id in ids[6:40]:
        store.delete("r", entry_id)
    index.remove(ids[6:40])
    assert indexes.maintain() == ["r"] and index.kind == "flat"  # below half the threshold: exact again
    assert list(index.ids()) == ids[40:]


@pytest.mark.parametrize("allowed_n", [6, 30])  # exact over the allowed vectors, and the filtered graph
def test_restricted_search_returns_the_best_allowed_entries(
    store: Store, tmp_path: Path, allowed_n: int
) -> None:
    indexes, ids, vectors = hnsw_set(store, tmp_path)
    index = indexes.get("r")
    index.remove([ids[1]])
    allowed = [ids[1], *ids[2 : 2 + allowed_n], 10_000]  # a removed and an unknown id are ignored
    query = vectors[0]
    live = np.array(ids[2 : 2 + allowed_n])
    scores = vectors[2 : 2 + allowed_n] @ query
    expected = list(live[np.argsort(-scores)][:3])
    found = index.search(query, 3, allowed)
    assert [n.id for n in found] == expected
    assert [n.similarity for n in found] == pytest.approx(sorted(scores, reverse=True)[:3], abs=1e-5)


def test_a_saved_graph_loads_without_a_rebuild_and_is_reconciled(store: Store, tmp_path: Path) -> None:
    indexes, ids, vectors = hnsw_set(store, tmp_path)
    indexes.get("r").remove([ids[0]])
    store.delete("r", ids[0])
    assert indexes.save_dirty() == 1
    # Another process changes the store while no server runs: one entry goes, two arrive.
    other = Store(store_path := tmp_path / "semcache.db")
    other.delete("r", ids[1])
    added = put(other, None, unit(np.random.default_rng(1), 2))
    again = IndexSet(Store(store_path), tmp_path / "index", DIM, PARAMS)
    index = again.get("r")
    assert index.kind == "hnsw"
    assert list(index.ids()) == [*ids[2:], *added]
    assert index.tombstones == 2  # read from the file (a rebuilt graph has none), stale ids marked again
    assert best(index, vectors[5]) == [ids[5]]


def test_a_running_set_reconciles_a_graph_with_another_process(store: Store, tmp_path: Path) -> None:
    indexes, ids, vectors = hnsw_set(store, tmp_path)
    other = Store(tmp_path / "semcache.db")
    other.delete("r", ids[3])
    fresh = unit(np.random.default_rng(2), 3)
    added = put(other, None, fresh)
    assert indexes.sync_external()
    index = indexes.get("r")
    assert ids[3] not in best(index, vectors[3], k=5)
    assert [best(index, v)[0] for v in fresh] == added
    other.purge_repo("r")
    assert indexes.sync_external() and index.size == 0 and index.search(vectors[0], 4) == []


def test_the_cache_switches_to_hnsw_on_a_sweep_and_keeps_hitting(tmp_path: Path, stub_url: str) -> None:
    settings = Settings(data_dir=tmp_path / "data", upstream_base_url=f"{stub_url}/v1", verifier="cosine",
                        min_similarity=0.85, ann_min_entries=10, ann_m=8)  # fmt: skip
    prompts = [f"how do I {verb} a {noun} in python" for verb in ("sort", "copy", "print", "parse")
               for noun in ("list", "dict", "string", "file")]  # fmt: skip
    cache = SemanticCache(settings, embedder=HashEmbedder())
    cache.start()
    for prompt in prompts:
        cache.put(request(prompt), completion(prompt.upper()))
    cache.sweep()
    cache.close()
    cache = SemanticCache(settings, embedder=HashEmbedder())
    cache.start()
    hit = cache.lookup(request("how do I parse a dict in python please")).hit
    assert hit is not None and hit.entry.prompt == "how do I parse a dict in python"
    assert cache.purge("acme") == len(prompts) and not (settings.index_dir / "acme.faiss").exists()
    cache.close()


def test_a_lost_graph_is_rebuilt_exact_at_once_and_a_graph_again_by_maintenance(
    store: Store, tmp_path: Path
) -> None:
    indexes, ids, vectors = hnsw_set(store, tmp_path)
    indexes.save_dirty()
    indexes.path("r").unlink()
    again = IndexSet(store, tmp_path / "index", DIM, PARAMS)
    index = again.get("r")
    assert (index.kind, list(index.ids()), index.dirty) == ("flat", ids, True)
    assert again.maintain() == ["r"] and index.kind == "hnsw"
    assert [best(index, v)[0] for v in vectors] == ids
