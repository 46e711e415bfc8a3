"""Build a BERT encoder's ONNX graph straight from its safetensors weights, without torch.

The graph has the interface of the sentence-transformers/optimum export: inputs ``input_ids``,
``attention_mask`` and ``token_type_ids`` (int64, batch x sequence) and one output,
``last_hidden_state`` (float32, batch x sequence x hidden). Linear layers are MatMul + Add with the
weight transposed to [in, out], as in the torch export, and the float32 arithmetic follows that
export's order, so onnxruntime gives both the same states to the last bit, in float32 and after
dynamic int8 quantization. Only onnx, numpy and safetensors are needed.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8  # the IR that goes with opset 17; any onnxruntime from 1.13 on loads it
MASK_VALUE = np.finfo(np.float32).min  # added to the scores of padded positions, as the torch export does


def build_bert_onnx(model_dir: Path, target: Path) -> None:
    """Write the ONNX graph of the BERT model in ``model_dir`` (``config.json`` and
    ``model.safetensors``) to ``target``, atomically: a temporary file beside it is moved into place."""
    config = json.loads((Path(model_dir) / "config.json").read_text())
    if config.get("hidden_act", "gelu") != "gelu":
        raise ValueError(f"unsupported activation {config['hidden_act']!r}; only 'gelu' is built")
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError("only absolute position embeddings are built")
    model = _bert_model(config, _load_weights(Path(model_dir) / "model.safetensors"))
    onnx.checker.check_model(model)
    _save_atomically(model, Path(target))


def _load_weights(path: Path) -> dict[str, np.ndarray]:
    """The checkpoint's tensors by name, without a leading ``bert.`` (some checkpoints carry it)."""
    from safetensors.numpy import load_file

    return {name.removeprefix("bert."): array for name, array in load_file(str(path)).items()}


class _Graph:
    """Collects nodes and initializers, naming each node's output after the node."""

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        self.weights = weights
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._names: set[str] = set()

    def constant(self, name: str, value: np.ndarray) -> str:
        """Add ``value`` as an initializer called ``name`` and return the name."""
        if name not in self._names:
            self._names.add(name)
            self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def weight(self, name: str, transpose: bool = False) -> str:
        """Add the checkpoint tensor ``name`` (as float32, transposed to [in, out] if asked)."""
        array = self.weights[name].astype(np.float32)
        return self.constant(f"{name}.T" if transpose else name, array.T if transpose else array)

    def node(self, op: str, inputs: list[str], name: str, **attrs: object) -> str:
        """Add an ``op`` node called ``name`` and return its single output's name."""
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name


