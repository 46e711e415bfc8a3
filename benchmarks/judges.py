"""How the ``embedding`` judge labels answer pairs, at its shipped threshold and at looser ones.

The audit's judge compares a cached answer with a fresh one. A judge that calls right answers "wrong"
makes a repo's measured false-hit share look higher than it is; online calibration then tightens the
threshold until semantic hits go off. The nearest thing the shared data holds to two right answers of one
request, worded apart as a sampled LLM words them, is GPTCache's mock pairs (each pair: one answer and a
model-written rewording of it). MRPC and STS-B pairs show, at sentence level, how many pairs the judge
calls "same" that are not paraphrases (a wrong hit it would hide).

    python -m benchmarks.judges
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from benchmarks.common import DATA_DIR, ROOT, machine, read_jsonl, write_json
from benchmarks.evalkit import embedder
from semcache.http.judges import EMBEDDING_THRESHOLD

THRESHOLDS = (0.8, 0.85, 0.9, EMBEDDING_THRESHOLD)
SETS = {"gptcache_mock": "gptcache_mock_pairs.jsonl", "mrpc": "mrpc_pairs.jsonl", "stsb": "stsb_pairs.jsonl"}


def pair_cosines(rows: list[dict], encode) -> np.ndarray:
    """The cosine of each pair's two texts, every text embedded alone as the judge does."""
    a, b = encode([r["a"] for r in rows]), encode([r["b"] for r in rows])
    return (a * b).sum(axis=1)


def judged(cosines: np.ndarray, labels: np.ndarray) -> dict[str, dict[str, float | None]]:
    """Per threshold: the share of equivalent pairs called "same", of others called "same"."""
    out: dict[str, dict[str, float | None]] = {}
    for threshold in THRESHOLDS:
        same = cosines >= threshold
        pos, neg = same[labels == 1], same[labels == 0]
        out[f"{threshold:g}"] = {
            "equivalent_called_same": float(pos.mean()) if pos.size else None,
            "others_called_same": float(neg.mean()) if neg.size else None,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "judges.json")
    args = parser.parse_args()
    encode = embedder().encode
    results = {}
    for name, file in SETS.items():
        rows = read_jsonl(args.data_dir / file)
        labels = np.array([int(r["label"]) for r in rows])
        results[name] = {
            "pairs": len(rows),
            "equivalent": int(labels.sum()),
            "judged": judged(pair_cosines(rows, encode), labels),
        }
    table = Table(title="embedding judge: pairs called 'same' (cosine >= threshold)")
    table.add_column("set (equivalent / other pairs)")
    for threshold in THRESHOLDS:
        table.add_column(f">= {threshold:g}: equivalent / other", justify="right")
    for name, result in results.items():
        cells = []
        for row in result["judged"].values():
            cells.append(" / ".join("-" if v is None else f"{v:.1%}" for v in row.values()))
        table.add_row(f"{name} ({result['equivalent']} / {result['pairs'] - result['equivalent']})", *cells)
    Console(width=120).print(table)
    write_json(args.out, {"machine": machine(), "threshold_shipped": EMBEDDING_THRESHOLD, "sets": results})


if __name__ == "__main__":
    main()
