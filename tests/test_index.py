"""Per-repo indexes past the ANN threshold: real FAISS (IVF and HNSW) over a real SQLite store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from semcache.cache.semantic import SemanticCache
from semcache.config import Settings
from semcache.index.sets import AnnParams, IndexSet, RepoIndex
from semcache.store.records import NewEntry
from semcache.store.sqlite import Store
from tests.conftest import HashEmbedder
from tests.helpers import completion, request

DIM = 16
PARAMS = AnnParams(
    min_entries=40, structure="hnsw", m=8, ef_construction=40, ef_search=64, exact_restricted_max=10
)
IVF = AnnParams(min_entries=40, structure="ivf", nprobe=4, exact_restricted_max=10)
STRUCTURES = {"hnsw": PARAMS, "ivf": IVF}
# IVF holds int8 codes: similarities are close to, not equal to, the exact ones.
TOLERANCE = {"hnsw": 1e-5, "ivf": 2e-2}


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def put(
    store: Store, indexes: IndexSet | None, vectors: np.ndarray, repo: str = "r", scope: str = "s"
) -> list[int]:
    """Insert entries the way the cache does: store and index under the set's lock."""
    ids = []
    for vector in vectors:
        entry = NewEntry(
            repo=repo,
            scope_key=scope,
            exact_key=f"{repo}-{np.random.random()}",
            prompt="p",
            response={},
            model="m",
            embedding=vector,
            expires_at=2e9,
        )
        new_id, _ = store.insert(entry)
        if indexes is not None:
            indexes.get(repo).add(np.array([new_id]), vector.reshape(1, -1))
        ids.append(new_id)
    return ids


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "semcache.db")


@pytest.fixture(params=list(STRUCTURES))
def structure(request: pytest.FixtureRequest) -> str:
    return request.param


def hnsw_set(
    store: Store, tmp_path: Path, n: int = 60, structure: str = "hnsw"
) -> tuple[IndexSet, list[int], np.ndarray]:
    indexes = IndexSet(store, tmp_path / "index", DIM, STRUCTURES[structure])
    vectors = unit(np.random.default_rng(0), n)
    ids = put(store, indexes, vectors)
    assert indexes.get("r").kind == "flat"  # switching waits for maintenance, off the insert path
    assert indexes.maintain() == ["r"]
    return indexes, ids, vectors


def best(index: RepoIndex, vector: np.ndarray, k: int = 1, allowed: list[int] | None = None) -> list[int]:
    return [n.id for n in index.search(vector, k, allowed)]


def test_index_becomes_approximate_past_the_threshold_and_finds_every_entry(
    store: Store, tmp_path: Path, structure: str
) -> None:
    indexes, ids, vectors = hnsw_set(store, tmp_path, structure=structure)
    index = indexes.get("r")
    assert (index.kind, index.size, index.tombstones) == (structure, 60, 0)
    assert [best(index, v)[0] for v in vectors] == ids
    assert index.search(vectors[0], 1)[0].similarity == pytest.approx(1.0, abs=TOLERANCE[structure])
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
    store: Store, tmp_path: Path, allowed_n: int, structure: str
) -> None:
    indexes, ids, vectors = hnsw_set(store, tmp_path, structure=structure)
    index = indexes.get("r")
    index.remove([ids[1]])
    allowed = [ids[1], *ids[2 : 2 + allowed_n], 10_000]  # a removed and an unknown id are ignored
    query = vectors[0]
    live = np.array(ids[2 : 2 + allowed_n])
    scores = vectors[2 : 2 + allowed_n] @ query
    expected = list(live[np.argsort(-scores)][:3])
    found = index.search(query, 3, allowed)
    assert [n.id for n in found] == expected
    assert [n.similarity for n in found] == pytest.approx(
        sorted(scores, reverse=True)[:3], abs=TOLERANCE[structure]
    )


def test_a_saved_index_loads_without_a_rebuild_and_is_reconciled(
    store: Store, tmp_path: Path, structure: str
) -> None:
    indexes, ids, vectors = hnsw_set(store, tmp_path, structure=structure)
    indexes.get("r").remove([ids[0]])
    store.delete("r", ids[0])
    assert indexes.save_dirty() == 1
    # Another process changes the store while no server runs: one entry goes, two arrive.
    other = Store(store_path := tmp_path / "semcache.db")
    other.delete("r", ids[1])
    added = put(other, None, unit(np.random.default_rng(1), 2))
    again = IndexSet(Store(store_path), tmp_path / "index", DIM, STRUCTURES[structure])
    index = again.get("r")
    assert index.kind == structure
    assert list(index.ids()) == [*ids[2:], *added]
    # A graph read from its file (a rebuilt one has none) marks the stale ids again; IVF removes them.
    assert index.tombstones == (2 if structure == "hnsw" else 0)
    assert best(index, vectors[5]) == [ids[5]]


def test_a_running_set_reconciles_an_index_with_another_process(
    store: Store, tmp_path: Path, structure: str
) -> None:
    indexes, ids, vectors = hnsw_set(store, tmp_path, structure=structure)
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


