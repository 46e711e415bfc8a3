"""``python -m training.prepare``: encode every text the decision trains, calibrates and is measured on
(the shared data files, rule-made pairs, the project's adversarial sets) into one state bank."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from training.data import DATA, read_jsonl, training_set
from training.states import ROOT, StateBank, encode_bank

BANK = ROOT / "results" / "bank.npz"
EVAL_FILES = ["qqp_dev.jsonl", "mrpc_pairs.jsonl", "stsb_pairs.jsonl", "gptcache_mock_pairs.jsonl"]


def all_texts(seed: int) -> list[str]:
    """Every text of the training set, the calibration pairs and the evaluation files."""
    data = training_set(seed=seed)
    texts = [t for p in data.train + data.calibration for t in (p.a, p.b)]
    files = [DATA / name for name in EVAL_FILES] + sorted(
        (ROOT / "benchmarks" / "data").glob("adversarial*.jsonl")
    )
    for path in files:
        texts += [t for row in read_jsonl(path) for t in (row["a"], row["b"])]
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=BANK)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.monotonic()
    bank: StateBank = encode_bank(all_texts(args.seed))
    bank.save(args.out)
    print(
        f"{len(bank.texts)} texts, {len(bank.states)} tokens in {time.monotonic() - started:.0f} s -> {args.out}"
    )


if __name__ == "__main__":
    main()
