"""Every error answer in one JSON shape, whoever produced it (our routes, BentoML, Starlette):

    {"error": "<field>: <message>", "detail": [{"loc": ["<field>"], "msg": "...", "type": "..."}]}

BentoML answers schema errors (wrong type, out of range, unknown field) with 400 and a
pydantic error list; the service answers registry-dependent errors itself (404 unknown
model, 422 a label or latent the chosen model cannot take), the limits answer 401, 408,
413 and 415, and admission control 503 with `Retry-After`. `ErrorShapeMiddleware` rewrites
whatever else reaches the client (BentoML's 4xx and 500 bodies, Starlette's plain-text 404
and 405) into the shape above. Echoed input is clipped, so an error never grows with it.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import JSONResponse

ECHO_LIMIT = 64  # characters of client input an error message may repeat
REQUEST_ID_HEADER = b"x-bentoml-request-id"


def clip(value: object, limit: int = ECHO_LIMIT) -> str:
    """`repr(value)`, cut to `limit` characters with the original length noted."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}... ({len(value)} characters)"
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def error_body(field: str, message: str, kind: str) -> dict[str, Any]:
    loc = field.split(".") if field else []
    return {
        "error": f"{field}: {message}" if field else message,
        "detail": [{"loc": loc, "msg": message, "type": kind}],
    }


def error_response(
    status: int, field: str, message: str, kind: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(field, message, kind), status_code=status, headers=headers)


class RequestError(Exception):
    """Input the chosen model cannot take: a 4xx naming the field."""

    def __init__(self, field: str, message: str, status: int = 422) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.status = status

    def response(self) -> JSONResponse:
        return error_response(self.status, self.field, self.message, "value_error")


class Overloaded(Exception):
    """Admission control shed this request: 503 with `Retry-After`, counted by reason."""

    def __init__(self, model: str, reason: str, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.model = model
        self.reason = reason
        self.message = message
        self.retry_after_s = retry_after_s

    def response(self) -> JSONResponse:
        return error_response(
            503,
            "",
            f"overloaded: {self.message}; retry after {self.retry_after_s} s",
            f"overloaded.{self.reason}",
            headers={"Retry-After": str(self.retry_after_s)},
        )


class ClientGone(Exception):
    """The client closed its connection before its request was computed."""


def _pydantic_detail(detail: list) -> list[dict[str, Any]] | None:
    """pydantic error dicts -> {loc, msg, type} only (no docs URL, no echoed input)."""
    out = []
    for err in detail:
        if not isinstance(err, dict):
            return None
        loc = [p if isinstance(p, int) else str(p) for p in err.get("loc", [])]
        out.append(
            {"loc": loc, "msg": str(err.get("msg", "invalid")), "type": str(err.get("type", ""))}
        )
    return out


def _summary(detail: list[dict[str, Any]]) -> str:
    """'n: Input should be ...; z.0: ...'."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in detail
    )


def reshape(status: int, body: bytes, request_id: str | None) -> dict[str, Any]:
    """Any error body -> the one shape; bodies already in it pass through unchanged."""
    try:
        data: Any = json.loads(body)
    except ValueError:
        data = body.decode("utf-8", "replace").strip()
    if isinstance(data, list) and len(data) == 1 and isinstance(data[0], dict):
        data = data[0]  # BentoML answers some 4xx as a one-element list
    if isinstance(data, dict) and isinstance(data.get("detail"), list):
        detail = _pydantic_detail(data["detail"])
        if detail is not None:
            if data.get("error") and all(set(d) == {"loc", "msg", "type"} for d in data["detail"]):
                return {"error": str(data["error"]), "detail": detail}
            return {"error": _summary(detail) or str(data.get("error", "")), "detail": detail}
    message = data.get("error") if isinstance(data, dict) else data
    message = str(message or "error")[:200]
    if status >= 500:
        kind = "internal_error"
        message = "internal error; the server log has the traceback"
        if request_id:
            message += f" under request id {request_id}"
    else:
        kind = {404: "not_found", 405: "method_not_allowed"}.get(status, "request_error")
    return error_body("", message, kind)


class ErrorShapeMiddleware:
    """ASGI middleware: rewrite every error body (status >= 400) into the one shape."""

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
            if message["type"] == "http.response.start" and message["status"] >= 400:
                start = message  # hold it until the body is known
                return
            if start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            headers = dict(start["headers"])
            request_id = headers.get(REQUEST_ID_HEADER, b"").decode() or None
            body = json.dumps(reshape(start["status"], b"".join(chunks), request_id)).encode()
            keep = [
                (k, v)
                for k, v in start["headers"]
                if k.lower() not in (b"content-length", b"content-type")
            ]
            keep += [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
            await send({**start, "headers": keep})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, wrapped_send)


# The name app.py has always imported.
FieldErrorMiddleware = ErrorShapeMiddleware
