"""The adaptive path's retry: a stale pooled connection is retried, a timeout is not."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from service.batching.retry import ATTEMPTS, with_fresh_connection_retry


class Flaky:
    """Fails `failures` times with `error`, then answers."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures, self.error, self.calls = failures, error, 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "answer"


def closing_transport() -> aiohttp.ClientOSError:
    return aiohttp.ClientOSError(None, "Can not write request body for http://x/generate_batch")


def test_a_stale_connection_is_retried_and_the_answer_returned() -> None:
    call = Flaky(1, closing_transport())
    assert asyncio.run(with_fresh_connection_retry(call)) == "answer"
    assert call.calls == 2


def test_a_server_that_disconnects_every_time_fails_after_bounded_attempts() -> None:
    call = Flaky(10, aiohttp.ServerDisconnectedError())
    with pytest.raises(aiohttp.ServerDisconnectedError):
        asyncio.run(with_fresh_connection_retry(call))
    assert call.calls == ATTEMPTS


def test_a_timeout_is_not_retried() -> None:
    call = Flaky(1, aiohttp.ServerTimeoutError("read timed out"))
    with pytest.raises(aiohttp.ServerTimeoutError):
        asyncio.run(with_fresh_connection_retry(call))
    assert call.calls == 1
