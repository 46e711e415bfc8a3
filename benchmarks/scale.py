"""Scale: one repo with 100 k and 1 M entries, exact (flat) index against IVF lists and the HNSW graph.

Index part (synthetic vectors, one process per phase so each RSS is its own): vectors are drawn from a
Gaussian fitted to real MiniLM embeddings of Quora questions (mean and full covariance), normalized.
Queries are "paraphrases" (a stored vector plus noise of the same shape, cosine ~0.93 to it) and
"novel" (fresh draws). For each size and structure: build time, save and load time, RSS after
loading (the serving process) and its peak, lookup latency p50/p99 of ``RepoIndex.search`` (k=32, the
cache's wide search), and for IVF / HNSW recall@1 against the exact search at several search widths
(IVF: nprobe, lists scanned; HNSW: efSearch).

End-to-end part (real prompts and the real embedding model): a store of N entries in one repo (real
Quora questions embedded for real, the rest synthetic), its index built and saved once, then a real
``semcache serve`` is started and timed from process start to the first semantic hit over HTTP; then
the repo is purged over HTTP and timed. The index is built in a process of its own that opens the cache
as a server does with no saved index (exact first, then the sweep's IVF / HNSW); its peak RSS is reported
as the rebuild's.

    python -m benchmarks.scale --sizes 100000 1000000 --out results/scale.json
    python -m benchmarks.scale --sizes 20000 --e2e-size 20000 --queries 200   # a quick run
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

from benchmarks.common import (
    DATA_DIR,
    machine,
    percentiles_ms,
    read_jsonl,
    sidecar,
    stub,
    ticking,
    write_json,
)
from benchmarks.evalkit import MODEL_DIR, embedder
from semcache.config import Settings
from semcache.index import files as structures
from semcache.index import ivf
from semcache.index.sets import AnnParams, RepoIndex
from semcache.keys import parse_chat_request
from semcache.store.records import NewEntry
from semcache.store.sqlite import Store

REPO = "scale"
WIDE_K = 32  # what SemanticCache searches first (max(4 * top_k, 32))


def rss_mb() -> dict[str, float]:
    """This process's resident set now and at its peak, in MB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return {
        "rss_mb": int(fields["VmRSS"].split()[0]) / 1024,
        "peak_rss_mb": int(fields["VmHWM"].split()[0]) / 1024,
    }


def real_prompts(n: int) -> list[str]:
    rows = read_jsonl(DATA_DIR / "qqp_train.jsonl", limit=4 * n)
    return list(dict.fromkeys(r["a"] for r in rows))[:n]


class Generator:
    """Normalized draws from a Gaussian fitted to real embeddings."""

    def __init__(self, real: np.ndarray, seed: int) -> None:
        self.mean = real.mean(axis=0)
        values, vectors = np.linalg.eigh(np.cov(real.T))
        self.shape = (vectors * np.sqrt(np.clip(values, 0, None))).T.astype(np.float32)
        self.rng = np.random.default_rng(seed)

    def noise(self, n: int) -> np.ndarray:
        return self.rng.standard_normal((n, len(self.mean)), dtype=np.float32) @ self.shape

    def draw(self, n: int) -> np.ndarray:
        out = np.empty((n, len(self.mean)), dtype=np.float32)
        for start in range(0, n, 100_000):
            chunk = self.mean + self.noise(min(100_000, n - start))
            out[start : start + len(chunk)] = chunk / np.linalg.norm(chunk, axis=1, keepdims=True)
        return out

    def paraphrases(self, stored: np.ndarray) -> np.ndarray:
        noise = self.noise(len(stored))
        noise *= 0.4 / np.linalg.norm(noise, axis=1, keepdims=True)
        out = stored + noise
        return out / np.linalg.norm(out, axis=1, keepdims=True)


# -- index part: one subprocess per phase ---------------------------------------------------------


def phase_build(work: Path, kind: str, size: int, params: AnnParams) -> dict:
    gen = Generator(np.load(work / "real.npy"), seed=size)
    vectors = gen.draw(size)
    ids = np.arange(1, size + 1, dtype=np.int64)
    if kind == "flat":
        picked = gen.rng.choice(size, np.load(work / "nq.npy")[0], replace=False)
        np.save(work / "queries.npy", np.vstack([gen.paraphrases(vectors[picked]), gen.draw(len(picked))]))
    start, start_cpu = time.perf_counter(), time.process_time()
    batches = [(ids[s : s + 50_000], vectors[s : s + 50_000]) for s in range(0, size, 50_000)]
    sample = None
    if kind == "ivf":  # as IndexSet does: a sample spread over the repo, then the lists filled
        sample = structures.training_sample(batches, size, ivf.POINTS_PER_LIST * ivf.lists_for(size))
    index = RepoIndex(structures.build(kind, vectors.shape[1], params, batches, sample, size))
    built, built_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    start = time.perf_counter()
    index.save(work / f"{kind}.faiss")
    return {
        "build_s": built,
        "build_cpu_s": built_cpu,
        "save_s": time.perf_counter() - start,
        "build_peak_rss_mb": rss_mb()["peak_rss_mb"],
    }


