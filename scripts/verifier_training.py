"""The verifier's training loop, scoring and export, shared by ``train_verifier.py`` (one model, CPU or
GPU) and ``verifier_sweep.py`` (many configurations at once on a lent GPU).

This module imports only torch, transformers, numpy and onnxruntime, never ``semcache``: the GPU machine
has those libraries but not the sidecar's own dependencies.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

Row = tuple[str, str, int]


@dataclass
class Recipe:
    """How one cross-encoder is trained. ``alpha`` > 0 distils: the loss mixes the hard labels with a
    teacher's probabilities (``alpha`` is the teacher's weight)."""

    epochs: int = 2
    batch: int = 32
    lr: float = 4e-5
    max_length: int = 64
    layers: int = 0  # keep only the first N of MiniLM's 6 layers (0 = all)
    seed: int = 0
    alpha: float = 0.0


def batches(rows: list[Row], size: int, rng: random.Random, pool: int = 64):
    """Shuffled batches of row indices of similar length: each run of ``pool`` batches is sorted by length
    before it is cut, so padding (the batch pads to its longest pair) wastes little compute."""
    order = list(range(len(rows)))
    rng.shuffle(order)
    cut = []
    for start in range(0, len(order), size * pool):
        run = sorted(order[start : start + size * pool], key=lambda i: len(rows[i][0]) + len(rows[i][1]))
        cut += [run[i : i + size] for i in range(0, len(run), size)]
    rng.shuffle(cut)
    yield from cut


def load_model(base: Path, layers: int = 0):
    """Tokenizer and a one-logit BERT classifier initialised from the MiniLM weights in ``base``."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base))
    model = AutoModelForSequenceClassification.from_pretrained(str(base), num_labels=1)
    if layers:  # a shallower, faster model: the first ``layers`` transformer layers of MiniLM
        model.bert.encoder.layer = model.bert.encoder.layer[:layers]
        model.config.num_hidden_layers = layers
    return tokenizer, model.float()


def train(rows: list[Row], recipe: Recipe, base: Path, device: str, soft: np.ndarray | None = None):
    """Fine-tune on ``rows`` (with ``soft``, a teacher's logit per row, when distilling); returns the
    model (on CPU, in eval mode), its tokenizer, the step count and the seconds taken."""
    from transformers import get_linear_schedule_with_warmup

    tokenizer, model = load_model(base, recipe.layers)
    model = model.to(device)
    teacher = None if soft is None else torch.tensor(soft, dtype=torch.float32).sigmoid()
    steps = recipe.epochs * ((len(rows) + recipe.batch - 1) // recipe.batch)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=0.01)
    schedule = get_linear_schedule_with_warmup(optimizer, int(0.1 * steps), steps)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    rng, step, started = random.Random(recipe.seed), 0, time.time()
    model.train()
    for _ in range(recipe.epochs):
        for ids in batches(rows, recipe.batch, rng):
            # Both orders: the decision must not depend on which side is the query.
            pairs = [(b, a) if rng.random() < 0.5 else (a, b) for a, b, _ in (rows[i] for i in ids)]
            enc = tokenizer([p[0] for p in pairs], [p[1] for p in pairs], truncation=True,
                            max_length=recipe.max_length, padding=True, return_tensors="pt").to(device)  # fmt: skip
            logits = model(**enc).logits.squeeze(-1)
            loss = loss_fn(logits, torch.tensor([float(rows[i][2]) for i in ids], device=device))
            if teacher is not None:
                loss = (1 - recipe.alpha) * loss + recipe.alpha * loss_fn(logits, teacher[ids].to(device))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            step += 1
            if step % 500 == 0:
                rate = step / (time.time() - started)
                print(f"step {step}/{steps} loss {loss.item():.4f} ({rate:.1f} steps/s)", flush=True)
    return model.cpu().eval(), tokenizer, steps, time.time() - started


@torch.no_grad()
def logits(
    model, tokenizer, pairs: list[tuple[str, str]], max_length: int, device: str = "cpu"
) -> np.ndarray:
    """The model's logit for each pair, in batches of 256 pairs of similar length."""
    model = model.to(device).eval()
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
    out = np.zeros(len(pairs), dtype=np.float32)
    for start in range(0, len(order), 256):
        ids = order[start : start + 256]
        enc = tokenizer([pairs[i][0] for i in ids], [pairs[i][1] for i in ids], truncation=True,
                        max_length=max_length, padding=True, return_tensors="pt").to(device)  # fmt: skip
        out[ids] = model(**enc).logits.squeeze(-1).float().cpu().numpy()
    return out


def export(model, tokenizer, out: Path, base: Path, keep_fp32: Path | None = None) -> None:
    """Write an int8 ONNX model and its tokenizer to ``out``; the fp32 export is kept at ``keep_fp32``
    when given. The quantization is the one ``semcache.embedding.quantize_int8`` applies to the
    embedding model (dynamic int8, per-channel weight scales), called directly so that this module
    needs no ``semcache`` import."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "model_fp32.onnx"
        enc = tokenizer(["a question"], ["another question"], return_tensors="pt")
        names = ["input_ids", "attention_mask", "token_type_ids"]
        torch.onnx.export(
            model.cpu().eval(), tuple(enc[n] for n in names), str(fp32), input_names=names,
            output_names=["logits"], opset_version=17, dynamo=False,
            dynamic_axes={n: {0: "batch", 1: "seq"} for n in names} | {"logits": {0: "batch"}},
        )  # fmt: skip
        quantize_dynamic(str(fp32), str(out / "model.onnx"), weight_type=QuantType.QInt8, per_channel=True)
        if keep_fp32 is not None:
            keep_fp32.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(fp32, keep_fp32)
    tokenizer.save_pretrained(str(out))
    for extra in ("vocab.txt", "special_tokens_map.json", "tokenizer_config.json"):
        if not (out / extra).exists() and (base / extra).exists():
            shutil.copy(base / extra, out / extra)
