"""Find the model folders to serve and check each `model.onnx` against its `card.json`.

Only file-level checks live here (presence, card schema, sha256); the graph's input and
output names and shapes are checked by `service.engine` once ONNX Runtime has opened it.
Every failure raises `ModelFolderError` with the offending file in the message, so the
service refuses to start instead of serving a half-broken registry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from service.card import CARD_FILE, MODEL_FILE, ModelCard, sha256_of


class ModelFolderError(RuntimeError):
    """A model folder is missing a file, or its files disagree with each other."""


@dataclass(frozen=True)
class ModelEntry:
    card: ModelCard
    folder: Path

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def onnx_path(self) -> Path:
        return self.folder / MODEL_FILE


def load_entry(folder: Path) -> ModelEntry:
    card_path = folder / CARD_FILE
    onnx_path = folder / MODEL_FILE
    for path in (card_path, onnx_path):
        if not path.is_file():
            raise ModelFolderError(
                f"{path}: missing (a model folder needs {CARD_FILE} and {MODEL_FILE})"
            )
    try:
        card = ModelCard.load(folder)
    except (json.JSONDecodeError, ValidationError, UnicodeDecodeError) as exc:
        raise ModelFolderError(f"{card_path}: not a valid model card: {exc}") from exc
    digest = sha256_of(onnx_path)
    if digest != card.sha256:
        raise ModelFolderError(
            f"{onnx_path}: sha256 {digest} does not match {card_path} ({card.sha256}); "
            "the file is corrupt or the card belongs to another export"
        )
    return ModelEntry(card=card, folder=folder)


def model_folders(models_dir: Path) -> list[Path]:
    """The model folders in `models_dir`, sorted by name: every sub-folder holding a card or a
    model (one holding only one of them is listed, so that loading it names what is missing).
    Empty when `models_dir` does not exist."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        return []
    return sorted(
        p
        for p in models_dir.iterdir()
        if p.is_dir() and ((p / CARD_FILE).exists() or (p / MODEL_FILE).exists())
    )


def load_registry(models_dir: Path) -> dict[str, ModelEntry]:
    """Every folder `model_folders` lists, checked and keyed by model name."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        raise ModelFolderError(f"{models_dir}: models directory not found (set GAN_MODELS_DIR)")
    folders = model_folders(models_dir)
    if not folders:
        raise ModelFolderError(
            f"{models_dir}: no model folders (each needs {CARD_FILE} + {MODEL_FILE})"
        )
    registry: dict[str, ModelEntry] = {}
    for folder in folders:
        entry = load_entry(folder)
        if entry.name in registry:
            raise ModelFolderError(
                f"{folder / CARD_FILE}: model name {entry.name!r} already used by "
                f"{registry[entry.name].folder}"
            )
        registry[entry.name] = entry
    return registry
