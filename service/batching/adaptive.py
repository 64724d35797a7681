"""BentoML adaptive batching: the `GanGenerator` service and the API side's client of it.

The API worker packs each request's latents into wire rows (service/batching/wire.py) and
calls the batchable `GanGenerator.generate_batch` through `bentoml.depends`; BentoML merges
rows from concurrent requests, and `run_rows` runs one `session.run` per model present.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import bentoml
import numpy as np
from bentoml.exceptions import BentoMLException

from service import heap, runtime, signatures, workers
from service.batching import capacity
from service.batching.admission import NotStarted, Ticket
from service.batching.retry import with_fresh_connection_retry
from service.batching.wire import WireFormat
from service.engine import Engine, build_engines
from service.metrics import record_queue
from service.tracing import tracing_config

SETTINGS = runtime.settings()

# BentoML >= 1.4.30 recycles the dependency client's session after `max_requests` calls or
# `max_age` seconds, closing it under calls in flight: set out of reach, it lives as long
# as the worker (upstream #5540/#5544; docs/architecture.md).
NEVER_RECYCLE = {"max_requests": 2**62, "max_age": 10.0 * 365 * 24 * 3600}


def run_rows(wire: WireFormat, engines: Mapping[str, Engine], rows: np.ndarray) -> np.ndarray:
    """A merged batch of request rows -> uint8 answer rows, in the same order."""
    now = time.time()
    out = np.zeros((len(rows), wire.answer_width), dtype=np.uint8)
    for group in wire.split_request(rows):
        for t in np.unique(group.enqueued_at):  # one enqueue time per request
            record_queue(group.model, now - float(t))
        out[group.where] = wire.pack_answer(engines[group.model].run(group.z, group.y))
    return out


@bentoml.service(
    name="gan_generator",
    workers=1,
    traffic={"timeout": 60},
    runner_connection=NEVER_RECYCLE,
    **tracing_config(),
)
class GanGenerator:
    """Batched ONNX Runtime inference: latents in, uint8 pixels out (pickled, 1 B/pixel).

    Always part of the bento, so a bento starts in either batching mode; in-process mode
    never calls it, so it opens no sessions there and idles.
    """

    def __init__(self) -> None:
        registry = runtime.registry()
        self.wire = WireFormat([entry.card for entry in registry.values()])
        self.engines: dict[str, Engine] = {}
        self._capacity: dict[str, float] | None = None
        if SETTINGS.batching == "adaptive":
            workers.announce("batching")
            self.engines = build_engines(
                registry, SETTINGS.providers, SETTINGS.ort_threads, SETTINGS.io_binding
            )
            heap.settle(SETTINGS)

    @bentoml.api(
        batchable=True,
        max_batch_size=SETTINGS.max_batch_size,
        max_latency_ms=SETTINGS.max_latency_ms,
    )
    def generate_batch(self, rows: np.ndarray) -> np.ndarray:
        """float64 request rows, one per image -> uint8 pixel rows (service/batching/wire.py)."""
        return run_rows(self.wire, self.engines, rows)

    @bentoml.api
    async def providers(self) -> dict[str, str]:
        return {name: engine.provider for name, engine in self.engines.items()}

    @bentoml.api
    async def capacity(self) -> dict[str, float]:
        """Images per second each model runs here (one batch at a time)."""
        if self._capacity is None:
            self._capacity = capacity.measure(self.engines, 1)
        return self._capacity


signatures.precompute(GanGenerator)


class AdaptiveBackend:
    """The API worker's side: each request is one `generate_batch` call on the generator.

    `generator` is the `bentoml.depends(GanGenerator)` handle: a client of the separate
    batching process under `bentoml serve`, a local instance in development mode.
    """

    def __init__(self, generator: Any, wire: WireFormat) -> None:
        self.generator = generator
        self.wire = wire
        self._providers: dict[str, str] | None = None
        self._capacity: dict[str, float] | None = None

    async def run(
        self, model: str, z: np.ndarray, y: np.ndarray | None, ticket: Ticket | None = None
    ) -> np.ndarray:
        """One call to the generator. Its own queue bound (GAN_MAX_LATENCY_MS) is this path's
        start deadline: past it BentoML answers 503, raised here as NotStarted("deadline").
        A client that leaves while the call waits cancels the call."""
        rows = self.wire.pack_request(model, z, y, time.time())
        call = asyncio.ensure_future(
            with_fresh_connection_retry(lambda: self.generator.to_async.generate_batch(rows))
        )
        gone = None if ticket is None or ticket.gone is None else ticket.gone
        waiter = None if gone is None else asyncio.ensure_future(gone.wait())
        try:
            if waiter is not None:
                await asyncio.wait({call, waiter}, return_when=asyncio.FIRST_COMPLETED)
                if not call.done():
                    call.cancel()
                    raise NotStarted("client_gone")
            answer = await call
        except BentoMLException as exc:
            if int(exc.error_code) == 503:
                raise NotStarted(
                    "deadline",
                    f"the batching service could not start {model!r} within "
                    f"{SETTINGS.max_latency_ms} ms (GAN_MAX_LATENCY_MS)",
                ) from None
            raise
        finally:
            if waiter is not None:
                waiter.cancel()
        return self.wire.unpack_answer(np.asarray(answer), model)

    async def capacity(self) -> dict[str, float]:
        if self._capacity is None:
            self._capacity = await self.generator.to_async.capacity()
        return self._capacity

    async def providers(self) -> dict[str, str]:
        if self._providers is None:
            self._providers = await self.generator.to_async.providers()
        return self._providers
