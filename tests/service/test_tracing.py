"""GAN_TRACING: BentoML's OpenTelemetry middleware off the request path unless asked for.
(The request id that then comes from RequestIdMiddleware is checked against a live server in
tests/service/test_reliability.py: the access log's id is the X-BentoML-Request-ID header.)"""

from __future__ import annotations

import asyncio

import pytest

from service.settings import SettingsError
from service.tracing import RequestIdMiddleware, tracing_config


def test_tracing_off_by_default_excludes_every_route(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GAN_TRACING", raising=False)
    assert tracing_config() == {"tracing": {"excluded_urls": ".*"}}
    monkeypatch.setenv("GAN_TRACING", "on")
    assert tracing_config() == {}
    monkeypatch.setenv("GAN_TRACING", "maybe")
    with pytest.raises(SettingsError, match="GAN_TRACING"):
        tracing_config()


def test_each_request_gets_its_own_id_and_a_span_id_is_kept() -> None:
    from bentoml._internal.context import trace_context

    seen: list[int | None] = []

    async def app(scope: dict, receive: object, send: object) -> None:
        seen.append(trace_context.request_id)

    middleware = RequestIdMiddleware(app)

    async def request(preset: int | None = None) -> None:
        if preset is not None:  # what OpenTelemetry's hook does when tracing is on
            trace_context.request_id = preset
        await middleware({"type": "http"}, None, None)

    async def main() -> None:
        # Each request runs in its own task, as uvicorn runs them.
        await asyncio.gather(asyncio.create_task(request()), asyncio.create_task(request()))
        await asyncio.create_task(request(preset=42))

    asyncio.run(main())
    assert None not in seen[:2] and seen[0] != seen[1]
    assert seen[2] == 42
