"""Admission control: the one bound every request meets before inference, on either path.

Per model and API worker, the images admitted and not yet answered stay within
`max_queued_images`; a request that would go past it is shed at once with 503 and
`Retry-After` (reason `queue_full`), so under any load the queue holds at most about half a
latency target of work and admitted requests keep their latency. Admitted requests carry a
`Ticket` into the backend: if the request has not started running by its deadline it is
withdrawn and answered 503 (`deadline`); if its client disconnects while it waits it is
withdrawn and never computed (`client_gone`). Every shed or dropped request is counted in
`gan_rejected_requests_total{model, reason}` and summarised in the log every few seconds.

The default bound is `GAN_LATENCY_TARGET_MS / 2` of work, at least one full request (64
images), at the model's throughput: measured once at start (`capacity`), then, while the
model is saturated (half a bound waiting), the rate at which this worker actually completes
images, so a CPU shared with HTTP work or other processes shrinks the bound with it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from service.errors import ClientGone, Overloaded
from service.limits import client_gone
from service.metrics import record_rejected
from service.schemas import MAX_IMAGES

logger = logging.getLogger("service.admission")

SUMMARY_EVERY_S = 5.0
RATE_WINDOW_S = 2.0  # completions that make the live throughput estimate
MIN_RATE_SPAN_S = 0.5  # saturated this long before the live estimate replaces the start-up one
LIVE_TTL_S = 5.0  # a live estimate not refreshed by saturation for this long is dropped


class Departure(Protocol):
    """Set once a client has disconnected: an `asyncio.Event`, or a `ClientWatch`
    (service/limits.py) that notices only once started."""

    def is_set(self) -> bool: ...

    async def wait(self) -> bool: ...


@dataclass(frozen=True)
class Ticket:
    """What a backend must honour for one request while it waits to start."""

    deadline: float  # event-loop time by which the request must have started
    gone: Departure | None  # set when the client has disconnected

    def watch(self) -> None:
        """On the event loop, as the request starts to wait: notice its client leaving."""
        start = getattr(self.gone, "start", None)
        if start is not None:
            start()


class NotStarted(Exception):
    """A backend withdrew a request before computing it: `deadline` or `client_gone`."""

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(message or reason)
        self.reason = reason
        self.message = message


class Backend(Protocol):
    async def run(
        self, model: str, z: np.ndarray, y: np.ndarray | None, ticket: Ticket | None = None
    ) -> np.ndarray: ...

    async def providers(self) -> dict[str, str]: ...

    async def capacity(self) -> dict[str, float]: ...


def default_bound(images_per_s: float, latency_target_ms: int) -> int:
    """Images that take half the latency target to run, and never less than one request."""
    return max(MAX_IMAGES, math.floor(images_per_s * latency_target_ms / 2000))


class _ShedLog:
    """Counts shed requests and logs one summary line per SUMMARY_EVERY_S at most."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()
        self.since = time.monotonic()

    def add(self, model: str, reason: str) -> None:
        self.counts[(model, reason)] += 1
        now = time.monotonic()
        if now - self.since >= SUMMARY_EVERY_S:
            parts = ", ".join(f"{m} {r}={c}" for (m, r), c in sorted(self.counts.items()))
            logger.warning(
                "%d request(s) not computed in the last %.0f s: %s",
                sum(self.counts.values()),
                now - self.since,
                parts,
            )
            self.counts.clear()
            self.since = now


