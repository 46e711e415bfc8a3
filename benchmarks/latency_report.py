"""Tables, within-run ratios and target checks of ``benchmarks/latency.py`` (the result dict it builds)."""

from __future__ import annotations

import math
from statistics import median
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.loadgen import GENERATOR

LATENCY = ("p50", "p95", "p99", "mean")
NONE = {"n": 0, "p50": math.inf, "p95": math.inf, "p99": math.inf, "mean": math.inf}


def _ms(stats: dict[str, Any], key: str) -> str:
    return f"{stats[key]:.2f}" if stats.get("n") else "-"


def _hits_per_s(level: dict[str, Any], outcome: str) -> float:
    return level["outcomes"].get(outcome, 0) / level["seconds"]


def _stats(run: dict[str, Any], outcome: str) -> dict[str, Any]:
    return run["latency_by_outcome"].get(outcome, NONE)


def _over(ours: float, theirs: float) -> float:
    return ours / theirs if theirs else math.inf


def single_table(result: dict[str, Any]) -> Table:
    """One client: exact and semantic hits of each decision (and GPTCache's hits), latency percentiles."""
    table = Table("system", "requests", "outcome", "n", *(f"{k} ms" for k in LATENCY), title="one client")
    rows = []
    for name, run in result["semcache"].items():
        rows += [
            (f"semcache {name}", "exact repeats", run["exact"], "hit-exact"),
            (f"semcache {name}", "paraphrases", run["semantic"], "hit-semantic"),
        ]
    if "gptcache" in result:
        rows.append(("GPTCache /get", "paraphrases", result["gptcache"]["single"], "hit"))
    for system, asked, run, outcome in rows:
        stats = run["latency_by_outcome"].get(outcome, {"n": 0})
        others = run["requests"] - stats["n"]
        label = outcome + (f" (+{others} other)" if others else "")
        table.add_row(system, asked, label, str(stats["n"]), *(_ms(stats, k) for k in LATENCY))
    return table


def load_table(result: dict[str, Any]) -> Table:
    """Closed-loop load: throughput, latency, CPU shares and (semcache) event-loop lag per client count."""
    table = Table(
        "system",
        "clients",
        "req/s",
        "hits/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "CPU: generator",
        "server",
        "stub",
        "loop lag p99 / max ms",
        title="semantic hits under closed-loop load",
    )
    systems = [(f"semcache {name}", "hit-semantic", run["load"]) for name, run in result["semcache"].items()]
    for route, levels in result.get("gptcache", {}).get("load", {}).items():
        systems.append((f"GPTCache {route}", "hit", levels))
    for name, outcome, levels in systems:
        for level in levels:
            share = level["cpu_share"]
            server = share.get("sidecar", share.get("gptcache", 0.0))
            lag = level.get("loop_lag")
            lag_cell = f"≤{lag['p99_le_ms']:g} / ≤{lag['max_le_ms']:g}" if lag and lag["samples"] else "-"
            stub = f"{share['stub']:.0%}" if "stub" in share else "-"
            table.add_row(
                name,
                str(level["clients"]),
                f"{level['requests_per_s']:.0f}",
                f"{_hits_per_s(level, outcome):.0f}",
                *(_ms(level["latency_ms"], k) for k in LATENCY[:3]),
                f"{share[GENERATOR]:.0%}",
                f"{server:.0%}",
                stub,
                lag_cell,
            )
    return table


def miss_table(result: dict[str, Any]) -> Table:
    """Miss overhead of each decision's sidecar: the sidecar in front of the stub against the stub alone."""
    table = Table(
        "decision",
        "path",
        "n",
        *(f"{k} ms" for k in LATENCY),
        title="misses: sidecar + stub vs the stub alone",
    )
    for name, run in result["semcache"].items():
        misses = run["misses"]
        for label, stats in (("sidecar → stub", misses["sidecar"]), ("stub directly", misses["stub_direct"])):
            table.add_row(name, label, str(stats["n"]), *(_ms(stats, k) for k in LATENCY))
        if misses["overhead_ms"]:
            table.add_row(name, "overhead", "", *(f"{misses['overhead_ms'][k]:+.2f}" for k in LATENCY))
    return table


def gptcache_rates(result: dict[str, Any]) -> dict[int, float]:
    """GPTCache's hits/s at each client count, on its better route."""
    rates: dict[int, float] = {}
    for levels in result.get("gptcache", {}).get("load", {}).values():
        for level in levels:
            rates[level["clients"]] = max(rates.get(level["clients"], 0.0), _hits_per_s(level, "hit"))
    return rates


def _rounds(rates: dict[str, dict[int, float]]) -> list[str]:
    """The suffixes of the rounds in which both learned and cosine ran ("", " #2", ...)."""
    return [
        key[len("learned") :]
        for key in rates
        if key.startswith("learned") and "audit=" not in key and "cosine" + key[len("learned") :] in rates
    ]


