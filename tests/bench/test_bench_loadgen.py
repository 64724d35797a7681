"""bench.loadgen's clients wait the Retry-After a 503 asks for, over real loopback HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from bench.loadgen import LoadPoint, measure


@asynccontextmanager
async def shedding_server(retry_after: str | None) -> AsyncIterator[str]:
    """Answers every request 503, with `Retry-After` as the service sheds, or without."""
    headers = {"Retry-After": retry_after} if retry_after is not None else {}

    async def shed(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"error": "overloaded"}, status=503, headers=headers)

    app = web.Application()
    app.router.add_post("/generate", shed)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def drive(honour_retry_after: bool, retry_after: str | None = "1") -> LoadPoint:
    async def run() -> LoadPoint:
        async with shedding_server(retry_after) as url:
            return await measure(
                url, "shed", 2, 1.5, warmup_s=0, honour_retry_after=honour_retry_after
            )

    return asyncio.run(run())


def test_clients_wait_retry_after_unless_told_not_to() -> None:
    polite = drive(honour_retry_after=True)
    # Each client: a 503 at t=0, the next at t≈1 s, then waits past the 1.5 s window.
    assert polite.requests == 0 and 2 <= polite.errors <= 4, polite
    assert polite.shed == polite.errors, polite  # each a 503 with Retry-After
    assert polite.seconds >= 1.4, polite  # the wait is inside the window, not skipped
    hostile = drive(honour_retry_after=False)
    assert hostile.requests == 0 and hostile.errors > 50, hostile
    assert hostile.shed == hostile.errors, hostile


def test_a_503_without_retry_after_is_an_error_not_shedding() -> None:
    for header in (None, "soon"):  # absent, or not the delay-seconds form
        point = drive(honour_retry_after=True, retry_after=header)
        assert point.errors > 50 and point.shed == 0, point  # nothing to wait for
