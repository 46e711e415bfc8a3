"""``python -m training.build --out DIR``: the whole recipe of the shipped decision, on this CPU.

1. ``training.prepare``: encode every text once with the serving model (about 2 minutes);
2. ``training.train_head``: train the interaction head, fixed seed (about 10 minutes on 2 cores);
3. ``training.calibrate``: replay the held-out calibration stream, thresholds by the clusters;
4. ``training.audit fit --write``: the shipped thresholds, by the wrong share corrected both ways with
   the hand audit's verdicts (``training/audit/calibration_verdicts.jsonl``).

The audit's verdicts are kept per model (the digest of ``head.npz``): a head that comes out different
needs a new audit sample (``training.audit sample``) before step 4 can write thresholds. On this
project's 2-core machine, ``train_head`` with the shipped arguments made the shipped ``head.npz`` again
byte for byte (SHA-256 c82ca63f83ba…). To ship the
result, copy DIR's files into ``semcache/decision/model``.
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
    run("training.train_head", "--out", str(args.out))
    run("training.calibrate", "--model", str(args.out))
    run("training.audit", "--model", str(args.out), "--reference", args.reference, "fit", "--write")
    print(f"built {args.out} in {(time.monotonic() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
