"""The API docs: `/docs.json` (service/openapi.py) and a Swagger UI page at `/` that loads
nothing from third parties.

BentoML's own page pulls Google Tag Manager, and Swagger UI by default sends the document
to validator.swagger.io for a badge. This page uses the Swagger UI files BentoML ships
(served under `/static_content/`), no tag manager, and `validatorUrl: null`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

PAGE = """<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="UTF-8">
    <title>gan-serving API</title>
    <link rel="stylesheet" type="text/css" href="./static_content/swagger-ui.css" />
    <link rel="stylesheet" type="text/css" href="./static_content/index.css" />
    <link rel="icon" type="image/png" href="./static_content/favicon-light-32x32.png" />
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="./static_content/swagger-ui-bundle.js" charset="UTF-8"></script>
    <script src="./static_content/swagger-ui-standalone-preset.js" charset="UTF-8"></script>
    <script src="./docs-ui.js" charset="UTF-8"></script>
  </body>
</html>
"""
INITIALIZER = """window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "./docs.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "StandaloneLayout",
  });
};
"""
# Same-origin only: the page may load nothing from any other host.
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'"
)


def docs_routes(document: Callable[[], dict[str, Any]]) -> list[Route]:
    """Routes for `/`, `/docs-ui.js` and `/docs.json`; `document()` is built once."""
    build = functools.cache(document)

    async def page(request: Request) -> Response:
        return Response(PAGE, media_type="text/html", headers={"Content-Security-Policy": CSP})

    async def script(request: Request) -> Response:
        return Response(INITIALIZER, media_type="application/javascript")

    async def spec(request: Request) -> JSONResponse:
        return JSONResponse(build())

    return [
        Route("/", page, methods=["GET"]),
        Route("/docs-ui.js", script, methods=["GET"]),
        Route("/docs.json", spec, methods=["GET"]),
    ]
