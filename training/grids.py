"""Sample grids written to disk as PNG: training's per-epoch samples and evaluation's grids."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from service.imaging import make_grid, to_pil, to_uint8


def save_grid(images_float: np.ndarray, path: str | Path, columns: int | None = None) -> None:
    """Write a PNG grid of generator output in [-1, 1] (near-square unless `columns` is set)."""
    to_pil(make_grid(to_uint8(images_float), columns=columns)).save(path)
