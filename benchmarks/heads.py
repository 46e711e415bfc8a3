"""Decision heads side by side, and their ensembles (the mean of their logits), scored from a state bank.

Reads every text's vector and token states from a bank (``training.prepare``, or ``training.tuned_bank``
for a tuned encoder's states) instead of embedding, so heads trained on another encoder's states are
measured as they would serve. Per head and per ensemble of two or more: precision at recall 0.5, recall
at precision 0.90 / 0.95 / 0.98 and at false-positive rates 1 / 2 / 5 % on qqp_dev and the MRPC / STS-B
evaluation halves; at the threshold where qqp_dev precision is ``--precision`` (the shipped default's,
0.933): qqp_dev recall, GPTCache's pairs hit, adversarial traps served and paraphrases hit; traps
served at equal paraphrase hit rates; and at the threshold where ``--gptcache-hit`` of GPTCache's pairs
are hit, qqp_dev precision and recall and the adversarial sets.

    python -m benchmarks.heads --bank results/bank.npz T=semcache/decision/model TU=results/head_tu
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from benchmarks.common import DATA_DIR, ROOT, machine, write_json
from benchmarks.evalkit import adversarial_pairs, operating_point, sample_pairs
from benchmarks.sweep import curve_summary
from benchmarks.traps import traps_at_rates
from semcache.config import DECISION_FLOOR
from semcache.decision import make_decision
from semcache.decision.tuning import NOT_SERVED, TextEncoder, score_pairs
from training.states import StateBank

SETS = {"qqp_dev": "qqp_dev.jsonl", "mrpc": "mrpc_pairs.jsonl", "stsb": "stsb_pairs.jsonl"}
FIGURES = ("precision_at_r50", "recall_at_p90", "recall_at_p95", "recall_at_p98")
FPRS = (0.01, 0.02, 0.05)  # false-hit rates read as the share of non-equivalent pairs served


def logit_mean(scores: list[np.ndarray]) -> np.ndarray:
    """The ensemble's probability: the mean of the heads' logits (pairs under the floor stay unserved)."""
    clipped = [np.clip(s, 1e-6, 1 - 1e-6) for s in scores]
    mean = np.mean([np.log(p / (1 - p)) for p in clipped], axis=0)
    return np.where(scores[0] <= NOT_SERVED, scores[0], 1 / (1 + np.exp(-mean)))


def recall_at_fpr(values: np.ndarray, labels: np.ndarray, rate: float) -> float:
    """Recall when serving what scores above all but the top ``rate`` share of the negatives."""
    negatives = np.sort(values[labels == 0])[::-1]
    k = int(rate * len(negatives))
    cut = negatives[k] if k < len(negatives) else -np.inf
    return float((values[labels == 1] > cut).mean())


def at_threshold(values: dict[str, np.ndarray], labels: dict[str, np.ndarray], threshold: float) -> dict:
    """What serving every pair scoring ``threshold`` or more gives on qqp_dev, GPTCache's pairs and the
    adversarial sets."""
    qqp = operating_point(values["qqp_dev"], labels["qqp_dev"], threshold)
    adv, al = values["adversarial"], labels["adversarial"]
    return {
        "threshold": threshold,
        "qqp_precision": qqp.precision,
        "qqp_recall": qqp.recall,
        "gptcache_hit": float((values["mock"] >= threshold).mean()),
        "traps_served": int(((adv >= threshold) & (al == 0)).sum()),
        "paraphrases_hit": float(((adv >= threshold) & (al == 1)).sum() / al.sum()),
    }


def measure(
    values: dict[str, np.ndarray], labels: dict[str, np.ndarray], precision: float, hit: float
) -> dict:
    """The figures of one decision's scores on every set, and at two operating points: where qqp_dev
    precision is ``precision``, and where ``hit`` of GPTCache's pairs are hit."""
    out: dict = {name: curve_summary(values[name], labels[name])[0] for name in SETS}
    for name in SETS:
        out[name]["recall_at_fpr"] = {f"{r:g}": recall_at_fpr(values[name], labels[name], r) for r in FPRS}
    q, ql = values["qqp_dev"], labels["qqp_dev"]
    order = np.argsort(-q)
    reached = np.cumsum(ql[order]) / np.arange(1, len(q) + 1) >= precision
    threshold = float(q[order][np.where(reached)[0].max()]) if reached.any() else 1.0
    out["at_precision"] = at_threshold(values, labels, threshold)
    out["at_gptcache_hit"] = at_threshold(values, labels, float(np.quantile(values["mock"], 1 - hit)))
    out["traps_at_paraphrase_rates"] = traps_at_rates(values["adversarial"], labels["adversarial"])
    return out


