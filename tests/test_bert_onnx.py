"""The torch-free ONNX graph of the packaged all-MiniLM-L6-v2: built from safetensors, run on onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from safetensors.numpy import save_file
from tokenizers import Tokenizer

from semcache.bert_onnx import _load_weights, build_bert_onnx
from semcache.embedding import packaged_model_path, padded_inputs

TEXTS = [
    "How do I reverse a list in Python?",
    "How can I reverse a Python list?",
    "What is the boiling point of water at sea level?",
    "ok",
    "Caching LLM responses by meaning saves money when many users ask the same thing in other words. " * 4,
]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("bert") / "model.onnx"
    build_bert_onnx(packaged_model_path(), target)
    return target


@pytest.fixture(scope="module")
def session(built: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(built), options, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    tokenizer = Tokenizer.from_file(str(packaged_model_path() / "tokenizer.json"))
    tokenizer.enable_truncation(256)
    tokenizer.no_padding()
    return tokenizer


def pooled(session: ort.InferenceSession, tokenizer: Tokenizer, texts: list[str]) -> np.ndarray:
    """Mean-pooled, L2-normalized vectors of ``texts`` from one padded batch."""
    inputs = padded_inputs(tokenizer.encode_batch(texts))
    hidden = session.run(None, inputs)[0]
    weights = inputs["attention_mask"][..., None].astype(np.float32)
    vectors = (hidden * weights).sum(axis=1) / weights.sum(axis=1)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_the_file_has_the_export_interface_and_nothing_is_left_beside_it(
    built: Path, session: ort.InferenceSession, tokenizer: Tokenizer
) -> None:
    assert [i.name for i in session.get_inputs()] == ["input_ids", "attention_mask", "token_type_ids"]
    assert all(i.type == "tensor(int64)" and len(i.shape) == 2 for i in session.get_inputs())
    assert session.get_outputs()[0].name == "last_hidden_state"
    assert sorted(p.name for p in built.parent.iterdir()) == ["model.onnx"]  # no temporary file left
    inputs = padded_inputs(tokenizer.encode_batch(TEXTS[:3]))
    hidden = session.run(None, inputs)[0]
    assert hidden.dtype == np.float32
    assert hidden.shape == (3, inputs["input_ids"].shape[1], 384)
    assert np.isfinite(hidden).all()


def test_a_padded_batch_gives_each_text_the_states_it_gets_alone(
    session: ort.InferenceSession, tokenizer: Tokenizer
) -> None:
    encodings = tokenizer.encode_batch(TEXTS)
    batch = session.run(None, padded_inputs(encodings))[0]
    for row, encoding in enumerate(encodings):
        alone = session.run(None, padded_inputs([encoding]))[0][0]
        np.testing.assert_allclose(batch[row, : len(encoding.ids)], alone, atol=1e-4)


def test_vectors_are_normalized_and_a_paraphrase_is_closer_than_an_unrelated_text(
    session: ort.InferenceSession, tokenizer: Tokenizer
) -> None:
    vectors = pooled(session, tokenizer, TEXTS)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    paraphrase, unrelated = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    assert paraphrase > 0.8
    assert paraphrase > unrelated + 0.3


def test_a_bert_prefix_on_the_checkpoint_names_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    save_file({"bert.embeddings.LayerNorm.bias": np.zeros(4, np.float32), "pooler.x": np.ones(2)}, str(path))
    assert sorted(_load_weights(path)) == ["embeddings.LayerNorm.bias", "pooler.x"]


def test_vectors_match_sentence_transformers(session: ort.InferenceSession, tokenizer: Tokenizer) -> None:
    pytest.importorskip("torch")
    sentence_transformers = pytest.importorskip("sentence_transformers")
    model = sentence_transformers.SentenceTransformer(str(packaged_model_path()), device="cpu")
    expected = model.encode(TEXTS, normalize_embeddings=True)
    cosines = (pooled(session, tokenizer, TEXTS) * expected).sum(axis=1)
    assert cosines.min() >= 0.9999, cosines
