"""Small real ONNX models for the demo, the tests and the benchmarks, made on the spot
(no binaries shipped): a credit-scoring classifier trained with scikit-learn and
converted with skl2onnx, a two-input model with an int64 input and a dynamic batch
axis, a small CNN whose plain inference takes about a millisecond, a deep MLP, and a
ResNet-18-sized CNN for the build benchmark."""
from __future__ import annotations

import hashlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CREDIT_FEATURES = ["age", "income_k", "debt_ratio", "credit_lines", "late_payments", "years_employed"]



def _model_bytes(graph) -> bytes:
    """A checked opset-17 model of the graph (IR 8, which every ONNX Runtime here reads)."""
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="traceledger-samples")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()

def credit_training_data(n: int = 2000, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.column_stack([
        rng.integers(19, 75, n), rng.gamma(4.0, 12.0, n), rng.beta(2, 5, n),
        rng.integers(0, 12, n), rng.poisson(0.6, n), rng.integers(0, 30, n),
    ]).astype(np.float32)
    logit = 0.04 * x[:, 1] - 5.0 * x[:, 2] - 0.9 * x[:, 4] + 0.05 * x[:, 5] - 0.5
    y = (logit + rng.normal(0, 0.7, n) > 0).astype(np.int64)
    return x, y


def credit_model_bytes(seed: int = 7) -> tuple[bytes, str]:
    """(ONNX bytes, sha256 of the training data) for a credit-scoring MLP."""
    from skl2onnx import to_onnx
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = credit_training_data(seed=seed)
    clf = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(16, 8), max_iter=300, random_state=seed))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(x, y)
    onx = to_onnx(clf, x[:1], options={id(clf.steps[-1][1]): {"zipmap": False}}, target_opset=17)
    data_digest = hashlib.sha256(x.tobytes() + y.tobytes()).hexdigest()
    return onx.SerializeToString(), data_digest


def two_input_model_bytes(features: int = 4, categories: int = 10, seed: int = 1) -> bytes:
    """features: float32 [batch, F]; category: int64 [batch] (dynamic batch) →
    score: float32 [batch, 1] = features·W + embedding[category]."""
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.normal(size=(features, 1)).astype(np.float32), "W")
    emb = numpy_helper.from_array(rng.normal(size=(categories, 1)).astype(np.float32), "E")
    nodes = [
        helper.make_node("MatMul", ["features", "W"], ["linear"]),
        helper.make_node("Gather", ["E", "category"], ["bias"], axis=0),
        helper.make_node("Add", ["linear", "bias"], ["sum"]),
        helper.make_node("Sigmoid", ["sum"], ["score"]),
    ]
    graph = helper.make_graph(
        nodes, "two_input",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", features]),
         helper.make_tensor_value_info("category", TensorProto.INT64, ["batch"])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch", 1])],
        initializer=[w, emb],
    )
    return _model_bytes(graph)


