"""Close connections that take too long to send a request head (slow-header clients).

BentoML runs uvicorn with only `--timeout-keep-alive` exposed, and uvicorn times out idle
keep-alive connections but not a request head that trickles in: a client sending one byte
a second holds its connection (and a file descriptor) forever. Nothing in BentoML's
configuration reaches that, so each API worker runs this watchdog on its event loop: every
`TICK_S` it looks at the worker's open connections and closes those that have been waiting
for a complete request head for longer than the limit. A connection parked on uvicorn's
keep-alive timer is left to that timer.

It reads uvicorn's protocol objects (`cycle`, `timeout_keep_alive_task`, `transport`),
which both of uvicorn's HTTP/1.1 implementations have, from the set of open connections
that uvicorn's `ServerState` keeps whatever the event loop (uvloop has no readable table of
transports). Where none is found (another server) it logs that the limit is off instead of
guessing.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
import weakref
from typing import Any

logger = logging.getLogger("service.header_timeout")

TICK_S = 0.5


def _waiting_for_head(protocol: Any) -> bool:
    """True while a connection has no request in progress and no keep-alive timer armed:
    it is (slowly, or never) sending the head of its next request."""
    cycle = getattr(protocol, "cycle", None)
    if cycle is not None and not getattr(cycle, "response_complete", True):
        return False  # a request is being served
    return getattr(protocol, "timeout_keep_alive_task", None) is None


def _server_states() -> list[Any]:
    """The uvicorn `ServerState` objects of this process: one per uvicorn server, each holding
    the protocol objects of its open connections. uvicorn keeps no handle on them that an
    ASGI app can reach, so they are looked up once, at start-up, among the live objects."""
    try:
        from uvicorn.server import ServerState
    except ImportError:
        return []
    return [obj for obj in gc.get_objects() if isinstance(obj, ServerState)]


def _connections(states: list[Any]) -> list[tuple[Any, Any]]:
    """(transport, uvicorn protocol) for the open HTTP connections of `states`."""
    pairs = []
    for state in states:
        for protocol in list(state.connections):
            transport = getattr(protocol, "transport", None)
            if transport is None or transport.is_closing():
                continue
            if hasattr(protocol, "timeout_keep_alive_task") and hasattr(protocol, "cycle"):
                pairs.append((transport, protocol))
    return pairs


async def watch_request_heads(limit_s: float, states: list[Any] | None = None) -> None:
    """Run for the worker's life: close connections that sent no full head within limit_s."""
    states = _server_states() if states is None else states
    if not states:
        logger.warning(
            "GAN_HEADER_TIMEOUT_S=%g is not enforced: no uvicorn server state in this process",
            limit_s,
        )
        return
    since: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
    while True:
        await asyncio.sleep(TICK_S)
        now, closed = time.monotonic(), 0
        for transport, protocol in _connections(states):
            if not _waiting_for_head(protocol):
                since.pop(protocol, None)
                continue
            if now - since.setdefault(protocol, now) > limit_s:
                transport.close()
                since.pop(protocol, None)
                closed += 1
        if closed:
            logger.warning(
                "closed %d connection(s) that sent no complete request head within %g s "
                "(GAN_HEADER_TIMEOUT_S)",
                closed,
                limit_s,
            )


class HeaderTimeoutMiddleware:
    """ASGI middleware whose only job is to start the watchdog when the worker starts."""

    def __init__(self, app: Any, limit_s: float) -> None:
        self.app = app
        self.limit_s = limit_s
        self._task: asyncio.Task | None = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan" and self.limit_s > 0 and self._task is None:
            # Looked up before the app starts: its start-up ends by freezing the heap
            # (service/heap.py), and gc.get_objects() does not list frozen objects.
            states = _server_states()
            self._task = asyncio.get_running_loop().create_task(
                watch_request_heads(self.limit_s, states)
            )
            try:
                await self.app(scope, receive, send)
            finally:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            return
        await self.app(scope, receive, send)
