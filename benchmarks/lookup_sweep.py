"""Per-lookup threshold sweep on a clustered prompt stream: what a cache of that size gets at each verifier
threshold, as the share of its hits that are wrong and its right hits as a share of the oracle's.

The shipped thresholds are calibrated per pair (Quora's labelled pairs). A lookup is not one pair: a
query with no right answer in the cache still meets its nearest neighbours, and the more the cache holds,
the more of them are near-topic questions the verifier may pass. This replays the stream once, storing
every prompt (a real cache does not store its hits, so this is slightly pessimistic), scores each
lookup's ``--top-n`` nearest earlier prompts at or above the cosine floor with the shipped verifier
(guards included), and sweeps the threshold offline: a lookup hits on the first candidate, most similar
first, whose score reaches the threshold; an exact repeat of a stored prompt is an exact hit. Wrong is
by the stream's clusters, which err both ways (see ``benchmarks.stream_sim``).

    python -m benchmarks.lookup_sweep                 # the whole stream (about 2 min here)
    python -m benchmarks.lookup_sweep --limit 6000
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np
from rich.console import Console
from rich.table import Table

from benchmarks.common import ROOT, machine, write_json
from benchmarks.evalkit import embedder
from benchmarks.stream_sim import load_stream, stream_arguments
from semcache.config import VERIFY_FLOOR
from semcache.keys import normalize_prompt
from semcache.verifier import CrossEncoderVerifier


@dataclass
class Lookup:
    """One prompt of the stream: whether its cluster was seen (the oracle hits), whether it repeats a stored
    prompt exactly (None: it does not; else whether that prompt is in its cluster), and its candidates'
    (score, in its cluster), most similar first."""

    oracle: bool
    exact: bool | None
    candidates: list[tuple[float, bool]] = field(default_factory=list)


def replay(stream: list[tuple[str, int]], floor: float, top_n: int) -> list[Lookup]:
    """Every prompt looked up against all earlier ones, then stored."""
    texts = [normalize_prompt(prompt) for prompt, _ in stream]
    vectors = embedder().encode(texts).astype(np.float32)
    verifier = CrossEncoderVerifier(threads=2)
    index = faiss.IndexFlatIP(vectors.shape[1])
    stored: dict[str, int] = {}
    seen: set[int] = set()
    lookups = []
    for i, (text, (_, cluster)) in enumerate(zip(texts, stream, strict=True)):
        lookup = Lookup(cluster in seen, stored[text] == cluster if text in stored else None)
        if lookup.exact is None and index.ntotal:
            similarities, ids = index.search(vectors[i : i + 1], top_n)
            for similarity, j in zip(similarities[0], ids[0], strict=True):
                if j >= 0 and similarity >= floor:
                    score = float(verifier.score([(text, texts[j])], np.array([similarity]))[0])
                    lookup.candidates.append((score, stream[j][1] == cluster))
        lookups.append(lookup)
        index.add(vectors[i : i + 1])
        stored.setdefault(text, cluster)
        seen.add(cluster)
    return lookups


def at_threshold(lookups: list[Lookup], threshold: float) -> dict:
    """Hits, wrong hits, wrong share and right hits over the oracle's when serving at ``threshold``."""
    hits = wrong = 0
    for lookup in lookups:
        if lookup.exact is not None:
            hits, wrong = hits + 1, wrong + (not lookup.exact)
            continue
        served = next((right for score, right in lookup.candidates if score >= threshold), None)
        if served is not None:
            hits, wrong = hits + 1, wrong + (not served)
    oracle = sum(lookup.oracle for lookup in lookups)
    return {"threshold": threshold, "hits": hits, "wrong": wrong, "wrong_share": wrong / hits if hits else 0.0,
            "right_of_oracle": (hits - wrong) / oracle if oracle else 0.0}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    stream_arguments(parser, 0)
    parser.add_argument("--floor", type=float, default=VERIFY_FLOOR, help="cosine a candidate needs")
    parser.add_argument("--top-n", type=int, default=2, help="candidates scored per lookup")
    parser.add_argument("--thresholds", type=float, nargs="*", default=[0.93, 0.96, 0.98, 0.99],
                        help="thresholds to sweep besides the shipped ones")  # fmt: skip
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "lookup_sweep.json")
    args = parser.parse_args()
    stream = load_stream(args.stream, args.limit, args.seed)
    lookups = replay(stream, args.floor, args.top_n)
    shipped = {t: f"budget {b}" for b, t in CrossEncoderVerifier().shipped_thresholds().items()}
    rows = [
        at_threshold(lookups, t) | {"shipped": shipped.get(t, "")}
        for t in sorted({*shipped, *args.thresholds})
    ]
    table = Table("threshold", "shipped for", "hits", "wrong", "wrong share", "right hits / oracle",
                  title=f"per-lookup sweep, {len(stream)} prompts, floor {args.floor}, top {args.top_n}")  # fmt: skip
    for r in rows:
        table.add_row(f"{r['threshold']:.3f}", r["shipped"], str(r["hits"]), str(r["wrong"]),
                      f"{r['wrong_share']:.1%}", f"{r['right_of_oracle']:.1%}")  # fmt: skip
    console = Console(width=140)
    console.print(table)
    console.print(f"machine: {machine()}")
    write_json(args.out, {"machine": machine(), "prompts": len(stream), "floor": args.floor, "top_n": args.top_n,
                          "rows": rows})  # fmt: skip
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
