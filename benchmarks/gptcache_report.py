"""Scoring and report of ``benchmarks/gptcache_compare.py``: right / wrong / miss, the verdicts, the tables."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from benchmarks.gptcache_compare import Dataset


def score(dataset: Dataset, returned: list[str | None], examples: int = 3) -> dict[str, Any]:
    """right / wrong / miss, precision (right share of returned answers) and a few wrong hits."""
    question_of = dict(zip(dataset.answers, dataset.stored, strict=True))
    right = wrong = miss = 0
    wrong_hits = []
    for pair, answer in zip(dataset.pairs, returned, strict=True):
        if answer is None:
            miss += 1
        elif pair["label"] == 1 and question_of.get(answer) == pair["a"]:
            right += 1
        else:
            wrong += 1
            if len(wrong_hits) < examples:
                wrong_hits.append(
                    {"query": pair["b"], "label": pair["label"], "served_for": question_of.get(answer)}
                )
    hits = right + wrong
    return {
        "right": right,
        "wrong": wrong,
        "miss": miss,
        "precision": right / hits if hits else None,
        "wrong_examples": wrong_hits,
    }


def verdicts(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each semcache row against GPTCache's setting with the most right answers and the one with the
    most right minus wrong; target: at least as many right, at least 5x fewer wrong."""
    out = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        theirs = [r for r in rows if r["dataset"] == dataset and r["system"] == "GPTCache"]
        if not theirs:
            continue
        best = {
            "max right": max(theirs, key=lambda r: (r["right"], -r["wrong"])),
            "max right-wrong": max(theirs, key=lambda r: (r["right"] - r["wrong"], r["right"])),
        }
        for ours in (r for r in rows if r["dataset"] == dataset and r["system"] == "semcache"):
            for label, them in best.items():
                out.append(
                    {
                        "dataset": dataset,
                        "semcache": ours["setting"],
                        "gptcache_best": label,
                        "gptcache_setting": them["setting"],
                        "right": ours["right"],
                        "gptcache_right": them["right"],
                        "wrong": ours["wrong"],
                        "gptcache_wrong": them["wrong"],
                        "wrong_ratio": them["wrong"] / ours["wrong"] if ours["wrong"] else None,
                        "target_met": ours["right"] >= them["right"] and them["wrong"] >= 5 * ours["wrong"],
                    }
                )
    return out


def _ratio(check: dict[str, Any]) -> str:
    if check["wrong_ratio"] is None:
        return "inf" if check["gptcache_wrong"] else "-"
    return f"{check['wrong_ratio']:.1f}x"


def print_report(console: Console, datasets: list[Dataset], rows: list[dict], checks: list[dict]) -> None:
    """The counts table, then each semcache row against GPTCache's two best settings."""
    for d in datasets:
        console.print(
            f"{d.name}: {len(d.pairs)} pairs, {d.positives} duplicates (= the most right answers possible)"
        )
    table = Table(title="store a, query b: right / wrong / miss")
    for column in ("system", "setting", "dataset", "right", "wrong", "miss", "precision"):
        table.add_column(
            column, justify="right" if column in {"right", "wrong", "miss", "precision"} else "left"
        )
    for r in rows:
        precision = "-" if r["precision"] is None else f"{r['precision']:.3f}"
        setting = r["setting"] + (f" [{r['note']}]" if r.get("note") else "")
        table.add_row(
            r["system"], setting, r["dataset"], str(r["right"]), str(r["wrong"]), str(r["miss"]), precision
        )
    console.print(table)
    if not checks:
        return
    for d in datasets:
        for label in ("max right", "max right-wrong"):
            them = next((c for c in checks if c["dataset"] == d.name and c["gptcache_best"] == label), None)
            if them:
                console.print(
                    f"{d.name}: GPTCache best by {label}: {them['gptcache_setting']} "
                    f"(right {them['gptcache_right']}, wrong {them['gptcache_wrong']})"
                )
    verdict = Table(title="target: right >= GPTCache's, wrong <= GPTCache's / 5")
    for column in ("dataset", "semcache", "right", "wrong", "vs max right", "vs max right-wrong"):
        verdict.add_column(column)
    pairs: dict[tuple[str, str], list[dict]] = {}
    for c in checks:
        pairs.setdefault((c["dataset"], c["semcache"]), []).append(c)
    for (dataset, setting), (by_right, by_net) in pairs.items():
        cells = [
            f"right {c['right'] - c['gptcache_right']:+d}, wrong ratio {_ratio(c)} "
            f"{'MET' if c['target_met'] else 'not met'}"
            for c in (by_right, by_net)
        ]
        verdict.add_row(dataset, setting, str(by_right["right"]), str(by_right["wrong"]), *cells)
    console.print(verdict)
