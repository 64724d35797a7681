"""BentoML's OpenTelemetry middleware stays off the request path unless tracing is wanted.

BentoML wraps every request in OpenTelemetry's ASGI middleware, even with tracing's sample
rate at its default 0: it parses the URL and headers, starts a (non-recording) span and
wraps `receive` and `send` per request, about a third of BentoML's own CPU per request
(BENCHMARKS.md, sections 3 and 4). With `GAN_TRACING=off` (the default) the services set
BentoML's `tracing.excluded_urls` to every route, so the middleware passes requests straight
through; `GAN_TRACING=on` leaves it in place for BentoML's tracing configuration to use.

The span also gave each request its id (the `X-BentoML-Request-ID` header, the access
log's and the error bodies' request id); without it, `RequestIdMiddleware` draws the id.
"""

from __future__ import annotations

import os
import random
from typing import Any

from service.settings import SettingsError

EVERY_ROUTE = ".*"


def tracing_on() -> bool:
    raw = os.environ.get("GAN_TRACING", "off").strip().lower() or "off"
    if raw not in ("on", "off"):
        raise SettingsError(f"GAN_TRACING={raw!r}: use on or off")
    return raw == "on"


def tracing_config() -> dict[str, Any]:
    """The `@bentoml.service` keyword arguments for tracing (none when tracing is on)."""
    return {} if tracing_on() else {"tracing": {"excluded_urls": EVERY_ROUTE}}


class RequestIdMiddleware:
    """Gives a request the id BentoML puts in `X-BentoML-Request-ID` when no span did."""

    def __init__(self, app: Any) -> None:
        from bentoml._internal.context import trace_context

        self.app = app
        self._context = trace_context

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self._context.request_id is None:
            # Each request runs in its own task, so the context variable is its alone.
            self._context.request_id = random.getrandbits(64)
        await self.app(scope, receive, send)
