"""The BentoML services: `GanService` (public HTTP API) and `GanGenerator` (batched inference).

Two inference paths, one setting (`GAN_BATCHING`, see service/settings.py):
- `adaptive`: `GanService` sends each request's latents, one array row per image, to the
  batchable `GanGenerator.generate_batch` through `bentoml.depends`; BentoML's adaptive
  batching merges rows from concurrent requests into one `session.run` per model.
- `inprocess`: `GanService` runs its own ONNX Runtime sessions on inference threads; no hop.
  Concurrent requests still share calls: service/batcher.py queues them, and a free
  inference thread takes everything queued as its next batch.
`auto` (default) picks adaptive when a GPU provider is available, in-process otherwise:
on CPU the hop costs more than batching saves (README, "Batching").

Validation, latent sampling and image encoding always run in `GanService`, never in
the batched call; encoding of anything bigger than a few tiles runs in a thread so the
event loop keeps accepting requests.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import anyio
import bentoml
import numpy as np
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service import wire
from service.batcher import MicroBatcher
from service.engine import Engine, build_engines, verify_models
from service.errors import FieldErrorMiddleware, RequestError
from service.imaging import FORMATS
from service.metrics import record_queue
from service.plan import Plan, plan_generate, plan_interpolate
from service.registry import load_registry
from service.render import base64_images, gif_bytes, grid_bytes, strip_bytes
from service.retry import with_fresh_connection_retry
from service.schemas import GenerateRequest, InterpolateRequest, Sample, SamplesResponse
from service.settings import Settings

logger = logging.getLogger("service.app")
# BentoML's server logging keeps the root logger at WARNING; the provider each model runs on
# and the inference path are start-up facts operators should see.
logging.getLogger("service").setLevel(logging.INFO)

SETTINGS = Settings.from_env()
# Every check (card schema, sha256, graph names and shapes, one run) happens at import:
# `bentoml serve` refuses to start, naming the file, before it spawns any worker.
REGISTRY = load_registry(SETTINGS.models_dir)
verify_models(REGISTRY)

# Encoding a few 28x28 tiles takes ~0.1 ms, about what a hop to the thread pool costs, so small
# outputs are encoded on the event loop; bigger grids go to a thread to keep it responsive.
INLINE_ENCODE_MAX_PIXELS = 4 * 32 * 32
T = TypeVar("T")


async def encode_off_loop(encode: Callable[..., T], pixels: np.ndarray, *args: object) -> T:
    """`encode(pixels, *args)`, inline for small outputs, in a worker thread otherwise."""
    if pixels[:, 0].size <= INLINE_ENCODE_MAX_PIXELS:
        return encode(pixels, *args)
    return await anyio.to_thread.run_sync(encode, pixels, *args)


# BentoML >= 1.4.30 recycles the dependency client's aiohttp session after `max_requests`
# calls or `max_age` seconds, closing it under in-flight calls (500s under load, upstream
# #5540/#5544). `runner_connection` is the supported per-service setting for those limits;
# set far out of reach, the session lives as long as the worker.
NEVER_RECYCLE = {"max_requests": 2**62, "max_age": 10.0 * 365 * 24 * 3600}


CARDS = [entry.card for entry in REGISTRY.values()]  # wire-format model index -> card
MODEL_INDEX = {card.name: index for index, card in enumerate(CARDS)}
REQUEST_WIDTH, ANSWER_WIDTH = wire.request_width(CARDS), wire.answer_width(CARDS)


def run_rows(engines: dict[str, Engine], rows: np.ndarray) -> np.ndarray:
    """A merged batch of wire rows -> uint8 answer rows: one `session.run` per model present."""
    now = time.time()
    out = np.zeros((len(rows), ANSWER_WIDTH), dtype=np.uint8)
    for index, where, z, y, times in wire.split_request(rows, CARDS):
        name = CARDS[index].name
        for t in np.unique(times):  # one enqueue time per request: observe per request
            record_queue(name, now - float(t))
        out[where] = wire.pack_answer(engines[name].run(z, y), ANSWER_WIDTH)
    return out


@bentoml.service(
    name="gan_generator",
    workers=1,
    traffic={"timeout": 60},
    runner_connection=NEVER_RECYCLE,
)
class GanGenerator:
    """Batched ONNX Runtime inference: latents in, uint8 pixels out (pickled, 1 B/pixel)."""

    def __init__(self) -> None:
        self.engines = build_engines(
            REGISTRY, SETTINGS.providers, SETTINGS.ort_threads, SETTINGS.io_binding
        )

    @bentoml.api(
        batchable=True,
        max_batch_size=SETTINGS.max_batch_size,
        max_latency_ms=SETTINGS.max_latency_ms,
    )
    def generate_batch(self, rows: np.ndarray) -> np.ndarray:
        """float64 request rows, one per image -> uint8 pixel rows (service/wire.py)."""
        return run_rows(self.engines, rows)

    @bentoml.api
    async def providers(self) -> dict[str, str]:
        return {name: engine.provider for name, engine in self.engines.items()}


async def list_models(request: Request) -> JSONResponse:
    """GET /models: the model cards, each with the execution provider it actually runs on."""
    svc: GanService = bentoml.get_current_service()
    providers = await svc.providers()
    models = [
        {**entry.card.model_dump(mode="json"), "provider": providers.get(name)}
        for name, entry in REGISTRY.items()
    ]
    return JSONResponse(
        {"default": next(iter(REGISTRY)), "batching": SETTINGS.batching, "models": models}
    )


models_app = Starlette(routes=[Route("/models", list_models, methods=["GET"])])


@bentoml.asgi_app(models_app, path="/")
@bentoml.service(
    name="gan_service",
    workers=SETTINGS.workers,
    traffic={"timeout": 60},
)
class GanService:
    """GAN image generation: /generate, /samples, /interpolate, GET /models."""

    if SETTINGS.batching == "adaptive":
        generator = bentoml.depends(GanGenerator)

    def __init__(self) -> None:
        self.engines: dict[str, Engine] = {}
        self.batchers: dict[str, MicroBatcher] = {}
        if SETTINGS.batching == "inprocess":
            self.engines = build_engines(
                REGISTRY, SETTINGS.providers, SETTINGS.ort_threads, SETTINGS.io_binding
            )
            self.batchers = {
                name: MicroBatcher(
                    name, engine.run, SETTINGS.max_batch_size, SETTINGS.batches_in_flight
                )
                for name, engine in self.engines.items()
            }
        self._providers: dict[str, str] | None = None
        logger.info("serving %s with %s inference", list(REGISTRY), SETTINGS.batching)

    async def providers(self) -> dict[str, str]:
        if self._providers is None:
            if self.engines:
                self._providers = {n: e.provider for n, e in self.engines.items()}
            else:
                self._providers = await self.generator.to_async.providers()
        return self._providers

    async def _infer(self, plan: Plan) -> np.ndarray:
        """uint8 [N, C, H, W] for the plan's latents, through the configured path."""
        name = plan.card.name
        if self.batchers:
            return await self.batchers[name].run(plan.z, plan.y)
        rows = wire.pack_request(
            MODEL_INDEX[name], plan.card, plan.z, plan.y, time.time(), REQUEST_WIDTH
        )
        answer = await with_fresh_connection_retry(
            lambda: self.generator.to_async.generate_batch(rows)
        )
        return wire.unpack_answer(np.asarray(answer), plan.card)

    @staticmethod
    def _headers(plan: Plan) -> dict[str, str]:
        headers = {"X-Model": plan.card.name}
        if plan.seed is not None:
            headers["X-Seed"] = str(plan.seed)
        return headers

    async def _image_response(
        self,
        make_plan: Callable[..., Plan],
        request: GenerateRequest | InterpolateRequest,
        encode: Callable[..., bytes],
        *args: object,
    ) -> Response:
        """Plan (a 4xx naming the field on bad input), infer, encode: one image response."""
        try:
            plan = make_plan(REGISTRY, request)
        except RequestError as exc:
            return exc.response()
        pixels = await self._infer(plan)
        body = await encode_off_loop(encode, pixels, *args)
        return Response(body, media_type=FORMATS[request.format], headers=self._headers(plan))

    @bentoml.api(route="/generate")
    async def generate(self, request: GenerateRequest, /) -> Image.Image:
        """`n` images as one PNG/JPEG/WebP (a grid when n > 1). X-Seed reports the seed used."""
        return await self._image_response(plan_generate, request, grid_bytes, request.format)  # type: ignore[return-value]

    @bentoml.api(route="/samples")
    async def samples(self, request: GenerateRequest, /) -> SamplesResponse:
        """Like /generate, answered as JSON: each image base64-encoded with its seed and label."""
        try:
            plan = plan_generate(REGISTRY, request)
        except RequestError as exc:
            return exc.response()  # type: ignore[return-value]
        pixels = await self._infer(plan)
        encoded = await encode_off_loop(base64_images, pixels, request.format)
        body = SamplesResponse(
            model=plan.card.name,
            format=request.format,
            width=plan.card.image.width,
            height=plan.card.image.height,
            images=[
                Sample(index=i, seed=plan.seeds[i], label=plan.labels[i], image=encoded[i])
                for i in range(len(encoded))
            ],
        )
        return JSONResponse(body.model_dump(), headers=self._headers(plan))  # type: ignore[return-value]

    @bentoml.api(route="/interpolate")
    async def interpolate(self, request: InterpolateRequest, /) -> Image.Image:
        """`steps` frames from start to end (slerp or lerp; labels morph too): PNG strip or GIF."""
        encode = gif_bytes if request.format == "gif" else strip_bytes
        return await self._image_response(plan_interpolate, request, encode)  # type: ignore[return-value]


GanService.add_asgi_middleware(FieldErrorMiddleware)
