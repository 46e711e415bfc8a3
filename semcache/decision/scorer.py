"""The head's pair scoring as one ONNX Runtime call per lookup, for all its candidates at once.

``head.onnx`` (written by ``python -m training.export_head`` beside ``head.npz``) computes what
:func:`semcache.decision.head.logit` computes in numpy, on a batch of candidates padded to one length
with masks. One call replaces the dozens of small numpy operations of a pair, each of which takes the GIL
back, and onnxruntime releases the GIL for the whole call: under load the sidecar serves more semantic
hits per second (``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from semcache.decision.head import HeadWeights, pairwise_logits


class OnnxScorer:
    """Scores one query's tokens against a batch of candidates' tokens (all unpacked, float32)."""

    def __init__(self, path: Path, weights: HeadWeights) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        # Request threads score concurrently; the graph's matrices are small: one thread per call.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._literals = weights.literals
        self._check(weights)

    def logits(
        self, query: np.ndarray, candidates: list[np.ndarray], cosines: np.ndarray, literals: np.ndarray
    ) -> np.ndarray:
        """The head's logit per candidate. ``literals`` holds one row of literal features per candidate."""
        longest = max(len(c) for c in candidates)
        width = query.shape[1]
        padded = np.zeros((len(candidates), longest, width), dtype=np.float32)
        mask = np.zeros((len(candidates), longest), dtype=np.float32)
        for i, tokens in enumerate(candidates):
            padded[i, : len(tokens)] = tokens
            mask[i, : len(tokens)] = 1.0
        feed = {
            "query": query[None].astype(np.float32, copy=False),
            "query_mask": np.ones((1, len(query)), dtype=np.float32),
            "candidates": padded,
            "candidate_mask": mask,
            "cosine": np.asarray(cosines, dtype=np.float32),
            "literal": np.asarray(literals, dtype=np.float32)[:, : self._literals],
        }
        return self._session.run(None, feed)[0].astype(np.float64)

    def _check(self, weights: HeadWeights) -> None:
        """Refuse a graph that does not compute what ``head.npz`` does (a stale or foreign export)."""
        rng = np.random.default_rng(0)
        width = weights.width
        query, candidates = _unit_rows(rng, 6, width), [_unit_rows(rng, n, width) for n in (9, 4)]
        cosines = np.array([0.9, 0.75])
        literals = rng.integers(0, 2, size=(2, weights.literals)).astype(np.float32)
        want = pairwise_logits(weights, query, candidates, cosines, literals)
        try:
            got = self.logits(query, candidates, cosines, literals)
        except Exception as exc:  # onnxruntime raises its own errors on mismatched shapes
            raise ValueError(f"head.onnx cannot score head.npz's inputs ({exc}); {_REEXPORT}") from exc
        if not np.allclose(got, want, atol=1e-3):
            raise ValueError(
                f"head.onnx does not match head.npz ({got.tolist()} vs {want.tolist()}); {_REEXPORT}"
            )


_REEXPORT = "run python -m training.export_head on the model folder"


def _unit_rows(rng: np.random.Generator, count: int, width: int) -> np.ndarray:
    rows = rng.standard_normal((count, width)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)
