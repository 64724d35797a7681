"""In-process inference: this API worker's own ONNX Runtime sessions, fed by micro-batchers."""

from __future__ import annotations

import numpy as np

from service.batching import capacity
from service.batching.admission import Ticket
from service.batching.microbatcher import MicroBatcher
from service.engine import build_engines
from service.registry import ModelEntry
from service.settings import Settings, usable_cpus


class InProcessBackend:
    """One warmed-up engine and one `MicroBatcher` per model, in the calling process."""

    def __init__(self, registry: dict[str, ModelEntry], settings: Settings) -> None:
        self.engines = build_engines(
            registry, settings.providers, settings.ort_threads, settings.io_binding
        )
        self.batchers = {
            name: MicroBatcher(
                name,
                engine.run,
                settings.max_batch_size,
                settings.batches_in_flight,
                settings.inline_max_ms / 1000,
                settings.split_batches,
            )
            for name, engine in self.engines.items()
        }
        # Batches run at once in this worker: its threads, but no more than its share of cores.
        share = max(1, usable_cpus() // max(1, settings.workers))
        self._parallel = min(settings.batches_in_flight, share)
        self._capacity: dict[str, float] | None = None

    async def run(
        self, model: str, z: np.ndarray, y: np.ndarray | None, ticket: Ticket | None = None
    ) -> np.ndarray:
        return await self.batchers[model].run(z, y, ticket)

    async def capacity(self) -> dict[str, float]:
        if self._capacity is None:
            self._capacity = capacity.measure(self.engines, self._parallel)
        return self._capacity

    async def providers(self) -> dict[str, str]:
        return {name: engine.provider for name, engine in self.engines.items()}
