"""Latent vectors and class vectors: the reproducibility contract clients rely on.

Image `i` of a request with seed `s` uses
    z_i = psi * np.random.default_rng(s + i).standard_normal(latent_dim, dtype=np.float32)
(NumPy's default PCG64 generator; psi is `truncation`, 1 by default). Truncation scales the
latent toward the mean of the prior (0), trading variety for typical-looking samples; it
applies to explicit `z` vectors too. Nothing here depends on the rest of a batch.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence

import numpy as np

from service.errors import clip

MAX_SEED = 2**32 - 1

Label = int | str | Mapping[str, float]


class LabelError(ValueError):
    """A label that does not name one of the model's classes."""


class SeedRangeError(ValueError):
    """A seed whose last image would need a seed above MAX_SEED."""


def random_seed() -> int:
    return secrets.randbelow(2**31)


def latent_from_seed(seed: int, latent_dim: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(latent_dim, dtype=np.float32)


def image_seeds(seed: int, n: int) -> list[int]:
    """The seed of each image of an `n`-image request: image i uses seed + i."""
    if seed + n - 1 > MAX_SEED:
        raise SeedRangeError(
            f"image i uses seed + i, which must stay <= {MAX_SEED}: "
            f"the largest seed for n={n} is {MAX_SEED - n + 1}"
        )
    return [seed + i for i in range(n)]


def latents_from_seed(seed: int, n: int, latent_dim: int, truncation: float = 1.0) -> np.ndarray:
    """[n, latent_dim] float32; row i comes from seed + i only."""
    z = np.empty((n, latent_dim), dtype=np.float32)
    for i, s in enumerate(image_seeds(seed, n)):  # drawn into place: no per-row copies
        np.random.default_rng(s).standard_normal(dtype=np.float32, out=z[i])
    return truncate(z, truncation)


def truncate(z: np.ndarray, psi: float) -> np.ndarray:
    if psi == 1.0 and z.dtype == np.float32 and z.flags.c_contiguous:
        return z  # the default: nothing to scale, no copy
    return np.ascontiguousarray(z * np.float32(psi), dtype=np.float32)


def class_index(label: int | str, class_names: Sequence[str]) -> int:
    """A class index or a case-insensitive class name -> index."""
    if isinstance(label, int) and not isinstance(label, bool):
        if 0 <= label < len(class_names):
            return label
    elif isinstance(label, str):
        lowered = [c.lower() for c in class_names]
        key = label.strip().lower()
        if key in lowered:
            return lowered.index(key)
        # ASCII digits only: str.isdigit() also accepts "²", which int() rejects.
        if key.isascii() and key.isdigit() and len(key) <= 6 and int(key) < len(class_names):
            return int(key)
    valid = ", ".join(f"{i}={c!r}" for i, c in enumerate(class_names))
    raise LabelError(f"unknown class {clip(label)}; valid classes: {valid}")


def class_vector(label: Label, class_names: Sequence[str]) -> np.ndarray:
    """One-hot for one class; a mixture {class: weight} is normalised to sum to 1."""
    y = np.zeros(len(class_names), dtype=np.float32)
    if isinstance(label, Mapping):
        if not label:
            raise LabelError("a label mixture needs at least one class")
        for name, weight in label.items():
            y[class_index(name, class_names)] += weight
        total = float(y.sum())
        if not np.isfinite(total) or total <= 0 or (y < 0).any():
            raise LabelError("label mixture weights must be >= 0 and sum to more than 0")
        return y / np.float32(total)
    y[class_index(label, class_names)] = 1.0
    return y


def describe_label(label: Label, class_names: Sequence[str]) -> str | dict[str, float]:
    """The label as clients should read it back: a class name or {class name: weight}."""
    y = class_vector(label, class_names)
    if isinstance(label, Mapping):
        return {class_names[i]: round(float(w), 6) for i, w in enumerate(y) if w > 0}
    return class_names[int(np.argmax(y))]


def lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    t = t[:, None].astype(np.float32)
    return ((1 - t) * a + t * b).astype(np.float32)


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation; falls back to lerp when the vectors are (anti)parallel."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    na, nb = np.linalg.norm(a64), np.linalg.norm(b64)
    if na == 0 or nb == 0:
        return lerp(a, b, t)
    cos = np.clip(np.dot(a64 / na, b64 / nb), -1.0, 1.0)
    omega = np.arccos(cos)
    if np.sin(omega) < 1e-6:
        return lerp(a, b, t)
    t64 = t[:, None].astype(np.float64)
    out = (np.sin((1 - t64) * omega) * a64 + np.sin(t64 * omega) * b64) / np.sin(omega)
    return out.astype(np.float32)
