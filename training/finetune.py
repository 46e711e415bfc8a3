"""Contrastive fine-tuning of the encoder's top layers on this CPU (the LangCache-style variant).

The lower ``6 - top`` layers stay frozen, so their states are computed once per text and kept in memory;
only the top layers run forward and backward each step, which is what makes this fit two cores. The loss
is CoSENT over each batch's labelled pairs (every negative pair should score below every positive one)
plus in-batch multiple-negatives ranking over its positive pairs (a cache retrieves the nearest of many).
Data: the same training set as the head (qqp_train's training components, MRPC / STS-B train halves and
rule-made hard negatives); measured on qqp_dev, the MRPC / STS-B eval halves, GPTCache's pairs and the
adversarial sets, cosine of the tuned encoder against the frozen one.

    python -m training.finetune --top 2 --epochs 2 --out results/finetune
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.evalkit import adversarial_pairs, sample_pairs
from benchmarks.sweep import curve_summary
from semcache.embedding import packaged_model_path
from training.data import DATA, training_set

ROOT = Path(__file__).resolve().parent.parent
EVAL_FILES = {
    "qqp_dev": DATA / "qqp_dev.jsonl",
    "mrpc": DATA / "mrpc_pairs.jsonl",
    "stsb": DATA / "stsb_pairs.jsonl",
    "mock": DATA / "gptcache_mock_pairs.jsonl",
}


def eval_sets(qqp_limit: int) -> dict[str, list]:
    """The measured pair sets (eval halves of the split files)."""
    out = {
        name: sample_pairs(path, qqp_limit if name == "qqp_dev" else 0) for name, path in EVAL_FILES.items()
    }
    return out | {"adversarial": adversarial_pairs()}


class Lower:
    """The frozen bottom of the encoder and each text's states after it (fp16, unpadded)."""

    def __init__(self, model, tokenizer, top: int) -> None:
        self.model, self.tokenizer, self.cut = model, tokenizer, len(model.encoder.layer) - top
        self.states: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def add(self, texts: list[str], batch: int = 128) -> None:
        todo = sorted({t for t in texts if t not in self.states}, key=len)
        started = time.time()
        for i in range(0, len(todo), batch):
            chunk = todo[i : i + batch]
            enc = self.tokenizer(chunk, padding=True, truncation=True, max_length=256, return_tensors="pt")
            h = self.model.embeddings(input_ids=enc["input_ids"], token_type_ids=enc["token_type_ids"])
            mask = extended(enc["attention_mask"])
            for layer in self.model.encoder.layer[: self.cut]:
                h = layer(h, attention_mask=mask)[0]
            for text, row, m in zip(chunk, h, enc["attention_mask"], strict=True):
                self.states[text] = row[: int(m.sum())].to(torch.float16).clone()
        print(f"lower states: {len(todo)} texts in {time.time() - started:.0f} s", flush=True)

    def batch(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        rows = [self.states[t] for t in texts]
        width = max(len(r) for r in rows)
        h = torch.zeros(len(rows), width, rows[0].shape[1])
        mask = torch.zeros(len(rows), width, dtype=torch.long)
        for i, r in enumerate(rows):
            h[i, : len(r)] = r.float()
            mask[i, : len(r)] = 1
        return h, mask


def extended(mask: torch.Tensor) -> torch.Tensor:
    return (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min


def top_vectors(model, cut: int, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The tuned top layers, mean pooling and normalization."""
    ext = extended(mask)
    for layer in model.encoder.layer[cut:]:
        h = layer(h, attention_mask=ext)[0]
    m = mask.unsqueeze(-1).float()
    return torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1)


def cosent(cos: torch.Tensor, labels: torch.Tensor, scale: float) -> torch.Tensor:
    """log(1 + sum over (negative i, positive j) of exp(scale (cos_i - cos_j)))."""
    diff = scale * (cos[:, None] - cos[None, :])
    keep = (labels[:, None] == 0) & (labels[None, :] == 1)
    diff = torch.cat([torch.zeros(1), diff[keep]])
    return torch.logsumexp(diff, dim=0)


def mnrl(u: torch.Tensor, v: torch.Tensor, labels: torch.Tensor, scale: float) -> torch.Tensor:
    """Each positive pair's two sides should find each other among every text of the batch."""
    pos = labels == 1
    if pos.sum() < 2:
        return torch.zeros(())
    sims = scale * u[pos] @ torch.cat([v, u[~pos]]).T
    target = torch.nonzero(pos).squeeze(1)
    return torch.nn.functional.cross_entropy(sims, target)


def vectors(model, lower: Lower, texts: list[str], batch: int = 256) -> dict[str, np.ndarray]:
    out = {}
    with torch.no_grad():
        order = sorted(set(texts), key=len)
        for i in range(0, len(order), batch):
            chunk = order[i : i + batch]
            h, mask = lower.batch(chunk)
            for t, v in zip(chunk, top_vectors(model, lower.cut, h, mask).numpy(), strict=True):
                out[t] = v
    return out


def measure(model, lower: Lower, sets: dict[str, list]) -> dict:
    result = {}
    for name, pairs in sets.items():
        vec = vectors(model, lower, [t for p in pairs for t in (p.a, p.b)])
        cos = np.array([float(vec[p.a] @ vec[p.b]) for p in pairs])
        labels = np.array([p.label for p in pairs])
        figures = curve_summary(cos, labels, max_points=400)[0]
        if name in ("adversarial", "mock"):
            for t in (0.85, 0.9, 0.95):
                figures[f"traps_at_{t}"] = float(
                    ((cos >= t) & (labels == 0)).sum() / max((labels == 0).sum(), 1)
                )
                figures[f"hit_at_{t}"] = float(((cos >= t) & (labels == 1)).sum() / max(labels.sum(), 1))
        result[name] = {k: round(v, 4) for k, v in figures.items()}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--top", type=int, default=2, help="top layers tuned")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--scale", type=float, default=20.0)
    parser.add_argument("--mnrl", type=float, default=1.0, help="weight of the ranking loss")
    parser.add_argument("--qqp-limit", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "finetune")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(packaged_model_path()), device="cpu")
    model = st[0].auto_model
    model.eval()
    data = training_set(seed=args.seed)
    sets = eval_sets(args.qqp_limit)
    lower = Lower(model, st.tokenizer, args.top)
    texts = [t for p in data.train for t in (p.a, p.b)]
    lower.add(texts + [t for ps in sets.values() for p in ps for t in (p.a, p.b)])
    args.out.mkdir(parents=True, exist_ok=True)
    log = {"args": {k: str(v) for k, v in vars(args).items()}, "epochs": []}

    def report(row: dict) -> None:
        log["epochs"].append(row)
        print(json.dumps(row), flush=True)

    report({"epoch": 0, **measure(model, lower, sets)})
    train(model, lower, data.train, lambda: measure(model, lower, sets), report, args)
    (args.out / f"log_top{args.top}.json").write_text(json.dumps(log, indent=1))


def optimizer_for(model, cut: int, steps: int, lr: float):
    """AdamW over the top layers only, with a linear warm-up over a tenth of the steps and a linear decay."""
    for p in model.parameters():
        p.requires_grad_(False)
    params = [p for layer in model.encoder.layer[cut:] for p in layer.parameters()]
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    warmup = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / (steps - warmup)))
    )
    return optimizer, schedule


