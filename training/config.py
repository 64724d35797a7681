"""Training configuration: plain values with defaults, overridable from a file and the CLI."""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path

# Optimiser defaults per loss: the DCGAN paper's Adam for BCE and hinge; the WGAN-GP paper's
# (Gulrajani et al., 2017) for the Wasserstein critic. An explicit value always wins.
LOSS_DEFAULTS: dict[str, dict[str, float]] = {
    "bce": {"lr": 2e-4, "beta1": 0.5, "beta2": 0.999, "n_critic": 1},
    "hinge": {"lr": 2e-4, "beta1": 0.5, "beta2": 0.999, "n_critic": 1},
    "wgan-gp": {"lr": 1e-4, "beta1": 0.0, "beta2": 0.9, "n_critic": 5},
}


@dataclass
class TrainConfig:
    arch: str = "dcgan"
    loss: str = "bce"
    dataset: str = "fashion-mnist"
    data_root: str | None = None
    download: bool = False
    limit: int | None = None  # use only the first N training images
    image_size: int | None = None  # default: the data set's own size
    epochs: int = 5
    batch_size: int = 128
    lr: float | None = None  # Adam; default per loss (LOSS_DEFAULTS)
    lr_d: float | None = None  # discriminator learning rate (default: lr)
    beta1: float | None = None
    beta2: float | None = None
    latent_dim: int = 100
    width: int = 32
    spectral_norm: bool = False
    n_critic: int | None = None  # discriminator steps (each on a fresh batch) per G step
    gp_weight: float = 10.0
    ema_decay: float = 0.999  # 0 disables the EMA generator
    seed: int = 0
    device: str = "auto"  # auto, cpu, cuda, cuda:N
    amp: bool = True  # mixed precision (bf16 autocast) on CUDA; ignored on CPU
    threads: int | None = None  # torch intra-op threads on CPU
    out: str = "runs/default"
    resume: str | None = None
    log_every: int = 10  # steps between loss rows in losses.csv
    grid_size: int = 64  # samples in each epoch's grid

    def __post_init__(self) -> None:
        if self.loss not in LOSS_DEFAULTS:
            raise ValueError(f"unknown loss {self.loss!r}; choose one of {list(LOSS_DEFAULTS)}")
        for name, value in LOSS_DEFAULTS[self.loss].items():
            if getattr(self, name) is None:
                setattr(self, name, type(value)(value))

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in fields(cls)}

    @classmethod
    def from_file(cls, path: str | Path) -> dict:
        """Read overrides from a .toml or .json file (keys are the field names)."""
        path = Path(path)
        text = path.read_text()
        values = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        unknown = set(values) - cls.field_names()
        if unknown:
            raise ValueError(f"{path}: unknown config keys {sorted(unknown)}")
        return values

    def to_dict(self) -> dict:
        return asdict(self)