class AdmissionControl:
    """Wraps a backend; the InferenceBackend the HTTP routes talk to."""

    def __init__(
        self,
        backend: Backend,
        bounds: Mapping[str, int | None],
        queue_timeout_ms: int,
        latency_target_ms: int,
        retry_after_s: int,
    ) -> None:
        self.backend = backend
        self._bounds = dict(bounds)  # None: derive from measured capacity on first use
        self.queue_timeout_s = queue_timeout_ms / 1000
        self.latency_target_ms = latency_target_ms
        self.retry_after_s = retry_after_s
        self.queued: Counter[str] = Counter()
        self._shed = _ShedLog()
        self._measured: dict[str, float] = {}  # images/s at start-up, per model
        self._live: dict[str, tuple[float, float]] = {}  # (images/s while saturated, when)
        self._busy_since: dict[str, float] = {}
        self._done: dict[str, deque[tuple[float, int]]] = {}

    async def bound(self, model: str) -> int:
        fixed = self._bounds.get(model)
        if fixed is not None:
            return fixed
        if not self._measured:
            self._measured = await self.backend.capacity()
            start = {m: default_bound(r, self.latency_target_ms) for m, r in self._measured.items()}
            logger.info("admission bounds at start (images per model in flight): %s", start)
        return default_bound(self._rate(model), self.latency_target_ms)

    def _bound_now(self, model: str) -> int | None:
        """The bound as of now; None before the first request measured the capacity."""
        fixed = self._bounds.get(model)
        if fixed is not None:
            return fixed
        if model not in self._measured:
            return None
        return default_bound(self._rate(model), self.latency_target_ms)

    def _rate(self, model: str) -> float:
        """Images/s: completed while saturated, if measured lately; else the start-up one.
        Light traffic completes only what clients send, which says nothing of capacity."""
        live = self._live.get(model)
        if live is not None and time.monotonic() - live[1] < LIVE_TTL_S:
            return live[0]
        return self._measured[model]

    def shed_now(self, model: str, images: int) -> Overloaded | None:
        """The 503 a request for `images` images of `model` would get right now, if any:
        callers check before planning, since drawing 64 latents costs more than shedding."""
        bound = self._bound_now(model)
        if bound is None:
            return None  # not known before the first request
        queued = self.queued[model]
        if queued and queued + images > bound:
            return self._reject(
                model, "queue_full", f"{queued} images of {model!r} are queued (bound {bound})"
            )
        return None

    def _started_waiting(self, model: str, now: float) -> None:
        if not self.queued[model]:
            self._busy_since[model] = now
            self._done.setdefault(model, deque()).clear()

    def _completed(self, model: str, images: int, now: float) -> None:
        """Update the live throughput from a request that ran while at least half a bound of
        work still waited behind it (the server, not its clients, set the pace)."""
        since = self._busy_since.get(model)
        if since is None:
            return
        bound = self._bound_now(model)
        if bound is None or self._bounds.get(model) is not None:
            return  # a fixed bound needs no estimate
        waiting = self.queued[model] - images
        if waiting < bound / 2:
            self._busy_since[model] = now  # not saturated: start the span again
            self._done[model].clear()
            return
        done = self._done[model]
        done.append((now, images))
        while done and done[0][0] < now - RATE_WINDOW_S:
            done.popleft()
        span = now - max(since, now - RATE_WINDOW_S)
        if span >= MIN_RATE_SPAN_S:
            self._live[model] = (sum(i for _, i in done) / span, now)

    def _reject(self, model: str, reason: str, message: str) -> Overloaded:
        record_rejected(model, reason)
        self._shed.add(model, reason)
        return Overloaded(model, reason, message, self.retry_after_s)

    async def run(self, model: str, z: np.ndarray, y: np.ndarray | None) -> np.ndarray:
        images = len(z)
        await self.bound(model)  # measures capacity on the first request
        # One request bigger than the bound still runs when nothing else waits.
        overloaded = self.shed_now(model, images)
        if overloaded is not None:
            raise overloaded
        gone = client_gone()
        if gone is not None and gone.is_set():
            record_rejected(model, "client_gone")
            raise ClientGone
        loop = asyncio.get_running_loop()
        ticket = Ticket(deadline=loop.time() + self.queue_timeout_s, gone=gone)
        self._started_waiting(model, time.monotonic())
        self.queued[model] += images
        try:
            pixels = await self.backend.run(model, z, y, ticket)
            self._completed(model, images, time.monotonic())
            return pixels
        except NotStarted as exc:
            if exc.reason == "client_gone":
                record_rejected(model, "client_gone")
                self._shed.add(model, "client_gone")
                raise ClientGone from None
            message = exc.message or (
                f"the request for {model!r} could not start within "
                f"{self.queue_timeout_s * 1000:.0f} ms"
            )
            raise self._reject(model, exc.reason, message) from None
        finally:
            self.queued[model] -= images
            if not self.queued[model]:
                self._busy_since.pop(model, None)

    async def providers(self) -> dict[str, str]:
        return await self.backend.providers()