def _bert_model(config: dict, weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    """The whole graph: embeddings, then each encoder layer in turn."""
    g = _Graph(weights)
    hidden = _embeddings(g, config)
    mask = _additive_mask(g)
    for layer in range(config["num_hidden_layers"]):
        hidden = _encoder_layer(g, config, layer, hidden, mask)
    g.nodes.append(helper.make_node("Identity", [hidden], ["last_hidden_state"], name="output"))
    dims = ["batch_size", "sequence_length"]
    inputs = [
        helper.make_tensor_value_info(name, TensorProto.INT64, dims)
        for name in ("input_ids", "attention_mask", "token_type_ids")
    ]
    output = helper.make_tensor_value_info(
        "last_hidden_state", TensorProto.FLOAT, [*dims, config["hidden_size"]]
    )
    graph = helper.make_graph(g.nodes, "bert", inputs, [output], g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="semcache")
    model.ir_version = IR_VERSION
    return model


def _embeddings(g: _Graph, config: dict) -> str:
    """Word + position (0 .. sequence-1) + token type embeddings, then LayerNorm."""
    words = g.node("Gather", [g.weight("embeddings.word_embeddings.weight"), "input_ids"], "words")
    types = g.node("Gather", [g.weight("embeddings.token_type_embeddings.weight"), "token_type_ids"], "types")
    # Positions 0 .. sequence-1 are sliced from a constant [1, max_positions] row, as the torch export
    # does: Range + Gather instead tripped onnxruntime 1.31's Gather-to-Slice fusion (a Slice fed scalars).
    length = g.node("Shape", ["input_ids"], "sequence_length", start=1, end=2)
    every = np.arange(config["max_position_embeddings"], dtype=np.int64)[None, :]
    zero, one = g.constant("zero_1d", np.array([0], np.int64)), g.constant("one_1d", np.array([1], np.int64))
    positions = g.node("Slice", [g.constant("position_ids", every), zero, length, one], "positions")  # axis 1
    table = g.weight("embeddings.position_embeddings.weight")
    placed = g.node("Gather", [table, positions], "position_vectors")
    summed = g.node("Add", [g.node("Add", [words, types], "words_types"), placed], "embedded")
    return _layer_norm(g, config, summed, "embeddings.LayerNorm")


def _additive_mask(g: _Graph) -> str:
    """(1 - attention_mask) * MASK_VALUE, shaped [batch, 1, 1, sequence] to add to attention scores."""
    mask = g.node("Cast", ["attention_mask"], "mask_float", to=TensorProto.FLOAT)
    inverted = g.node("Sub", [g.constant("one_float", np.array(1.0, np.float32)), mask], "mask_inverted")
    scaled = g.node(
        "Mul", [inverted, g.constant("mask_value", np.array(MASK_VALUE, np.float32))], "mask_scaled"
    )
    return g.node("Unsqueeze", [scaled, g.constant("axes_1_2", np.array([1, 2], np.int64))], "mask_additive")


def _encoder_layer(g: _Graph, config: dict, layer: int, hidden: str, mask: str) -> str:
    """One transformer layer: self-attention and the feed-forward block, each with residual + LayerNorm."""
    p = f"encoder.layer.{layer}"
    context = _self_attention(g, config, f"{p}.attention.self", hidden, mask)
    attended = g.node(
        "Add", [_linear(g, context, f"{p}.attention.output.dense"), hidden], f"{p}.attention.residual"
    )
    attended = _layer_norm(g, config, attended, f"{p}.attention.output.LayerNorm")
    inner = _gelu(g, _linear(g, attended, f"{p}.intermediate.dense"), f"{p}.intermediate.gelu")
    out = g.node("Add", [_linear(g, inner, f"{p}.output.dense"), attended], f"{p}.output.residual")
    return _layer_norm(g, config, out, f"{p}.output.LayerNorm")


def _self_attention(g: _Graph, config: dict, p: str, hidden: str, mask: str) -> str:
    """Multi-head scaled dot-product attention; returns the heads' outputs joined back to [b, s, hidden]."""
    heads = config["num_attention_heads"]
    size = config["hidden_size"] // heads
    split = g.constant("split_heads_shape", np.array([0, 0, heads, size], np.int64))
    # Query and key are each scaled by size ** -0.25 in float32, as torch's exported attention does, so
    # dynamic int8 quantization (which rounds activations per tensor at run time) sees the torch export's
    # values to the last bit. Scaling before the Transpose keeps onnxruntime from folding the two scales
    # into one on the MatMul (FusedMatMul): that rounds differently, and int8 vectors then drifted from
    # the torch export's by up to 0.03 in cosine.
    root = np.sqrt(np.float32(1) / np.sqrt(np.float32(size)), dtype=np.float32)
    scale = g.constant("attention_scale_root", np.array(root, np.float32))
    per_head = {}
    for part, perm in (("query", [0, 2, 1, 3]), ("key", [0, 2, 3, 1]), ("value", [0, 2, 1, 3])):
        projected = g.node("Reshape", [_linear(g, hidden, f"{p}.{part}"), split], f"{p}.{part}.heads")
        if part != "value":
            projected = g.node("Mul", [projected, scale], f"{p}.{part}.scaled")
        per_head[part] = g.node("Transpose", [projected], f"{p}.{part}.transposed", perm=perm)
    scores = g.node("MatMul", [per_head["query"], per_head["key"]], f"{p}.scores")
    scores = g.node("Add", [scores, mask], f"{p}.scores_masked")
    probs = g.node("Softmax", [scores], f"{p}.probs", axis=-1)
    context = g.node("MatMul", [probs, per_head["value"]], f"{p}.context_heads")
    context = g.node("Transpose", [context], f"{p}.context_transposed", perm=[0, 2, 1, 3])
    joined = g.constant("join_heads_shape", np.array([0, 0, config["hidden_size"]], np.int64))
    return g.node("Reshape", [context, joined], f"{p}.context")


def _linear(g: _Graph, x: str, p: str) -> str:
    """x @ W.T + b as MatMul (weight stored [in, out]) + Add."""
    product = g.node("MatMul", [x, g.weight(f"{p}.weight", transpose=True)], f"{p}.matmul")
    return g.node("Add", [product, g.weight(f"{p}.bias")], f"{p}.add")


def _layer_norm(g: _Graph, config: dict, x: str, p: str) -> str:
    """LayerNormalization over the last axis with the checkpoint's scale, bias and epsilon."""
    inputs = [x, g.weight(f"{p}.weight"), g.weight(f"{p}.bias")]
    return g.node("LayerNormalization", inputs, p, axis=-1, epsilon=float(config["layer_norm_eps"]))


def _gelu(g: _Graph, x: str, p: str) -> str:
    """Exact GELU, x * 0.5 * (1 + erf(x / sqrt(2))), in the torch export's order of operations."""
    root2 = g.constant("sqrt_2", np.array(np.sqrt(2.0), np.float32))
    erf = g.node("Erf", [g.node("Div", [x, root2], f"{p}.div")], f"{p}.erf")
    plus = g.node("Add", [erf, g.constant("one_float", np.array(1.0, np.float32))], f"{p}.add")
    product = g.node("Mul", [x, plus], f"{p}.mul")
    return g.node("Mul", [product, g.constant("half", np.array(0.5, np.float32))], f"{p}.half")


def _save_atomically(model: onnx.ModelProto, target: Path) -> None:
    """Save ``model`` to a temporary file in ``target``'s folder, then move it over ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, scratch = tempfile.mkstemp(prefix=".bert-", suffix=".onnx", dir=target.parent)
    os.close(fd)
    try:
        onnx.save(model, scratch)
        os.chmod(scratch, 0o644)  # mkstemp makes the file private; the model is no secret
        os.replace(scratch, target)
    finally:
        Path(scratch).unlink(missing_ok=True)
