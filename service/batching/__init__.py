"""The batching seam: every request enters inference through one `InferenceBackend`.

Two implementations, picked by `GAN_BATCHING` (service/settings.py):
- `inprocess` (service/batching/inprocess.py): the API worker's own sessions, requests
  merged by inference threads.
- `adaptive` (service/batching/adaptive.py): a hop to the `GanGenerator` BentoML service,
  requests merged by BentoML's adaptive batching.
Anything that must apply to every request on either path (admission control, queue
bounds) wraps the backend that `make_backend` returns.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from service.batching.adaptive import AdaptiveBackend, GanGenerator
from service.batching.inprocess import InProcessBackend
from service.batching.wire import WireFormat
from service.registry import ModelEntry
from service.settings import Settings

__all__ = ["GanGenerator", "InferenceBackend", "make_backend"]


class InferenceBackend(Protocol):
    async def run(self, model: str, z: np.ndarray, y: np.ndarray | None) -> np.ndarray:
        """Latents [N, latent_dim] (+ class vectors [N, classes]) -> uint8 pixels [N, C, H, W]."""
        ...

    async def providers(self) -> dict[str, str]:
        """Model name -> the ONNX Runtime execution provider it runs on."""
        ...


def make_backend(
    settings: Settings, registry: dict[str, ModelEntry], generator: Any
) -> InferenceBackend:
    """The backend for `settings.batching`; `generator` is the `bentoml.depends(GanGenerator)`
    handle, used by the adaptive path only."""
    if settings.batching == "inprocess":
        return InProcessBackend(registry, settings)
    return AdaptiveBackend(generator, WireFormat([entry.card for entry in registry.values()]))
