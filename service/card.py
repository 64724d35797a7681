"""The model card: the contract between the exporter (writes it) and the service (reads it).

One pydantic model, imported by `training.export` and by the service, so the schema is
written down exactly once. A card lives beside its `model.onnx` as `card.json`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

CARD_FILE = "card.json"
MODEL_FILE = "model.onnx"


class ImageShape(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channels: int = Field(ge=1, le=4)
    height: int = Field(ge=1)
    width: int = Field(ge=1)


class Training(BaseModel):
    """How the generator was trained and exported, enough to reproduce it."""

    model_config = ConfigDict(extra="forbid")

    command: str = ""
    epochs: int = Field(default=0, ge=0)
    steps: int = Field(default=0, ge=0)
    loss: str = ""
    batch_size: int = Field(default=0, ge=0)
    wall_time_s: float = Field(default=0.0, ge=0)
    device: str = ""
    ema_decay: float = Field(default=0.0, ge=0, lt=1)
    seed: int = 0
    spectral_norm: bool = False
    width: int = Field(default=0, ge=0)
    lr: float = Field(default=0.0, ge=0)
    # Batches of random latents (of `batch_size`) over which the exporter re-estimated the
    # batch-norm running statistics with the exported weights; 0: the statistics as trained.
    bn_batches: int = Field(default=0, ge=0)
    export_parity_max_abs_diff: float | None = Field(default=None, ge=0)


Fraction = Annotated[float, Field(ge=0, le=1)]


class Metrics(BaseModel):
    """Measured quality, written by `training.evaluate` (absent until a model is evaluated)."""

    model_config = ConfigDict(extra="forbid")

    evaluator: str
    samples: int = Field(ge=1)
    fd: float  # Fréchet distance, generated vs. test-set features
    fd_floor: float = Field(gt=0)  # the same distance for real train images
    fd_ratio: float
    diversity: float = Field(ge=0)  # mean pairwise feature distance, generated over real
    diversity_ok: bool
    diversity_per_class: list[float] | None = None  # class order; classes under 2 images left out
    # Conditional models: how often the classifier recovers the requested class.
    class_accuracy: Fraction | None = None
    per_class_accuracy: list[Fraction] | None = None
    # Unconditional models: total variation distance between the classifier's predicted-class
    # histogram of generated images and the uniform one.
    coverage_tvd: Fraction | None = None

    @model_validator(mode="after")
    def _accuracy_overall_and_per_class_together(self) -> Metrics:
        if (self.class_accuracy is None) != (self.per_class_accuracy is None):
            raise ValueError("class_accuracy and per_class_accuracy come together")
        return self


class ModelCard(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    version: str = "1"
    architecture: Literal["dcgan", "cgan", "mlp"]
    dataset: str
    image: ImageShape
    latent_dim: int = Field(ge=1, le=4096)
    class_names: list[str] = Field(default_factory=list)
    input_names: list[str]
    output_names: list[str] = ["image"]
    output_range: tuple[float, float] = (-1.0, 1.0)
    precision: Literal["fp32", "fp16"] = "fp32"
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    parameters: int = 0
    training: Training = Field(default_factory=Training)
    metrics: Metrics | None = None

    @property
    def conditional(self) -> bool:
        return bool(self.class_names)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @model_validator(mode="after")
    def _inputs_match_conditioning(self) -> ModelCard:
        expected = ["z", "y"] if self.class_names else ["z"]
        if self.input_names != expected:
            raise ValueError(
                f"input_names must be {expected} for a model with "
                f"{len(self.class_names)} classes, got {self.input_names}"
            )
        if len({c.lower() for c in self.class_names}) != len(self.class_names):
            raise ValueError("class_names must be unique (case-insensitive)")
        per_class = self.metrics.per_class_accuracy if self.metrics else None
        if per_class is not None and len(per_class) != self.num_classes:
            raise ValueError(
                f"metrics.per_class_accuracy has {len(per_class)} entries for "
                f"{self.num_classes} classes"
            )
        return self

    def save(self, folder: Path) -> Path:
        path = Path(folder) / CARD_FILE
        path.write_text(self.model_dump_json(indent=2) + "\n")
        return path

    @classmethod
    def load(cls, folder: Path) -> ModelCard:
        path = Path(folder) / CARD_FILE
        return cls.model_validate(json.loads(path.read_text()))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
