"""Cache-shaped pairs labelled by a teacher, for distilling into the head (measured, not shipped).

A cache does not meet Quora's labelled pairs: it meets each prompt's nearest stored neighbours. This
pairs every training question with its nearest other training questions (cosine at or above the
decision's floor, by the state bank's vectors) and has a cross-encoder score each pair, one pair per
pass. The teacher is the cross-encoder this project shipped before the head (``git show
120c640^:semcache/verifier_model/model.onnx``; trained on qqp_train, the MRPC / STS-B train halves and
rule-made pairs): ``--teacher DIR`` holds its ``model.onnx`` and ``tokenizer.json``. Only training
questions are paired, so the calibration components and every dev set stay unseen.

    python -m training.teacher --teacher results/teacher --out results/teacher_pairs.jsonl
    python -m training.train_head --teacher-pairs results/teacher_pairs.jsonl --out results/head_t
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from semcache.config import DECISION_FLOOR
from semcache.embedding import ort_session, padded_inputs
from training.data import training_set
from training.prepare import BANK
from training.states import ROOT, StateBank


def neighbour_pairs(
    bank: StateBank, texts: list[str], per_text: int, floor: float
) -> list[tuple[str, str, float]]:
    """Each text with its ``per_text`` nearest other texts at or above ``floor`` (each pair once)."""
    import faiss

    rows = np.array([bank.row[t] for t in texts])
    vectors = np.ascontiguousarray(bank.vectors[rows], dtype=np.float32)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    sims, ids = index.search(vectors, per_text + 1)
    seen: set[tuple[int, int]] = set()
    out = []
    for i in range(len(texts)):
        for sim, j in zip(sims[i], ids[i], strict=True):
            key = (min(i, int(j)), max(i, int(j)))
            if j < 0 or j == i or sim < floor or key in seen or texts[i].lower() == texts[j].lower():
                continue
            seen.add(key)
            out.append((texts[i], texts[j], float(sim)))
    return out


def teacher_logits(model_dir: Path, pairs: list[tuple[str, str]], threads: int) -> np.ndarray:
    """The cross-encoder's logit per pair, one pair per pass (int8 scales a pass by its batch)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.enable_truncation(128)
    tokenizer.no_padding()
    session = ort_session(model_dir / "model.onnx", threads)
    out = np.zeros(len(pairs), dtype=np.float32)
    started = time.monotonic()
    for i, encoding in enumerate(tokenizer.encode_batch(pairs)):
        out[i] = session.run(None, padded_inputs([encoding]))[0].reshape(-1)[0]
        if (i + 1) % 10000 == 0:
            print(f"  scored {i + 1} / {len(pairs)} ({time.monotonic() - started:.0f} s)", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--teacher", type=Path, required=True, help="folder with model.onnx, tokenizer.json")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "teacher_pairs.jsonl")
    parser.add_argument("--per-text", type=int, default=1, help="nearest neighbours paired with each text")
    parser.add_argument("--floor", type=float, default=DECISION_FLOOR)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = training_set(seed=args.seed, augment_share=0.0)
    texts = sorted({t for p in data.train for t in (p.a, p.b)})
    pairs = neighbour_pairs(StateBank.load(BANK), texts, args.per_text, args.floor)
    print(f"{len(pairs)} neighbour pairs of {len(texts)} training texts", flush=True)
    logits = teacher_logits(args.teacher, [(a, b) for a, b, _ in pairs], args.threads)
    with args.out.open("w") as handle:
        for (a, b, sim), z in zip(pairs, logits, strict=True):
            handle.write(
                json.dumps({"a": a, "b": b, "cosine": sim, "teacher": float(1 / (1 + np.exp(-z)))}) + "\n"
            )
    print(f"wrote {args.out}; teacher p >= 0.5 for {(logits >= 0).mean():.1%} of the pairs")


if __name__ == "__main__":
    main()
