"""Request and response bodies of the HTTP API (pydantic; limits and examples live here).

Requests subclass `bentoml.IODescriptor` so BentoML uses them as the whole JSON body and
reports validation errors under their own names. Checks that need the model registry
(does the model exist, is the label one of its classes, is `z` the right length), and the
`seed + n - 1 <= MAX_SEED` bound, happen in `service.plan`, answered in the same error format.
"""

from __future__ import annotations

from typing import Annotated, Literal

import bentoml
from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

from service.latents import MAX_SEED

MAX_IMAGES = 64
MAX_STEPS = 64
MAX_LATENT = 4096

# Latent values must stay finite as float32 (ONNX Runtime's input type): larger ones overflow.
FLOAT32_MAX = 3.4028234663852886e38
FiniteFloat = Annotated[float, Field(allow_inf_nan=False, ge=-FLOAT32_MAX, le=FLOAT32_MAX)]
Vector = Annotated[list[FiniteFloat], Field(min_length=1, max_length=MAX_LATENT)]
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
# Mixture weights stay well inside float32: no weight rounds to 0, no sum overflows.
MIN_WEIGHT, MAX_WEIGHT = 1e-6, 1e6
Weight = Annotated[float, Field(ge=MIN_WEIGHT, le=MAX_WEIGHT, allow_inf_nan=False)]
# A class index, a class name (case-insensitive) or a mixture {class: weight}.
LabelSpec = StrictInt | str | dict[str, Weight]

LABEL_DOC = (
    "Conditional models only: a class index, a class name (case-insensitive), or a mixture "
    '{"Sneaker": 0.5, "Sandal": 0.5} (weights in [1e-6, 1e6], normalised to sum 1). Omitted on a '
    "conditional model: image i gets class i mod num_classes."
)
TRUNCATION_DOC = (
    "psi in (0, 1]: every latent is scaled by psi toward the prior's mean 0 "
    "(1 = no truncation; smaller = more typical, less varied)."
)


class GenerateRequest(bentoml.IODescriptor):
    model_config = ConfigDict(
        extra="forbid",
        # JSON types as the OpenAPI document states them: no "5" for 5, no false for 0.
        strict=True,
        # BentoML's OpenAPI schema takes one `example` (not a list of `examples`).
        json_schema_extra={
            "example": {"model": "fashion-cgan", "n": 16, "seed": 1, "label": "Sneaker"},
        },
    )

    model: str | None = Field(None, description="Model name; default: the first in /models.")
    n: int = Field(1, ge=1, le=MAX_IMAGES, description="Number of images (a grid when > 1).")
    seed: Seed | None = Field(
        None,
        description="Image i uses the latent from seed + i (NumPy PCG64). Random when omitted "
        "and reported in the X-Seed response header.",
    )
    z: list[Vector] | None = Field(
        None,
        min_length=1,
        max_length=MAX_IMAGES,
        description="Explicit latents instead of a seed, one per image (length = latent_dim).",
    )
    label: LabelSpec | None = Field(None, description=LABEL_DOC)
    truncation: float = Field(1.0, gt=0, le=1, allow_inf_nan=False, description=TRUNCATION_DOC)
    format: Literal["png", "jpeg", "webp"] = "png"

    @model_validator(mode="after")
    def _seed_or_z(self) -> GenerateRequest:
        if self.z is not None:
            if self.seed is not None:
                raise ValueError("give either seed or z, not both")
            if "n" in self.model_fields_set:
                raise ValueError("give either n or z, not both (z holds one latent per image)")
            self.n = len(self.z)
        return self


class Endpoint(BaseModel):
    """One end of an interpolation: a seed or an explicit latent, with an optional label."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        # The validator's rule, in the JSON schema too: exactly one of seed and z is given.
        json_schema_extra={
            "oneOf": [
                {"required": ["seed"], "properties": {"seed": {"type": "integer"}}},
                {"required": ["z"], "properties": {"z": {"type": "array"}}},
            ]
        },
    )

    seed: Seed | None = None
    z: Vector | None = None
    label: LabelSpec | None = Field(None, description=LABEL_DOC)

    @model_validator(mode="after")
    def _one_source(self) -> Endpoint:
        if (self.seed is None) == (self.z is None):
            raise ValueError("give exactly one of seed or z")
        return self


class InterpolateRequest(bentoml.IODescriptor):
    model_config = ConfigDict(
        extra="forbid",
        # JSON types as the OpenAPI document states them: no "5" for 5, no false for 0.
        strict=True,
        json_schema_extra={
            "example": {
                "model": "fashion-cgan",
                "start": {"seed": 5, "label": "Sandal"},
                "end": {"seed": 5, "label": "Sneaker"},
                "steps": 16,
                "format": "gif",
            },
        },
    )

    model: str | None = Field(None, description="Model name; default: the first in /models.")
    start: Endpoint
    end: Endpoint
    steps: int = Field(8, ge=2, le=MAX_STEPS, description="Frames, both ends included.")
    method: Literal["slerp", "lerp"] = "slerp"
    truncation: float = Field(1.0, gt=0, le=1, allow_inf_nan=False, description=TRUNCATION_DOC)
    format: Literal["png", "gif"] = Field(
        "png", description="png: one strip, left to right; gif: animated, forward then back."
    )


class Sample(BaseModel):
    index: int
    seed: int | None = Field(description="The seed of this image's latent; null for explicit z.")
    label: str | dict[str, float] | None = Field(
        description="Class name, or {class: weight} for a mixture; null when unconditional."
    )
    image: str = Field(description="The encoded image, base64.")


class SamplesResponse(bentoml.IODescriptor):
    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "model": "fashion-cgan",
                "format": "png",
                "width": 28,
                "height": 28,
                "images": [{"index": 0, "seed": 1, "label": "Sneaker", "image": "iVBORw0KGgo..."}],
            }
        }
    )

    model: str
    format: str
    width: int
    height: int
    images: list[Sample]