def small_cnn_bytes(channels: int = 16, size: int = 64, seed: int = 3) -> bytes:
    """input: float32 [batch, 3, size, size] → logits [batch, 10]; two conv blocks."""
    rng = np.random.default_rng(seed)

    def init(name, shape):
        return numpy_helper.from_array((rng.normal(size=shape) * 0.1).astype(np.float32), name)

    inits = [init("c1w", (channels, 3, 3, 3)), init("c1b", (channels,)),
             init("c2w", (channels * 2, channels, 3, 3)), init("c2b", (channels * 2,)),
             init("fcw", (channels * 2, 10)), init("fcb", (10,))]
    nodes = [
        helper.make_node("Conv", ["input", "c1w", "c1b"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "c2w", "c2b"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"]),
        helper.make_node("MatMul", ["flat", "fcw"], ["mm"]),
        helper.make_node("Add", ["mm", "fcb"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "small_cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
        initializer=inits,
    )
    return _model_bytes(graph)


def deep_mlp_bytes(width: int = 64, layers: int = 300, seed: int = 5) -> bytes:
    """x: float32 [batch, width] → y [batch, width] through `layers` MatMul+Relu blocks.
    Small on disk but with many nodes, so that quantizing it takes real time: the
    long-build case (a worker killed mid-build) and the build benchmark use it."""
    rng = np.random.default_rng(seed)
    scale = np.sqrt(2.0 / width)
    inits, nodes, current = [], [], "x"
    for i in range(layers):
        weights = (rng.standard_normal((width, width)) * scale).astype(np.float32)
        inits.append(numpy_helper.from_array(weights, f"w{i}"))
        nodes += [helper.make_node("MatMul", [current, f"w{i}"], [f"m{i}"]),
                  helper.make_node("Relu", [f"m{i}"], [f"r{i}"])]
        current = f"r{i}"
    nodes.append(helper.make_node("Identity", [current], ["y"]))
    graph = helper.make_graph(
        nodes, "deep_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", width])],
        initializer=inits,
    )
    return _model_bytes(graph)


def resnet_bytes(width: int = 64, blocks: tuple[int, ...] = (2, 2, 2, 2), size: int = 224, classes: int = 1000,
                 seed: int = 11) -> bytes:
    """input: float32 [batch, 3, size, size] → logits [batch, classes]: ResNet-18's shape
    by default (stride-2 stem and pooling, four stages of residual basic blocks that
    double the width and halve the resolution, global pooling, one dense layer), with
    batch normalization folded into the convolutions as an exporter leaves it.  About
    11.7M parameters: the realistically sized model of the build benchmark.  Its
    weights are random but shaped like trained ones (bounded, residual branches of small
    gain, logits of unit scale), so that its INT8 build passes the parity check as a
    trained network's does."""
    rng = np.random.default_rng(seed)
    inits, nodes = [], []

    def conv(source: str, name: str, c_in: int, c_out: int, k: int, stride: int, relu: bool = True,
             gain: float = 1.0) -> str:
        # He-uniform: the bounded spread of trained weights, which per-tensor INT8 keeps.
        bound = gain * np.sqrt(6.0 / (c_in * k * k))
        inits.append(numpy_helper.from_array(rng.uniform(-bound, bound, (c_out, c_in, k, k)).astype(np.float32),
                                             f"{name}_w"))
        inits.append(numpy_helper.from_array(np.zeros(c_out, np.float32), f"{name}_b"))
        pad = k // 2
        nodes.append(helper.make_node("Conv", [source, f"{name}_w", f"{name}_b"], [name], strides=[stride, stride],
                                      pads=[pad] * 4))
        if not relu:
            return name
        nodes.append(helper.make_node("Relu", [name], [f"{name}_r"]))
        return f"{name}_r"

    current = conv("input", "stem", 3, width, 7, 2)
    nodes.append(helper.make_node("MaxPool", [current], ["pool"], kernel_shape=[3, 3], strides=[2, 2],
                                  pads=[1, 1, 1, 1]))
    current, channels = "pool", width
    for stage, count in enumerate(blocks):
        out = width << stage
        for block in range(count):
            stride = 2 if stage and not block else 1
            name = f"s{stage}b{block}"
            inner = conv(current, f"{name}c1", channels, out, 3, stride)
            # A small gain on the block's last (batch-norm-folded) convolution, as trained
            # networks have, keeps the residual sum from growing block after block.
            inner = conv(inner, f"{name}c2", out, out, 3, 1, relu=False, gain=0.25)
            shortcut = conv(current, f"{name}down", channels, out, 1, stride, relu=False) if (
                stride != 1 or channels != out) else current
            nodes += [helper.make_node("Add", [inner, shortcut], [f"{name}_sum"]),
                      helper.make_node("Relu", [f"{name}_sum"], [f"{name}_out"])]
            current, channels = f"{name}_out", out
    bound = np.sqrt(0.75 / channels)  # logits of unit scale
    inits.append(numpy_helper.from_array(rng.uniform(-bound, bound, (channels, classes)).astype(np.float32), "fc_w"))
    inits.append(numpy_helper.from_array(np.zeros(classes, np.float32), "fc_b"))
    nodes += [helper.make_node("GlobalAveragePool", [current], ["gap"]),
              helper.make_node("Flatten", ["gap"], ["flat"]),
              helper.make_node("MatMul", ["flat", "fc_w"], ["mm"]),
              helper.make_node("Add", ["mm", "fc_b"], ["logits"])]
    graph = helper.make_graph(
        nodes, "resnet",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes])],
        initializer=inits,
    )
    return _model_bytes(graph)
