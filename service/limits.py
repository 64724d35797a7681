"""Request intake: what a request must be before any handler sees it, and whether its client
is still there while it waits.

`RequestLimitsMiddleware` (ASGI) answers, before BentoML parses anything:
- 415 to a POST/PUT/PATCH with a body to a JSON route whose `Content-Type` is not
  `application/json`: a browser sends `text/plain` or a form to any origin without a CORS
  preflight. On a route that takes no body (`bodyless_paths`), a request with no body passes
  whatever its type (BentoML's task client sends `PUT /jobs/cancel` and `POST /jobs/retry`
  bare);
- 413 to a body over `max_body_bytes` (from `Content-Length` at once, or while reading);
- 408 to a body that has not fully arrived within `body_timeout_s`.

It reads the body itself (bounded) and hands it to the app in one piece. From then on the
request's `client_gone()` can watch the connection: once something starts it (a request
that is about to wait in a queue, service/batching), the watch notices the client going
away, so work still queued for it can be dropped. A request that never waits never starts
one: most do not on a GPU, where inference runs inline, and a watching task per request
would cost them a task start and a cancellation each.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Callable, Iterable
from typing import Any

from service.errors import clip, error_response

logger = logging.getLogger("service.limits")

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# Probes and scrapes pass untouched: they must stay fast whatever the load.
UNGUARDED_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics"})


class ClientWatch:
    """Whether a request's client is still connected, watched from `start()` on."""

    def __init__(self, receive: Any) -> None:
        self._receive = receive  # the server's: after the body it only returns on disconnect
        self._gone = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        """On the event loop: watch the connection from now on (once)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        self._gone.set()

    def is_set(self) -> bool:
        """The client has gone (as far as the watch has seen; any thread may ask)."""
        return self._gone.is_set()

    async def wait(self) -> bool:
        """Until the client goes; starts the watch."""
        self.start()
        return await self._gone.wait()

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


_client_gone: contextvars.ContextVar[ClientWatch | None] = contextvars.ContextVar(
    "client_gone", default=None
)


def client_gone() -> ClientWatch | None:
    """This request's client watch; None outside a guarded request."""
    return _client_gone.get()


def _content_type(scope: dict) -> str | None:
    for key, value in scope["headers"]:
        if key == b"content-type":
            return value.decode("latin-1")
    return None


def _declared_length(scope: dict) -> int | None:
    for key, value in scope["headers"]:
        if key == b"content-length":
            with contextlib.suppress(ValueError):
                return int(value)
    return None


def is_json(content_type: str | None) -> bool:
    """`application/json`, any case, parameters (charset) allowed."""
    if content_type is None:
        return False
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


class _TooLarge(Exception):
    pass


class RequestLimitsMiddleware:
    def __init__(
        self,
        app: Any,
        max_body_bytes: int,
        body_timeout_s: float,
        json_paths: Iterable[str] = (),
        json_prefixes: Iterable[str] = (),
        bodyless_paths: Iterable[str] = (),
        shed: Callable[[str, bytes], Any] | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        # Routes whose body is JSON; elsewhere a wrong method must still get the router's 405.
        self.json_paths = frozenset(json_paths)
        self.json_prefixes = tuple(json_prefixes)
        # JSON routes that take no body: a bare request is fine, a non-JSON body is not.
        self.bodyless_paths = frozenset(bodyless_paths)
        # shed(path, body) -> a 503 response or None: admission control's check on the raw
        # body, so a flood is turned away before BentoML parses and validates it.
        self.shed = shed

    def _takes_json(self, scope: dict) -> bool:
        path = scope["path"]
        return scope["method"] in BODY_METHODS and (
            path in self.json_paths or path.startswith(self.json_prefixes)
        )

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in UNGUARDED_PATHS:
            await self.app(scope, receive, send)
            return
        wrong_type = self._takes_json(scope) and not is_json(_content_type(scope))
        declared = _declared_length(scope)
        if wrong_type and (declared or scope["path"] not in self.bodyless_paths):
            await self._unsupported(scope)(scope, receive, send)
            return
        if declared is not None and declared > self.max_body_bytes:
            await self._too_large()(scope, receive, send)
            return
        try:
            # A timer on this task, not wait_for's extra task per request.
            async with asyncio.timeout(self.body_timeout_s):
                body = await self._read_body(receive)
        except _TooLarge:
            await self._too_large()(scope, receive, send)
            return
        except TimeoutError:
            await error_response(
                408, "body", f"not received within {self.body_timeout_s:g} s", "timeout"
            )(scope, receive, send)
            return
        if body is None:  # the client left while sending
            return
        if wrong_type and body:  # a chunked body, with no Content-Length to refuse it by
            await self._unsupported(scope)(scope, receive, send)
            return
        if self.shed is not None and body and self._takes_json(scope):
            try:
                answer = self.shed(scope["path"], body)
            except Exception:  # a fault here must not leave the request unanswered
                logger.exception("admission check on %s failed; the request goes on", scope["path"])
                answer = None
            if answer is not None:
                await answer(scope, receive, send)
                return
        await self._run(scope, receive, send, body)

    @staticmethod
    def _unsupported(scope: dict) -> Any:
        got = _content_type(scope)
        return error_response(
            415,
            "content-type",
            f"must be application/json, got {clip(got) if got else 'none'}",
            "unsupported_media_type",
        )

    def _too_large(self) -> Any:
        return error_response(
            413,
            "body",
            f"larger than {self.max_body_bytes} bytes (GAN_MAX_BODY_BYTES)",
            "too_large",
        )

    async def _read_body(self, receive: Any) -> bytes | None:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    async def _run(self, scope: dict, receive: Any, send: Any, body: bytes) -> None:
        watch = ClientWatch(receive)
        delivered = False

        async def replay() -> dict:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await watch.wait()
            return {"type": "http.disconnect"}

        token = _client_gone.set(watch)
        try:
            await self.app(scope, replay, send)
        finally:
            _client_gone.reset(token)
            watch.stop()
