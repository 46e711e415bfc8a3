"""Which store and vector search the cache runs on: SQLite + FAISS under the data directory (the
default), or PostgreSQL + pgvector at ``SEMCACHE_STORE_URL``, shared by every replica."""

from __future__ import annotations

from semcache.config import Settings
from semcache.index.ann import AnnParams
from semcache.index.sets import IndexSet
from semcache.store.sqlite import Store


def open_backend(settings: Settings, dim: int) -> tuple[Store, IndexSet]:
    """The store and the index set for ``settings`` (vectors of ``dim`` dimensions)."""
    ann = AnnParams(**settings.ann_params())
    if settings.store_url:
        from semcache.index.pgvector import PgIndexSet
        from semcache.store.postgres import PostgresStore

        store = PostgresStore(
            settings.store_url,
            dim,
            hnsw_m=ann.m,
            hnsw_ef_construction=max(ann.ef_construction, 64),
            ef_search=ann.ef_search,
            pool_size=settings.store_pool_size,
        )
        return store, PgIndexSet(store)  # type: ignore[return-value]
    max_bytes = None if settings.max_store_mb is None else int(settings.max_store_mb * 2**20)
    store = Store(settings.db_path, max_bytes)
    return store, IndexSet(store, settings.index_dir, dim, ann)
