"""The background lane: bulk jobs reach the same engines as requests, behind them in line.

A job thread calls `lane.run(model, z, y)` one chunk at a time and blocks until it is done.
- in-process: the chunk runs on the worker's own `Engine` (the same ONNX Runtime session
  the micro-batcher uses), on the job thread, and starts only while no request is in
  flight in this worker (admission control's count). The job thread runs at a
  lower CPU priority (nice), so a request in any worker process gets the cores first; a
  request that arrives during a chunk runs beside it on a free inference thread instead of
  waiting for it.
- adaptive: the chunk is one call to the batching service, as a request's latents are; a
  chunk is at most `GAN_MAX_BATCH_SIZE` images, so a request waits at most one chunk.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np

from service.batching.adaptive import AdaptiveBackend
from service.batching.inprocess import InProcessBackend

# How often a job waiting for the request queue to drain looks again.
YIELD_POLL_S = 0.002


class BackgroundLane(Protocol):
    def run(self, model: str, z: np.ndarray, y: np.ndarray | None) -> np.ndarray:
        """Blocking, from a job thread: latents (+ class vectors) -> uint8 [N, C, H, W]."""
        ...


class InProcessLane:
    def __init__(self, backend: InProcessBackend, busy: Callable[[str], bool]) -> None:
        self.backend = backend
        self.busy = busy

    def run(self, model: str, z: np.ndarray, y: np.ndarray | None) -> np.ndarray:
        while self.busy(model):
            time.sleep(YIELD_POLL_S)
        return self.backend.engines[model].run(z, y)


class AdaptiveLane:
    def __init__(self, backend: AdaptiveBackend, loop: asyncio.AbstractEventLoop) -> None:
        self.backend = backend
        self.loop = loop

    def run(self, model: str, z: np.ndarray, y: np.ndarray | None) -> np.ndarray:
        call = self.backend.run(model, z, y)
        return asyncio.run_coroutine_threadsafe(call, self.loop).result()


def _any_in_flight(in_flight: Mapping[str, int]) -> Callable[[str], bool]:
    def busy(model: str) -> bool:
        try:
            return any(count > 0 for count in list(in_flight.values()))
        except RuntimeError:  # a model's first request added its key meanwhile
            return True

    return busy


def make_lane(backend: Any) -> BackgroundLane:
    """The lane beside the backend `make_backend` built: admission control around the
    in-process or adaptive backend (its `.backend`), or one of those alone."""
    inner = getattr(backend, "backend", backend)
    if isinstance(inner, InProcessBackend):
        in_flight = getattr(backend, "queued", None)
        if in_flight is None:
            return InProcessLane(inner, lambda model: False)
        return InProcessLane(inner, _any_in_flight(in_flight))
    if isinstance(inner, AdaptiveBackend):
        return AdaptiveLane(inner, asyncio.get_running_loop())
    raise TypeError(f"no background lane for {type(inner).__name__}")
