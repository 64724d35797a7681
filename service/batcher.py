"""In-process cross-request batching: concurrent requests for one model share a `session.run`.

No fixed wait window: while one batch runs in a worker thread, newly arriving requests
queue; when it finishes, everything queued (up to `max_batch_size` images) runs as the next
batch. A lone client therefore pays no batching delay, and under load the batch grows with
the number of requests that arrived during the previous run. Each request keeps its own
latents, so its pixels do not depend on what else shared the batch.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio
import numpy as np

from service.metrics import record_queue

Run = Callable[[np.ndarray, np.ndarray | None], np.ndarray]


@dataclass
class _Pending:
    z: np.ndarray
    y: np.ndarray | None
    future: asyncio.Future
    queued_at: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    """Merges concurrent `run(z, y)` calls for one model; one batch in flight at a time."""

    def __init__(self, model: str, run: Run, max_batch_size: int) -> None:
        self.model = model
        self._run = run
        self.max_batch_size = max_batch_size
        self._queue: deque[_Pending] = deque()  # O(1) pops from the front under load
        self._draining = False

    async def run(self, z: np.ndarray, y: np.ndarray | None) -> np.ndarray:
        item = _Pending(z, y, asyncio.get_running_loop().create_future())
        self._queue.append(item)
        if not self._draining:
            self._draining = True
            asyncio.get_running_loop().create_task(self._drain())
        return await item.future

    def _take_batch(self) -> list[_Pending]:
        """Queued requests in arrival order, up to max_batch_size images (at least one)."""
        batch, images = [], 0
        while self._queue and (not batch or images + len(self._queue[0].z) <= self.max_batch_size):
            item = self._queue.popleft()
            batch.append(item)
            images += len(item.z)
        return batch

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._take_batch()
                started = time.perf_counter()
                for item in batch:
                    record_queue(self.model, started - item.queued_at)
                z = np.concatenate([item.z for item in batch])
                y = None if batch[0].y is None else np.concatenate([item.y for item in batch])
                try:
                    images = await anyio.to_thread.run_sync(self._run, z, y)
                except Exception as exc:  # hand the failure to every waiting request
                    for item in batch:
                        if not item.future.done():
                            item.future.set_exception(exc)
                    continue
                start = 0
                for item in batch:
                    if not item.future.done():  # a cancelled client no longer waits
                        item.future.set_result(images[start : start + len(item.z)])
                    start += len(item.z)
        finally:
            self._draining = False
