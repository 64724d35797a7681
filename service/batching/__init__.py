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
from service.batching.admission import AdmissionControl, Backend
from service.batching.inprocess import InProcessBackend
from service.batching.wire import WireFormat
from service.registry import ModelEntry
from service.settings import Limits, Settings

__all__ = ["GanGenerator", "InferenceBackend", "make_backend"]


class InferenceBackend(Protocol):
    async def run(self, model: str, z: np.ndarray, y: np.ndarray | None) -> np.ndarray:
        """Latents [N, latent_dim] (+ class vectors [N, classes]) -> uint8 pixels [N, C, H, W]."""
        ...

    async def providers(self) -> dict[str, str]:
        """Model name -> the ONNX Runtime execution provider it runs on."""
        ...


def make_backend(
    settings: Settings,
    registry: dict[str, ModelEntry],
    generator: Any,
    limits: Limits | None = None,
) -> AdmissionControl:
    """The backend for `settings.batching` behind admission control (admission.py);
    `generator` is the `bentoml.depends(GanGenerator)` handle, used by the adaptive path."""
    limits = limits or Limits.from_env()
    backend: Backend
    if settings.batching == "inprocess":
        backend = InProcessBackend(registry, settings)
    else:
        backend = AdaptiveBackend(generator, WireFormat([e.card for e in registry.values()]))
    return AdmissionControl(
        backend,
        {name: limits.max_queued_images for name in registry},
        queue_timeout_ms=limits.queue_timeout_ms,
        latency_target_ms=limits.latency_target_ms,
        retry_after_s=limits.retry_after_s,
    )
