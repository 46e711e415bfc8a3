"""Token states of many texts from the serving embedding pass, computed once and kept on disk.

The decision head trains on exactly what the sidecar computes at lookup: the packaged MiniLM, int8 ONNX,
its last-layer token states (and the mean-pooled, normalized vector), one text per int8 pass as the
sidecar embeds (``semcache.embedding.grouped_inputs``), so what the head trains and is calibrated on does
not depend on which texts happened to share a pass.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from semcache.embedding import SentenceTransformerEmbedder

ROOT = Path(__file__).resolve().parent.parent
MODEL_DIR = Path(os.environ.get("SEMCACHE_BENCH_MODEL_DIR", ROOT / "results" / "model"))


class StateBank:
    """Vectors and token states by text; fp16 states in one array, sliced by offsets."""

    def __init__(
        self, texts: list[str], vectors: np.ndarray, states: np.ndarray, offsets: np.ndarray
    ) -> None:
        self.texts = texts
        self.row = {t: i for i, t in enumerate(texts)}
        self.vectors = vectors
        self.states = states
        self.offsets = offsets

    def tokens(self, text: str) -> np.ndarray:
        """The token states of ``text`` (tokens x 384, fp16)."""
        i = self.row[text]
        return self.states[self.offsets[i] : self.offsets[i + 1]]

    def vector(self, text: str) -> np.ndarray:
        """The normalized embedding of ``text``."""
        return self.vectors[self.row[text]]

    def encode_states(self, texts: list[str]) -> tuple[np.ndarray, list[np.ndarray]]:
        """What the embedding pass gives for ``texts`` (vectors, float32 token states), read from the
        bank: ``semcache.decision.tuning.TextEncoder`` scores through the decision as a lookup would."""
        return np.stack([self.vector(t) for t in texts]), [self.tokens(t).astype(np.float32) for t in texts]

    def save(self, path: Path) -> None:
        """Write to ``path`` (.npz) with the texts beside it (.json)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, vectors=self.vectors, states=self.states, offsets=self.offsets)
        path.with_suffix(".json").write_text(json.dumps(self.texts))

    @classmethod
    def load(cls, path: Path) -> StateBank:
        """Read what :meth:`save` wrote."""
        arrays = np.load(path)
        texts = json.loads(path.with_suffix(".json").read_text())
        return cls(texts, arrays["vectors"], arrays["states"], arrays["offsets"])


def encode_bank(texts: list[str], model_dir: Path = MODEL_DIR, chunk: int = 512) -> StateBank:
    """Encode the distinct ``texts`` with the serving model (int8 ONNX, every core)."""
    model = SentenceTransformerEmbedder(model_dir, threads=os.cpu_count() or 1, precision="int8")
    model.load()
    todo = sorted(set(texts), key=len)
    vectors = np.zeros((len(todo), 384), dtype=np.float32)
    parts: list[np.ndarray] = []
    started = time.monotonic()
    for start in range(0, len(todo), chunk):
        batch = todo[start : start + chunk]
        vecs, states = model.encode_states(batch)
        vectors[start : start + len(batch)] = vecs
        parts.extend(s.astype(np.float16) for s in states)
        if (start // chunk) % 20 == 0:
            rate = (start + len(batch)) / (time.monotonic() - started)
            print(f"  encoded {start + len(batch)} / {len(todo)} ({rate:.0f} texts/s)", file=sys.stderr)
    offsets = np.zeros(len(todo) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(p) for p in parts])
    return StateBank(todo, vectors, np.concatenate(parts), offsets)
