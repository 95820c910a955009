"""The ONNX that TensorRT builds from, prepared without TensorRT.

INT8 calibrators are deprecated since TensorRT 10.1 and gone in 11, and TensorRT 11
builds strongly typed networks whose precision comes from the model.  So where the
requested precision must be carried by the model, it is put there first, here, with
ONNX Runtime's tools:

* INT8 from a registered calibration set: static quantization to symmetric Q/DQ
  (explicit quantization, which TensorRT 10 and 11 both build);
* FP16 on a strongly typed build (TensorRT 11, or the `strongly_typed` option): the
  FP32 model converted to FP16 (inputs and outputs kept in their types).

The prepared model is the build's real input: the builder stores it and records its
digest in the attestation next to the registered model's.
"""
from __future__ import annotations

from dataclasses import dataclass

import onnx

from inference.backends.base import BuildError, BuildSpec
from inference.backends.tensorrt_plan import inspect_onnx_precision


@dataclass(frozen=True)
class PreparedInput:
    path: str
    derived: bool  # False: the registered model itself
    note: str = ""


def prepare_input(onnx_path: str, spec: BuildSpec, trt_major: int, work_dir: str) -> PreparedInput:
    try:
        model = onnx.load(onnx_path, load_external_data=False)
    except Exception as exc:
        raise BuildError(f"not a readable ONNX model: {str(exc).splitlines()[0] if str(exc) else exc!r}") from None
    has_qdq, precisions = inspect_onnx_precision(model)
    strongly_typed = trt_major >= 11 or bool((spec.options or {}).get("strongly_typed"))
    from inference.backends.onnxruntime import OnnxRuntimeBackend

    log: list[str] = []
    if spec.precision == "int8" and not has_qdq and spec.calibration_path:
        path = OnnxRuntimeBackend()._to_int8(onnx_path, spec, work_dir, log)
        return PreparedInput(path, True, "quantized to symmetric Q/DQ from the calibration set "
                                         "(ONNX Runtime static quantization, MinMax)")
    if spec.precision == "fp16" and strongly_typed and not has_qdq and precisions == frozenset({"fp32"}):
        path = OnnxRuntimeBackend()._to_fp16(onnx_path, work_dir, log)
        return PreparedInput(path, True, "converted to FP16 for a strongly typed build "
                                         "(onnxconverter-common, inputs and outputs kept in their types)")
    return PreparedInput(onnx_path, False)
