"""Reference server: Starlette + uvicorn + ORT, one request → one `session.run`, no batching.

    python -m bench.naive_server --port 3001 [--workers N] [--threadpool]

Same models, same session options, same latents and image encoding as the service; accepts
the `POST /generate` subset {model, n, seed, label, format} and answers one grid image.
The handler runs inline on the event loop: with ORT already using every core, a thread pool
would only add hand-offs (`--threadpool` to measure that variant). `--workers N` runs N
uvicorn processes, as many as the service's API workers, so that a comparison between the
two measures batching rather than process count.
"""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Awaitable, Callable

import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bench.common import shipped_models
from service import imaging
from service.engine import build_engines
from service.inputs import model_inputs
from service.registry import ModelEntry
from service.render import grid_bytes
from service.settings import Settings

MAX_N = 64


class BadRequest(ValueError):
    pass


def parse(
    body: object, models: dict[str, ModelEntry]
) -> tuple[ModelEntry, int, int, int | None, str]:
    """(model, n, seed, label, format) from a /generate body; BadRequest names the field."""
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    name = body.get("model", next(iter(models)))
    if name not in models:
        raise BadRequest(f"model: unknown {name!r}")
    n, seed, label = body.get("n", 1), body.get("seed", 0), body.get("label")
    if not isinstance(n, int) or not 1 <= n <= MAX_N:
        raise BadRequest(f"n: must be an integer in 1..{MAX_N}")
    if not isinstance(seed, int) or seed < 0:
        raise BadRequest("seed: must be a non-negative integer")
    card = models[name].card
    if label is not None:
        if not card.conditional:
            raise BadRequest(f"label: model {name!r} is unconditional")
        if not isinstance(label, int) or not 0 <= label < card.num_classes:
            raise BadRequest(f"label: must be a class index in 0..{card.num_classes - 1}")
    fmt = body.get("format", "png")
    if fmt not in ("png", "jpeg", "webp"):
        raise BadRequest("format: must be png, jpeg or webp")
    return models[name], n, seed, label, fmt


def render(images: np.ndarray, fmt: str) -> bytes:
    """Generator output [N, C, H, W] in [-1, 1] → one encoded image, with the service's code."""
    return grid_bytes(imaging.to_uint8(images), fmt)


def build_app(threadpool: bool = False) -> Starlette:
    models = {m.name: m for m in shipped_models()}
    # The service's providers, threads and IO binding: on a GPU host the naive server runs
    # on the GPU too, so the comparison is about batching, not the device.
    settings = Settings.from_env()
    engines = build_engines(models, settings.providers, settings.ort_threads, settings.io_binding)

    def generate_sync(model: ModelEntry, n: int, seed: int, label: int | None, fmt: str) -> bytes:
        feeds = model_inputs(model.card, n, seed, label)
        return render(engines[model.name].run_float(feeds["z"], feeds.get("y")), fmt)

    async def generate(request: Request) -> Response:
        try:
            model, n, seed, label, fmt = parse(await request.json(), models)
        except (BadRequest, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        args = (model, n, seed, label, fmt)
        data = await run_in_threadpool(generate_sync, *args) if threadpool else generate_sync(*args)
        return Response(data, media_type=imaging.FORMATS[fmt])

    return reference_app(generate)


def build_threadpool_app() -> Starlette:
    return build_app(threadpool=True)


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


def run(factory: str, host: str, port: int, workers: int = 1) -> None:
    """Serve the app that `module:function` builds, in `workers` uvicorn processes."""
    config = uvicorn.Config(
        factory, factory=True, host=host, port=port, log_level="warning", access_log=False
    )
    if workers == 1:
        uvicorn.Server(config).run()
        return
    # Not uvicorn's own `workers=`: it binds the listener with proto 0, so asyncio leaves
    # Nagle on for accepted connections and every keep-alive request after the first waits
    # ~40 ms for a delayed ACK (uvicorn #3149; measured 44 ms p50 at 1 client). And not one
    # shared listener either: asyncio accepts every pending connection at once, so one
    # worker could take all 32 clients of a load point. Each worker binds its own TCP
    # listener with SO_REUSEPORT, and the kernel spreads connections over them by hash.
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:  # the app (and its ORT sessions) is built in each worker after the fork
            uvicorn.Server(config).run(sockets=[_reuseport_listener(host, port)])
            os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)  # `bench.servers` stops the workers with the process group


def _reuseport_listener(host: str, port: int) -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind((host, port))
    listener.listen(2048)
    return listener


def worker_count(raw: str) -> int:
    workers = int(raw)
    if workers < 1:
        raise argparse.ArgumentTypeError("--workers must be at least 1")
    return workers


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3001)
    p.add_argument("--workers", type=worker_count, default=1, help="uvicorn processes")
    p.add_argument("--threadpool", action="store_true", help="run ORT off the event loop")
    args = p.parse_args()
    factory = "build_threadpool_app" if args.threadpool else "build_app"
    run(f"bench.naive_server:{factory}", args.host, args.port, args.workers)


if __name__ == "__main__":
    main()
