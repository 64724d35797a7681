"""Trainer setup: which torch device a rank runs on, and the generator's EMA update."""

from __future__ import annotations

import torch


def ema_with_warmup(decay: float):
    """EMA update whose decay ramps up as (1 + n) / (10 + n): early on, a fixed 0.999 would
    keep the untrained initial weights in the average for thousands of steps."""

    @torch.no_grad()
    def update(ema: list[torch.Tensor], current: list[torch.Tensor], n_averaged) -> None:
        if not ema[0].is_floating_point():  # integer buffers (batch-norm step counts)
            torch._foreach_copy_(ema, current)
            return
        n = float(n_averaged)
        torch._foreach_lerp_(ema, current, 1.0 - min(decay, (1.0 + n) / (10.0 + n)))

    return update


def pick_device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{local_rank}"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for, but PyTorch sees no CUDA device")
    return torch.device(name)
