"""``python -m training.build --out DIR``: the whole recipe of the shipped decision, on this CPU.

1. ``training.prepare``: encode every text once with the serving model (about 7 minutes);
2. ``training.teacher``: pair each training question with its nearest training neighbour and have the
   cross-encoder this project shipped before the head score each pair (about 3 minutes; its weights
   come from this repository's history, ``git show 120c640^:semcache/verifier_model/model.onnx``);
3. ``training.train_head``: train the interaction head on the labelled pairs plus those scored pairs,
   fixed seed (about 16 minutes on 2 cores);
4. ``training.calibrate``: replay the held-out calibration stream, thresholds by the clusters;
5. ``training.audit fit --write``: the shipped thresholds, by the wrong share corrected both ways with
   the hand audit's verdicts (``training/audit/calibration_verdicts.jsonl``).

The audit's verdicts are kept per model (the digest of ``head.npz``): a head that comes out different
needs a new audit sample (``training.audit sample``) before step 5 can write thresholds. On this
project's 2-core machine, step 3 with the shipped arguments made the shipped ``head.npz`` again byte for
byte (SHA-256 797ce0b5b377…). To ship the result, copy DIR's files into ``semcache/decision/model``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from training.prepare import BANK


def run(*args: str) -> None:
    """One step, in this interpreter; stop on failure."""
    print("+ python -m", " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", *args], check=True)


TEACHER_COMMIT = "120c640^"  # the last commit that shipped the cross-encoder


def extract_teacher(target: Path) -> None:
    """The cross-encoder's ONNX graph and tokenizer, from this repository's history."""
    target.mkdir(parents=True, exist_ok=True)
    for name in ("model.onnx", "tokenizer.json"):
        blob = subprocess.run(
            ["git", "show", f"{TEACHER_COMMIT}:semcache/verifier_model/{name}"],
            capture_output=True,
            check=True,
            cwd=Path(__file__).resolve().parent.parent,
        ).stdout
        (target / name).write_bytes(blob)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--reference", default="0.66", help="the threshold the audit's samples were drawn at")
    args = parser.parse_args()
    started = time.monotonic()
    if not BANK.exists():
        run("training.prepare")
    teacher = args.out / "teacher"
    extract_teacher(teacher)
    pairs = args.out / "teacher_pairs.jsonl"
    run("training.teacher", "--teacher", str(teacher), "--out", str(pairs))
    run("training.train_head", "--teacher-pairs", str(pairs), "--out", str(args.out))
    run("training.calibrate", "--model", str(args.out))
    run("training.audit", "--model", str(args.out), "--reference", args.reference, "fit", "--write")
    print(f"built {args.out} in {(time.monotonic() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
