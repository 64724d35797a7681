"""FLOPs per generated image, counted from the ONNX graph (batch fixed to 1, shapes inferred).

    python -m bench.flops

A multiply-add counts as 2 FLOPs. Gemm/MatMul/Conv/ConvTranspose dominate; every other op
is counted as one FLOP per output element (BatchNorm, ReLU, tanh, casts: a rounding error).
With a GPU's peak FLOP/s this gives the fraction of peak: images/s × FLOPs/image ÷ peak.
"""

from __future__ import annotations

import math
import subprocess
from dataclasses import dataclass
from pathlib import Path

import onnx
from onnx import shape_inference

from bench.common import shipped_models

MATMUL_OPS = {"Gemm", "MatMul", "Conv", "ConvTranspose"}
RESHAPING_OPS = {
    "Reshape",
    "Concat",
    "Flatten",
    "Squeeze",
    "Unsqueeze",
    "Transpose",
    "Shape",
    "Constant",
    "Identity",
    "Gather",
    "Slice",
}


@dataclass
class Flops:
    model: str
    matmul: int  # 2 × multiply-adds in Gemm/MatMul/Conv/ConvTranspose
    other: int  # one per output element of the remaining compute ops

    @property
    def total(self) -> int:
        return self.matmul + self.other


def _shapes(model: onnx.ModelProto) -> dict[str, list[int]]:
    for value in model.graph.input:
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].dim_value = 1  # the dynamic batch axis
    inferred = shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    graph = inferred.graph
    shapes = {i.name: list(i.dims) for i in graph.initializer}
    for v in [*graph.value_info, *graph.input, *graph.output]:
        shapes[v.name] = [d.dim_value for d in v.type.tensor_type.shape.dim]
    return shapes


def _attr(node: onnx.NodeProto, name: str, default: object) -> object:
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _macs(node: onnx.NodeProto, shapes: dict[str, list[int]]) -> int:
    out = shapes[node.output[0]]
    if node.op_type == "Gemm":
        a = shapes[node.input[0]]
        k = a[0] if _attr(node, "transA", 0) else a[1]
        return math.prod(out) * k
    if node.op_type == "MatMul":
        return math.prod(out) * shapes[node.input[0]][-1]
    weight = shapes[node.input[1]]  # Conv: [Cout, Cin/g, k...]; ConvTranspose: [Cin, Cout/g, k...]
    if node.op_type == "Conv":
        return math.prod(out) * math.prod(weight[1:])
    x = shapes[node.input[0]]  # ConvTranspose: every input pixel scatters a Cout/g × k kernel
    return math.prod(x) * math.prod(weight[1:])


def count(path: Path, name: str = "") -> Flops:
    model = onnx.load(str(path))
    shapes = _shapes(model)
    matmul = other = 0
    for node in model.graph.node:
        if node.op_type in MATMUL_OPS:
            matmul += 2 * _macs(node, shapes)
        elif node.op_type not in RESHAPING_OPS and node.output[0] in shapes:
            other += math.prod(shapes[node.output[0]])
    return Flops(model=name or path.parent.name, matmul=matmul, other=other)


def run() -> list[Flops]:
    return [count(m.onnx_path, m.name) for m in shipped_models()]


def main() -> None:
    for f in run():
        print(
            f"{f.model:<16} {f.total / 1e6:8.2f} MFLOP/image "
            f"({f.matmul / 1e6:.2f} in Gemm/Conv, {f.other / 1e6:.3f} elementwise)"
        )


if __name__ == "__main__":
    main()


# Dense peak FLOP/s (FP32 without TF32, FP16 tensor cores) from NVIDIA's data sheets.
GPU_PEAKS = {
    "H100 PCIe": (51e12, 756e12),
    "H100": (67e12, 989e12),  # SXM
    "H200": (67e12, 989e12),
    "A100": (19.5e12, 312e12),
    "L4": (30.3e12, 121e12),
}


def gpu_name() -> str | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.splitlines()[0].strip() if out.returncode == 0 and out.stdout else None


def gpu_peak(name: str | None) -> tuple[float, float] | None:
    """(FP32, FP16) peak FLOP/s for a known GPU name, longest matching key first."""
    for key in sorted(GPU_PEAKS, key=len, reverse=True):
        if name and key.lower() in name.lower():
            return GPU_PEAKS[key]
    return None
