"""uint8 frames -> an animated GIF or WebP with a display time per frame, looping forever."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from service.imaging import to_pil

ANIMATION_FORMATS = {"gif": "GIF", "webp": "WEBP"}


def animation_bytes(pixels: np.ndarray, fmt: str, durations_ms: list[int]) -> bytes:
    """[N, C, H, W] uint8 frames, played in order; WebP is lossless (the pixels survive)."""
    if len(durations_ms) != len(pixels):
        raise ValueError(f"{len(pixels)} frames but {len(durations_ms)} durations")
    frames: list[Image.Image] = [to_pil(p.transpose(1, 2, 0)) for p in pixels]
    options: dict[str, object] = {"lossless": True} if fmt == "webp" else {}
    buffer = io.BytesIO()
    frames[0].save(
        buffer,
        format=ANIMATION_FORMATS[fmt],
        save_all=True,
        append_images=frames[1:],
        duration=list(durations_ms),
        loop=0,
        **options,
    )
    return buffer.getvalue()
