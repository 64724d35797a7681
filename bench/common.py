"""Shared by the benchmarks: the shipped models, devices, sessions as the service builds them.

Inputs come from `service.inputs.model_inputs`, as the service builds them.
"""

from __future__ import annotations

import os
from pathlib import Path

import onnxruntime as ort

from harness import REPO_ROOT as ROOT
from service.engine import Engine
from service.registry import ModelEntry, load_entry, model_folders
from service.settings import Settings, accelerator_available

MODELS_DIR = Path(os.environ.get("GAN_MODELS_DIR", ROOT / "models"))


def shipped_models(models_dir: Path = MODELS_DIR) -> list[ModelEntry]:
    """Every model folder the service would serve, sorted by name, checked as it checks them."""
    return [load_entry(f) for f in model_folders(models_dir)]


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
