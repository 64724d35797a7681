"""Bodies of the job routes: what a client submits, and the status it reads back."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from service.latents import MAX_SEED

JobFormat = Literal["npz", "tar"]
Count = Annotated[int, Field(ge=0, le=1 << 31)]
Share = Annotated[float, Field(ge=0, le=1e6, allow_inf_nan=False)]


class JobRequest(BaseModel):
    """A data set to generate: per-class `counts`, or a `total` (with a class `mix`)."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, description="Model name; default: the first in /models.")
    counts: dict[str, Count] | None = Field(
        None,
        description='Images per class, by class name (any case) or index: {"Sneaker": 5000}. '
        "Conditional models only.",
        examples=[{"Sneaker": 5000, "Bag": 5000}],
    )
    total: int | None = Field(None, ge=1, le=1 << 31, description="Images in all.")
    mix: dict[str, Share] | None = Field(
        None,
        description="With `total` on a conditional model: relative class shares, split by "
        "largest remainder; default: every class equally.",
    )
    seed: int | None = Field(
        None, ge=0, le=MAX_SEED, description="Image i uses seed + i; random when omitted."
    )
    truncation: float = Field(1.0, gt=0, le=1, allow_inf_nan=False)
    format: JobFormat = Field(
        "npz",
        description="npz: images uint8 [N, H, W, C], labels, seeds, class_names; "
        "tar: one PNG per image and manifest.csv (file, seed, label).",
    )

    @model_validator(mode="after")
    def _counts_or_total(self) -> JobRequest:
        if (self.counts is None) == (self.total is None):
            raise ValueError("give either counts or total")
        if self.mix is not None and self.total is None:
            raise ValueError("mix goes with total (counts already say how many per class)")
        return self


class JobStatus(BaseModel):
    """What `GET /jobs/status` answers."""

    task_id: str
    status: str
    created_at: str
    executed_at: str | None
    completed_at: str | None
    model: str
    format: JobFormat
    seed: int
    total: int
    done: int
    images_per_s: float | None
    eta_s: float | None
    result_bytes: int | None
    sha256: str | None
    expires_at: str | None
    error: str | None