def test_the_cache_switches_structure_on_a_sweep_and_keeps_hitting(
    tmp_path: Path, stub_url: str, structure: str
) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        upstream_base_url=f"{stub_url}/v1",
        decision="cosine",
        min_similarity=0.85,
        ann_min_entries=10,
        ann_m=8,
        ann_structure=structure,
    )
    prompts = [
        f"how do I {verb} a {noun} in python"
        for verb in ("sort", "copy", "print", "parse")
        for noun in ("list", "dict", "string", "file")
    ]
    cache = SemanticCache(settings, embedder=HashEmbedder())
    cache.start()
    for prompt in prompts:
        cache.put(request(prompt), completion(prompt.upper()))
    cache.sweep()
    cache.close()
    cache = SemanticCache(settings, embedder=HashEmbedder())
    cache.start()
    assert cache._indexes.get("acme").kind == structure  # loaded from its file
    hit = cache.lookup(request("how do I parse a dict in python please")).hit
    assert hit is not None and hit.entry.prompt == "how do I parse a dict in python"
    assert cache.purge("acme") == len(prompts) and not (settings.index_dir / "acme.faiss").exists()
    cache.close()


def test_a_lost_index_is_rebuilt_exact_at_once_and_approximate_again_by_maintenance(
    store: Store, tmp_path: Path, structure: str
) -> None:
    indexes, ids, vectors = hnsw_set(store, tmp_path, structure=structure)
    indexes.save_dirty()
    indexes.path("r").unlink()
    again = IndexSet(store, tmp_path / "index", DIM, STRUCTURES[structure])
    index = again.get("r")
    # Past the threshold the stop-gap holds int8 codes (a quarter of the memory) and still finds each.
    assert (index.kind, list(index.ids()), index.dirty) == ("flat8", ids, True)
    assert [best(index, v)[0] for v in vectors] == ids
    assert again.save_dirty() == 1
    assert IndexSet(store, tmp_path / "index", DIM, STRUCTURES[structure]).get("r").kind == "flat8"
    assert again.maintain() == ["r"] and index.kind == structure
    assert [best(index, v)[0] for v in vectors] == ids


def test_ivf_removes_for_real_and_refits_its_lists_once_the_repo_doubles(
    store: Store, tmp_path: Path
) -> None:
    indexes, ids, vectors = hnsw_set(store, tmp_path, structure="ivf")
    index = indexes.get("r")
    sized_for = index.sized_for
    assert 30 <= sized_for <= 60
    for entry_id in ids[:6]:
        store.delete("r", entry_id)
    assert index.remove(ids[:6]) == 6 and index.remove(ids[:6]) == 0
    assert (index.size, index.tombstones, list(index.ids())) == (54, 0, ids[6:])
    assert not set(best(index, vectors[0], k=10)) & set(ids[:6])
    assert indexes.maintain() == []  # still the size its lists were made for
    more = put(store, indexes, unit(np.random.default_rng(3), 2 * sized_for))
    assert indexes.maintain() == ["r"] and index.kind == "ivf" and index.sized_for > sized_for
    assert list(index.ids()) == [*ids[6:], *more]
    assert [best(index, v)[0] for v in vectors[6:]] == ids[6:]
    for entry_id in [*ids[6:], *more][:-15]:
        store.delete("r", entry_id)
    index.remove([*ids[6:], *more][:-15])
    assert indexes.maintain() == ["r"] and index.kind == "flat"  # below half the threshold: exact again


@pytest.mark.parametrize("expected", [300, 200, 500])  # exact, more rows than expected, fewer
def test_a_flat_index_filled_in_one_buffer_matches_one_built_by_adding(expected: int) -> None:
    from semcache.index.ann import FlatIndex

    rng = np.random.default_rng(3)
    vectors, ids = unit(rng, 300), np.arange(10, 310, dtype=np.int64)
    batches = [(ids[s : s + 64], vectors[s : s + 64]) for s in range(0, 300, 64)]
    filled, added = FlatIndex.filled(DIM, batches, expected), FlatIndex.empty(DIM)
    for batch_ids, batch in batches:
        added.add(batch_ids, batch)
    assert filled.size == 300 and np.array_equal(filled.ids(), ids)
    for query in unit(rng, 5):
        assert filled.search(query[None], 5, None) == added.search(query[None], 5, None)
    int8 = FlatIndex.filled(DIM, batches, expected, int8=True)
    assert int8.kind == "flat8" and np.array_equal(int8.ids(), ids)
    for vector, entry_id in zip(vectors[::10], ids[::10], strict=True):
        (top,) = int8.search(vector[None], 1, None)
        assert top.id == entry_id and abs(top.similarity - 1.0) < 2e-2
    assert filled.remove(ids[:3]) == 3 and filled.size == 297
    allowed = ids[100:120]
    assert {n.id for n in filled.search(vectors[105][None], 3, allowed)} <= set(allowed.tolist())


def test_index_defaults_are_the_settings_defaults() -> None:
    from semcache.config import Settings

    assert AnnParams(**Settings().ann_params()) == AnnParams()
