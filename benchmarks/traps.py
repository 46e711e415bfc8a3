"""Traps served at equal paraphrase hit rates: two learned decisions compared on the project's
adversarial sets without either one's threshold deciding the comparison.

For each decision model folder, over all 22 ``benchmarks/data/adversarial_*.jsonl`` files pooled, the
threshold is set where the decision hits a given share of the paraphrases, and the traps (pairs one
answer does not serve: negation, opposite words, swapped roles, changed numbers, ...) it serves there are
counted.

    python -m benchmarks.traps --models semcache/decision/model results/head_old
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from benchmarks.common import ROOT, machine, write_json
from benchmarks.evalkit import adversarial_pairs, embedder
from semcache.config import DECISION_FLOOR
from semcache.decision.learned import MODEL_DIR, LearnedDecision
from semcache.decision.tuning import TextEncoder, score_pairs

RATES = (0.25, 0.39, 0.5, 0.67)


def traps_at_rates(values: np.ndarray, labels: np.ndarray) -> dict[str, int]:
    """Traps served at the threshold where each share of ``RATES`` of the paraphrases is hit."""
    positives = np.sort(values[labels == 1])[::-1]
    out = {}
    for rate in RATES:
        threshold = positives[max(int(rate * len(positives)) - 1, 0)]
        out[str(rate)] = int(((values >= threshold) & (labels == 0)).sum())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", type=Path, nargs="+", default=[MODEL_DIR], help="decision folders")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "traps.json")
    args = parser.parse_args()
    pairs = adversarial_pairs()
    model = embedder()
    traps = sum(1 for p in pairs if not p.label)
    results = {}
    for folder in args.models:
        scores = score_pairs(pairs, TextEncoder(model.encode_states, LearnedDecision(folder)), DECISION_FLOOR)
        results[str(folder)] = traps_at_rates(scores.decision, scores.labels)
    table = Table(title=f"traps served of {traps}, at each share of {len(pairs) - traps} paraphrases hit")
    table.add_column("paraphrases hit")
    for folder in results:
        table.add_column(folder)
    for rate in RATES:
        table.add_row(
            f"{rate:.0%}", *(f"{r[str(rate)]} ({r[str(rate)] / traps:.1%})" for r in results.values())
        )
    Console().print(table)
    Console().print(f"machine: {machine()}")
    write_json(args.out, {"machine": machine(), "traps": traps, "results": results})


if __name__ == "__main__":
    main()
