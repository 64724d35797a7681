"""Shared fixtures: real `bentoml serve` processes on loopback and client-side references.

Expectations are computed at test time from whatever models ship in `models/` (they get
replaced by better-trained exports): the reference is ONNX Runtime run here, on the same
`model.onnx`, with latents drawn by the documented NumPy recipe.

Tiers (markers, applied in `pytest_collection_modifyitems` below; `make test-fast` runs
none of them): `serve` starts a `bentoml serve`, `train` runs the trainer, `deploy` is
everything under tests/deploy, `slow` is marked by hand on tests that take long otherwise,
and applied here to tests that build the evaluator (it runs the classifier over 20,000
reference images).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import CodeType, FunctionType

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from harness import MODELS_DIR, REPO_ROOT
from harness.live_server import LiveServer
from service.card import MODEL_FILE, ModelCard
from service.registry import model_folders

ROOT = REPO_ROOT
SERVER_FIXTURES = ("server", "adaptive_server")
LOG_TAIL = 3000  # characters of a live server's log attached to a failed test's report


os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")


def model_cards(models_dir: Path = MODELS_DIR) -> dict[str, ModelCard]:
    """The cards of the model folders the service would serve, by model name.

    Read at collection time (parametrize lists), so it never raises: a folder without a
    readable card is left out here, and the service's own start-up check names it.
    """
    cards = {}
    for folder in model_folders(models_dir):
        with contextlib.suppress(Exception):
            card = ModelCard.load(folder)
            cards[card.name] = card
    return cards


def model_name(conditional: bool, cards: dict[str, ModelCard] | None = None) -> str:
    """The first shipped model of that kind; when none ships, a name that says so, so that
    collection still works and the tests needing such a model fail with it in the message."""
    cards = model_cards() if cards is None else cards
    kind = "conditional" if conditional else "unconditional"
    found = (name for name, card in sorted(cards.items()) if card.conditional == conditional)
    return next(found, f"no-{kind}-model-in-{MODELS_DIR.name}")


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


# Started servers by fixture name, so a failing test's report can show their logs.
_LIVE: dict[str, LiveServer] = {}


@contextlib.contextmanager
def _session_server(name: str, env: dict[str, str] | None = None) -> Iterator[LiveServer]:
    """A failed start raises with the server's log tail; pytest keeps that error and reports it
    at the set-up of every test using the fixture (the server is not started again)."""
    with LiveServer(models_dir=MODELS_DIR, env=env) as live:
        _LIVE[name] = live
        try:
            yield live
        finally:
            del _LIVE[name]


@pytest.fixture(scope="session")
def server() -> Iterator[LiveServer]:
    """The service as `bentoml serve` starts it by default (auto: in-process on CPU)."""
    with _session_server("server") as live:
        yield live


@pytest.fixture(scope="session")
def adaptive_server() -> Iterator[LiveServer]:
    """The adaptive-batching path: API service -> bentoml.depends -> batchable generator."""
    with _session_server("adaptive_server", {"GAN_BATCHING": "adaptive"}) as live:
        yield live


def _reachable_code(func: object) -> Iterator[tuple[CodeType, dict[str, object]]]:
    """(code, globals) of `func`, of the functions and lambdas defined inside it, and of the
    functions of its own module that it calls, transitively (a test's helpers)."""
    module = getattr(func, "__module__", None)
    pending, seen = [func], set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        names = getattr(current, "__globals__", {})
        codes = [getattr(current, "__code__", None)]
        while codes:
            code = codes.pop()
            if not isinstance(code, CodeType):
                continue
            yield code, names
            codes += [c for c in code.co_consts if isinstance(c, CodeType)]
            for name in code.co_names:
                called = names.get(name)
                if isinstance(called, FunctionType) and called.__module__ == module:
                    pending.append(called)


def _names(func: object, target: object) -> bool:
    """True when `func`, or a function it reaches, uses the global that is `target`."""
    return target is not None and any(
        names.get(n) is target for code, names in _reachable_code(func) for n in code.co_names
    )


def _launches_training(func: object) -> bool:
    """True when `func`, or a function it reaches, holds the arguments of `python -m training`."""
    return any({"-m", "training"} <= set(code.co_consts) for code, _ in _reachable_code(func))


def _funcs(item: pytest.Item) -> list[object]:
    """The test function and every fixture function it depends on."""
    info = getattr(item, "_fixtureinfo", None)
    defs = info.name2fixturedefs.values() if info is not None else ()
    return [getattr(item, "function", None), *(d.func for ds in defs for d in ds)]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test by tier: deploy by folder; serve when it uses a server fixture or it
    (or a fixture of it) starts `LiveServer`; train when it or a fixture of it calls the
    trainer (`training.cli.main`) or runs `python -m training`; slow when it or a fixture of
    it builds `training.evaluate.Evaluator`. Tests that start a server some other way
    (`request.getfixturevalue`) carry `pytest.mark.serve` themselves."""
    # Looked up, not imported: these modules pull in torch, and only their tests load them.
    trainer = getattr(sys.modules.get("training.cli"), "main", None)
    evaluator = getattr(sys.modules.get("training.evaluate"), "Evaluator", None)
    deploy_dir = Path(__file__).parent / "deploy"
    for item in items:
        funcs = _funcs(item)
        if deploy_dir in Path(item.path).parents:
            item.add_marker(pytest.mark.deploy)
        uses_server = set(SERVER_FIXTURES) & set(getattr(item, "fixturenames", ()))
        if uses_server or any(_names(f, LiveServer) for f in funcs):
            item.add_marker(pytest.mark.serve)
        if any(_names(f, trainer) or _launches_training(f) for f in funcs):
            item.add_marker(pytest.mark.train)
        if any(_names(f, evaluator) for f in funcs):
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """A failed serve test shows the tail of each running live server's log."""
    report = yield
    if report.failed and item.get_closest_marker("serve"):
        for name, live in _LIVE.items():
            report.sections.append((f"{name} log (tail)", live.output()[-LOG_TAIL:]))
    return report
