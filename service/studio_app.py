"""The studio page (`/studio/`): static HTML, CSS and JS from service/studio/, no build step.

The page calls the API with relative URLs (`../generate`, `../image/...`), so it works under
any path prefix; for the same reason `/studio` redirects with a relative `Location`
(`studio/`), which a proxy that strips a prefix leaves intact, where an absolute one would
not be.
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

STUDIO_DIR = Path(__file__).resolve().parent / "studio"


async def to_folder(request: Request) -> Response:
    return Response(status_code=308, headers={"Location": "studio/"})


app = Starlette(
    routes=[
        Route("/studio", to_folder, methods=["GET", "HEAD"]),
        Mount("/studio", StaticFiles(directory=STUDIO_DIR, html=True), name="studio"),
    ]
)
