"""``python -m training.export_head DIR``: write ``DIR/head.onnx`` from ``DIR/head.npz``.

The sidecar scores a lookup's candidates in one ONNX Runtime call (``semcache.decision.scorer``): the
head's pair scoring (alignment, comparison, composition, pooling, the MLP) over tokens already projected
and stored, a batch of candidates padded to one length with masks. The graph computes what
``semcache.decision.head.logit`` computes in numpy, one pair at a time; the sidecar checks the two agree
when it loads them. ``training.train_head`` calls this after it saves ``head.npz``.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import torch

from training.head_model import InteractionHead

INPUTS = ("query", "query_mask", "candidates", "candidate_mask", "cosine", "literal")


class _Scorer(torch.nn.Module):
    """The head's ``score`` on one query against a batch of candidates (the query broadcast)."""

    def __init__(self, head: InteractionHead) -> None:
        super().__init__()
        self.head = head

    def forward(self, query, query_mask, candidates, candidate_mask, cosine, literal):
        batch = candidates.shape[0]
        q = query.expand(batch, -1, -1)
        q_mask = query_mask.expand(batch, -1)
        return self.head.score(q, q_mask, candidates, candidate_mask, cosine, literal)


def export_onnx(model_dir: Path) -> Path:
    """``head.onnx`` beside ``head.npz`` in ``model_dir``; returns its path."""
    head = InteractionHead.from_export(dict(np.load(model_dir / "head.npz")))
    width = head.proj.out_features
    example = (
        torch.randn(1, 5, width),
        torch.ones(1, 5),
        torch.randn(2, 7, width),
        torch.ones(2, 7),
        torch.rand(2),
        torch.zeros(2, head.literals),
    )
    axes = {
        "query": {1: "query_tokens"},
        "query_mask": {1: "query_tokens"},
        "candidates": {0: "candidates", 1: "candidate_tokens"},
        "candidate_mask": {0: "candidates", 1: "candidate_tokens"},
        "cosine": {0: "candidates"},
        "literal": {0: "candidates"},
        "logit": {0: "candidates"},
    }
    target = model_dir / "head.onnx"
    with warnings.catch_warnings():  # torch's notices about its exporters; a TracerWarning still shows
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        torch.onnx.export(
            _Scorer(head),
            example,
            str(target),
            input_names=list(INPUTS),
            output_names=["logit"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
    return target


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model_dir", type=Path, help="folder holding head.npz")
    args = parser.parse_args()
    print(f"wrote {export_onnx(args.model_dir)}")


if __name__ == "__main__":
    main()
