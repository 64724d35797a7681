"""Client errors in the same JSON shape BentoML uses for its own validation errors.

    {"error": "<field>: <message>", "detail": [{"loc": ["<field>"], "msg": "...", "type": "..."}]}

BentoML answers schema errors (wrong type, out of range, unknown field) with 400 in this
shape; the service answers registry-dependent errors itself: 404 for an unknown model,
422 for a label or latent the chosen model cannot take.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import JSONResponse


class RequestError(Exception):
    def __init__(self, field: str, message: str, status: int = 422) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.status = status

    def response(self) -> JSONResponse:
        return JSONResponse(
            {
                "error": str(self),
                "detail": [
                    {"loc": self.field.split("."), "msg": self.message, "type": "value_error"}
                ],
            },
            status_code=self.status,
        )


def _field_summary(detail: object) -> str | None:
    """'n: Input should be ...; z.0: ...' from pydantic error details, or None."""
    if not isinstance(detail, list) or not detail:
        return None
    parts = []
    for err in detail:
        if not isinstance(err, dict):
            return None
        loc = ".".join(str(p) for p in err.get("loc", [])) or "body"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


class FieldErrorMiddleware:
    """ASGI middleware: BentoML's 400 bodies say "1 validation error for GenerateRequest";
    rewrite `error` to name the field(s) from `detail`, so every 4xx message names its field."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: dict | None = None
        chunks: list[bytes] = []

        async def wrapped_send(message: dict) -> None:
            nonlocal start
            if message["type"] == "http.response.start" and message["status"] == 400:
                start = message  # hold it until the body is known
                return
            if start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = b"".join(chunks)
            try:
                data = json.loads(body)
                summary = _field_summary(data.get("detail"))
                if summary:
                    data["error"] = summary
                    body = json.dumps(data).encode()
            except (ValueError, AttributeError):
                pass
            headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, wrapped_send)
