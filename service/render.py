"""uint8 batches -> encoded image files. Pure CPU work; the service runs all but small outputs
in a worker thread (service/app.py, `encode_off_loop`)."""

from __future__ import annotations

import base64

import numpy as np

from service.imaging import encode, encode_gif, make_grid, to_pil


def grid_bytes(pixels: np.ndarray, fmt: str) -> bytes:
    """[N, C, H, W] uint8 -> one image; N = 1 is the bare image, N > 1 a near-square grid."""
    if len(pixels) == 1:
        return encode(to_pil(pixels[0].transpose(1, 2, 0)), fmt)
    return encode(to_pil(make_grid(pixels)), fmt)


def strip_bytes(pixels: np.ndarray, fmt: str = "png") -> bytes:
    """Frames left to right in one row."""
    return encode(to_pil(make_grid(pixels, columns=len(pixels))), fmt)


def gif_bytes(pixels: np.ndarray, frame_ms: int = 80) -> bytes:
    """Animated GIF playing the frames forward then back (2 * steps - 2 frames per loop)."""
    return encode_gif([to_pil(p.transpose(1, 2, 0)) for p in pixels], frame_ms=frame_ms)


def base64_images(pixels: np.ndarray, fmt: str) -> list[str]:
    return [
        base64.b64encode(encode(to_pil(p.transpose(1, 2, 0)), fmt)).decode("ascii") for p in pixels
    ]
