"""The CUDA path: the engine runs on CUDAExecutionProvider, and FP16 exports match FP32.

Runs wherever onnxruntime-gpu sees an NVIDIA device; skips everywhere else (CPU-only
machines, CI). Install with `pip install -e '.[gpu,dev]'` on a GPU host.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from service.card import MODEL_FILE, ModelCard, sha256_of
from service.engine import Engine
from service.registry import load_entry
from service.settings import parse_providers

ROOT = Path(__file__).resolve().parent.parent
MODEL_FOLDERS = sorted(p.parent for p in (ROOT / "models").glob("*/card.json"))
CUDA = "CUDAExecutionProvider"


def _cuda_present() -> bool:
    has_device = Path("/dev/nvidia0").exists() or shutil.which("nvidia-smi") is not None
    return has_device and CUDA in ort.get_available_providers()


pytestmark = pytest.mark.skipif(
    not _cuda_present(), reason="needs onnxruntime-gpu and an NVIDIA GPU"
)


def _feeds(card: ModelCard, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feeds = {"z": rng.standard_normal((n, card.latent_dim), dtype=np.float32)}
    if card.conditional:
        feeds["y"] = np.eye(card.num_classes, dtype=np.float32)[
            rng.integers(0, card.num_classes, n)
        ]
    return feeds


def _fp32_cpu(folder: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    session = ort.InferenceSession(str(folder / MODEL_FILE), providers=["CPUExecutionProvider"])
    return session.run(["image"], feeds)[0]


def _fp16_folder(folder: Path, out: Path) -> Path:
    """An FP16 variant of a shipped model, converted exactly as `training.export --fp16` does."""
    onnx = pytest.importorskip("onnx")
    from onnxruntime.transformers.float16 import convert_float_to_float16

    out.mkdir(parents=True)
    model = convert_float_to_float16(onnx.load(str(folder / MODEL_FILE)), keep_io_types=True)
    onnx.save(model, str(out / MODEL_FILE))
    card = ModelCard.load(folder).model_copy(
        update={
            "name": f"{folder.name}-fp16",
            "precision": "fp16",
            "sha256": sha256_of(out / MODEL_FILE),
        }
    )
    card.save(out)
    return out


@pytest.mark.parametrize("folder", MODEL_FOLDERS, ids=lambda p: p.name)
def test_engine_runs_on_cuda_by_default(folder: Path) -> None:
    engine = Engine(load_entry(folder), parse_providers("cuda,cpu"), threads=1)
    assert engine.provider == CUDA
    assert engine.session.get_providers()[0] == CUDA
    assert engine.io_binding and engine.output_device == "cuda"  # the default on a GPU
    feeds = _feeds(engine.card, 64)
    images = engine.run(feeds["z"], feeds.get("y"))
    assert images.dtype == np.uint8 and images.shape[0] == 64
    # CUDA kernels (TF32 convolutions included) vs CPU: within a couple of grey levels.
    expected = np.clip(np.rint((_fp32_cpu(folder, feeds) + 1) * 127.5), 0, 255)
    assert np.abs(images.astype(np.int16) - expected.astype(np.int16)).max() <= 3


@pytest.mark.parametrize("folder", MODEL_FOLDERS, ids=lambda p: p.name)
def test_fp16_variant_matches_fp32_on_cuda(folder: Path, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from training.export import FP16_TOLERANCE

    fp16 = _fp16_folder(folder, tmp_path / f"{folder.name}-fp16")
    engine = Engine(load_entry(fp16), parse_providers("cuda,cpu"), threads=1)
    assert engine.provider == CUDA and engine.card.precision == "fp16"
    for n in (1, 7, 64, 256):
        feeds = _feeds(engine.card, n, seed=n)
        half = engine.session.run(["image"], feeds)[0]
        assert half.dtype == np.float32  # keep_io_types: clients see the FP32 contract
        diff = float(np.abs(half - _fp32_cpu(folder, feeds)).max())
        assert diff <= FP16_TOLERANCE, f"batch {n}: FP16 vs FP32 max abs diff {diff:.2e}"
