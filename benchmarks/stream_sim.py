"""Stream simulation: feed a prompt stream with equivalence clusters (qqp_dev_stream.jsonl) through an
empty cache — the real SemanticCache, SQLite and FAISS in-process — and count hits, wrong hits (an
answer from another cluster) and the oracle's hits (prompts whose cluster was seen before), for cosine
at several thresholds and for the calibrated verifier at several false-hit budgets.

    python -m benchmarks.stream_sim --limit 6000

Wrong is by the stream's clusters, which join only the pairs Quora labelled duplicates: two paraphrases
never paired sit in different clusters, so part of the "wrong" hits are right. ``--audit`` (by default
benchmarks/data/qqp_stream_audit.jsonl) holds a reader's verdicts on random samples of the verifier's
wrong hits (budgets 0.2 and 0.3, 6 000 prompts, seed 0), by the sha1 of ``asked + NUL + served`` and no
text: "same" (one answer serves both: the cluster labels are wrong) or "different", and the runs each was
drawn from. For each run with at least ``--min-audited`` verdicts drawn from it, the table adds the wrong
share corrected by the sample's share of real wrong hits, with its 95 % Clopper-Pearson interval.
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
from benchmarks.label_audit import really_wrong
from semcache import SemanticCache, Settings, parse_chat_request
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
                continue
            answer = {"object": "chat.completion", "model": "sim", "choices": [
                {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": f"cluster-{cluster}"}}]}  # fmt: skip
            cache.store(request, answer, found.embedding)
        cache.close()
    n = len(stream)
    return {"prompts": n, "hits": hits, "right": hits - wrong, "wrong": wrong, "oracle_hits": oracle,
            "hit_rate": hits / n, "oracle_hit_rate": oracle / n, "wrong_share": wrong / hits if hits else 0.0,
            "right_of_oracle": (hits - wrong) / oracle if oracle else 0.0,
            "seconds": time.perf_counter() - started, "wrong_hits": wrong_hits}  # fmt: skip


def load_audit(path: Path) -> dict[str, tuple[str, set[str]]]:
    """sha1 of ``asked + NUL + served`` → its verdict ("same" or "different") and the runs whose wrong
    hits it was drawn from (empty when the file is absent)."""
    if not path.exists():
        return {}
    return {row["sha1"]: (row["verdict"], set(row["drawn_from"])) for row in map(json.loads, path.open())}


def corrected(run: dict, audit: dict[str, tuple[str, set[str]]], frame: str, least: int) -> dict | None:
    """The run's wrong share times the share of really wrong hits among the verdicts drawn from this run
    (``frame``: the stream's limit and seed, then the decision), with the 95 % interval; None when fewer
    than ``least`` verdicts were drawn from it."""
    sample = f"{frame}, {run['decision']}"
    keys = (text_sha1(asked, served).hex() for asked, served in run["wrong_hits"])
    verdicts = [audit[key][0] for key in keys if key in audit and sample in audit[key][1]]
    if len(verdicts) < max(least, 1):
        return None
    real, share, low, high = really_wrong(verdicts)
    measured = run["wrong_share"]
    return {"audited": len(verdicts), "really_wrong": real, "wrong_share": measured * share,
            "interval": [measured * low, measured * high]}  # fmt: skip


def print_table(runs: list[dict], prompts: int) -> None:
    table = Table("decision", "hits", "right", "wrong", "hit rate", "oracle hit rate", "wrong share of hits",
                  "right hits / oracle", "wrong share, audited", title=f"stream simulation, {prompts} prompts")  # fmt: skip
    for r in runs:
        audit = r.get("audit")
        fixed = (f"{audit['wrong_share']:.1%} ({audit['interval'][0]:.1%}-{audit['interval'][1]:.1%}; "
                 f"{audit['really_wrong']} of {audit['audited']} really wrong)") if audit else "-"  # fmt: skip
        table.add_row(r["decision"], str(r["hits"]), str(r["right"]), str(r["wrong"]), f"{r['hit_rate']:.1%}",
                      f"{r['oracle_hit_rate']:.1%}", f"{r['wrong_share']:.2%}", f"{r['right_of_oracle']:.1%}",
                      fixed)  # fmt: skip
    Console(width=200).print(table)


def show_wrong_hits(runs: list[dict], count: int, seed: int) -> None:
    """Print a random sample of each run's wrong hits: the stream's clusters join only the pairs Quora
    labelled duplicates, so some "wrong" hits are right, and reading them says how many."""
    for run in runs if count else []:
        sample = random.Random(seed).sample(run["wrong_hits"], min(count, len(run["wrong_hits"])))
        print(f"\n{run['decision']}: {len(sample)} of {len(run['wrong_hits'])} wrong hits")
        for asked, served in sample:
            print(f"  asked:  {asked}\n  served: {served}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stream", type=Path, default=DATA_DIR / "qqp_dev_stream.jsonl")
    parser.add_argument(
        "--limit", type=int, default=6000, help="about this many prompts, whole clusters (0 = all)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cosine", type=float, nargs="*", default=[0.8, 0.85, 0.9, 0.95])
    # 0.02 is the default budget (no shipped threshold certifies it: no semantic hits until `semcache tune`);
    # 0.1 and looser are what the shipped Quora thresholds certify.
    parser.add_argument("--budgets", type=float, nargs="*", default=[0.02, 0.1, 0.15, 0.2, 0.3])
    parser.add_argument("--verify-top-n", type=int, default=2, help="candidates the verifier may score")
    parser.add_argument("--embedding-precision", choices=["int8", "fp32"], default="int8")
    parser.add_argument("--out", type=Path, default=Path("results/stream_sim.json"))
    parser.add_argument("--audit", type=Path, default=ROOT / "benchmarks" / "data" / "qqp_stream_audit.jsonl")
    parser.add_argument(
        "--min-audited", type=int, default=30, help="fewest audited wrong hits to correct a run"
    )
    parser.add_argument("--show-wrong", type=int, default=0,
                        help="print this many wrong hits of each verifier run, drawn at random, to read")  # fmt: skip
    args = parser.parse_args()
    stream = load_stream(args.stream, args.limit, args.seed)
    vectors = PrecomputedEmbedder(embedder(args.embedding_precision))
    vectors.add([normalize_prompt(p) for p, _ in stream])  # the cache embeds the normalized prompt
    runs = [{"decision": f"cosine >= {t}", **simulate(stream, vectors, verifier="cosine", min_similarity=t)}
            for t in args.cosine]  # fmt: skip
    runs += [{"decision": f"verifier, budget {b}", "budget": b,
              **simulate(stream, vectors, verifier="cross-encoder", false_hit_budget=b,
                           verify_top_n=args.verify_top_n)} for b in args.budgets]  # fmt: skip
    audit = load_audit(args.audit)
    for r in runs:
        if "budget" in r and (
            fixed := corrected(r, audit, f"limit {args.limit}, seed {args.seed}", args.min_audited)
        ):
            r["audit"] = fixed
    print_table(runs, len(stream))
    console = Console(width=170)
    show_wrong_hits([r for r in runs if "budget" in r], args.show_wrong, args.seed)
    console.print(f"machine: {machine()}")
    write_json(args.out, {"machine": machine(), "stream": args.stream.name, "verify_top_n": args.verify_top_n,
                          "embedding_precision": args.embedding_precision, "runs": runs})  # fmt: skip
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
