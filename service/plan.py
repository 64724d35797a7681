"""Turn a validated request into model inputs: which model, which latents, which class vectors.

Everything that needs the registry and can be wrong for a given model raises
`RequestError` naming the field; nothing here touches ONNX Runtime.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from service import runtime
from service.card import ModelCard
from service.errors import RequestError, clip
from service.latents import (
    LabelError,
    SeedRangeError,
    class_vector,
    describe_label,
    image_seeds,
    latent_from_seed,
    latents_from_seed,
    lerp,
    random_seed,
    slerp,
    truncate,
)
from service.registry import ModelEntry
from service.schemas import Endpoint, GenerateRequest, InterpolateRequest


@dataclass
class Plan:
    card: ModelCard
    z: np.ndarray  # [N, latent_dim] float32
    y: np.ndarray | None  # [N, num_classes] float32, None for unconditional models
    seeds: list[int | None]  # per image; None for explicit z
    labels: list[str | dict[str, float] | None]  # per image, as reported back
    seed: int | None  # the request's seed (given or drawn), None for explicit z


def pick_model(registry: dict[str, ModelEntry], name: str | None) -> ModelCard:
    if name is None:
        return next(iter(registry.values())).card
    if name not in registry:
        known = sorted(registry)
        raise RequestError("model", f"unknown model {clip(name)}; available: {known}", 404)
    return registry[name].card


def _classes_doc(card: ModelCard) -> str:
    return ", ".join(f"{i}={c!r}" for i, c in enumerate(card.class_names))


def _class_vectors(card: ModelCard, label: object, n: int, field: str) -> tuple[np.ndarray, list]:
    if label is None:
        # No label on a conditional model: cycle through the classes so a grid shows them all.
        idx = [i % card.num_classes for i in range(n)]
        return np.eye(card.num_classes, dtype=np.float32)[idx], [card.class_names[i] for i in idx]
    try:
        y = class_vector(label, card.class_names)  # type: ignore[arg-type]
        described = describe_label(label, card.class_names)  # type: ignore[arg-type]
    except LabelError as exc:
        raise RequestError(field, str(exc)) from None
    return np.tile(y, (n, 1)), [described] * n


def _reject_label(card: ModelCard, registry: dict[str, ModelEntry], field: str) -> None:
    conditional = [name for name, e in registry.items() if e.card.conditional]
    raise RequestError(
        field,
        f"model {card.name!r} is unconditional and takes no label (it has no classes); "
        f"conditional models: {conditional}",
    )


def _explicit_z(card: ModelCard, vectors: Sequence[Sequence[float]], field: str) -> np.ndarray:
    for i, v in enumerate(vectors):
        if len(v) != card.latent_dim:
            name = f"{field}.{i}" if field == "z" else field
            raise RequestError(
                name, f"latent has length {len(v)}; model {card.name!r} needs {card.latent_dim}"
            )
    return _finite(np.asarray(vectors, dtype=np.float32).reshape(-1, card.latent_dim), field)


def _finite(z: np.ndarray, field: str) -> np.ndarray:
    """float32 latents that stayed finite (huge values overflow float32, or their blend)."""
    if not np.isfinite(z).all():
        raise RequestError(field, "latent values overflow float32; keep |z| well below 3.4e38")
    return z


def _check_pixels(card: ModelCard, images: int, field: str) -> None:
    """An answer of `images` images stays within GAN_MAX_OUTPUT_PIXELS."""
    im = card.image
    pixels = images * im.channels * im.height * im.width
    limit = runtime.limits().max_output_pixels
    if pixels > limit:
        most = limit // (im.channels * im.height * im.width)
        raise RequestError(
            field,
            f"{images} images of {im.width}x{im.height}x{im.channels} are {pixels} pixels, over "
            f"the limit of {limit} (GAN_MAX_OUTPUT_PIXELS): at most {most} for {card.name!r}",
        )


def plan_generate(registry: dict[str, ModelEntry], req: GenerateRequest) -> Plan:
    card = pick_model(registry, req.model)
    if req.label is not None and not card.conditional:
        _reject_label(card, registry, "label")
    _check_pixels(card, req.n, "z" if req.z is not None else "n")
    seeds: list[int | None]
    if req.z is not None:
        z = truncate(_explicit_z(card, req.z, "z"), req.truncation)
        seed, seeds = None, [None] * req.n
    else:
        seed = req.seed if req.seed is not None else random_seed()
        try:
            seeds = list(image_seeds(seed, req.n))
        except SeedRangeError as exc:
            raise RequestError("seed", str(exc)) from None
        z = latents_from_seed(seed, req.n, card.latent_dim, req.truncation)
    labels: list[str | dict[str, float] | None] = [None] * req.n
    y = None
    if card.conditional:
        y, labels = _class_vectors(card, req.label, req.n, "label")
    return Plan(card, z, y, seeds, labels, seed)


def _endpoint_z(card: ModelCard, end: Endpoint, field: str) -> np.ndarray:
    if end.z is not None:
        return _explicit_z(card, [end.z], f"{field}.z")[0]
    return latent_from_seed(end.seed, card.latent_dim)  # type: ignore[arg-type]


def plan_interpolate(registry: dict[str, ModelEntry], req: InterpolateRequest) -> Plan:
    card = pick_model(registry, req.model)
    _check_pixels(card, req.steps, "steps")
    t = np.linspace(0.0, 1.0, req.steps, dtype=np.float32)
    za = truncate(_endpoint_z(card, req.start, "start")[None], req.truncation)[0]
    zb = truncate(_endpoint_z(card, req.end, "end")[None], req.truncation)[0]
    z = _finite((slerp if req.method == "slerp" else lerp)(za, zb, t), "start.z")
    y = None
    labels: list[str | dict[str, float] | None] = [None] * req.steps
    if not card.conditional:
        for field, end in (("start", req.start), ("end", req.end)):
            if end.label is not None:
                _reject_label(card, registry, f"{field}.label")
    else:
        la, lb = req.start.label, req.end.label
        if la is None and lb is None:
            raise RequestError(
                "start.label",
                f"model {card.name!r} is conditional: give a label at start and/or end; "
                f"valid classes: {_classes_doc(card)}",
            )
        la, lb = la if la is not None else lb, lb if lb is not None else la
        ya, _ = _class_vectors(card, la, 1, "start.label")
        yb, _ = _class_vectors(card, lb, 1, "end.label")
        y = lerp(ya[0], yb[0], t)  # the class vector morphs along with the latent
        labels = [
            {card.class_names[k]: round(float(w), 6) for k, w in enumerate(row) if w > 0}
            for row in y
        ]
    seeds: list[int | None] = [None] * req.steps
    return Plan(card, z, y, seeds, labels, None)
