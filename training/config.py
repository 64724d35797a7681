"""Training configuration: plain values with defaults and help; a file and the CLI override them."""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from training.data import DATASETS

# Optimiser defaults per loss: the DCGAN paper's Adam for BCE and hinge; the WGAN-GP paper's
# (Gulrajani et al., 2017) for the Wasserstein critic. An explicit value always wins.
LOSS_DEFAULTS: dict[str, dict[str, float]] = {
    "bce": {"lr": 2e-4, "beta1": 0.5, "beta2": 0.999, "n_critic": 1},
    "hinge": {"lr": 2e-4, "beta1": 0.5, "beta2": 0.999, "n_critic": 1},
    "wgan-gp": {"lr": 1e-4, "beta1": 0.0, "beta2": 0.9, "n_critic": 5},
}


def option(default: object, help: str, *, shown: str | None = None) -> Any:
    """A config field with its command-line help; `shown` says what a None default means."""
    return field(default=default, metadata={"help": help, "shown": shown})


@dataclass
class TrainConfig:
    """Every value of a training run; `training.cli` makes one flag per field from these."""

    arch: str = option(
        "dcgan", "dcgan, cgan (class-conditional) or mlp (the fully connected baseline)"
    )
    loss: str = option("bce", "bce (non-saturating, real label 0.9), hinge or wgan-gp")
    dataset: str = option(
        "fashion-mnist", f"one of {', '.join(DATASETS)} (one sub-folder per class)"
    )
    data_root: str | None = option(
        None,
        "where data sets live (Fashion-MNIST: its IDX folder)",
        shown="$FASHION_MNIST_DIR (else Debian's folder) for Fashion-MNIST, data/ for others",
    )
    download: bool = option(False, "fetch MNIST, SVHN or CIFAR-10 into --data-root")
    limit: int | None = option(None, "train on the first N images only", shown="all")
    image_size: int | None = option(
        None,
        "image side in pixels (folder images are resized to it)",
        shown="the data set's; 64 for folders",
    )
    epochs: int = option(5, "passes over the training set")
    batch_size: int = option(128, "global batch size (split across ranks)")
    lr: float | None = option(None, "Adam learning rate of the generator")
    lr_d: float | None = option(None, "discriminator learning rate", shown="--lr")
    beta1: float | None = option(None, "Adam beta1")
    beta2: float | None = option(None, "Adam beta2")
    latent_dim: int = option(100, "latent vector size")
    width: int = option(32, "base feature width of G and D")
    spectral_norm: bool = option(False, "spectral normalisation in D (replaces its batch norm)")
    n_critic: int | None = option(
        None, "discriminator steps, each on a fresh batch, per generator step"
    )
    gp_weight: float = option(10.0, "gradient penalty weight (wgan-gp)")
    ema_decay: float = option(
        0.999, "decay of the EMA of generator weights, which is what gets exported; 0 disables"
    )
    seed: int = option(0, "random seed")
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    amp: bool = option(True, "mixed precision (bf16 autocast) on CUDA; ignored on CPU")
    threads: int | None = option(None, "torch intra-op threads on CPU", shown="torch's choice")
    out: str = option("runs/default", "run folder for checkpoint, grids and losses")
    resume: str | None = option(None, "checkpoint to continue from", shown="a fresh start")
    log_every: int = option(10, "steps between loss rows in losses.csv")
    grid_size: int = option(
        64, "samples in each epoch's grid (cGAN: rounded down to whole rows of classes)"
    )

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
