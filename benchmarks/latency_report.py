"""Tables and target checks of ``benchmarks/latency.py`` (the result dict it builds, printed)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.loadgen import GENERATOR

LATENCY = ("p50", "p95", "p99", "mean")


def _ms(stats: dict[str, Any], key: str) -> str:
    return f"{stats[key]:.2f}" if stats.get("n") else "-"


def _hits_per_s(level: dict[str, Any], outcome: str) -> float:
    return level["outcomes"].get(outcome, 0) / level["seconds"]


def single_table(result: dict[str, Any]) -> Table:
    """One client: exact and semantic hits (and GPTCache's hits), latency percentiles."""
    table = Table("system", "requests", "outcome", "n", *(f"{k} ms" for k in LATENCY), title="one client")
    semcache = result["semcache"]
    rows = [("semcache", "exact repeats", semcache["exact"], "hit-exact"),
            ("semcache", "paraphrases", semcache["semantic"], "hit-semantic")]  # fmt: skip
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
    table = Table("system", "clients", "req/s", "hits/s", "p50 ms", "p95 ms", "p99 ms", "CPU: generator",
                  "server", "stub", "loop lag p99 / max ms", title="semantic hits under closed-loop load")  # fmt: skip
    systems = [("semcache", "hit-semantic", result["semcache"]["load"])]
    for route, levels in result.get("gptcache", {}).get("load", {}).items():
        systems.append((f"GPTCache {route}", "hit", levels))
    for name, outcome, levels in systems:
        for level in levels:
            share = level["cpu_share"]
            server = share.get("sidecar", share.get("gptcache", 0.0))
            lag = level.get("loop_lag")
            lag_cell = f"≤{lag['p99_le_ms']:g} / ≤{lag['max_le_ms']:g}" if lag and lag["samples"] else "-"
            stub = f"{share['stub']:.0%}" if "stub" in share else "-"
            table.add_row(name, str(level["clients"]), f"{level['requests_per_s']:.0f}",
                          f"{_hits_per_s(level, outcome):.0f}", *(_ms(level["latency_ms"], k) for k in LATENCY[:3]),
                          f"{share[GENERATOR]:.0%}", f"{server:.0%}", stub, lag_cell)  # fmt: skip
    return table


def miss_table(result: dict[str, Any]) -> Table:
    """Miss overhead: the sidecar in front of the stub against the stub alone."""
    misses = result["semcache"]["misses"]
    table = Table(
        "path", "n", *(f"{k} ms" for k in LATENCY), title="misses: sidecar + stub vs the stub alone"
    )
    for label, stats in (("sidecar → stub", misses["sidecar"]), ("stub directly", misses["stub_direct"])):
        table.add_row(label, str(stats["n"]), *(_ms(stats, k) for k in LATENCY))
    if misses["overhead_ms"]:
        table.add_row("overhead", "", *(f"{misses['overhead_ms'][k]:+.2f}" for k in LATENCY))
    return table


def ratios(result: dict[str, Any]) -> dict[str, Any]:
    """semcache's figures over GPTCache's: hit latency at one client, hits/s (its better route)."""
    ours, theirs = result["semcache"], result["gptcache"]
    hit, their_hit = (
        ours["semantic"]["latency_by_outcome"]["hit-semantic"],
        theirs["single"]["latency_by_outcome"]["hit"],
    )
    out: dict[str, Any] = {"hit_p50": hit["p50"] / their_hit["p50"], "hit_p99": hit["p99"] / their_hit["p99"]}
    for level in ours["load"]:
        clients = level["clients"]
        best = max(_hits_per_s(lv, "hit") for levels in theirs["load"].values() for lv in levels
                   if lv["clients"] == clients)  # fmt: skip
        out[f"hits_per_s_{clients}"] = _hits_per_s(level, "hit-semantic") / best if best else float("inf")
    return out


def targets(result: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """Each target of issue 5 with the measured value and whether it holds."""
    ours = result["semcache"]
    cosine = ours["settings"]["verifier"] == "cosine"
    hit = ours["semantic"]["latency_by_outcome"].get(
        "hit-semantic", {"n": 0, "p50": float("inf"), "p99": float("inf")}
    )
    exact = ours["exact"]["latency_by_outcome"].get("hit-exact", {"p50": float("inf")})
    p50_goal = 10.0 if cosine else 12.0
    checks = [
        (f"semantic hit p50 <= {p50_goal:g} ms, 1 client", f"{hit['p50']:.2f} ms", hit["p50"] <= p50_goal)
    ]
    if cosine:
        checks.append(("semantic hit p99 <= 25 ms, 1 client", f"{hit['p99']:.2f} ms", hit["p99"] <= 25.0))
    checks.append(("exact hit p50 <= 2 ms", f"{exact['p50']:.2f} ms", exact["p50"] <= 2.0))
    at32 = next((lv for lv in ours["load"] if lv["clients"] == 32), None)
    if at32:
        rate = _hits_per_s(at32, "hit-semantic")
        checks.append((">= 250 semantic hits/s at 32 clients", f"{rate:.0f}/s", rate >= 250))
    if "gptcache" in result and at32:
        ratio = ratios(result)["hits_per_s_32"]
        checks.append((">= 5x GPTCache's throughput at 32 clients", f"{ratio:.1f}x", ratio >= 5))
    return checks


def print_report(console: Console, result: dict[str, Any]) -> list[dict[str, Any]]:
    """Print every table; returns the target checks for the JSON."""
    console.print(single_table(result))
    console.print(load_table(result))
    console.print(miss_table(result))
    if "gptcache" in result:
        table = Table(
            "semcache / GPTCache", "ratio", title="semcache over GPTCache (latency: lower is better)"
        )
        for name, value in ratios(result).items():
            table.add_row(name, f"{value:.2f}x")
        console.print(table)
    checks = targets(result)
    table = Table(
        "target", "measured", "holds", title=f"targets, verifier {result['semcache']['settings']['verifier']}"
    )
    for name, value, ok in checks:
        table.add_row(name, value, "yes" if ok else "NO")
    console.print(table)
    console.print(f"machine: {result['machine']}")
    return [{"target": name, "measured": value, "holds": ok} for name, value, ok in checks]
