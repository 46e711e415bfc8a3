"""``python -m training.tuned_bank``: the state bank again, from MiniLM with its top layers as
``training.finetune`` tuned them, so a head can be trained (``training.train_head --bank``) and measured
(``benchmarks.heads``) on a tuned encoder's token states: the end-to-end variant of the decision.

Same texts, order and layout as the bank ``training.prepare`` wrote (``--like``, whose texts are already
sorted by length); fp32 torch passes of 128 texts (the serving int8 ONNX pass is not built for tuned
weights).

    python -m training.tuned_bank results/finetune/a/top2_step1327.pt --out results/bank_tuned.npz
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from semcache.embedding import packaged_model_path
from training.prepare import BANK
from training.states import StateBank


def tuned_model(layers: Path):
    """The packaged MiniLM (sentence-transformers) with the tuned parameters of ``layers`` loaded."""
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(packaged_model_path()), device="cpu")
    loaded = st[0].auto_model.load_state_dict(torch.load(layers, weights_only=True), strict=False)
    if loaded.unexpected_keys:
        raise SystemExit(f"{layers} holds parameters MiniLM has not: {loaded.unexpected_keys[:3]}")
    st.eval()
    return st


@torch.no_grad()
def encode(st, texts: list[str], batch: int = 128) -> StateBank:
    """Vectors (mean pooled, normalized) and fp16 last-layer token states of ``texts``, in order."""
    model, vectors, parts = st[0].auto_model, np.zeros((len(texts), 384), np.float32), []
    started = time.monotonic()
    for start in range(0, len(texts), batch):
        chunk = texts[start : start + batch]
        enc = st.tokenizer(chunk, padding=True, truncation=True, max_length=256, return_tensors="pt")
        hidden, mask = model(**enc).last_hidden_state, enc["attention_mask"]
        pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        vectors[start : start + len(chunk)] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
        parts.extend(
            row[: int(m.sum())].numpy().astype(np.float16) for row, m in zip(hidden, mask, strict=True)
        )
        if (start // batch) % 200 == 0:
            print(f"  {start + len(chunk)} / {len(texts)} ({time.monotonic() - started:.0f} s)", flush=True)
    offsets = np.zeros(len(texts) + 1, np.int64)
    offsets[1:] = np.cumsum([len(p) for p in parts])
    return StateBank(texts, vectors, np.concatenate(parts), offsets)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("layers", type=Path, help="tuned parameters saved by training.finetune (.pt)")
    parser.add_argument("--like", type=Path, default=BANK, help="the bank whose texts to encode")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(os.cpu_count() or 1)
    texts = json.loads(args.like.with_suffix(".json").read_text())
    encode(tuned_model(args.layers), texts).save(args.out)
    print(f"wrote {args.out} ({len(texts)} texts)")


if __name__ == "__main__":
    main()
