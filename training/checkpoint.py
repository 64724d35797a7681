"""Checkpoints: everything needed to resume exactly, written atomically, read with clear errors."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel

from training.networks import NetworkSpec, build


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt or not one of ours."""


REQUIRED_KEYS = ("format", "spec", "config", "generator", "discriminator", "epoch", "step")
FORMAT = "gan-checkpoint/1"


def rng_state() -> dict[str, Any]:
    state = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(path: Path, payload: dict[str, Any]) -> None:
    """Write to a temporary file and rename, so a crash never leaves half a checkpoint."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"format": FORMAT, **payload}, tmp)
    os.replace(tmp, path)


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        # weights_only=False: the payload holds RNG states and plain config dicts we wrote.
        payload = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        raise CheckpointError(f"checkpoint {path} is corrupt or unreadable: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a training checkpoint of this project")
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {missing}")
    return payload


def generator_from_checkpoint(state: dict[str, Any]) -> torch.nn.Module:
    """The generator to export: EMA weights when the run kept them, in eval mode."""
    generator, _ = build(NetworkSpec(**state["spec"]))
    if state.get("ema") is not None:
        ema = AveragedModel(generator, use_buffers=True)
        ema.load_state_dict(state["ema"])
        generator = ema.module
    else:
        generator.load_state_dict(state["generator"])
    return generator.eval()
