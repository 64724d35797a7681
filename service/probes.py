"""Health probes answered off the event loop, on their own port (`GAN_PROBE_PORT`).

BentoML answers `/livez` and `/readyz` on the event loop that also parses every request: under
a flood of hostile connections the loop has hundreds of requests ahead of a probe, and a
probe can wait past the kubelet's timeout even though the service is shedding load as it
should. With `GAN_PROBE_PORT` set, each API worker also answers `GET /livez` and
`GET /readyz` from a thread of its own on that port (the workers share it through
SO_REUSEPORT), in microseconds whatever the loop is doing. They are not blind to the loop:
a task on it stamps a heartbeat every second, and both probes fail (503) once the stamp is
older than `STALE_S`, so a wedged loop still fails its liveness probe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

logger = logging.getLogger("service.probes")

BEAT_S = 1.0
STALE_S = 30.0


class _Heart:
    def __init__(self) -> None:
        self.beat = 0.0  # monotonic time of the loop's last heartbeat; 0 before start-up
        self.ready = False  # the service finished starting (models loaded, warmed up)

    def fresh(self) -> bool:
        return self.beat > 0 and time.monotonic() - self.beat < STALE_S


class _ReusePortServer(HTTPServer):
    allow_reuse_address = True
    allow_reuse_port = True


def _handler(heart: _Heart) -> type[BaseHTTPRequestHandler]:
    class Probe(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path not in ("/livez", "/readyz", "/healthz"):
                self.send_error(404)
                return
            ok = heart.fresh() and (heart.ready or self.path == "/livez")
            body = b"\n" if ok else b"starting, or event loop not responding\n"
            self.send_response(200 if ok else 503)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # probes every few seconds would drown the access log

    return Probe


async def _beat(heart: _Heart) -> None:
    while True:
        heart.beat = time.monotonic()
        await asyncio.sleep(BEAT_S)


class ProbeMiddleware:
    """ASGI middleware that, at worker start-up, starts the probe thread and the heartbeat."""

    def __init__(self, app: Any, port: int) -> None:
        self.app = app
        self.port = port
        self._started = False

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan" or not self.port or self._started:
            await self.app(scope, receive, send)
            return
        self._started = True
        heart = _Heart()
        beat = asyncio.get_running_loop().create_task(_beat(heart))
        server = _ReusePortServer(("", self.port), _handler(heart))
        threading.Thread(target=server.serve_forever, name="probes", daemon=True).start()
        logger.info("health probes on port %d (GAN_PROBE_PORT), off the event loop", self.port)

        async def watch_startup(message: dict) -> None:
            if message["type"] == "lifespan.startup.complete":
                heart.ready = True
            elif message["type"].startswith("lifespan.shutdown"):
                heart.ready = False
            await send(message)

        try:
            await self.app(scope, receive, watch_startup)
        finally:
            server.shutdown()
            server.server_close()
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
