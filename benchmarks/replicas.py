"""Many replicas, one PostgreSQL: two sidecar replicas on PostgreSQL + pgvector against one sidecar on
SQLite + FAISS, in the same run; then one large repo in PostgreSQL alone.

1. **Serving.** GPTCache's paraphrase pairs: the ``a`` side warms the cache (through replica 1 on
   PostgreSQL), the ``b`` side answered ``hit-semantic`` (asked through replica 2: what one replica
   learned, the other serves) are the semantic-hit queries. One client: p50 / p99. Load: ``--clients``
   closed-loop clients for ``--duration`` s, spread over the replicas (all on the one SQLite sidecar).
2. **Scale.** ``--size`` synthetic vectors (a Gaussian fitted to real MiniLM embeddings, as in
   ``benchmarks/scale.py``) loaded into one repo with COPY, then the HNSW index built: load and build
   time, database size; lookups (the cache's wide search, k=32) of paraphrase queries: p50 / p99 and
   recall@1 against an exact search; and a search restricted to a 1 % scope: rows returned and recall@1.

    python -m benchmarks.replicas                                  # serving + 100 k entries
    python -m benchmarks.replicas --size 20000 --duration 3        # a quick run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import DATA_DIR, ROOT, machine, percentiles_ms, read_jsonl, sidecar, stub, write_json
from benchmarks.evalkit import embedder
from benchmarks.latency import chat_bodies, once, semcache_outcome
from benchmarks.loadgen import Target, load
from benchmarks.scale import Generator, real_prompts
from scripts.pg_server import PgServer
from semcache.index.pgvector import PgIndexSet
from semcache.store.postgres import PostgresStore

SETTINGS = {"decision": "cosine", "min_similarity": "0.85", "audit_rate": "0", "auth": "off"}


def serving(pairs: list[dict], pg: PgServer, upstream: str, work: Path, args: argparse.Namespace) -> dict:
    stored, queries = chat_bodies([p["a"] for p in pairs]), chat_bodies([p["b"] for p in pairs])
    headers = {"X-Semcache-Repo": "bench"}
    out = {}
    with sidecar(work / "sqlite", upstream, **SETTINGS) as (url, _):
        out["sqlite"] = measure([url], [url], stored, queries, headers, args)
    store_url = pg.new_database()
    pg_settings = {**SETTINGS, "store_url": store_url}
    with (
        sidecar(work / "replica1", upstream, **pg_settings) as (one, _),
        sidecar(work / "replica2", upstream, **pg_settings) as (two, _),
    ):
        out["postgres_2_replicas"] = measure([one], [one, two], stored, queries, headers, args, ask=two)
    return out


def measure(
    warm_urls: list[str],
    load_urls: list[str],
    stored: list[bytes],
    queries: list[bytes],
    headers: dict[str, str],
    args: argparse.Namespace,
    ask: str | None = None,
) -> dict:
    """Warm through the first URL, find the semantic hits (through ``ask``), time them."""
    chat = "/v1/chat/completions"
    once(Target(warm_urls[0] + chat, stored, semcache_outcome, headers), len(stored))
    asked = once(Target((ask or warm_urls[0]) + chat, queries, semcache_outcome, headers), len(queries))
    hits = [queries[i] for i in dict.fromkeys(asked.bodies("hit-semantic"))]
    single = once(Target((ask or warm_urls[0]) + chat, hits, semcache_outcome, headers), args.single)
    per = args.clients // len(load_urls)

    async def spread() -> list:
        targets = [Target(u + chat, hits, semcache_outcome, headers) for u in load_urls]
        return await asyncio.gather(*(load(t, per, duration_s=args.duration) for t in targets))

    runs = asyncio.run(spread())
    hits_per_s = sum(len(r.latencies_s("hit-semantic")) / r.wall_s for r in runs)
    print(
        f"{len(load_urls)} sidecar(s): {len(hits)} semantic-hit queries; one client p50 "
        f"{single.summary()['latency_ms']['p50']:.2f} ms; {hits_per_s:.0f} hits/s at {args.clients} clients"
    )
    return {
        "semantic_hit_queries": len(hits),
        "single": percentiles_ms(single.latencies_s("hit-semantic")),
        "outcomes_single": single.summary()["outcomes"],
        "load_clients": args.clients,
        "load_hits_per_s": hits_per_s,
        "load_latency": percentiles_ms([s for r in runs for s in r.latencies_s("hit-semantic")]),
    }


def scale(pg: PgServer, args: argparse.Namespace, seed: int = 7) -> dict:
    """One repo of ``size`` synthetic entries in PostgreSQL: load, build, size, lookups, recall."""
    size, queries = args.size, args.queries
    real = embedder().encode(real_prompts(2000))
    gen = Generator(real, seed)
    vectors = gen.draw(size)
    url = pg.new_database()
    store = PostgresStore(url, vectors.shape[1])
    with store.db_handle.connection() as conn:
        conn.execute("DROP INDEX entries_embedding")
    started = time.perf_counter()
    copy_rows(store, vectors)
    loaded = time.perf_counter() - started
    started = time.perf_counter()
    with store.db_handle.connection() as conn:
        conn.execute("SET maintenance_work_mem = '4GB'")  # the 1 M graph fits: no slow fallback
        conn.execute("SET statement_timeout = 0")
        conn.execute(
            "CREATE INDEX entries_embedding ON entries USING hnsw (embedding vector_cosine_ops) "
            "WITH (m = 16, ef_construction = 64)"
        )
        conn.execute("ANALYZE entries")
        db_mb = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0] / 2**20
    built = time.perf_counter() - started
    store.close()
    picks = np.random.default_rng(seed).choice(size, queries, replace=False)
    asked = gen.paraphrases(vectors[picks])
    by_ef = {}
    for ef in args.ef_search:  # the search width, per connection (the store's pool is built with it)
        searcher = PostgresStore(url, vectors.shape[1], ef_search=ef)
        by_ef[ef] = lookups(searcher, vectors, asked, size)
        searcher.close()
    result = {"entries": size, "m": args.m, "ef_construction": args.ef_construction, "load_s": loaded}
    result |= {"hnsw_build_s": built, "database_mb": db_mb, "by_ef_search": by_ef}
    print(json.dumps(result, indent=1))
    return result


def copy_rows(store: PostgresStore, vectors: np.ndarray) -> None:
    """Bulk-load one repo's entries (ids 1..n) with COPY; every 100th entry in scope "s1"."""
    columns = "id, repo, scope_key, exact_key, prompt, response, model, embedding, created_at, expires_at"
    sql = f"COPY entries ({columns}) FROM STDIN"
    with store.db_handle.connection() as conn:
        conn.execute("SET statement_timeout = 0")  # a bulk load, not a request
    with store.db_handle.connection() as conn, conn.cursor() as cur, cur.copy(sql) as copy:
        for i, vector in enumerate(vectors, start=1):
            scope = "s1" if i % 100 == 0 else "s0"
            copy.write_row((i, "big", scope, f"k{i}", f"p{i}", "{}", "m", vector, 0.0, 1e12))


