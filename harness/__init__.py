"""Tooling shared by tests/ and bench/: a real `bentoml serve` on loopback, repository paths."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = REPO_ROOT / "models"
