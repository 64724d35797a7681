"""Latent walks: a path through 2..16 waypoints (seeds or latents, each with a class), one
frame sequence out: a PNG strip, an animated GIF or an animated WebP.

Each segment between consecutive waypoints is interpolated like `/interpolate` (slerp or lerp
on the latent, lerp on the class vector) with `steps` frames, both ends included; neighbouring
segments share their junction frame, so no frame repeats. With `loop` the walk closes back to
the first waypoint, whose frame is not repeated at the end, so the animation cycles smoothly.
"""

from __future__ import annotations

import itertools
from typing import Literal

import bentoml
import numpy as np
from pydantic import ConfigDict, Field, ValidationInfo, field_validator

from service.card import ModelCard
from service.errors import RequestError
from service.plan import Plan, pick_model, plan_interpolate
from service.registry import ModelEntry
from service.schemas import LABEL_DOC, TRUNCATION_DOC, Endpoint, InterpolateRequest, LabelSpec

MAX_WAYPOINTS = 16
MAX_STEPS = 64
# Frames in one walk: bounds the work of one request (one batch) and keeps the PNG strip
# narrower than browsers' canvas limit (32,767 px) at 64 px frames.
MAX_FRAMES = 256
MIN_FRAME_MS, MAX_FRAME_MS = 20, 2000  # browsers play GIF delays under 20 ms at 100 ms
MAX_HOLD_MS = 5000


class Waypoint(Endpoint):
    """One waypoint of a walk: a seed or an explicit latent, with an optional label."""


def frame_count(points: int, steps: int, loop: bool) -> int:
    segments = points if loop else points - 1
    return segments * (steps - 1) + (0 if loop else 1)


class WalkRequest(bentoml.IODescriptor):
    model_config = ConfigDict(
        extra="forbid",
        strict=True,  # JSON types as the OpenAPI document states them, as on /generate
        json_schema_extra={
            "example": {
                "model": "fashion-cgan",
                "points": [
                    {"seed": 1, "label": "Sneaker"},
                    {"seed": 2, "label": "Sandal"},
                    {"seed": 3, "label": "Ankle boot"},
                ],
                "steps": 12,
                "loop": True,
                "format": "webp",
                "frame_ms": 60,
            },
        },
    )

    model: str | None = Field(None, description="Model name; default: the first in /models.")
    points: list[Waypoint] = Field(
        min_length=2,
        max_length=MAX_WAYPOINTS,
        description="Waypoints in order, each {seed} or {z} with an optional label.",
    )
    label: LabelSpec | None = Field(
        None,
        description="The class of waypoints that give none (conditional models). A waypoint "
        "with neither takes the previous waypoint's class (the first: the next one's). "
        + LABEL_DOC,
    )
    loop: bool = Field(False, description="Walk on from the last waypoint back to the first.")
    steps: int = Field(
        8,
        ge=2,
        le=MAX_STEPS,
        description=f"Frames per segment, both waypoints included; at most {MAX_FRAMES} "
        "frames in all.",
    )
    method: Literal["slerp", "lerp"] = "slerp"
    truncation: float = Field(1.0, gt=0, le=1, allow_inf_nan=False, description=TRUNCATION_DOC)
    format: Literal["png", "gif", "webp"] = Field(
        "png",
        description="png: all frames in one strip, left to right (2 px gaps); gif or webp: "
        "animated, played forward and repeated forever.",
    )
    frame_ms: int = Field(
        80, ge=MIN_FRAME_MS, le=MAX_FRAME_MS, description="Animations: time per frame."
    )
    hold_ms: int = Field(
        0, ge=0, le=MAX_HOLD_MS, description="Animations: extra time on each waypoint's frame."
    )

    @field_validator("steps")
    @classmethod
    def _frames_bounded(cls, steps: int, info: ValidationInfo) -> int:
        points = info.data.get("points")
        loop = bool(info.data.get("loop", False))
        if points:
            frames = frame_count(len(points), steps, loop)
            if frames > MAX_FRAMES:
                raise ValueError(
                    f"{len(points)} waypoints x {steps} steps make {frames} frames; "
                    f"at most {MAX_FRAMES}"
                )
        return steps


def _labels(card: ModelCard, req: WalkRequest) -> list[tuple[object, int]]:
    """Per waypoint: (its label, where that label was given: a waypoint index, -1 the walk).

    A waypoint's own label, else the walk's, else carried from the previous waypoint (the
    leading ones from the first that has one).
    """
    labels: list[tuple[object, int]] = [
        (p.label, i) if p.label is not None else (req.label, -1) for i, p in enumerate(req.points)
    ]
    if not card.conditional:
        return labels  # plan_interpolate rejects any label, named by _segment
    if all(label is None for label, _ in labels):
        classes = ", ".join(f"{i}={c!r}" for i, c in enumerate(card.class_names))
        raise RequestError(
            "label",
            f"model {card.name!r} is conditional: give a label on a waypoint or on the walk; "
            f"valid classes: {classes}",
        )
    for i in range(1, len(labels)):
        if labels[i][0] is None:
            labels[i] = labels[i - 1]
    first = next(item for item in labels if item[0] is not None)
    return [first if label is None else (label, origin) for label, origin in labels]


def _segment(
    registry: dict[str, ModelEntry],
    req: WalkRequest,
    a: int,
    b: int,
    labels: list[tuple[object, int]],
) -> Plan:
    """`/interpolate` from waypoint a to b; its errors renamed to the walk's fields."""
    ends = {}
    for end, i in (("start", a), ("end", b)):
        point = req.points[i].model_dump(exclude_none=True)
        point.pop("label", None)
        if labels[i][0] is not None:
            point["label"] = labels[i][0]
        ends[end] = point
    segment = InterpolateRequest(
        model=req.model, steps=req.steps, method=req.method, truncation=req.truncation, **ends
    )
    try:
        return plan_interpolate(registry, segment)
    except RequestError as exc:
        end, _, rest = exc.field.partition(".")
        if end not in ("start", "end"):
            raise
        i = a if end == "start" else b
        field = f"points.{i}" + (f".{rest}" if rest else "")
        if rest == "label":
            origin = labels[i][1]
            field = "label" if origin < 0 else f"points.{origin}.label"
        raise RequestError(field, exc.message, exc.status) from None


def plan_walk(registry: dict[str, ModelEntry], req: WalkRequest) -> tuple[Plan, list[int]]:
    """The frames' latents and class vectors, and each frame's display time in ms."""
    card = pick_model(registry, req.model)
    labels = _labels(card, req)
    order = list(range(len(req.points))) + ([0] if req.loop else [])
    parts = [_segment(registry, req, a, b, labels) for a, b in itertools.pairwise(order)]
    keep = [req.steps - 1] * len(parts)  # a segment's end is the next one's start
    if not req.loop:
        keep[-1] = req.steps  # the last waypoint's own frame closes an open walk
    z = np.concatenate([p.z[:k] for p, k in zip(parts, keep, strict=True)])
    y = None
    if card.conditional:
        y = np.concatenate([p.y[:k] for p, k in zip(parts, keep, strict=True)])  # type: ignore[index]
    frame_labels = [label for p, k in zip(parts, keep, strict=True) for label in p.labels[:k]]
    durations = []
    for k in keep:
        durations += [req.frame_ms + req.hold_ms] + [req.frame_ms] * (k - 1)
    if not req.loop:
        durations[-1] += req.hold_ms
    plan = Plan(
        card=card,
        z=np.ascontiguousarray(z),
        y=y,
        seeds=[None] * len(z),
        labels=frame_labels,
        seed=None,
    )
    return plan, durations
