"""Routing cost: replay a prompt stream through the tier classifier and the registry's price table.

For every prompt the classifier picks a tier; the prompt is priced at that tier's first model and, as
the baseline, at the premium tier's first model (the tier whose model has the highest output price).
Input tokens are the router's pre-flight estimate; output tokens are an assumed constant
(``--output-tokens``), the same for both sides, so the comparison isolates the routing decision. No
provider is called. Prints a table, writes JSON, and names the machine it ran on.

    python benchmarks/routing_cost.py --source examples
    python benchmarks/routing_cost.py --source qqp --limit 5000 --classifier trained
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from router import Registry, TierClassifier, TrainedTierModel, load_registry  # noqa: E402
from router.tokens import estimate_prompt_tokens  # noqa: E402
from router.train import DEFAULT_EXAMPLES, load_examples  # noqa: E402

DEFAULT_SHARED = ROOT.parent / "shared" / "data"


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--registry", type=Path, default=ROOT / "config" / "models.example.toml")
    parser.add_argument("--source", choices=["examples", "qqp", "both"], default="both")
    parser.add_argument("--examples", type=Path, default=DEFAULT_EXAMPLES, help="labelled JSONL prompts")
    parser.add_argument(
        "--data-dir", type=Path, default=DEFAULT_SHARED, help="shared data folder (read only)"
    )
    parser.add_argument("--limit", type=int, default=3000, help="prompts taken from the qqp stream")
    parser.add_argument("--classifier", choices=["heuristic", "trained"], default="heuristic")
    parser.add_argument("--model", type=Path, default=ROOT / "router" / "data" / "tier_classifier.npz")
    parser.add_argument("--output-tokens", type=int, default=400, help="assumed answer length per prompt")
    parser.add_argument("--system-prompt", default="You are a helpful coding assistant.")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "routing_cost.json")
    return parser.parse_args()


def _prompts(args: argparse.Namespace) -> list[tuple[str, str | None]]:
    """(prompt, true tier or None) pairs."""
    prompts: list[tuple[str, str | None]] = []
    if args.source in ("examples", "both"):
        prompts += [(e.prompt, e.tier) for e in load_examples(args.examples)]
    if args.source in ("qqp", "both"):
        with (args.data_dir / "qqp_dev_stream.jsonl").open(encoding="utf-8") as lines:
            for line, _ in zip(lines, range(args.limit), strict=False):
                prompts.append((json.loads(line)["prompt"], None))
    return prompts


def _classifier(args: argparse.Namespace, registry: Registry) -> TierClassifier:
    tiers, default = list(registry.tiers), registry.default_tier
    if args.classifier == "heuristic":
        return TierClassifier(tiers, default, registry.min_confidence, registry.intent_tiers)
    from router.train import packaged_embedder

    trained = TrainedTierModel.load(args.model)
    return TierClassifier(
        tiers,
        default,
        registry.min_confidence,
        registry.intent_tiers,
        trained=trained,
        embed=packaged_embedder(),
    )


def _machine() -> dict[str, object]:
    return {
        "node": platform.node(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }


def main() -> int:
    """Run the replay and report."""
    args = _args()
    registry = load_registry(args.registry)
    prompts = _prompts(args)
    classifier = _classifier(args, registry)
    bodies = [
        {"messages": [{"role": "system", "content": args.system_prompt}, {"role": "user", "content": p}]}
        for p, _ in prompts
    ]
    started = time.perf_counter()
    decisions = classifier.classify_many(bodies)
    classify_s = time.perf_counter() - started
    premium = registry.models[registry.tiers[registry.premium_tier].model]
    rows: dict[str, dict[str, float]] = {
        t: {"prompts": 0, "routed_usd": 0.0, "premium_usd": 0.0} for t in registry.tiers
    }
    oracle_usd, labelled, correct = 0.0, 0, 0
    for body, (_, truth), decision in zip(bodies, prompts, decisions, strict=True):
        tokens_in = estimate_prompt_tokens(body["messages"])
        spec = registry.models[registry.tiers[decision.tier].model]
        row = rows[decision.tier]
        row["prompts"] += 1
        row["routed_usd"] += spec.cost_usd(tokens_in, args.output_tokens)
        row["premium_usd"] += premium.cost_usd(tokens_in, args.output_tokens)
        if truth is not None and truth in registry.tiers:
            labelled += 1
            correct += truth == decision.tier
            oracle_usd += registry.models[registry.tiers[truth].model].cost_usd(tokens_in, args.output_tokens)
    routed = sum(r["routed_usd"] for r in rows.values())
    baseline = sum(r["premium_usd"] for r in rows.values())
    report = {
        "machine": _machine(),
        "registry": str(args.registry),
        "source": args.source,
        "classifier": args.classifier,
        "prompts": len(prompts),
        "output_tokens_assumed": args.output_tokens,
        "premium_tier": registry.premium_tier,
        "premium_model": premium.id,
        "tiers": {t: {**r, "model": registry.tiers[t].model} for t, r in rows.items()},
        "routed_usd": routed,
        "all_premium_usd": baseline,
        "saving_pct": 100.0 * (1 - routed / baseline) if baseline else 0.0,
        "labelled_prompts": labelled,
        "label_accuracy": correct / labelled if labelled else None,
        "oracle_routed_usd": oracle_usd if labelled else None,
        "classify_seconds": classify_s,
        "sources_mix": dict(Counter("labelled" if t else "qqp" for _, t in prompts)),
    }
    _print_table(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"\nwrote {args.out}")
    return 0


def _print_table(report: dict) -> None:
    machine = report["machine"]
    print(
        f"machine: {machine['node']} | {machine['platform']} | {machine['cpus']} CPUs | py {machine['python']}"
    )
    print(
        f"prompts: {report['prompts']} ({report['sources_mix']}), classifier: {report['classifier']}, "
        f"output tokens assumed: {report['output_tokens_assumed']}"
    )
    print(f"\n{'tier':<12}{'model':<26}{'prompts':>8}{'share':>8}{'routed $':>12}{'premium $':>12}")
    for tier, row in report["tiers"].items():
        share = row["prompts"] / report["prompts"] if report["prompts"] else 0.0
        print(
            f"{tier:<12}{row['model']:<26}{row['prompts']:>8}{share:>8.1%}"
            f"{row['routed_usd']:>12.4f}{row['premium_usd']:>12.4f}"
        )
    print(
        f"{'total':<12}{'':<26}{report['prompts']:>8}{'':>8}{report['routed_usd']:>12.4f}"
        f"{report['all_premium_usd']:>12.4f}"
    )
    print(
        f"\nrouted costs {100 - report['saving_pct']:.1f}% of all-premium ({report['premium_model']}): "
        f"saving {report['saving_pct']:.1f}%"
    )
    if report["label_accuracy"] is not None:
        print(
            f"on {report['labelled_prompts']} labelled prompts: tier accuracy {report['label_accuracy']:.1%}, "
            f"oracle routing would cost ${report['oracle_routed_usd']:.4f}"
        )
        if report["classifier"] == "trained":
            print(
                "  (the shipped trained model was refitted on these examples: that accuracy is in-sample;"
                " the held-out figure comes from python -m router.train)"
            )


if __name__ == "__main__":
    raise SystemExit(main())
