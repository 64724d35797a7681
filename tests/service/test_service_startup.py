"""`bentoml serve` refuses to start on a broken model folder, naming the file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.live_server import LiveServer, ServerExited
from service.card import CARD_FILE, MODEL_FILE
from tests.conftest import MODELS_DIR


def _copy_models(tmp_path: Path) -> Path:
    models = tmp_path / "models"
    shutil.copytree(MODELS_DIR, models)
    return models


def _truncate_model(folder: Path) -> Path:
    path = folder / MODEL_FILE
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def _wrong_latent_dim(folder: Path) -> Path:
    # The card's sha256 still matches; only the graph check can catch this.
    card = json.loads((folder / CARD_FILE).read_text())
    card["latent_dim"] += 1
    (folder / CARD_FILE).write_text(json.dumps(card))
    return folder / MODEL_FILE


@pytest.mark.parametrize("damage", [_truncate_model, _wrong_latent_dim], ids=["truncated", "shape"])
def test_serve_refuses_a_broken_model_folder(tmp_path: Path, damage) -> None:
    models = _copy_models(tmp_path)
    bad_file = damage(models / "fashion-dcgan")
    server = LiveServer(models_dir=models, ready_timeout=90)
    with pytest.raises(ServerExited) as info:
        server.start()  # stops the server's process group and removes its files itself
    assert info.value.returncode != 0
    assert str(bad_file) in info.value.output
