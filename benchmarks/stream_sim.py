"""Stream simulation: feed a prompt stream with equivalence clusters (qqp_dev_stream.jsonl) through an
empty cache — the real SemanticCache, SQLite and FAISS in-process — and count hits, wrong hits (an
answer from another cluster) and the oracle's hits (prompts whose cluster was seen before), for cosine
at several thresholds and for the calibrated verifier at several false-hit budgets.

    python -m benchmarks.stream_sim --limit 6000

Wrong is by the stream's clusters, and they err both ways: they join only the pairs Quora labelled
duplicates, so two paraphrases never paired sit in different clusters and part of the "wrong" hits are
right; and they join those pairs transitively (and Quora's duplicates include broader and narrower
questions), so part of the "right" hits are wrong. ``--audit`` (by default
benchmarks/data/qqp_stream_audit.jsonl) holds a reader's verdicts on random samples of the verifier's
wrong hits and of its right hits (seed 0: budgets 0.2 and 0.3 at cosine floor 0.5 and budget 0.2 at floor
0.7 over 6 000 prompts; budget 0.2 at floor 0.7 over the whole stream, ``--limit 0``), by the sha1 of ``asked + NUL + served`` and no text: "same" (one answer serves both) or "different", and the runs and
side (``, right hits``) each was drawn from. For each run with at least ``--min-audited`` verdicts drawn
from each side, the table adds the wrong share corrected both ways, with its 95 % interval, and the
right hits' share of the oracle's so corrected.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks.common import DATA_DIR, ROOT, machine, write_json
from benchmarks.evalkit import PrecomputedEmbedder, embedder, text_sha1
from benchmarks.label_audit import two_sided
from semcache import SemanticCache, Settings, parse_chat_request
from semcache.config import VERIFY_FLOOR
from semcache.keys import normalize_prompt


class Clock:
    """Advances one second per call, so entries are ordered and none expire."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        self.now += 1
        return self.now


def load_stream(path: Path, limit: int, seed: int) -> list[tuple[str, int]]:
    """Whole clusters, drawn at random until ``limit`` prompts (so the oracle's hit rate stays that of the
    full stream), in a seeded random order."""
    clusters: dict[int, list[str]] = {}
    for line in path.open():
        row = json.loads(line)
        clusters.setdefault(int(row["cluster"]), []).append(row["prompt"])
    rng = random.Random(seed)
    order = list(clusters)
    rng.shuffle(order)
    stream: list[tuple[str, int]] = []
    for cluster in order:
        if limit and len(stream) >= limit:
            break
        stream += [(prompt, cluster) for prompt in clusters[cluster]]
    rng.shuffle(stream)
    return stream


