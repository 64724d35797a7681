"""Reference server: the HTTP limit of this machine on the service's stack (uvicorn/Starlette).

    python -m bench.bare_server --port 3002 [--workers N]

Parses the same `POST /generate` body as the naive server, then answers with a PNG grid of
`n` images generated once at start-up: no inference and no encoding per request.
"""

from __future__ import annotations

import argparse

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bench.common import session, shipped_models
from bench.naive_server import (
    MAX_N,
    BadRequest,
    parse,
    reference_app,
    render,
    run,
    worker_count,
)
from service.inputs import model_inputs
from service.registry import ModelEntry


def precomputed_pngs(models: dict[str, ModelEntry]) -> dict[tuple[str, int], bytes]:
    """(model, n) -> the PNG grid of the model's first n images, rendered once."""
    pngs: dict[tuple[str, int], bytes] = {}
    for name, model in models.items():
        (images,) = session(model).run(None, model_inputs(model.card, MAX_N))
        for n in range(1, MAX_N + 1):
            pngs[name, n] = render(images[:n], "png")
    return pngs


def build_app() -> Starlette:
    models = {m.name: m for m in shipped_models()}
    pngs = precomputed_pngs(models)

    async def generate(request: Request) -> Response:
        try:
            model, n, _, _, _ = parse(await request.json(), models)
        except (BadRequest, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return Response(pngs[model.name, n], media_type="image/png")

    return reference_app(generate)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3002)
    p.add_argument("--workers", type=worker_count, default=1, help="uvicorn processes")
    args = p.parse_args()
    run("bench.bare_server:build_app", args.host, args.port, args.workers)


if __name__ == "__main__":
    main()
