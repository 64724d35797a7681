"""Loss curves from losses.csv to a PNG (matplotlib, headless)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes


def read_losses(csv_path: Path) -> tuple[list[int], dict[str, list[float]]]:
    """Generator steps and every other numeric column of a run's losses.csv."""
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    steps = [int(r["step"]) for r in rows]
    columns = {k: [float(r[k]) for r in rows] for k in (rows[0] if rows else {}) if k != "step"}
    return steps, columns


def draw_curves(
    ax: Axes, losses: tuple[list[int], dict[str, list[float]]], keys: Sequence[str], ylabel: str
) -> None:
    steps, columns = losses
    for key in keys:
        ax.plot(steps, columns[key], label=key, linewidth=0.8)
    ax.set_ylabel(ylabel)
    ax.legend()


def plot_losses(csv_path: Path, png_path: Path) -> None:
    losses = read_losses(csv_path)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    draw_curves(top, losses, ("d_loss", "g_loss"), "loss")
    draw_curves(bottom, losses, ("d_real", "d_fake"), "mean D logit")
    bottom.set_xlabel("generator step")
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)


def plot_loss_panels(
    panels: Sequence[tuple[str, Path]],
    png_path: Path,
    panel_size: tuple[float, float] = (3.0, 3.0),
    dpi: int = 80,
) -> None:
    """One panel per (title, losses.csv), side by side. No shared y axis: the losses differ in
    scale (a WGAN critic's runs in the tens, BCE's around 1)."""
    width, height = panel_size
    fig, axes = plt.subplots(1, len(panels), figsize=(width * len(panels), height), squeeze=False)
    for ax, (title, csv_path) in zip(axes[0], panels, strict=True):
        draw_curves(ax, read_losses(csv_path), ("d_loss", "g_loss"), "loss")
        ax.set_title(title, fontsize="medium")
        ax.set_xlabel("generator step")
    fig.tight_layout()
    fig.savefig(png_path, dpi=dpi)
    plt.close(fig)
