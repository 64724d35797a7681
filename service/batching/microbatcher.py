"""Cross-request batching in one process: concurrent requests for a model share a `session.run`.

Each model has `batches_in_flight` inference threads sharing one ONNX Runtime session. The
event loop only queues requests and receives results; a free thread takes everything
queued (up to `max_batch_size` images) the moment its previous batch ends, so inference
overlaps the loop's HTTP work (docs/architecture.md says why threads, not the loop, start
batches). No fixed wait window: a lone client pays no batching delay. Each request keeps
its own latents, so its pixels do not depend on what else shared the batch.

A call skips the threads and runs on the event loop when nothing is queued or running and
either it is cheap (on a GPU, or a tiny graph: `inline_max_s`, from the measured time per
image) or it is alone: no other request reached the batcher after one turn of the loop,
and it takes at most `LONE_INLINE_MAX_S`. The hand-off to a thread and back costs CPU and
a wake-up on each side, which a lone client pays in full; with company, the threads let
the loop read the next requests while a batch runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from service.batching.admission import NotStarted, Ticket
from service.metrics import record_queue

Run = Callable[[np.ndarray, np.ndarray | None], np.ndarray]

# A lone request blocks the loop at most this long when it runs there; the requests that
# arrive meanwhile wait in their sockets no longer than a naive server would make them.
LONE_INLINE_MAX_S = 0.02


@dataclass
class _Pending:
    z: np.ndarray
    y: np.ndarray | None
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    ticket: Ticket | None = None
    queued_at: float = field(default_factory=time.perf_counter)

    def client_left(self) -> bool:
        gone = None if self.ticket is None else self.ticket.gone
        return gone is not None and gone.is_set()


def _drop(items: list[_Pending]) -> None:
    """On the event loop: answer requests whose clients left before a thread took them."""
    for item in items:
        if not item.future.done():
            item.future.set_exception(NotStarted("client_gone"))


def _settle(batch: list[_Pending], images: np.ndarray | None, error: Exception | None) -> None:
    """On the event loop: give every caller its rows (or the batch's error)."""
    start = 0
    for item in batch:
        if not item.future.done():  # a cancelled client no longer waits
            if error is not None or images is None:
                item.future.set_exception(error or RuntimeError("no images"))
            else:
                item.future.set_result(images[start : start + len(item.z)])
        start += len(item.z)


class MicroBatcher:
    """Merges concurrent `run(z, y)` calls for one model; up to `batches_in_flight` at once."""

    def __init__(
        self,
        model: str,
        run: Run,
        max_batch_size: int,
        batches_in_flight: int = 1,
        inline_max_s: float = 0.0,
        split: bool = True,
    ) -> None:
        self.model = model
        self._run = run
        self.max_batch_size = max_batch_size
        self.batches_in_flight = batches_in_flight
        self.inline_max_s = inline_max_s
        self.split = split
        self._queue: deque[_Pending] = deque()  # O(1) pops from the front under load
        self._ready = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._running = 0  # batches on inference threads right now
        self._idle = 0  # inference threads waiting for work
        self._dropped: list[_Pending] = []  # taken from the queue: their clients had left
        self._per_image_s: float | None = None  # moving average of a call's time per image
        self._callers = 0  # requests inside run() on the event loop right now

    def _nothing_waiting(self) -> bool:
        return not self._queue and not self._running

    def _cheap(self, images: int) -> bool:
        """Known to cost less than the hand-off to a thread (`inline_max_s`)."""
        per_image = self._per_image_s
        return (
            self.inline_max_s > 0
            and per_image is not None
            and per_image * images <= self.inline_max_s
        )

    async def _alone(self, images: int) -> bool:
        """No other request arrives within one turn of the loop, and the call is short."""
        per_image = self._per_image_s
        if self.inline_max_s <= 0 or per_image is None or per_image * images > LONE_INLINE_MAX_S:
            return False
        # Requests read in the same turn of the loop run up to here before this one resumes.
        await asyncio.sleep(0)
        return self._callers == 1 and self._nothing_waiting()

    def _timed_run(self, z: np.ndarray, y: np.ndarray | None) -> np.ndarray:
        # This thread's CPU time: ONNX Runtime runs on the calling thread, and waits for the
        # GIL or a core (which a thread hand-off adds) must not make a call look expensive.
        started = time.thread_time()
        images = self._run(z, y)
        per_image = (time.thread_time() - started) / max(1, len(z))
        last = self._per_image_s
        self._per_image_s = per_image if last is None else 0.8 * last + 0.2 * per_image
        return images

    async def run(
        self, z: np.ndarray, y: np.ndarray | None, ticket: Ticket | None = None
    ) -> np.ndarray:
        """The rows for z; with a ticket, withdrawn unrun (NotStarted) if the ticket's
        deadline passes or its client leaves before a thread takes the request."""
        self._callers += 1
        try:
            if self._nothing_waiting() and (self._cheap(len(z)) or await self._alone(len(z))):
                record_queue(self.model, 0.0)
                return self._timed_run(z, y)
            return await self._queued(z, y, ticket)
        finally:
            self._callers -= 1

    async def _queued(
        self, z: np.ndarray, y: np.ndarray | None, ticket: Ticket | None
    ) -> np.ndarray:
        loop = asyncio.get_running_loop()
        item = _Pending(z, y, loop, loop.create_future(), ticket)
        with self._ready:
            self._queue.append(item)
            if not self._threads:
                self._start_threads()
            self._ready.notify()
        if ticket is None:
            return await item.future
        ticket.watch()
        # One timer, no extra task: a thread drops the request if its client has left by
        # the time it is taken, and the timer withdraws it if no thread took it in time.
        timer = loop.call_at(ticket.deadline, self._expire, item)
        try:
            return await item.future  # once running, a batch cannot be cut short
        finally:
            timer.cancel()

    def _expire(self, item: _Pending) -> None:
        """On the event loop, at the ticket's deadline: withdraw the request if still queued."""
        with self._ready:
            try:
                self._queue.remove(item)
            except ValueError:
                return  # a thread took it meanwhile
        if not item.future.done():
            reason = "client_gone" if item.client_left() else "deadline"
            item.future.set_exception(NotStarted(reason))

    def _start_threads(self) -> None:
        # Daemon threads: they hold no state of their own, and BentoML's graceful shutdown
        # waits for the requests in flight, whose futures these threads settle.
        for k in range(self.batches_in_flight):
            thread = threading.Thread(
                target=self._serve, name=f"infer-{self.model}-{k}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _take_batch(self) -> list[_Pending]:
        """Queued requests in arrival order, up to max_batch_size images (at least one), all
        from one event loop (a server has one; tests may run several in turn). While other
        inference threads wait idle, this one takes only its share of the queue and wakes
        one of them for the rest: two half batches run side by side, not one whole batch
        while a core idles."""
        limit = self.max_batch_size
        if self._idle and self.split:
            queued = sum(len(item.z) for item in self._queue)
            limit = min(limit, -(-queued // (self._idle + 1)))
        batch: list[_Pending] = []
        images = 0
        while self._queue and (
            not batch
            or (images + len(self._queue[0].z) <= limit and self._queue[0].loop is batch[0].loop)
        ):
            item = self._queue.popleft()
            if item.client_left():
                self._dropped.append(item)
                continue
            batch.append(item)
            images += len(item.z)
        return batch

    def _serve(self) -> None:
        """An inference thread: run whatever is queued, back to back, for the process's life."""
        while True:
            with self._ready:
                while not self._queue:
                    self._idle += 1
                    self._ready.wait()
                    self._idle -= 1
                batch = self._take_batch()
                dropped, self._dropped = self._dropped, []
                if self._queue and self._idle:
                    self._ready.notify()
                if batch:
                    self._running += 1
            for item in dropped:
                with contextlib.suppress(RuntimeError):  # that loop has closed
                    item.loop.call_soon_threadsafe(_drop, [item])
            if not batch:
                continue
            started = time.perf_counter()
            for item in batch:
                record_queue(self.model, started - item.queued_at)
            images, error = None, None
            try:
                z = np.concatenate([item.z for item in batch])
                y = None if batch[0].y is None else np.concatenate([item.y for item in batch])
                images = self._timed_run(z, y)
            except Exception as exc:  # hand the failure to every waiting request
                error = exc
            with self._ready:
                self._running -= 1
            # RuntimeError: that loop has closed, so nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                batch[0].loop.call_soon_threadsafe(_settle, batch, images, error)
