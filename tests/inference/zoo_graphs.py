"""Public-zoo-like ONNX graphs made with onnx.helper, for the parity check: a text
detector (PaddleOCR DB-like: dynamic batch, height and width, a stride-4 backbone,
Resize back up and a Concat with the stride-2 map), a text recognizer (CRNN-like:
height 32, dynamic width, logits per column) and a transformer encoder (BERT-like:
int64 input_ids, attention_mask, token_type_ids through Gather on embedding tables)."""
from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def _model(nodes, name, inputs, outputs, initializers) -> bytes:
    graph = helper.make_graph(nodes, name, inputs, outputs,
                              [numpy_helper.from_array(a, n) for n, a in initializers.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="zoo-like")
    model.ir_version = 8
    return model.SerializeToString()


def _conv(rng, name, cin, cout, k=3, stride=1) -> tuple:
    w = (rng.standard_normal((cout, cin, k, k)) * (1.0 / np.sqrt(cin * k * k))).astype(np.float32)
    b = (rng.standard_normal(cout) * 0.01).astype(np.float32)
    return {f"{name}.w": w, f"{name}.b": b}, dict(kernel_shape=[k, k], strides=[stride, stride],
                                                 pads=[k // 2] * 4)


def detector_bytes(channels: int = 8) -> bytes:
    """[N,3,H,W] -> probability map [N,1,H,W]; a 1x1 input breaks the Concat."""
    rng = np.random.default_rng(11)
    inits, nodes = {}, []
    for name, cin, cout, stride in (("c1", 3, channels, 2), ("c2", channels, channels, 2)):
        w, attrs = _conv(rng, name, cin, cout, stride=stride)
        inits |= w
        src = "x" if name == "c1" else "r1"
        nodes += [helper.make_node("Conv", [src, f"{name}.w", f"{name}.b"], [f"{name}.y"], **attrs),
                  helper.make_node("Relu", [f"{name}.y"], [f"r{name[1]}"])]
    inits["scales"] = np.array([1, 1, 2, 2], dtype=np.float32)
    w, attrs = _conv(rng, "head", 2 * channels, 1, k=1)
    inits |= w
    nodes += [
        helper.make_node("Resize", ["r2", "", "scales"], ["up2"], mode="nearest"),
        helper.make_node("Concat", ["r1", "up2"], ["fused"], axis=1),
        helper.make_node("Conv", ["fused", "head.w", "head.b"], ["logit"], **attrs),
        helper.make_node("Resize", ["logit", "", "scales"], ["logit_full"], mode="linear"),
        helper.make_node("Sigmoid", ["logit_full"], ["prob"]),
    ]
    return _model(nodes, "db-detector", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
                  [helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N", 1, "H", "W"])], inits)


def recognizer_bytes(channels: int = 8, classes: int = 37) -> bytes:
    """[N,3,32,W] -> logits [N, W/4, classes] (CTC-style columns)."""
    rng = np.random.default_rng(12)
    inits, nodes = {}, []
    for name, cin, stride in (("c1", 3, 2), ("c2", channels, 2)):
        w, attrs = _conv(rng, name, cin, channels, stride=stride)
        inits |= w
        src = "x" if name == "c1" else "r1"
        nodes += [helper.make_node("Conv", [src, f"{name}.w", f"{name}.b"], [f"{name}.y"], **attrs),
                  helper.make_node("Relu", [f"{name}.y"], [f"r{name[1]}"])]
    inits["fc"] = (rng.standard_normal((channels, classes)) * 0.3).astype(np.float32)
    nodes += [
        helper.make_node("MaxPool", ["r2"], ["pooled"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("ReduceMean", ["pooled"], ["cols"], axes=[2], keepdims=0),
        helper.make_node("Transpose", ["cols"], ["seq"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["seq", "fc"], ["logits_raw"]),
        helper.make_node("Softmax", ["logits_raw"], ["logits"], axis=-1),
    ]
    return _model(nodes, "crnn-recognizer",
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 32, "W"])],
                  [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", "T", classes])], inits)


def encoder_bytes(vocab: int = 500, hidden: int = 16, positions: int = 64, types: int = 2,
                  id_type=TensorProto.INT64) -> bytes:
    """input_ids, attention_mask, token_type_ids [batch, seq] -> last_hidden [batch, seq, hidden]."""
    rng = np.random.default_rng(13)
    inits = {
        "word_embeddings": (rng.standard_normal((vocab, hidden)) * 0.1).astype(np.float32),
        "position_embeddings": (rng.standard_normal((positions, hidden)) * 0.1).astype(np.float32),
        "token_type_embeddings": (rng.standard_normal((types, hidden)) * 0.1).astype(np.float32),
        "ln.g": np.ones(hidden, dtype=np.float32), "ln.b": np.zeros(hidden, dtype=np.float32),
        "wq": (rng.standard_normal((hidden, hidden)) * 0.2).astype(np.float32),
        "wk": (rng.standard_normal((hidden, hidden)) * 0.2).astype(np.float32),
        "wv": (rng.standard_normal((hidden, hidden)) * 0.2).astype(np.float32),
        "zero": np.array(0, dtype=np.int64), "one": np.array(1, dtype=np.int64),
        "one_f": np.array(1.0, dtype=np.float32), "neg": np.array(-10000.0, dtype=np.float32),
        "scale": np.array(1.0 / np.sqrt(hidden), dtype=np.float32), "axis1": np.array([1], dtype=np.int64),
        "seq_index": np.array(1, dtype=np.int64),
    }
    nodes = [
        helper.make_node("Gather", ["word_embeddings", "input_ids"], ["words"]),
        helper.make_node("Cast", ["token_type_ids"], ["types64"], to=TensorProto.INT64),
        helper.make_node("Gather", ["token_type_embeddings", "types64"], ["typed"]),
        helper.make_node("Shape", ["input_ids"], ["ids_shape"]),
        helper.make_node("Gather", ["ids_shape", "seq_index"], ["seq_len"], axis=0),
        helper.make_node("Range", ["zero", "seq_len", "one"], ["position_ids"]),
        helper.make_node("Gather", ["position_embeddings", "position_ids"], ["placed"]),
        helper.make_node("Add", ["words", "typed"], ["wt"]),
        helper.make_node("Add", ["wt", "placed"], ["embedded"]),
        helper.make_node("LayerNormalization", ["embedded", "ln.g", "ln.b"], ["h"], axis=-1, epsilon=1e-5),
        helper.make_node("MatMul", ["h", "wq"], ["q"]),
        helper.make_node("MatMul", ["h", "wk"], ["k"]),
        helper.make_node("MatMul", ["h", "wv"], ["v"]),
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["q", "kt"], ["qk"]),
        helper.make_node("Mul", ["qk", "scale"], ["scores"]),
        helper.make_node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask_f", "axis1"], ["mask3"]),
        helper.make_node("Sub", ["one_f", "mask3"], ["masked_out"]),
        helper.make_node("Mul", ["masked_out", "neg"], ["bias"]),
        helper.make_node("Add", ["scores", "bias"], ["biased"]),
        helper.make_node("Softmax", ["biased"], ["attn"], axis=-1),
        helper.make_node("MatMul", ["attn", "v"], ["ctx"]),
        helper.make_node("Add", ["ctx", "h"], ["last_hidden_state"]),
    ]
    inputs = [helper.make_tensor_value_info(n, id_type, ["batch", "sequence"])
              for n in ("input_ids", "attention_mask", "token_type_ids")]
    return _model(nodes, "bert-like-encoder", inputs,
                  [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", hidden])],
                  inits)