def simulate(stream: list[tuple[str, int]], vectors: PrecomputedEmbedder, **settings: object) -> dict:
    """Run the stream through an empty cache; store every miss with its cluster as the answer."""
    hits = wrong = oracle = 0
    seen: set[int] = set()
    wrong_hits: list[list[str]] = []  # [asked, the stored prompt whose answer was served]
    right_hits: list[list[str]] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        cache = SemanticCache(Settings(data_dir=Path(tmp), **settings), embedder=vectors, clock=Clock())
        for prompt, cluster in stream:
            oracle += cluster in seen
            seen.add(cluster)
            body = {"model": "sim", "messages": [{"role": "user", "content": prompt}]}
            request = parse_chat_request(body, header_repo="sim")
            found = cache.lookup(request)
            if found.hit is not None:
                hits += 1
                if found.hit.entry.response["choices"][0]["message"]["content"] != f"cluster-{cluster}":
                    wrong += 1
                    wrong_hits.append([prompt, found.hit.entry.prompt])
                else:
                    right_hits.append([prompt, found.hit.entry.prompt])
                continue
            answer = {"object": "chat.completion", "model": "sim", "choices": [
                {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": f"cluster-{cluster}"}}]}  # fmt: skip
            cache.store(request, answer, found.embedding)
        cache.close()
    n = len(stream)
    return {"prompts": n, "hits": hits, "right": hits - wrong, "wrong": wrong, "oracle_hits": oracle,
            "hit_rate": hits / n, "oracle_hit_rate": oracle / n, "wrong_share": wrong / hits if hits else 0.0,
            "right_of_oracle": (hits - wrong) / oracle if oracle else 0.0,
            "seconds": time.perf_counter() - started, "wrong_hits": wrong_hits, "right_hits": right_hits}  # fmt: skip


def load_audit(path: Path) -> dict[str, tuple[str, set[str]]]:
    """sha1 of ``asked + NUL + served`` → its verdict ("same" or "different") and the samples it was drawn
    from: a run's frame and decision, and ``, right hits`` when drawn from its right hits (empty when the
    file is absent)."""
    if not path.exists():
        return {}
    return {row["sha1"]: (row["verdict"], set(row["drawn_from"])) for row in map(json.loads, path.open())}


def run_frame(args: argparse.Namespace) -> str:
    """What names a stream run besides its decision: everything else that changes which hits it serves."""
    return (f"limit {args.limit}, seed {args.seed}, floor {args.floor}, top {args.verify_top_n}, "
            f"{args.embedding_precision}")  # fmt: skip


def corrected(run: dict, audit: dict[str, tuple[str, set[str]]], frame: str, least: int) -> dict | None:
    """The run's wrong share corrected both ways by the verdicts drawn from this run (``frame``: its
    :func:`run_frame`, then the decision): wrong hits one answer serves are right, and right hits
    (same cluster) it does not serve are wrong; with the 95 % interval and the right hits' share of the
    oracle's so corrected. None unless at least ``least`` verdicts were drawn from each side."""
    sides = [
        (run["wrong_hits"], f"{frame}, {run['decision']}"),
        (run["right_hits"], f"{frame}, {run['decision']}, right hits"),
    ]
    verdicts = tuple(
        [audit[key][0] for key in (text_sha1(asked, served).hex() for asked, served in hits)
         if key in audit and sample in audit[key][1]]
        for hits, sample in sides
    )  # fmt: skip
    if min(len(v) for v in verdicts) < max(least, 1):
        return None
    fixed = two_sided((run["wrong"], run["right"]), verdicts)
    really_right = run["hits"] * (1 - fixed["share"])
    return {"audited": fixed["audited"], "really_wrong": fixed["really_wrong"], "wrong_share": fixed["share"],
            "interval": fixed["interval"], "right_of_oracle": really_right / max(run["oracle_hits"], 1)}  # fmt: skip


def print_table(runs: list[dict], prompts: int) -> None:
    table = Table("decision", "hits", "right", "wrong", "hit rate", "oracle hit rate", "wrong share of hits",
                  "right hits / oracle", "wrong share, audited", title=f"stream simulation, {prompts} prompts")  # fmt: skip
    for r in runs:
        audit = r.get("audit")
        fixed = (f"{audit['wrong_share']:.1%} ({audit['interval'][0]:.1%}-{audit['interval'][1]:.1%}); "
                 f"wrong: {audit['really_wrong'][0]} of {audit['audited'][0]}, right: {audit['really_wrong'][1]} of "
                 f"{audit['audited'][1]} really wrong; right / oracle {audit['right_of_oracle']:.1%}") if audit else "-"  # fmt: skip
        table.add_row(r["decision"], str(r["hits"]), str(r["right"]), str(r["wrong"]), f"{r['hit_rate']:.1%}",
                      f"{r['oracle_hit_rate']:.1%}", f"{r['wrong_share']:.2%}", f"{r['right_of_oracle']:.1%}",
                      fixed)  # fmt: skip
    Console(width=200).print(table)


def show_hits(runs: list[dict], kind: str, count: int, seed: int) -> None:
    """Print a random sample of each run's ``kind`` ("wrong" or "right") hits, to read: the stream's
    clusters join only the pairs Quora labelled duplicates, so some "wrong" hits are right, and they join
    them transitively, so some "right" hits are wrong."""
    for run in runs if count else []:
        hits = run[f"{kind}_hits"]
        sample = random.Random(seed).sample(hits, min(count, len(hits)))
        print(f"\n{run['decision']}: {len(sample)} of {len(hits)} {kind} hits")
        for asked, served in sample:
            print(f"  asked:  {asked}\n  served: {served}")


def stream_arguments(parser: argparse.ArgumentParser, limit: int) -> None:
    """The options that pick the stream: its file, how many prompts (``limit`` by default) and the seed."""
    parser.add_argument("--stream", type=Path, default=DATA_DIR / "qqp_dev_stream.jsonl")
    parser.add_argument(
        "--limit", type=int, default=limit, help="about this many prompts, whole clusters (0 = all)"
    )
    parser.add_argument("--seed", type=int, default=0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    stream_arguments(parser, 6000)
    parser.add_argument("--cosine", type=float, nargs="*", default=[0.8, 0.85, 0.9, 0.95])
    # 0.02 is the default budget (no shipped threshold certifies it: no semantic hits until `semcache tune`);
    # 0.1 and looser are what the shipped Quora thresholds certify.
    parser.add_argument("--budgets", type=float, nargs="*", default=[0.02, 0.1, 0.15, 0.2, 0.3])
    parser.add_argument("--floor", type=float, default=VERIFY_FLOOR,
                        help="cosine a candidate needs before the verifier scores it (the sidecar's default)")  # fmt: skip
    parser.add_argument("--verify-top-n", type=int, default=2, help="candidates the verifier may score")
    parser.add_argument("--embedding-precision", choices=["int8", "fp32"], default="int8")
    parser.add_argument("--out", type=Path, default=Path("results/stream_sim.json"))
    parser.add_argument("--audit", type=Path, default=ROOT / "benchmarks" / "data" / "qqp_stream_audit.jsonl")
    parser.add_argument(
        "--min-audited",
        type=int,
        default=30,
        help="fewest verdicts on each side (wrong, right) to correct a run",
    )
    parser.add_argument("--show-wrong", type=int, default=0,
                        help="print this many wrong hits of each verifier run, drawn at random, to read")  # fmt: skip
    parser.add_argument("--show-right", type=int, default=0,
                        help="print this many right hits of each verifier run, drawn at random, to read")  # fmt: skip
    args = parser.parse_args()
    stream = load_stream(args.stream, args.limit, args.seed)
    vectors = PrecomputedEmbedder(embedder(args.embedding_precision))
    vectors.add([normalize_prompt(p) for p, _ in stream])  # the cache embeds the normalized prompt
    runs = [{"decision": f"cosine >= {t}", **simulate(stream, vectors, verifier="cosine", min_similarity=t)}
            for t in args.cosine]  # fmt: skip
    runs += [{"decision": f"verifier, budget {b}", "budget": b,
              **simulate(stream, vectors, verifier="cross-encoder", false_hit_budget=b,
                           verify_top_n=args.verify_top_n, verify_min_similarity=args.floor)} for b in args.budgets]  # fmt: skip
    audit = load_audit(args.audit)
    for r in runs:
        if "budget" in r and (fixed := corrected(r, audit, run_frame(args), args.min_audited)):
            r["audit"] = fixed
    print_table(runs, len(stream))
    console = Console(width=170)
    show_hits([r for r in runs if "budget" in r], "wrong", args.show_wrong, args.seed)
    show_hits([r for r in runs if "budget" in r], "right", args.show_right, args.seed)
    console.print(f"machine: {machine()}")
    write_json(args.out, {"machine": machine(), "stream": args.stream.name, "verify_top_n": args.verify_top_n, "floor": args.floor,
                          "embedding_precision": args.embedding_precision, "runs": runs})  # fmt: skip
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
