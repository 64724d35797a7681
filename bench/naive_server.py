"""Reference server: Starlette + uvicorn + ORT, one request → one `session.run`, no batching.

    python -m bench.naive_server --port 3001

Same models, same session options, same latents and image encoding as the service; accepts
the `POST /generate` subset {model, n, seed, label, format} and answers one grid image.
The handler runs inline on the event loop: with ORT already using every core, a thread pool
would only add hand-offs (`--threadpool` to measure that variant).
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable

import numpy as np
import onnxruntime as ort
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bench.common import inputs, session, shipped_models
from service import imaging
from service.registry import ModelEntry
from service.render import grid_bytes

MAX_N = 64


class BadRequest(ValueError):
    pass


def parse(body: object, models: dict[str, ModelEntry]) -> tuple[ModelEntry, int, int, int, str]:
    """(model, n, seed, label, format) from a /generate body; BadRequest names the field."""
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    name = body.get("model", next(iter(models)))
    if name not in models:
        raise BadRequest(f"model: unknown {name!r}")
    n, seed, label = body.get("n", 1), body.get("seed", 0), body.get("label", 0)
    if not isinstance(n, int) or not 1 <= n <= MAX_N:
        raise BadRequest(f"n: must be an integer in 1..{MAX_N}")
    if not isinstance(seed, int) or seed < 0:
        raise BadRequest("seed: must be a non-negative integer")
    if not isinstance(label, int):
        raise BadRequest("label: this server takes class indices only")
    fmt = body.get("format", "png")
    if fmt not in ("png", "jpeg", "webp"):
        raise BadRequest("format: must be png, jpeg or webp")
    return models[name], n, seed, label, fmt


def render(images: np.ndarray, fmt: str) -> bytes:
    """Generator output [N, C, H, W] in [-1, 1] → one encoded image, with the service's code."""
    return grid_bytes(imaging.to_uint8(images), fmt)


def build_app(threadpool: bool = False) -> Starlette:
    models = {m.name: m for m in shipped_models()}
    sessions: dict[str, ort.InferenceSession] = {n: session(m) for n, m in models.items()}

    def generate_sync(model: ModelEntry, n: int, seed: int, label: int, fmt: str) -> bytes:
        out = model.card.output_names[0]
        (images,) = sessions[model.name].run([out], inputs(model.card, n, seed, label))
        return render(images, fmt)

    async def generate(request: Request) -> Response:
        try:
            model, n, seed, label, fmt = parse(await request.json(), models)
        except (BadRequest, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        args = (model, n, seed, label, fmt)
        data = await run_in_threadpool(generate_sync, *args) if threadpool else generate_sync(*args)
        return Response(data, media_type=imaging.FORMATS[fmt])

    return reference_app(generate)


def reference_app(generate: Callable[[Request], Awaitable[Response]]) -> Starlette:
    """POST /generate plus the probes `bench.servers` waits on; shared with the bare server."""

    async def ready(_: Request) -> Response:
        return PlainTextResponse("ok")

    return Starlette(
        routes=[
            Route("/generate", generate, methods=["POST"]),
            Route("/readyz", ready),
            Route("/livez", ready),
        ]
    )


def run(app: Starlette, host: str, port: int) -> None:
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3001)
    p.add_argument("--threadpool", action="store_true", help="run ORT off the event loop")
    args = p.parse_args()
    run(build_app(args.threadpool), args.host, args.port)


if __name__ == "__main__":
    main()
