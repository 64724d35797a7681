"""One retry policy for calls to the batching service over a pooled keep-alive connection.

BentoML's dependency client keeps idle connections for 15 s (aiohttp's default) while the
batching service's server closes them after 5 s (uvicorn's default). A call that picks a
connection the server is just closing fails before any answer arrives ("Cannot write to
closing transport"): measured as 1-5 HTTP 500s per run right after a 128-client burst, when
dozens of pooled connections go idle at once. A batch call is a pure function of its
latents, so sending it again on another connection is safe. Timeouts are not retried:
that would only add load to a server that is already behind.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiohttp

logger = logging.getLogger("service.retry")

T = TypeVar("T")

# Failures of the connection itself, before the server answered. (ServerTimeoutError is a
# ServerConnectionError too, so it is deliberately not matched through a base class.)
STALE_CONNECTION_ERRORS = (
    aiohttp.ClientOSError,  # write to a closing transport; connect refused
    aiohttp.ServerDisconnectedError,
    aiohttp.ClientConnectionResetError,
)
ATTEMPTS = 3


async def with_fresh_connection_retry(call: Callable[[], Awaitable[T]]) -> T:
    """`await call()`, again (up to ATTEMPTS in all) if the pooled connection was stale."""
    for _ in range(ATTEMPTS - 1):
        try:
            return await call()
        except STALE_CONNECTION_ERRORS as exc:
            logger.warning("batching service call failed on its connection (%r); retrying", exc)
    return await call()  # the last attempt's error reaches the caller