def phase_serve(work: Path, kind: str, params: AnnParams, widths: list[int]) -> dict:
    start = time.perf_counter()
    structure = structures.read(work / f"{kind}.faiss", 384, params)
    assert structure is not None and structure.kind == kind
    index = RepoIndex(structure)
    out: dict = {"load_s": time.perf_counter() - start, **rss_mb()}
    queries = np.load(work / "queries.npy")
    half = len(queries) // 2
    for ef in widths if kind != "flat" else [0]:
        if ef and ef != widths[0]:  # the first width is the one the file was read with
            index.replace(
                structures.read(
                    work / f"{kind}.faiss", 384, phase_params(kind, params.m, params.ef_construction, ef)
                )
            )
        latencies, cpu, top, top_ids = [], [], [], []
        for query in ticking(queries, f"{kind} ef {ef}: queries"):
            start, start_cpu = time.perf_counter(), time.process_time()
            found = index.search(query, WIDE_K)
            latencies.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
            top.append(found[0].similarity)
            top_ids.append(found[0].id)
        row = {"latency": percentiles_ms(latencies), "cpu": percentiles_ms(cpu)}
        if kind == "flat":
            np.save(work / "exact_top.npy", np.array([top, top_ids]))
            row |= {
                "top1_similarity_paraphrase": float(np.mean(top[:half])),
                "top1_similarity_novel": float(np.mean(top[half:])),
            }
        else:
            exact, exact_ids = np.load(work / "exact_top.npy")
            # The exact best, or a tie with it (IVF's int8 similarities are close, not equal: ids count)
            same = np.array(top_ids) == exact_ids
            hit = same | (np.array(top) >= exact - 1e-5)
            row["similarity_error_max"] = float(np.abs(np.array(top) - exact)[same].max(initial=0.0))
            row |= {"recall_paraphrase": float(hit[:half].mean()), "recall_novel": float(hit[half:].mean())}
        out[f"ef{ef}"] = row
        # The serving process: the loaded index after its first round of lookups (before any re-read).
        out.setdefault("serve_rss_mb", rss_mb()["rss_mb"])
    return out