def lookups(store: PostgresStore, vectors: np.ndarray, queries: np.ndarray, size: int) -> dict:
    """Search latency and recall@1 against exact search; the same restricted to the 1 % scope."""
    index = PgIndexSet(store).get("big")
    scope = np.arange(100, size + 1, 100)  # ids in scope "s1"
    took, right, scoped_right, scoped_full = [], 0, 0, 0
    for query in queries:
        started = time.perf_counter()
        found = index.search(query, 32)
        took.append(time.perf_counter() - started)
        right += bool(found) and found[0].id == int(np.argmax(vectors @ query)) + 1
        narrow = index.search(query, 32, allowed=scope.tolist())
        scoped_full += len(narrow) == min(32, len(scope))
        best = scope[int(np.argmax(vectors[scope - 1] @ query))]
        scoped_right += bool(narrow) and narrow[0].id == int(best)
    n = len(queries)
    return {
        "lookup_ms": percentiles_ms(took),
        "recall_at_1": right / n,
        "scoped_recall_at_1": scoped_right / n,
        "scoped_full_share": scoped_full / n,
    }


def main() -> None:
    args = parse_args()
    pairs = [p for p in read_jsonl(DATA_DIR / "gptcache_mock_pairs.jsonl") if p.get("label", 1) == 1][
        : args.pairs
    ]
    with tempfile.TemporaryDirectory() as tmp, stub() as upstream:
        pg = PgServer(Path(tmp) / "pg")
        try:
            result = {"machine": machine(), "args": vars(args) | {"out": str(args.out)}}
            if not args.no_serving:
                result["serving"] = serving(pairs, pg, upstream, Path(tmp), args)
            if args.size:
                result["scale"] = scale(pg, args)
        finally:
            pg.stop()
    write_json(args.out, result)
    print(f"wrote {args.out}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=300)
    parser.add_argument("--single", type=int, default=300, help="one-client requests")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--size", type=int, default=100_000, help="entries of the scale part (0: skip)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--m", type=int, default=16, help="HNSW graph neighbours per node")
    parser.add_argument("--ef-construction", type=int, default=64, help="HNSW build-time search width")
    parser.add_argument("--ef-search", type=int, nargs="+", default=[128], help="search widths to measure")
    parser.add_argument("--no-serving", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "replicas.json")
    return parser.parse_args()


if __name__ == "__main__":
    main()
