"""Retry a call to the batching service whose pooled keep-alive connection was stale.

The dependency client keeps idle connections longer than the batching service's server
does, so a call can pick one the server is closing and fail before any answer. A batch is
a pure function of its latents, so sending it again is safe; timeouts are not retried,
as that would only add load to a server already behind (docs/architecture.md).
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
