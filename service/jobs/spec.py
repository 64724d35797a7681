"""A submitted job, resolved against the registry: which model, how many images of which class.

Image `i` of a job with seed `s` is what `/generate` answers for `{"seed": s + i, "label":
<its class>}`: its latent comes from `service.latents` with seed `s + i`. Classes come in
blocks, in class-index order (all of class 0 first, then class 1, ...), whatever order the
request named them in, so the same job always lays out the same data set.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from service.card import ModelCard
from service.errors import RequestError
from service.jobs.schemas import JobFormat, JobRequest
from service.latents import MAX_SEED, LabelError, class_index, latents_from_seed, random_seed
from service.plan import pick_model
from service.registry import ModelEntry

TAR_BLOCK = 512
# Room for the npz container: zip headers, npy headers and the class-name array.
NPZ_OVERHEAD = 64 * 1024
# A PNG of H rows adds a filter byte per row; chunk headers and zlib framing stay under this.
PNG_OVERHEAD = 512
MANIFEST_LINE = 64  # "00000000.png,4294967295,<class name>\n", class names capped below


@dataclass(frozen=True)
class JobSpec:
    model: str
    format: JobFormat
    seed: int
    truncation: float
    total: int
    class_names: list[str]  # the model's; empty for unconditional models
    counts: list[int]  # images per class, class-index order; empty for unconditional models
    shape: tuple[int, int, int]  # C, H, W
    latent_dim: int

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> JobSpec:
        return cls(**{**data, "shape": tuple(data["shape"])})

    def labels(self, start: int, n: int) -> np.ndarray:
        """Class index of images start .. start+n-1 (-1 for unconditional models)."""
        if not self.counts:
            return np.full(n, -1, dtype=np.int64)
        ends = np.cumsum(self.counts)
        return np.searchsorted(ends, np.arange(start, start + n), side="right").astype(np.int64)

    def seeds(self, start: int, n: int) -> np.ndarray:
        return np.arange(self.seed + start, self.seed + start + n, dtype=np.int64)

    def inputs(self, start: int, n: int) -> tuple[np.ndarray, np.ndarray | None]:
        """The model inputs of images start .. start+n-1: latents and one-hot class vectors."""
        z = latents_from_seed(self.seed + start, n, self.latent_dim, self.truncation)
        if not self.counts:
            return z, None
        y = np.eye(len(self.class_names), dtype=np.float32)[self.labels(start, n)]
        return z, y

    def estimated_bytes(self) -> int:
        """An upper bound of the result file's size, reserved against the storage cap."""
        c, h, w = self.shape
        pixels = c * h * w
        if self.format == "npz":
            return self.total * (pixels + 16) + NPZ_OVERHEAD
        per_image = TAR_BLOCK + _blocks(pixels + h + PNG_OVERHEAD)
        manifest = _blocks(self.total * MANIFEST_LINE + 64) + TAR_BLOCK
        return self.total * per_image + manifest + 20 * TAR_BLOCK * 2


def _blocks(size: int) -> int:
    return math.ceil(size / TAR_BLOCK) * TAR_BLOCK


def _largest_remainder(total: int, weights: list[float]) -> list[int]:
    """Split `total` in proportion to `weights`; leftovers go to the largest fractions."""
    scale = total / sum(weights)
    quotas = [w * scale for w in weights]
    counts = [math.floor(q) for q in quotas]
    order = sorted(range(len(weights)), key=lambda k: (-(quotas[k] - counts[k]), k))
    for k in order[: total - sum(counts)]:
        counts[k] += 1
    return counts


def _per_class(card: ModelCard, named: Mapping[str, float], field: str) -> list[float]:
    values = [0.0] * card.num_classes
    seen: dict[int, str] = {}
    for key, value in named.items():
        try:
            k = class_index(key, card.class_names)
        except LabelError as exc:
            raise RequestError(field, str(exc)) from None
        if k in seen:
            raise RequestError(field, f"{key!r} and {seen[k]!r} name the same class")
        seen[k] = key
        values[k] = value
    return values


def make_spec(registry: dict[str, ModelEntry], req: JobRequest, max_images: int) -> JobSpec:
    """The job to run, or RequestError naming the field (404 model, 422 otherwise)."""
    card = pick_model(registry, req.model)
    if not card.conditional and (req.counts is not None or req.mix is not None):
        field = "counts" if req.counts is not None else "mix"
        raise RequestError(field, f"model {card.name!r} is unconditional: give a total, no classes")
    counts: list[int] = []
    if req.counts is not None:
        counts = [int(v) for v in _per_class(card, req.counts, "counts")]
        total = sum(counts)
        if total == 0:
            raise RequestError("counts", "ask for at least one image")
    else:
        total = int(req.total)  # type: ignore[arg-type]
        if card.conditional:
            weights = _per_class(card, req.mix, "mix") if req.mix else [1.0] * card.num_classes
            if sum(weights) <= 0:
                raise RequestError("mix", "give at least one class a share above 0")
            counts = _largest_remainder(total, weights)
    if total > max_images:
        field = "counts" if req.counts is not None else "total"
        raise RequestError(
            field, f"{total} images is more than a job may make ({max_images}, GAN_JOBS_MAX_IMAGES)"
        )
    seed = req.seed if req.seed is not None else random_seed()
    if seed + total - 1 > MAX_SEED:
        raise RequestError(
            "seed",
            f"image i uses seed + i, which must stay <= {MAX_SEED}: the largest seed for "
            f"{total} images is {MAX_SEED - total + 1}",
        )
    im = card.image
    return JobSpec(
        model=card.name,
        format=req.format,
        seed=seed,
        truncation=req.truncation,
        total=total,
        class_names=list(card.class_names),
        counts=counts,
        shape=(im.channels, im.height, im.width),
        latent_dim=card.latent_dim,
    )
