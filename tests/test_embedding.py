"""The micro-batcher: concurrent callers share forward passes and each gets its own vector."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from semcache.embedding import (
    PRECISIONS,
    MicroBatcher,
    SentenceTransformerEmbedder,
    export_in_child,
    length_groups,
    quantize_in_child,
)
from tests.conftest import HashEmbedder


class SlowCountingEmbedder(HashEmbedder):
    """Records batch sizes; each forward pass takes a little while, as a real one does."""

    def __init__(self) -> None:
        self.batches: list[int] = []
        self._event = threading.Event()

    def encode(self, texts: list[str]) -> np.ndarray:
        self.batches.append(len(texts))
        self._event.wait(0.01)
        return super().encode(texts)


def test_concurrent_callers_are_batched_and_get_their_own_vectors() -> None:
    embedder = SlowCountingEmbedder()
    batcher = MicroBatcher(embedder, max_batch=16)
    texts = [f"prompt number {i} about topic {i % 7}" for i in range(64)]
    with ThreadPoolExecutor(max_workers=32) as pool:
        vectors = list(pool.map(batcher.embed, texts))
    batcher.close()
    expected = HashEmbedder().encode(texts)
    assert np.allclose(np.vstack(vectors), expected)
    assert sum(embedder.batches) == 64 and max(embedder.batches) > 1 and max(embedder.batches) <= 16


def test_a_failing_forward_pass_fails_every_waiting_caller() -> None:
    class Broken(HashEmbedder):
        def encode(self, texts: list[str]) -> np.ndarray:
            raise RuntimeError("model crashed")

    batcher = MicroBatcher(Broken())
    with pytest.raises(RuntimeError, match="model crashed"):
        batcher.embed("hello")
    batcher.close()


def test_real_model_vectors_are_normalized_and_paraphrases_are_close(embedder) -> None:
    vectors = embedder.encode(
        [
            "How do I reverse a list in Python?",
            "How can I reverse a list in python?",
            "What is the boiling point of water?",
        ]
    )
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > 0.95 > 0.5 > vectors[0] @ vectors[2]


def test_int8_vectors_stay_close_to_fp32(model_dir, embedder) -> None:
    texts = [
        "How do I reverse a list in Python?",
        "What is the boiling point of water at sea level?",
        "Port the payment service from .NET to Java",
        "cancel my subscription",
    ]
    fp32 = SentenceTransformerEmbedder(model_dir, precision="fp32").encode(texts)
    int8 = embedder.encode(texts)  # the default precision
    assert (model_dir / "onnx" / PRECISIONS["int8"]).exists()
    assert np.all((fp32 * int8).sum(axis=1) > 0.97)


@given(st.lists(st.integers(1, 256), max_size=200))
def test_length_groups_hold_every_index_once_and_bound_the_padding(lengths: list[int]) -> None:
    groups = length_groups(lengths, waste=0.15, most=64)
    assert sorted(i for group in groups for i in group) == list(range(len(lengths)))
    for group in groups:
        sizes = [lengths[i] for i in group]
        assert len(group) <= 64
        assert len(group) == 1 or len(group) * max(sizes) <= 1.15 * sum(sizes)


def test_a_batch_of_mixed_lengths_embeds_as_each_text_alone(embedder) -> None:
    texts = [
        "hi",
        "How do I reverse a list in Python?",
        "cancel my subscription " * 20,
        "What is 2+2?",
        "Port the payment service from .NET to Java and keep the public API the same for callers",
    ]
    together = embedder.encode(texts)
    alone = np.vstack([embedder.encode([text]) for text in texts])
    assert np.all((together * alone).sum(axis=1) > 0.99)


def test_an_int8_text_embeds_the_same_whatever_its_batch_mates(embedder) -> None:
    # Dynamic int8 scales a pass by its largest activation: a batched text would move with its company,
    # and a pair near the threshold would hit or miss with the traffic beside it.
    text = "How do I reverse a list in Python?"
    company = ["Port the payment service from .NET to Java " * 3, "WHY IS 2+2 NOT 5?!", "ok"]
    alone_vector, alone_states = embedder.encode_states([text])
    mixed_vectors, mixed_states = embedder.encode_states([company[0], text, *company[1:]])
    assert np.array_equal(alone_vector[0], mixed_vectors[1])
    assert np.array_equal(alone_states[0], mixed_states[1])


def test_an_unknown_precision_is_refused(model_dir) -> None:
    with pytest.raises(ValueError, match="int8"):
        SentenceTransformerEmbedder(model_dir, precision="fp8")


def test_several_workers_embed_side_by_side_and_all_stop_on_close() -> None:
    embedder = SlowCountingEmbedder()
    batcher = MicroBatcher(embedder, max_batch=1, workers=3)
    texts = [f"prompt {i}" for i in range(30)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        vectors = list(pool.map(batcher.embed, texts))
    assert np.allclose(np.vstack(vectors), HashEmbedder().encode(texts))
    assert embedder.batches == [1] * 30
    threads = list(batcher._threads)
    assert len(threads) == 3 and all(t.is_alive() for t in threads)
    batcher.close()
    assert not any(t.is_alive() for t in threads)


def test_a_failed_export_raises_with_the_childs_last_error_line(tmp_path: Path) -> None:
    # The export runs in a child process (torch stays out of the server); its failure must surface.
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    with pytest.raises(RuntimeError, match=r"exporting the embedding model .* failed: .*Error"):
        export_in_child(blocker / "model")


def test_a_failed_quantization_raises_with_the_childs_last_error_line(tmp_path: Path) -> None:
    # The int8 weights are made in a child process too; a missing source must not pass silently.
    target = tmp_path / "model_int8.onnx"
    with pytest.raises(RuntimeError, match=r"quantizing the embedding model .* failed: .*Error"):
        quantize_in_child(tmp_path / "missing.onnx", target)
    assert not target.exists()