def run_phase(*args: str) -> dict:
    """Run one phase in a fresh interpreter; its last stdout line is the JSON result."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.scale", "--phase", *args],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def index_part(size: int, args: argparse.Namespace, real: np.ndarray) -> dict:
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        work = Path(tmp)
        np.save(work / "real.npy", real)
        np.save(work / "nq.npy", np.array([args.queries // 2]))
        result = {}
        for kind in ("flat", *args.structures):
            widths = args.nprobe if kind == "ivf" else args.ef_search
            common = [str(work), str(size), str(args.m), str(args.ef_construction), *map(str, widths)]
            result[kind] = run_phase("build", kind, *common) | run_phase("serve", kind, *common)
            (work / f"{kind}.faiss").unlink()
        return result


# -- end-to-end part ------------------------------------------------------------------------------


def fill_store(data_dir: Path, size: int, prompts: list[str], real: np.ndarray) -> None:
    """``size`` entries in one repo and scope: the real prompts first, synthetic vectors after."""
    store = Store(Settings(data_dir=data_dir).db_path)
    fillers = Generator(real, seed=7).draw(max(size - len(prompts), 0))
    answer = {
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}]
    }
    for i in ticking(range(size), f"filling the store with {size} entries"):
        prompt = prompts[i] if i < len(prompts) else f"synthetic prompt {i}"
        request = parse_chat_request(
            {"model": "bench", "messages": [{"role": "user", "content": prompt}]}, header_repo=REPO
        )
        vector = real[i] if i < len(prompts) else fillers[i - len(prompts)]
        store.insert(
            NewEntry(
                repo=REPO,
                scope_key=request.scope_key,
                exact_key=request.exact_key,
                prompt=prompt,
                response=answer,
                model="bench",
                embedding=vector,
                expires_at=time.time() + 1e6,
            )
        )
    store.close()


E2E_SETTINGS = {"decision": "cosine", "min_similarity": "0.8"}


def phase_e2e_build(data_dir: Path) -> dict:
    """Open the cache once in this process, so its index is built from the store as a server does when
    no saved index is there (exact at start, then the structure its size calls for, in the sweep) and
    saved. The process's peak RSS is a server's during that rebuild: models, exact index and new one."""
    from semcache.cache.semantic import SemanticCache

    cache = SemanticCache(Settings(data_dir=data_dir, **E2E_SETTINGS))
    start = time.perf_counter()
    cache.start()
    cache.sweep()
    cache.close()
    return {"index_build_s": time.perf_counter() - start, "rebuild_peak_rss_mb": rss_mb()["peak_rss_mb"]}


def e2e_part(size: int, args: argparse.Namespace, prompts: list[str], real: np.ndarray) -> dict:
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        data_dir = Path(tmp)
        (data_dir / "model").symlink_to(args.model_dir.resolve(), target_is_directory=True)
        start = time.perf_counter()
        fill_store(data_dir, size, prompts, real)
        out: dict = {"entries": size, "fill_s": time.perf_counter() - start}
        settings = E2E_SETTINGS
        out |= run_phase("e2e-build", str(data_dir))
        saved = structures.read(
            Settings(data_dir=data_dir).index_dir / f"{REPO}.faiss", real.shape[1], AnnParams()
        )
        out["index_kind"] = saved.kind if saved is not None else "none"
        body = {"model": "bench", "messages": [{"role": "user", "content": prompts[3].lower() + " please"}]}
        with stub() as upstream:
            start = time.perf_counter()
            with sidecar(data_dir, upstream, **settings) as (base, proc):
                out["healthy_s"] = time.perf_counter() - start
                with httpx.Client(headers={"X-Semcache-Repo": REPO}, timeout=60) as client:
                    reply = client.post(f"{base}/v1/chat/completions", json=body)
                    out["first_hit_s"] = time.perf_counter() - start
                    out["first_reply"] = reply.headers.get("x-semcache")
                    status = Path(f"/proc/{proc.pid}/status").read_text().splitlines()
                    out["server_rss_mb"] = next(
                        int(x.split()[1]) / 1024 for x in status if x.startswith("VmRSS")
                    )
                    out.update(timed_purge(client, base))
        return out


def timed_purge(client: httpx.Client, base: str) -> dict[str, float]:
    """Purge the repo without waiting (202), then poll its stats until the purge is done: how long the
    DELETE took to answer, and how long the purge took."""
    start = time.perf_counter()
    client.delete(f"{base}/v1/cache/repos/{REPO}", params={"wait": "false"}).raise_for_status()
    accepted = time.perf_counter() - start
    # Ten times a second: during a purge, stats read the purge's own count instead of counting the
    # repo's rows under the store's lock (which, polled this often, slowed a 1 M-entry purge from 64 s
    # to 79 s).
    said = time.monotonic()
    while (stats := client.get(f"{base}/v1/cache/repos/{REPO}/stats").json())["purging"]:
        if time.monotonic() - said >= 10:
            said = time.monotonic()
            print(f"purge: {stats['entries']} entries left", file=sys.stderr, flush=True)
        time.sleep(0.1)
    return {"purge_accepted_ms": accepted * 1000, "purge_s": time.perf_counter() - start}


# -- report ---------------------------------------------------------------------------------------


def table(result: dict) -> Table:
    out = Table(title=f"semcache scale ({result['machine']['cpu']}, {result['machine']['cores']} cores)")
    for column in (
        "entries",
        "index",
        "width",
        "build s (cpu)",
        "save s",
        "load s",
        "RSS MB (build peak)",
        "wall p50/p99 ms",
        "cpu p50/p99 ms",
        "recall@1 para",
        "recall@1 novel",
        "max |Δcos|",
    ):
        out.add_column(column, justify="right")
    for size, kinds in result["index"].items():
        for kind, r in kinds.items():
            for key, row in ((k, v) for k, v in r.items() if k.startswith("ef")):
                recall = [
                    f"{row[k]:.3f}" if k in row else "exact" for k in ("recall_paraphrase", "recall_novel")
                ]
                wall, cpu = row["latency"], row["cpu"]
                width = {"hnsw": f"ef {key[2:]}", "ivf": f"nprobe {key[2:]}"}.get(kind, "-")
                out.add_row(
                    f"{int(size):,}",
                    kind,
                    width,
                    f"{r['build_s']:.1f} ({r['build_cpu_s']:.0f})",
                    f"{r['save_s']:.1f}",
                    f"{r['load_s']:.2f}",
                    f"{r['serve_rss_mb']:.0f} ({r['build_peak_rss_mb']:.0f})",
                    f"{wall['p50']:.2f} / {wall['p99']:.2f}",
                    f"{cpu['p50']:.2f} / {cpu['p99']:.2f}",
                    *recall,
                    f"{row.get('similarity_error_max', 0):.4f}",
                )
    return out


def e2e_table(e2e: dict) -> Table:
    out = Table(title="end to end: a real `semcache serve` on one repo")
    for column in (
        "entries",
        "fill s",
        "index build s",
        "rebuild peak RSS MB",
        "start → healthy s",
        "start → first hit s",
        "reply",
        "server RSS MB",
        "purge: answered ms / done s",
    ):
        out.add_column(column, justify="right")
    out.add_row(
        f"{e2e['entries']:,}",
        f"{e2e['fill_s']:.0f}",
        f"{e2e['index_build_s']:.1f} ({e2e.get('index_kind')})",
        f"{e2e['rebuild_peak_rss_mb']:.0f}",
        f"{e2e['healthy_s']:.2f}",
        f"{e2e['first_hit_s']:.2f}",
        str(e2e["first_reply"]),
        f"{e2e['server_rss_mb']:.0f}",
        f"{e2e['purge_accepted_ms']:.0f} / {e2e['purge_s']:.2f}",
    )
    return out


def phase_params(kind: str, m: int, ef_construction: int, width: int) -> AnnParams:
    """The parameters of one measured structure; ``width`` is efSearch for HNSW and nprobe for IVF."""
    return AnnParams(
        structure=kind if kind != "flat" else "ivf",
        m=m,
        ef_construction=ef_construction,
        ef_search=width,
        nprobe=width,
    )


def run_phase_here(argv: list[str]) -> None:
    if argv[0] == "e2e-build":
        print(json.dumps(phase_e2e_build(Path(argv[1]))))
        return
    name, kind, work, size, m, ef_construction, *widths = argv
    params = phase_params(kind, int(m), int(ef_construction), int(widths[0]))
    if name == "build":
        result = phase_build(Path(work), kind, int(size), params)
    else:
        result = phase_serve(Path(work), kind, params, [int(w) for w in widths])
    print(json.dumps(result))


def main() -> None:
    if sys.argv[1:2] == ["--phase"]:
        return run_phase_here(sys.argv[2:])
    defaults = Settings()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000], help="entries per run")
    parser.add_argument(
        "--queries", type=int, default=1000, help="lookups per run (half paraphrase, half novel)"
    )
    parser.add_argument(
        "--structures",
        nargs="+",
        choices=["ivf", "hnsw"],
        default=["ivf", "hnsw"],
        help="approximate structures measured against the exact one",
    )
    parser.add_argument(
        "--nprobe",
        type=int,
        nargs="+",
        default=[defaults.ann_nprobe, 64, 128],
        help="IVF lists scanned per query (the first is used for the RSS)",
    )
    parser.add_argument("--m", type=int, default=defaults.ann_m, help="HNSW neighbours per node")
    parser.add_argument("--ef-construction", type=int, default=defaults.ann_ef_construction)
    parser.add_argument(
        "--ef-search",
        type=int,
        nargs="+",
        default=[defaults.ann_ef_search, 64, 256, 512],
        help="HNSW search widths to measure (the first is used for the RSS)",
    )
    parser.add_argument(
        "--e2e-size", type=int, default=100_000, help="entries for the end-to-end run; 0 skips it"
    )
    parser.add_argument("--real", type=int, default=3000, help="real questions embedded (Gaussian fit, e2e)")
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=MODEL_DIR,
        help="ONNX export to reuse (shared with the other benchmarks)",
    )
    parser.add_argument("--tmp", type=Path, default=None, help="scratch folder (index files of ~2 GB at 1 M)")
    parser.add_argument("--out", type=Path, default=Path("results/scale.json"))
    args = parser.parse_args()
    prompts = real_prompts(args.real)
    real = embedder(model_dir=args.model_dir).encode(prompts)
    result: dict = {"machine": machine(), "args": {k: str(v) for k, v in vars(args).items()}, "index": {}}
    for size in args.sizes:
        result["index"][str(size)] = index_part(size, args, real)
        write_json(args.out, result)
    console = Console(width=200)
    console.print(table(result))
    if args.e2e_size:
        result["e2e"] = e2e_part(args.e2e_size, args, prompts, real)
        console.print(e2e_table(result["e2e"]))
    write_json(args.out, result)
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
