"""How many images per second each model runs here: the basis of the default queue bound."""

from __future__ import annotations

import time
from collections.abc import Mapping

from service.engine import Engine
from service.inputs import model_inputs

PROBE_IMAGES = 64


def images_per_s(engine: Engine, parallel: int) -> float:
    """One timed batch of PROBE_IMAGES (after the engine's warm-up), times the batches
    that can run at once (inference threads, capped by the cores this worker has)."""
    feeds = model_inputs(engine.card, PROBE_IMAGES)
    started = time.perf_counter()
    engine.run_float(feeds["z"], feeds.get("y"))
    seconds = max(time.perf_counter() - started, 1e-6)
    return PROBE_IMAGES / seconds * max(1, parallel)


def measure(engines: Mapping[str, Engine], parallel: int) -> dict[str, float]:
    return {name: images_per_s(engine, parallel) for name, engine in engines.items()}
