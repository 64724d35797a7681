"""One log line per request: method, route, status, duration, request id, client; for a 4xx
also the field(s) at fault and the message. Requests shed by admission control (503,
`overloaded.*`) are not logged one by one: under overload that would be thousands of lines
a second; service/batching/admission.py logs them as a periodic summary instead, and
`gan_rejected_requests_total` counts each one.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from service.errors import REQUEST_ID_HEADER
from service.limits import UNGUARDED_PATHS

logger = logging.getLogger("service.access")

BODY_SAMPLE = 8192  # bytes of an error body read to name the field


def _fields_and_message(body: bytes) -> tuple[str, str, str]:
    """(fields at fault, message, error type) from an error body in the one shape."""
    try:
        data = json.loads(body)
        detail = data.get("detail") or []
        fields = ",".join(".".join(str(p) for p in d.get("loc", [])) or "-" for d in detail)
        kind = str(detail[0].get("type", "")) if detail else ""
        return fields or "-", str(data.get("error", ""))[:200], kind
    except (ValueError, AttributeError, TypeError):
        return "-", body[:200].decode("utf-8", "replace"), ""


class AccessLogMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in UNGUARDED_PATHS:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status, request_id, sample = 0, "-", bytearray()

        async def wrapped_send(message: dict) -> None:
            nonlocal status, request_id
            if message["type"] == "http.response.start":
                status = message["status"]
                request_id = dict(message["headers"]).get(REQUEST_ID_HEADER, b"-").decode()
            elif status >= 400 and len(sample) < BODY_SAMPLE:
                sample.extend(message.get("body", b"")[: BODY_SAMPLE - len(sample)])
            await send(message)

        try:
            await self.app(scope, receive, wrapped_send)
        finally:
            self._log(scope, status, request_id, bytes(sample), started)

    @staticmethod
    def _log(scope: dict, status: int, request_id: str, body: bytes, started: float) -> None:
        ms = (time.perf_counter() - started) * 1000
        client = scope.get("client")
        where = f"{client[0]}:{client[1]}" if client else "-"
        route = scope["path"]
        extra = {"route": route, "status": status, "duration_ms": round(ms, 2), "client": where}
        head = f"{scope['method']} {route} {status or 'no-response'}"
        tail = f"{ms:.1f} ms id={request_id} client={where}"
        if status >= 400:
            fields, message, kind = _fields_and_message(body)
            if status == 503 and kind.startswith("overloaded"):
                return
            extra["field"] = fields
            level = logging.ERROR if status >= 500 else logging.INFO
            logger.log(level, "%s field=%s %r %s", head, fields, message, tail, extra=extra)
        else:
            logger.info("%s %s", head, tail, extra=extra)
