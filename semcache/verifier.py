"""The hit decision: given a request and a retrieved candidate, is the cached answer right for it?

The seam is :class:`Verifier`; implementations are registered in :data:`VERIFIERS`.

- ``cross-encoder`` (default): a MiniLM cross-encoder fine-tuned on paraphrase pairs and rule-made hard
  negatives (``scripts/train_verifier.py``), shipped as int8 ONNX in ``semcache/verifier_model``. It
  scores the (request, candidate) pair jointly, so it sees negation, swapped roles and changed
  identifiers that a single cosine cannot. Only candidates whose cosine passes a cheap pre-filter are
  scored. Guards (``semcache.guards``, word lists in ``semcache.guard_words`` and WordNet's antonyms)
  refuse pairs whose numbers, units, dates, identifiers, CLI subcommands, languages or opposite words
  differ, or whose roles are swapped.
- ``cosine``: a hit when the cosine similarity reaches a threshold (what every peer cache does).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from semcache.embedding import ort_session, padded_inputs
from semcache.guards import tripped
from semcache.qualities import load as load_qualities
from semcache.thresholds import load_shipped

MODEL_DIR = Path(__file__).parent / "verifier_model"


@dataclass(frozen=True)
class DecisionPolicy:
    """The strictness of one lookup: candidates under the cosine ``min_similarity`` are not scored, and
    a scored candidate hits when its score reaches ``threshold`` (for the cosine verifier the score is the
    cosine, so both are the same number)."""

    min_similarity: float
    threshold: float


class Verifier(Protocol):
    """Decides hit or miss for one (request, candidate) pair."""

    name: str
    # What a score means: tuned thresholds are stored under it, so a threshold fitted for one model is
    # never applied to another (a retrained or swapped model starts from its own shipped table).
    model_id: str

    def score(self, pairs: list[tuple[str, str]], similarities: np.ndarray) -> np.ndarray:
        """Scores for (query, cached prompt) pairs, higher = more likely the same answer."""
        ...

    def shipped_thresholds(self) -> dict[float, float]:
        """The budget → threshold table calibrated with the model (empty when none ships)."""
        ...


class CosineVerifier:
    """A hit when the cosine similarity reaches ``policy.min_similarity``."""

    name = "cosine"
    model_id = "cosine"

    def score(self, pairs: list[tuple[str, str]], similarities: np.ndarray) -> np.ndarray:
        """The cosine itself."""
        return np.asarray(similarities, dtype=np.float64)

    def shipped_thresholds(self) -> dict[float, float]:
        """None: the cosine threshold is a setting until ``semcache tune`` fits one."""
        return {}


class CrossEncoderVerifier:
    """The trained cross-encoder on onnxruntime; thread-safe, loaded on first use."""

    name = "cross-encoder"

    def __init__(self, model_dir: Path = MODEL_DIR, max_length: int | None = None, threads: int = 1) -> None:
        self._dir = Path(model_dir)
        self._max_length = max_length
        self._threads = threads
        self._session = None
        self._tokenizer = None
        self._lock = threading.Lock()
        self._running = threading.Lock()
        self._model_id: str | None = None

    @property
    def model_id(self) -> str:
        """``cross-encoder@`` and the first 12 hex digits of the model file's SHA-256."""
        if self._model_id is None:
            digest = hashlib.sha256(self._model_file().read_bytes()).hexdigest()
            self._model_id = f"{self.name}@{digest[:12]}"
        return self._model_id

    def shipped_thresholds(self) -> dict[float, float]:
        """The table ``scripts/calibrate_verifier.py`` wrote beside the model."""
        return load_shipped(self._dir / "thresholds.json", self.name)

    def _model_file(self) -> Path:
        model_file = self._dir / "model.onnx"
        if not model_file.exists():
            raise FileNotFoundError(f"no verifier model in {self._dir}; run scripts/train_verifier.py")
        return model_file

    def load(self) -> None:
        """Load the ONNX model and tokenizer now."""
        with self._lock:
            if self._session is not None:
                return
            from tokenizers import Tokenizer

            model_file = self._model_file()
            tokenizer = Tokenizer.from_file(str(self._dir / "tokenizer.json"))
            tokenizer.enable_truncation(self._max_length or trained_max_length(self._dir))
            tokenizer.no_padding()
            self._tokenizer = tokenizer
            self._session = ort_session(model_file, self._threads)
            load_qualities()  # the guards' largest table, read before the first lookup

    def score(self, pairs: list[tuple[str, str]], similarities: np.ndarray | None = None) -> np.ndarray:
        """Probabilities that each (query, cached prompt) pair shares its answer."""
        # Guarded pairs score 0 without a forward pass.
        out = np.zeros(len(pairs), dtype=np.float64)
        open_pairs = [i for i, (a, b) in enumerate(pairs) if tripped(a, b) is None]
        if open_pairs:
            out[open_pairs] = 1.0 / (1.0 + np.exp(-self.logits([pairs[i] for i in open_pairs])))
        return out

    def logits(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        """The model's raw logit for each pair (no guards), one forward pass per pair.

        Never batched: the int8 model quantizes its activations with one scale per input tensor, so in a
        batch a pair's score would depend on the pairs beside it (measured on the adversarial sets: mean
        |logit change| 0.29, up to 4.0, 53 of 1 440 decisions flipped at the budget-0.2 threshold). A
        lookup scores one pair, so calibration, ``semcache tune`` and the benchmarks must too. It costs
        bulk scoring about 40 % (1 440 pairs: 4.3 s against 3.0 s)."""
        if self._session is None:
            self.load()
        out = np.zeros(len(pairs), dtype=np.float64)
        for i, encoding in enumerate(self._tokenizer.encode_batch(pairs)):
            inputs = padded_inputs([encoding])
            with self._running:  # one forward pass at a time: concurrent ones only oversubscribe the cores
                out[i] = self._session.run(None, inputs)[0].reshape(-1)[0]
        return out


def trained_max_length(model_dir: Path) -> int:
    """The pair length (tokens) the model was trained at, from its provenance: inputs are truncated the
    same way (longest side first), so the model never sees longer pairs than it learned on."""
    try:
        return int(json.loads((model_dir / "provenance.json").read_text())["args"]["max_length"])
    except (OSError, KeyError, ValueError):
        return 128


# Each factory takes the onnxruntime thread count and a model directory (None: the shipped model); both
# are ignored by verifiers that run no model.
VERIFIERS: dict[str, Callable[[int, Path | None], Verifier]] = {
    "cosine": lambda threads, model_dir: CosineVerifier(),
    "cross-encoder": lambda threads, model_dir: CrossEncoderVerifier(model_dir or MODEL_DIR, threads=threads),
}


def make_verifier(name: str, threads: int = 1, model_dir: Path | None = None) -> Verifier:
    """Build the verifier registered under ``name``, on ``model_dir``'s model if given."""
    try:
        return VERIFIERS[name](threads, model_dir)
    except KeyError:
        raise ValueError(f"unknown verifier {name!r}; known: {', '.join(sorted(VERIFIERS))}") from None
