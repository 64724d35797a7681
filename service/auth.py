"""Optional bearer-token check: `GAN_API_TOKEN` set (one token, or several comma-separated to
rotate without downtime) means every route but health, metrics and the API docs needs
`Authorization: Bearer <token>`; unset (the default), nothing is checked.
"""

from __future__ import annotations

import hmac
from typing import Any

from service.errors import error_response

# Probes, scrapes and the API description stay open: kubelet and Prometheus carry no token.
OPEN_PATHS = frozenset(
    {"/livez", "/readyz", "/healthz", "/metrics", "/", "/docs.json", "/docs-ui.js", "/schema.json"}
)
OPEN_PREFIXES = ("/static_content/",)


def is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


class BearerAuthMiddleware:
    def __init__(self, app: Any, tokens: tuple[str, ...]) -> None:
        self.app = app
        self.tokens = [t.encode() for t in tokens]

    def _authorized(self, scope: dict) -> bool:
        for key, value in scope["headers"]:
            if key == b"authorization":
                scheme, _, credential = value.partition(b" ")
                if scheme.lower() != b"bearer":
                    return False
                credential = credential.strip()
                # compare_digest against every token: the time taken says nothing about which
                return any([hmac.compare_digest(credential, t) for t in self.tokens])
        return False

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if (
            not self.tokens
            or scope["type"] != "http"
            or scope["method"] == "OPTIONS"
            or is_open(scope["path"])
            or self._authorized(scope)
        ):
            await self.app(scope, receive, send)
            return
        await error_response(
            401,
            "authorization",
            "a valid bearer token is required (Authorization: Bearer <token>)",
            "unauthorized",
            headers={"WWW-Authenticate": 'Bearer realm="gan-serving"'},
        )(scope, receive, send)
