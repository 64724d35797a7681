"""Re-spread keep-alive connections over API workers that share one listening socket.

BentoML's API workers accept from one shared socket, and the worker whose event loop wakes
first accepts every pending connection: after a burst of new connections one worker holds
most of them and, with keep-alive, keeps them, capping the node at that worker's core while
the others idle (README, "Batching"). So each worker counts the clients it answered in the
last second and publishes the count in its slot of a small file shared by the server's
workers; a worker holding clearly more than the mean closes some of its connections after
their response (`Connection: close`). Those clients reconnect, and an idle worker, already
waiting in accept, usually takes them. Off with `GAN_CONNECTION_SPREAD=off`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import mmap
import os
import struct
import time
from pathlib import Path
from typing import Any

from service.workers import scratch_folder

SLOTS = 64  # API workers one server can have (GAN_WORKERS' upper bound)
SLOT = struct.Struct("<qd")  # clients answered in the last ACTIVE_S, monotonic time written
REFRESH_S = 0.25
ACTIVE_S = 1.0
STALE_S = 2.0  # a slot not written for this long belongs to no live worker
MARGIN = 1.25  # close only above mean × MARGIN + 1 clients: no churn on an even spread
BOARD_FILE = "gan-connections.bin"


class SpreadBoard:
    """One slot per API worker in a file of the server's scratch folder (mmap, no locks:
    a torn read of another worker's slot costs one refresh at worst)."""

    def __init__(self, path: Path, index: int) -> None:
        self.index = index % SLOTS
        size = SLOTS * SLOT.size
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < size:  # every worker may race here: same size, zeros
                os.ftruncate(fd, size)
            self._map = mmap.mmap(fd, size)
        finally:
            os.close(fd)

    def publish(self, clients: int, now: float) -> None:
        SLOT.pack_into(self._map, self.index * SLOT.size, clients, now)

    def live_counts(self, now: float) -> list[int]:
        counts = []
        for i in range(SLOTS):
            clients, written = SLOT.unpack_from(self._map, i * SLOT.size)
            if written and now - written < STALE_S:
                counts.append(clients)
        return counts


def closes_due(mine: int, counts: list[int]) -> int:
    """Connections this worker should close before the next refresh: its excess over the
    mean, once it holds clearly more than the mean; none while it is the only worker."""
    if len(counts) < 2:
        return 0
    mean = sum(counts) / len(counts)
    return mine - math.ceil(mean) if mine > mean * MARGIN + 1 else 0


class ConnectionSpreadMiddleware:
    def __init__(self, app: Any, enabled: bool, workers: int) -> None:
        self.app = app
        self.enabled = enabled and workers > 1
        self.seen: dict[object, float] = {}  # client (host, port) -> last answered
        self.budget = 0
        self.board: SpreadBoard | None = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if not self.enabled:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if scope["type"] != "http" or self.board is None:  # no board: nothing to compare
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        self.seen[client] = time.monotonic()
        if self.budget <= 0:
            await self.app(scope, receive, send)
            return
        self.budget -= 1
        self.seen.pop(client, None)

        async def closing_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (b"connection", b"close")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, closing_send)

    async def _lifespan(self, scope: dict, receive: Any, send: Any) -> None:
        from bentoml._internal.context import server_context

        folder = scratch_folder()
        if folder is None:
            await self.app(scope, receive, send)
            return
        self.board = SpreadBoard(folder / BOARD_FILE, server_context.worker_index or 1)
        refresher = asyncio.get_running_loop().create_task(self._refresh_forever())
        try:
            await self.app(scope, receive, send)
        finally:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher

    async def _refresh_forever(self) -> None:
        while True:
            self.refresh(time.monotonic())
            await asyncio.sleep(REFRESH_S)

    def refresh(self, now: float) -> None:
        if self.board is None:
            return
        self.seen = {c: t for c, t in self.seen.items() if now - t < ACTIVE_S}
        mine = len(self.seen)
        self.board.publish(mine, now)
        self.budget = closes_due(mine, self.board.live_counts(now))
