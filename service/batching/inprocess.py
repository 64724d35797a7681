"""In-process inference: this API worker's own ONNX Runtime sessions, fed by micro-batchers."""

from __future__ import annotations

import numpy as np

from service.batching.microbatcher import MicroBatcher
from service.engine import build_engines
from service.registry import ModelEntry
from service.settings import Settings


class InProcessBackend:
    """One warmed-up engine and one `MicroBatcher` per model, in the calling process."""

    def __init__(self, registry: dict[str, ModelEntry], settings: Settings) -> None:
        self.engines = build_engines(
            registry, settings.providers, settings.ort_threads, settings.io_binding
        )
        self.batchers = {
            name: MicroBatcher(
                name, engine.run, settings.max_batch_size, settings.batches_in_flight
            )
            for name, engine in self.engines.items()
        }

    async def run(self, model: str, z: np.ndarray, y: np.ndarray | None) -> np.ndarray:
        return await self.batchers[model].run(z, y)

    async def providers(self) -> dict[str, str]:
        return {name: engine.provider for name, engine in self.engines.items()}
