"""The FP16 variant of an exported generator: half-precision weights, float32 inputs/outputs.

Torch-free, so the benchmarks and the GPU tests convert shipped models exactly as
`python -m training.export --fp16` does.
"""

from __future__ import annotations

import onnx
import onnx_ir


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    # keep_io_types: inputs and outputs stay float32, so clients see the same contract.
    model = convert_float_to_float16(model, keep_io_types=True)
    # The converter appends its input casts out of order; ONNX requires a sorted graph.
    graph = onnx_ir.from_proto(model)
    graph.graph.sort()
    return onnx_ir.to_proto(graph)
