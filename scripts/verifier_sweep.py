"""Train several verifier recipes at once on a GPU machine, score each on the evaluation sets, and export
the best as int8 ONNX. It needs only what ``train_verifier.py --pack DIR`` wrote, torch, transformers and
onnxruntime (no ``semcache`` import), so it runs on a lent GPU machine that has none of the sidecar's
dependencies:

    python scripts/train_verifier.py --pack gpu/pack [--teacher-dir DIR]        # here
    python3 scripts/verifier_sweep.py gpu/pack scripts/sweep_plans/teachers.json  # there, $OUT set

A plan is JSON: {"runs": {name: recipe fields (see verifier_training.Recipe) plus "distil": true to
train on the pack's teacher logits and "score_train": true to save its own logits on the training rows},
"budget_s": seconds, "return": {label: name, or "best6" / "best-small" for the best six-layer or
shallower run by held-out precision at recall 0.5}}. Runs share the GPU; each prints its progress.
The printed table gives precision at recall 0.5 of each run's raw logits on each set (no guards, no
cosine pre-filter: the numbers compare recipes, ``benchmarks.sweep`` measures the decision).
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from verifier_training import Recipe, export, load_model, logits, train

RUNS = Path(os.environ.get("SWEEP_RUNS", "/tmp/sweep_runs"))


def read_rows(pack: Path) -> list[tuple[str, str, int]]:
    with gzip.open(pack / "rows.jsonl.gz", "rt") as handle:
        return [tuple(json.loads(line)) for line in handle]


def read_evals(pack: Path) -> dict[str, list[tuple[str, str, int]]]:
    sets: dict[str, list] = {}
    with gzip.open(pack / "evals.jsonl.gz", "rt") as handle:
        for line in handle:
            name, a, b, label = json.loads(line)
            sets.setdefault(name, []).append((a, b, label))
    return sets


def worker(pack: Path, name: str, cfg: dict) -> None:
    """Train one run and save its weights (fp16) and its logits on every evaluation set."""
    torch.set_num_threads(2)
    torch.backends.cuda.matmul.allow_tf32 = True
    recipe = Recipe(**{f.name: cfg[f.name] for f in fields(Recipe) if f.name in cfg})
    torch.manual_seed(recipe.seed)
    rows = read_rows(pack)
    soft = np.load(pack / "soft.npy") if cfg.get("distil") else None
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, tokenizer, steps, seconds = train(rows, recipe, pack / "base", device, soft)
    out = RUNS / name
    out.mkdir(parents=True, exist_ok=True)
    for set_name, pairs in read_evals(pack).items():
        scores = logits(model, tokenizer, [(a, b) for a, b, _ in pairs], recipe.max_length, device)
        np.save(out / f"eval_{set_name}.npy", scores)
    if cfg.get("score_train"):
        np.save(
            out / "train_logits.npy",
            logits(model, tokenizer, [(a, b) for a, b, _ in rows], recipe.max_length, device),
        )
    from safetensors.torch import save_file

    save_file(
        {k: v.half().contiguous().cpu() for k, v in model.state_dict().items()},
        str(out / "model.safetensors"),
    )
    (out / "done.json").write_text(json.dumps({"cfg": cfg, "seconds": round(seconds), "steps": steps}))
    print(f"{name} done in {seconds:.0f} s", flush=True)


def precision_at(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Precision at recall 0.5, recall at precision 0.9, and ROC AUC of raw scores."""
    y = labels[np.argsort(-scores, kind="stable")]
    hits = np.cumsum(y)
    precision, recall = hits / np.arange(1, len(y) + 1), hits / max(y.sum(), 1)
    at = min(int(np.searchsorted(recall, 0.5)), len(y) - 1)
    ok = precision >= 0.9
    pos, neg = scores[labels == 1], scores[labels == 0]
    ranks = np.argsort(np.argsort(np.concatenate([pos, neg]))) + 1
    auc = (ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / max(len(pos) * len(neg), 1)
    return {"p@r0.5": round(float(precision[at]), 4), "r@p0.9": round(float(recall[ok].max()) if ok.any() else 0.0, 4),
            "auc": round(float(auc), 4)}  # fmt: skip


def results(names: list[str], evals: dict) -> dict[str, dict]:
    table = {}
    for name in names:
        done = json.loads((RUNS / name / "done.json").read_text())
        table[name] = {"seconds": done["seconds"], "cfg": done["cfg"]} | {
            s: precision_at(np.load(RUNS / name / f"eval_{s}.npy"), np.array([r[2] for r in rows]))
            for s, rows in evals.items()
        }
        print(f"{name:16s} " + " ".join(f"{s} {table[name][s]['p@r0.5']:.3f}" for s in evals), flush=True)
    return table


def launch(pack: Path, runs: dict, deadline: float) -> list[str]:
    """Start every run as its own process; kill those still running at ``deadline``."""
    procs = {
        n: subprocess.Popen([sys.executable, __file__, "--worker", str(pack), n, json.dumps(c)])
        for n, c in runs.items()
    }
    while any(p.poll() is None for p in procs.values()) and time.time() < deadline:
        time.sleep(2)
    for name, proc in procs.items():
        if proc.poll() is None:
            print(f"{name}: stopped at the deadline", flush=True)
            proc.kill()
    return [n for n in runs if (RUNS / n / "done.json").exists()]


def pick(label: str, table: dict) -> str | None:
    if label not in ("best6", "best-small"):
        return label if label in table else None
    six = [n for n in table if table[n]["cfg"].get("layers", 0) in (0, 6)]
    cands = six if label == "best6" else [n for n in table if n not in six]
    return max(cands, key=lambda n: table[n]["heldout"]["p@r0.5"]) if cands else None


def hand_back(pack: Path, name: str, label: str, out: Path) -> None:
    """Export the run as int8 ONNX and write it to ``out`` in parts of 15 MiB (the device tool's limit)."""
    from safetensors.torch import load_file

    cfg = json.loads((RUNS / name / "done.json").read_text())["cfg"]
    tokenizer, model = load_model(pack / "base", cfg.get("layers", 0))
    model.load_state_dict(
        {k: v.float() for k, v in load_file(str(RUNS / name / "model.safetensors")).items()}
    )
    export(model, tokenizer, RUNS / name / "onnx", pack / "base")
    data = (RUNS / name / "onnx" / "model.onnx").read_bytes()
    part = 15 * 2**20
    for i in range(0, len(data), part):
        (out / f"{label}_{name}.part{i // part}").write_bytes(data[i : i + part])
    print(f"{label}: {name} ({len(data)} bytes)", flush=True)


def main(pack: Path, plan_file: Path) -> None:
    started = time.time()
    plan = json.loads(plan_file.read_text())
    out = Path(os.environ.get("OUT", "/tmp/sweep_out"))
    out.mkdir(parents=True, exist_ok=True)
    names = launch(pack, plan["runs"], started + plan.get("budget_s", 540) - 60)
    table = results(names, read_evals(pack))
    (out / "summary.json").write_text(
        json.dumps({"runs": table, "wall_s": round(time.time() - started)}, indent=1)
    )
    for name in names:
        if (RUNS / name / "train_logits.npy").exists():
            np.save(out / f"train_logits_{name}.npy", np.load(RUNS / name / "train_logits.npy"))
    for label, wanted in plan.get("return", {}).items():
        if (name := pick(wanted, table)) is not None:
            hand_back(pack, name, label, out)


if __name__ == "__main__":
    if sys.argv[1] == "--worker":
        worker(Path(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4]))
    else:
        main(Path(sys.argv[1]), Path(sys.argv[2]))