def train(model, lower: Lower, pairs: list, measured, report, args: argparse.Namespace) -> None:
    """The training loop; measures (and saves the tuned layers) every half epoch."""
    per_epoch = math.ceil(len(pairs) / args.batch)
    steps = int(per_epoch * args.epochs)
    optimizer, schedule = optimizer_for(model, lower.cut, steps, args.lr)
    rng, step, started = random.Random(args.seed), 0, time.time()
    while step < steps:
        order = list(range(len(pairs)))
        rng.shuffle(order)
        model.train()
        for i in range(0, len(order), args.batch):
            batch = [pairs[j] for j in order[i : i + args.batch]]
            labels = torch.tensor([p.label for p in batch])
            h, mask = lower.batch([p.a for p in batch] + [p.b for p in batch])
            vec = top_vectors(model, lower.cut, h, mask)
            u, v = vec[: len(batch)], vec[len(batch) :]
            loss = cosent((u * v).sum(-1), labels, args.scale) + args.mnrl * mnrl(u, v, labels, args.scale)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            if step % 100 == 0:
                print(f"step {step}/{steps} loss {loss.item():.3f} {time.time() - started:.0f} s", flush=True)
            if step % (per_epoch // 2) == 0 or step == steps:
                model.eval()
                seconds = round(time.time() - started)
                report({"epoch": round(step / per_epoch, 2), "seconds": seconds, **measured()})
                tuned = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
                torch.save(tuned, args.out / f"top{args.top}_step{step}.pt")
                model.train()
            if step >= steps:
                break


if __name__ == "__main__":
    main()