def score_all(bank: StateBank, heads: dict[str, Path], pairs: dict[str, list]) -> tuple[dict, dict, dict]:
    """Each head's scores, the labels and the cosine, per set."""
    scores: dict[str, dict[str, np.ndarray]] = {}
    labels, cosine = {}, {}
    for name, folder in heads.items():
        encoder = TextEncoder(bank.encode_states, make_decision("learned", folder))
        scores[name] = {}
        for set_name, rows in pairs.items():
            scored = score_pairs(rows, encoder, DECISION_FLOOR)
            scores[name][set_name], labels[set_name], cosine[set_name] = (
                scored.decision,
                scored.labels,
                scored.cosine,
            )
    return scores, labels, cosine


def print_table(results: dict, precision: float) -> None:
    table = Table(title=f"P@R0.5 · R@P .90/.95/.98; at qqp_dev precision {precision}")
    for column in ("decision", *SETS, "qqp rec / GPTCache hit / traps / paraphr.", "traps at 25/39/50/67 %"):
        table.add_column(column)
    for name, r in results.items():
        cells = [" · ".join(f"{r[s][f]:.3f}" for f in FIGURES) for s in SETS]
        a = r["at_precision"]
        cells.append(
            f"{a['qqp_recall']:.3f} / {a['gptcache_hit']:.1%} / {a['traps_served']} / {a['paraphrases_hit']:.1%}"
        )
        table.add_row(name, *cells, " / ".join(str(v) for v in r["traps_at_paraphrase_rates"].values()))
    Console(width=200).print(table)
    fprs = Table(title="recall where 1 / 2 / 5 % of the non-equivalent pairs are served")
    for column in ("decision", *SETS):
        fprs.add_column(column)
    for name, r in results.items():
        fprs.add_row(name, *(" / ".join(f"{v:.3f}" for v in r[s]["recall_at_fpr"].values()) for s in SETS))
    Console(width=200).print(fprs)
    hits = Table(title="where the GPTCache hit rate is --gptcache-hit")
    for column in ("decision", "threshold", "qqp precision / recall", "traps served / paraphrases hit"):
        hits.add_column(column)
    for name, r in results.items():
        g = r["at_gptcache_hit"]
        hits.add_row(
            name,
            f"{g['threshold']:.3f}",
            f"{g['qqp_precision']:.3f} / {g['qqp_recall']:.3f}",
            f"{g['traps_served']} / {g['paraphrases_hit']:.1%}",
        )
    Console(width=200).print(hits)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("heads", nargs="+", help="NAME=FOLDER (a folder with head.npz)")
    parser.add_argument("--bank", type=Path, default=ROOT / "results" / "bank.npz")
    parser.add_argument("--precision", type=float, default=0.933)
    parser.add_argument("--gptcache-hit", type=float, default=0.85, help="the issue's GPTCache target")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "heads.json")
    args = parser.parse_args()
    heads = {name: Path(folder) for name, folder in (h.split("=", 1) for h in args.heads)}
    pairs = {name: sample_pairs(DATA_DIR / file, 0) for name, file in SETS.items()}
    pairs |= {
        "mock": sample_pairs(DATA_DIR / "gptcache_mock_pairs.jsonl", 0),
        "adversarial": adversarial_pairs(),
    }
    scores, labels, cosine = score_all(StateBank.load(args.bank), heads, pairs)
    results = {"cosine": measure(cosine, labels, args.precision, args.gptcache_hit)}
    for size in range(1, len(heads) + 1):
        for group in itertools.combinations(heads, size):
            values = {s: logit_mean([scores[h][s] for h in group]) for s in pairs}
            results["+".join(group)] = measure(values, labels, args.precision, args.gptcache_hit)
    print_table(results, args.precision)
    print(f"machine: {machine()}")
    write_json(
        args.out,
        {
            "machine": machine(),
            "bank": str(args.bank),
            "heads": {k: str(v) for k, v in heads.items()},
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
