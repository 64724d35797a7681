"""Pixels: [-1, 1] floats to uint8, grids, strips and encoded image files (NumPy + Pillow)."""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image

FORMATS = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp", "gif": "image/gif"}


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Map generator output in [-1, 1] to uint8 [0, 255], rounding to nearest."""
    scaled = (np.asarray(images, dtype=np.float32) + 1.0) * 127.5
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def make_grid(images: np.ndarray, columns: int | None = None, padding: int = 2) -> np.ndarray:
    """Tile uint8 images [N, C, H, W] into one [H', W', C] array, near-square by default."""
    n, c, h, w = images.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    grid = np.zeros(
        (rows * (h + padding) + padding, columns * (w + padding) + padding, c), dtype=np.uint8
    )
    for i in range(n):
        top = padding + (i // columns) * (h + padding)
        left = padding + (i % columns) * (w + padding)
        grid[top : top + h, left : left + w] = images[i].transpose(1, 2, 0)
    return grid


def to_pil(array_hwc: np.ndarray) -> Image.Image:
    if array_hwc.ndim == 3 and array_hwc.shape[2] == 1:
        return Image.fromarray(array_hwc[:, :, 0], mode="L")
    return Image.fromarray(array_hwc, mode="RGB")


def encode(image: Image.Image, fmt: str) -> bytes:
    """Encode one image; JPEG and WebP are lossy at quality 95."""
    buffer = io.BytesIO()
    if fmt == "png":
        image.save(buffer, format="PNG")
    elif fmt == "jpeg":
        image.save(buffer, format="JPEG", quality=95)
    elif fmt == "webp":
        image.save(buffer, format="WEBP", quality=95)
    else:
        raise ValueError(f"unknown image format {fmt!r}")
    return buffer.getvalue()


def encode_gif(frames: list[Image.Image], frame_ms: int = 80) -> bytes:
    """An animated GIF that plays forwards then backwards, looping forever."""
    sequence = frames + frames[-2:0:-1]
    buffer = io.BytesIO()
    sequence[0].save(
        buffer,
        format="GIF",
        save_all=True,
        append_images=sequence[1:],
        duration=frame_ms,
        loop=0,
    )
    return buffer.getvalue()
