"""The model card: the contract between the exporter (writes it) and the service (reads it).

One pydantic model, imported by `training.export` and by the service, so the schema is
written down exactly once. A card lives beside its `model.onnx` as `card.json`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

CARD_FILE = "card.json"
MODEL_FILE = "model.onnx"


class ImageShape(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channels: int = Field(ge=1, le=4)
    height: int = Field(ge=1)
    width: int = Field(ge=1)


class Training(BaseModel):
    """How the generator was trained, enough to reproduce it."""

    model_config = ConfigDict(extra="allow")

    command: str = ""
    epochs: int = 0
    steps: int = 0
    loss: str = ""
    batch_size: int = 0
    wall_time_s: float = 0.0
    device: str = ""
    ema_decay: float = 0.0
    seed: int = 0


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
    metrics: dict[str, object] = Field(default_factory=dict)

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
