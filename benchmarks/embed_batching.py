"""Does a text's vector depend on what it is embedded with? And what does each fix cost?

Dynamic int8 quantization picks one activation scale per tensor, that is per *batch*: under load the
sidecar's micro-batcher embeds concurrent lookups together, so a prompt's vector (and token states) can
move with its batch-mates, and a pair near the threshold can hit or miss depending on the traffic beside
it. This benchmark embeds qqp_dev's texts alone and in random batches of ``--batch`` (what the
micro-batcher sees under load), for int8 and fp32, batched and one text per pass, and reports:

- how far a text's vector moves (cosine to the same text embedded alone: mean and minimum);
- the pairs whose served-or-not flips at thresholds 0.85 / 0.90 between the two ways;
- texts per second of each way on ``--threads`` onnxruntime threads, in this run.

    python -m benchmarks.embed_batching --pairs 2000 --batch 16
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from benchmarks.common import DATA_DIR, ROOT, machine, write_json
from benchmarks.evalkit import MODEL_DIR, sample_pairs
from semcache.embedding import SentenceTransformerEmbedder

THRESHOLDS = (0.85, 0.90)


def encode_in_batches(model: SentenceTransformerEmbedder, texts: list[str], batch: int, one_by_one: bool):
    """Vectors of ``texts`` embedded in consecutive batches of ``batch`` (each batch one call, or one call
    per text), and the seconds it took."""
    out = np.zeros((len(texts), model.dim), dtype=np.float32)
    started = time.perf_counter()
    for i in range(0, len(texts), batch):
        chunk = texts[i : i + batch]
        if one_by_one:
            out[i : i + len(chunk)] = np.vstack([model.encode([t]) for t in chunk])
        else:
            out[i : i + len(chunk)] = model.encode(chunk)
    return out, time.perf_counter() - started


def flips(alone: np.ndarray, mixed: np.ndarray, n_pairs: int) -> dict[str, int]:
    """Pairs (rows 2k, 2k+1) whose served-or-not at each threshold differs between the two vector sets."""
    a = (alone[0::2][:n_pairs] * alone[1::2][:n_pairs]).sum(1)
    b = (mixed[0::2][:n_pairs] * mixed[1::2][:n_pairs]).sum(1)
    return {str(t): int(((a >= t) != (b >= t)).sum()) for t in THRESHOLDS}


def measure(precision: str, texts: list[str], order: list[int], args: argparse.Namespace) -> dict:
    """One precision: the vectors alone, then batched in a shuffled order and one by one, timed."""
    model = SentenceTransformerEmbedder(args.model_dir, threads=args.threads, precision=precision)
    model.load()
    alone, _ = encode_in_batches(model, texts, 1, one_by_one=True)
    shuffled = [texts[i] for i in order]
    batched, batched_s = encode_in_batches(model, shuffled, args.batch, one_by_one=False)
    _, single_s = encode_in_batches(model, shuffled, args.batch, one_by_one=True)
    mixed = np.zeros_like(batched)
    mixed[order] = batched
    cosine = (alone * mixed).sum(1)
    return {
        "precision": precision,
        "cosine_to_alone_mean": float(cosine.mean()),
        "cosine_to_alone_min": float(cosine.min()),
        "pairs_flipped": flips(alone, mixed, len(texts) // 2),
        "batched_texts_per_s": len(texts) / batched_s,
        "one_by_one_texts_per_s": len(texts) / single_s,
        "alone": alone,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=2000, help="qqp_dev pairs sampled (both texts embedded)")
    parser.add_argument("--batch", type=int, default=16, help="texts per batch, as under load")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime threads (the sidecar's default)")
    parser.add_argument("--model-dir", type=Path, default=MODEL_DIR)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "embed_batching.json")
    args = parser.parse_args()
    pairs = sample_pairs(DATA_DIR / "qqp_dev.jsonl", args.pairs, args.seed)
    texts = [t for p in pairs for t in (p.a, p.b)]
    order = list(range(len(texts)))
    random.Random(args.seed).shuffle(order)
    rows = [measure(precision, texts, order, args) for precision in ("int8", "fp32")]
    drift = (rows[0].pop("alone") * rows[1].pop("alone")).sum(1)
    table = Table(title=f"{len(texts)} qqp_dev texts, batches of {args.batch}, {args.threads} threads")
    for column in (
        "precision",
        "cos to alone mean",
        "min",
        "pairs flipped 0.85 / 0.90",
        "batched t/s",
        "1-by-1 t/s",
    ):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r["precision"],
            f"{r['cosine_to_alone_mean']:.5f}",
            f"{r['cosine_to_alone_min']:.5f}",
            f"{r['pairs_flipped']['0.85']} / {r['pairs_flipped']['0.9']} of {len(pairs)}",
            f"{r['batched_texts_per_s']:.0f}",
            f"{r['one_by_one_texts_per_s']:.0f}",
        )
    Console().print(table)
    print(f"int8 alone vs fp32 alone: cosine mean {drift.mean():.5f}, min {drift.min():.5f}")
    write_json(
        args.out,
        {
            "machine": machine(),
            "args": {k: str(v) for k, v in vars(args).items()},
            "rows": rows,
            "int8_vs_fp32_alone": {"mean": float(drift.mean()), "min": float(drift.min())},
        },
    )


if __name__ == "__main__":
    main()
