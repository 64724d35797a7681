"""Shared fixtures: real `bentoml serve` processes on loopback and client-side references.

Expectations are computed at test time from whatever models ship in `models/` (they get
replaced by better-trained exports): the reference is ONNX Runtime run here, on the same
`model.onnx`, with latents drawn by the documented NumPy recipe.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from harness import MODELS_DIR, REPO_ROOT
from harness.live_server import LiveServer
from service.card import MODEL_FILE, ModelCard

ROOT = REPO_ROOT


os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")


def model_cards() -> dict[str, ModelCard]:
    folders = sorted(p.parent for p in MODELS_DIR.glob("*/card.json"))
    return {ModelCard.load(f).name: ModelCard.load(f) for f in folders}


class Reference:
    """Client-side recreation of served images: NumPy latents -> ONNX Runtime (CPU) -> uint8."""

    def __init__(self) -> None:
        self.cards = model_cards()
        self._sessions: dict[str, ort.InferenceSession] = {}

    def session(self, name: str) -> ort.InferenceSession:
        if name not in self._sessions:
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            self._sessions[name] = ort.InferenceSession(
                str(MODELS_DIR / name / MODEL_FILE), options, providers=["CPUExecutionProvider"]
            )
        return self._sessions[name]

    @staticmethod
    def latent(seed: int, latent_dim: int, psi: float = 1.0) -> np.ndarray:
        z = np.random.default_rng(seed).standard_normal(latent_dim, dtype=np.float32)
        return z * np.float32(psi)

    def images(self, name: str, z: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        """uint8 [N, C, H, W], one `session.run` per image (batch 1, as a lone client would)."""
        card = self.cards[name]
        out = []
        for i in range(len(z)):
            feeds = {"z": z[i : i + 1].astype(np.float32)}
            if card.conditional:
                feeds["y"] = y[i : i + 1].astype(np.float32)
            x = self.session(name).run(["image"], feeds)[0]
            out.append(np.clip(np.rint((x + 1.0) * 127.5), 0, 255).astype(np.uint8))
        return np.concatenate(out)

    def from_seed(
        self, name: str, seed: int, n: int, labels: list[int] | None = None, psi: float = 1.0
    ) -> np.ndarray:
        card = self.cards[name]
        z = np.stack([self.latent(seed + i, card.latent_dim, psi) for i in range(n)])
        y = None
        if card.conditional:
            idx = labels if labels is not None else [i % card.num_classes for i in range(n)]
            y = np.eye(card.num_classes, dtype=np.float32)[idx]
        return self.images(name, z, y)


def decode(body: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(body))
    image.load()
    return image


def grid_tiles(grid: np.ndarray, n: int, h: int, w: int, padding: int = 2) -> np.ndarray:
    """Cut a served grid [H', W'] back into [n, h, w] tiles (service.imaging.make_grid layout)."""
    columns = int(np.ceil(np.sqrt(n)))
    tiles = []
    for i in range(n):
        top = padding + (i // columns) * (h + padding)
        left = padding + (i % columns) * (w + padding)
        tiles.append(grid[top : top + h, left : left + w])
    return np.stack(tiles)


def max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())


@pytest.fixture(scope="session")
def reference() -> Reference:
    return Reference()


@pytest.fixture(scope="session")
def server() -> Iterator[LiveServer]:
    """The service as `bentoml serve` starts it by default (auto: in-process on CPU)."""
    with LiveServer(models_dir=MODELS_DIR) as live:
        yield live


@pytest.fixture(scope="session")
def adaptive_server() -> Iterator[LiveServer]:
    """The adaptive-batching path: API service -> bentoml.depends -> batchable generator."""
    with LiveServer(models_dir=MODELS_DIR, env={"GAN_BATCHING": "adaptive"}) as live:
        yield live
