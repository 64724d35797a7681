"""The CUDA path: the engine runs on CUDAExecutionProvider, and FP16 exports match FP32.

Runs wherever onnxruntime-gpu sees an NVIDIA device; skips everywhere else (CPU-only
machines, CI). Install with `pip install -e '.[gpu,dev]'` on a GPU host.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from harness import MODELS_DIR
from harness.fp16 import fp16_variant
from service.card import MODEL_FILE
from service.engine import GPU_BUCKETS, Engine
from service.inputs import model_inputs
from service.registry import load_entry, model_folders
from service.settings import accelerator_available, parse_providers

MODEL_FOLDERS = model_folders(MODELS_DIR)
CUDA = "CUDAExecutionProvider"


# The service's own test: a CUDA provider in this ONNX Runtime build and a device present.
pytestmark = pytest.mark.skipif(
    not accelerator_available([CUDA]), reason="needs onnxruntime-gpu and an NVIDIA GPU"
)


def _fp32_cpu(folder: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    session = ort.InferenceSession(str(folder / MODEL_FILE), providers=["CPUExecutionProvider"])
    return session.run(["image"], feeds)[0]


@pytest.mark.parametrize("folder", MODEL_FOLDERS, ids=lambda p: p.name)
def test_engine_runs_on_cuda_by_default(folder: Path) -> None:
    engine = Engine(load_entry(folder), parse_providers("cuda,cpu"), threads=1)
    assert engine.provider == CUDA
    assert engine.session.get_providers()[0] == CUDA
    assert engine.io_binding and engine.output_device == "cuda"  # the default on a GPU
    # No cuDNN benchmark per new batch size (service.settings.CUDNN_CONV_SEARCH).
    options = engine.session.get_provider_options()[CUDA]
    assert options["cudnn_conv_algo_search"] == "HEURISTIC"
    assert engine.buckets == GPU_BUCKETS  # auto on a GPU: batches padded to warmed sizes
    for n in (64, 7):  # 7 runs padded to 8
        feeds = model_inputs(engine.card, n)
        images = engine.run(feeds["z"], feeds.get("y"))
        assert images.dtype == np.uint8 and images.shape[0] == n
        # CUDA kernels (TF32 convolutions included) vs CPU: within a couple of grey levels.
        expected = np.clip(np.rint((_fp32_cpu(folder, feeds) + 1) * 127.5), 0, 255)
        assert np.abs(images.astype(np.int16) - expected.astype(np.int16)).max() <= 3


@pytest.mark.parametrize("folder", MODEL_FOLDERS, ids=lambda p: p.name)
def test_fp16_variant_matches_fp32_on_cuda(folder: Path, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from training.export import FP16_TOLERANCE

    pytest.importorskip("onnx")
    fp16 = fp16_variant(load_entry(folder), tmp_path)  # as `training.export --fp16` converts
    engine = Engine(fp16, parse_providers("cuda,cpu"), threads=1)
    assert engine.provider == CUDA and engine.card.precision == "fp16"
    for n in (1, 7, 64, 256):
        feeds = model_inputs(engine.card, n, seed=n)
        half = engine.session.run(["image"], feeds)[0]
        assert half.dtype == np.float32  # keep_io_types: clients see the FP32 contract
        diff = float(np.abs(half - _fp32_cpu(folder, feeds)).max())
        assert diff <= FP16_TOLERANCE, f"batch {n}: FP16 vs FP32 max abs diff {diff:.2e}"
