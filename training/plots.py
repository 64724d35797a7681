"""Loss curves from losses.csv to a PNG (matplotlib, headless)."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def plot_losses(csv_path: Path, png_path: Path) -> None:
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    steps = [int(r["step"]) for r in rows]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    for key in ("d_loss", "g_loss"):
        top.plot(steps, [float(r[key]) for r in rows], label=key, linewidth=0.8)
    top.set_ylabel("loss")
    top.legend()
    for key in ("d_real", "d_fake"):
        bottom.plot(steps, [float(r[key]) for r in rows], label=key, linewidth=0.8)
    bottom.set_ylabel("mean D logit")
    bottom.set_xlabel("generator step")
    bottom.legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