def _learned_over_cosine(rates: dict[str, dict[int, float]]) -> list[dict[str, Any]]:
    """Learned over cosine semantic hits/s per client count, each round on its own (``--rounds``) and,
    where there are several, their median: the figure the target is checked on."""
    out: list[dict[str, Any]] = []
    rounds = _rounds(rates)
    for suffix in rounds:
        learned, cosine = rates["learned" + suffix], rates["cosine" + suffix]
        out += [
            {
                "figure": f"learned / cosine semantic hits/s{suffix}",
                "clients": c,
                "value": _over(r, cosine[c]),
                "unit": "x",
            }
            for c, r in learned.items()
            if c in cosine
        ]
    if len(rounds) > 1:
        clients = sorted({row["clients"] for row in out})
        out += [
            {
                "figure": "learned / cosine semantic hits/s, median of rounds",
                "clients": c,
                "value": float(median(row["value"] for row in out if row["clients"] == c)),
                "unit": "x",
            }
            for c in clients
        ]
    return out


def ratios(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Figures taken within the run: learned over cosine and each decision over GPTCache (semantic hits/s
    per client count, its better route; semantic-hit p50 at one client), and each exact-hit p50 in ms."""
    runs, theirs = result["semcache"], gptcache_rates(result)
    rates = {
        name: {lv["clients"]: _hits_per_s(lv, "hit-semantic") for lv in run["load"]}
        for name, run in runs.items()
    }
    out = _learned_over_cosine(rates)
    for name, run in runs.items():
        if "gptcache" in result:
            out += [
                {
                    "figure": f"{name} / GPTCache semantic hits/s",
                    "clients": c,
                    "value": _over(r, theirs[c]),
                    "unit": "x",
                }
                for c, r in rates[name].items()
                if c in theirs
            ]
            p50 = _over(
                _stats(run["semantic"], "hit-semantic")["p50"],
                _stats(result["gptcache"]["single"], "hit")["p50"],
            )
            out.append(
                {"figure": f"{name} / GPTCache semantic-hit p50", "clients": 1, "value": p50, "unit": "x"}
            )
        exact = _stats(run["exact"], "hit-exact")["p50"]
        out.append({"figure": f"{name} exact-hit p50", "clients": 1, "value": exact, "unit": "ms"})
    return out


def _find(rows: list[dict[str, Any]], figure: str, clients: int) -> float | None:
    return next((r["value"] for r in rows if r["figure"] == figure and r["clients"] == clients), None)


def targets(result: dict[str, Any], rows: list[dict[str, Any]]) -> list[tuple[str, str, bool | None]]:
    """Each target with the measured value and whether it holds (None: not measured in this run)."""
    goals = [
        (
            "learned semantic hits/s at 32 clients >= 0.8x cosine's (median of rounds)",
            "learned / cosine semantic hits/s",
            32,
            lambda v: v >= 0.8,
            "x",
        ),
        (
            "learned semantic hits/s at 32 clients >= 3x GPTCache's better route",
            "learned / GPTCache semantic hits/s",
            32,
            lambda v: v >= 3,
            "x",
        ),
        (
            "learned semantic-hit p50 <= 0.4x GPTCache's, 1 client",
            "learned / GPTCache semantic-hit p50",
            1,
            lambda v: v <= 0.4,
            "x",
        ),
    ]
    goals += [
        (f"{name} exact-hit p50 <= 2 ms", f"{name} exact-hit p50", 1, lambda v: v <= 2.0, " ms")
        for name in result["semcache"]
    ]
    checks = []
    for label, figure, clients, holds, unit in goals:
        value = _find(rows, figure + ", median of rounds", clients)
        value = _find(rows, figure, clients) if value is None else value
        measured = "-" if value is None else f"{value:.2f}{unit}"
        checks.append((label, measured, None if value is None else holds(value)))
    return checks


def print_report(
    console: Console, result: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Print every table; returns the ratios and the target checks for the JSON."""
    console.print(single_table(result))
    console.print(load_table(result))
    console.print(miss_table(result))
    rows = ratios(result)
    table = Table("figure", "clients", "value", title="taken within the run")
    for row in rows:
        value = f"{row['value']:.2f}" + ("x" if row["unit"] == "x" else f" {row['unit']}")
        table.add_row(row["figure"], str(row["clients"]), value)
    console.print(table)
    checks = targets(result, rows)
    table = Table("target", "measured", "holds", title=f"targets ({', '.join(result['semcache'])})")
    for name, value, ok in checks:
        table.add_row(name, value, "not measured" if ok is None else "yes" if ok else "NO")
    console.print(table)
    console.print(f"machine: {result['machine']}")
    return rows, [{"target": name, "measured": value, "holds": ok} for name, value, ok in checks]
