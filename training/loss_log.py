"""The per-step losses, appended to the run's losses.csv at the end of each epoch."""

from __future__ import annotations

import csv
from pathlib import Path

CSV_FIELDS = ["epoch", "step", "d_loss", "g_loss", "d_real", "d_fake", "images_per_s"]


def append_losses(csv_path: Path, rows: list[dict]) -> None:
    new_file = not csv_path.exists()
    with open(csv_path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        if new_file:
            writer.writeheader()
        writer.writerows(rows)
