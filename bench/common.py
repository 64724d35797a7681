"""Shared by the benchmarks: model folders, inputs exactly as the service builds them, sessions."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnxruntime as ort

from harness import REPO_ROOT as ROOT
from service.card import MODEL_FILE, ModelCard, sha256_of
from service.engine import Engine
from service.latents import class_vector, latents_from_seed
from service.registry import ModelEntry, load_entry
from service.settings import Settings, accelerator_available

MODELS_DIR = Path(os.environ.get("GAN_MODELS_DIR", ROOT / "models"))


def shipped_models(models_dir: Path = MODELS_DIR) -> list[ModelEntry]:
    """Every model folder with a card, sorted by name, checked as the service checks it."""
    folders = sorted(p.parent for p in Path(models_dir).glob("*/card.json"))
    return [load_entry(f) for f in folders]


def inputs(card: ModelCard, n: int, seed: int = 0, label: int = 0) -> dict[str, np.ndarray]:
    """Feeds for one request, built with the service's own latent and class-vector code."""
    feeds = {"z": latents_from_seed(seed, n, card.latent_dim)}
    if card.conditional:
        feeds["y"] = np.tile(class_vector(label % card.num_classes, card.class_names), (n, 1))
    return feeds


def providers_for(device: str) -> list[str]:
    return (
        ["CUDAExecutionProvider", "CPUExecutionProvider"]
        if device == "cuda"
        else ["CPUExecutionProvider"]
    )


def devices() -> list[str]:
    """`cpu`, plus `cuda` where onnxruntime-gpu and a device are present (as the service
    decides: onnxruntime-gpu lists CUDA even on a machine without a GPU)."""
    return ["cpu", "cuda"] if accelerator_available(["CUDAExecutionProvider"]) else ["cpu"]


def session(model: ModelEntry, device: str = "cpu") -> ort.InferenceSession:
    """The session exactly as the service builds it (`service.engine.Engine`: its session
    options, thread count from GAN_ORT_THREADS, warm-up), restricted to one device."""
    threads = Settings.from_env().ort_threads
    return Engine(model, providers_for(device), threads).session


def describe_options(sess: ort.InferenceSession) -> str:
    o = sess.get_session_options()
    return (
        f"intra_op_num_threads={o.intra_op_num_threads}, "
        f"inter_op_num_threads={o.inter_op_num_threads}, "
        f"graph_optimization_level={o.graph_optimization_level.name}, "
        f"providers={sess.get_providers()}"
    )


def fp16_variant(model: ModelEntry, out_dir: Path) -> ModelEntry:
    """An FP16 copy of `model` in `out_dir`, converted as `training.export --fp16` does
    (float32 inputs and outputs kept), with a matching card, so the Engine accepts it."""
    import onnx

    from training.fp16 import to_fp16

    folder = Path(out_dir) / f"{model.name}-fp16"
    folder.mkdir(parents=True, exist_ok=True)
    half = to_fp16(onnx.load(str(model.onnx_path)))
    onnx.checker.check_model(half)
    onnx.save(half, str(folder / MODEL_FILE))
    card = model.card.model_copy(
        update={
            "name": f"{model.name}-fp16",
            "precision": "fp16",
            "sha256": sha256_of(folder / MODEL_FILE),
        }
    )
    card.save(folder)
    return ModelEntry(card, folder)
