"""The public BentoML service `GanService`: HTTP routes only.

Each route plans the request (validation, latents, class vectors: service/plan.py), sends
the plan through the batching seam (service/batching), encodes the pixels and answers.
The request path through both batching modes is drawn in docs/architecture.md.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TypeVar

import anyio
import bentoml
import numpy as np
from PIL import Image
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response

from service import get_routes, heap, logs, runtime, signatures, studio_app, workers
from service.access_log import AccessLogMiddleware
from service.animation import animation_bytes
from service.auth import BearerAuthMiddleware
from service.batching import GanGenerator, make_backend
from service.batching.admission import AdmissionControl
from service.connection_spread import ConnectionSpreadMiddleware
from service.docs_ui import docs_routes
from service.errors import ClientGone, ErrorShapeMiddleware, Overloaded, RequestError
from service.header_timeout import HeaderTimeoutMiddleware
from service.imaging import FORMATS
from service.jobs import jobs_app, start_job_runner
from service.limits import BODY_METHODS, RequestLimitsMiddleware
from service.openapi import build_document
from service.plan import Plan, plan_generate, plan_interpolate
from service.probes import ProbeMiddleware
from service.render import base64_images, gif_bytes, grid_bytes, strip_bytes
from service.schemas import GenerateRequest, InterpolateRequest, Sample, SamplesResponse
from service.tracing import RequestIdMiddleware, tracing_config
from service.walk import WalkRequest, plan_walk

logger = logging.getLogger("service.app")
# BentoML's server logging keeps the root logger at WARNING; the provider each model runs on
# and the inference path are start-up facts operators should see.
logging.getLogger("service").setLevel(logging.INFO)

SETTINGS = runtime.settings()
# Checked at import: `bentoml serve` refuses to start, naming the file, before any worker.
REGISTRY = runtime.registry()
LIMITS = runtime.limits()
logs.configure(LIMITS.log_format)

# This worker's admission control once GanService has started (the intake middleware reads it).
ADMISSION: list[AdmissionControl] = []

# Below this many pixels per channel, encoding costs about what a hop to a thread does.
INLINE_ENCODE_MAX_PIXELS = 4 * 32 * 32
T = TypeVar("T")


async def encode_off_loop(encode: Callable[..., T], pixels: np.ndarray, *args: object) -> T:
    """`encode(pixels, *args)`, inline for small outputs, in a worker thread otherwise."""
    if pixels[:, 0].size <= INLINE_ENCODE_MAX_PIXELS:
        return encode(pixels, *args)
    return await anyio.to_thread.run_sync(encode, pixels, *args)


def openapi_document() -> dict:
    return build_document(GanService.openapi_spec.asdict(), REGISTRY, LIMITS)


docs_app = Starlette(routes=docs_routes(openapi_document))


# Beside the POST APIs: the API docs, GET /models and /image/{model} (service/get_routes.py)
# and the studio page (/studio/); each app answers only its own paths.
@bentoml.asgi_app(studio_app.app, path="/", name="studio")
@bentoml.asgi_app(get_routes.app, path="/", name="get_routes")
@bentoml.asgi_app(docs_app, path="/")
@bentoml.service(
    name="gan_service",
    workers=SETTINGS.workers,
    traffic={"timeout": 60},
    logging=logs.NO_BENTOML_ACCESS_LOG,
    **tracing_config(),
)
class GanService:
    """GAN image generation: /generate, /samples, /interpolate, /walk, GET /models and
    /image/{model}, and the studio page at /studio/."""

    # Declared in every batching mode, so the bento records the same services wherever it
    # is built and starts in either mode (docs/architecture.md, "One bento, both modes").
    generator = bentoml.depends(GanGenerator)

    def __init__(self) -> None:
        self.backend = make_backend(SETTINGS, REGISTRY, self.generator, LIMITS)
        ADMISSION.append(self.backend)
        workers.announce("api")
        logger.info("serving %s with %s inference", list(REGISTRY), SETTINGS.batching)
        self.jobs = start_job_runner(self.backend)
        heap.settle(SETTINGS)  # last: what start-up built is now long-lived

    async def _infer(self, plan: Plan) -> np.ndarray | Response:
        """uint8 [N, C, H, W] for the plan: the one way into inference, on either path; or
        the answer to a request admission control shed (503) or whose client left (499)."""
        try:
            return await self.backend.run(plan.card.name, plan.z, plan.y)
        except Overloaded as exc:
            return exc.response()
        except ClientGone:
            return Response(status_code=499)  # nobody reads it; the access log does

    async def render(
        self, plan: Plan, encode: Callable[..., bytes], *args: object
    ) -> bytes | Response:
        """The plan's pixels, encoded (the GET routes use it too); or the answer to a shed
        request."""
        pixels = await self._infer(plan)
        if isinstance(pixels, Response):
            return pixels
        return await encode_off_loop(encode, pixels, *args)

    def _shed_early(self, request: GenerateRequest | InterpolateRequest) -> Response | None:
        """503 before planning when the model's queue is already full: under a flood, drawing
        the latents of requests about to be shed would take the CPU the admitted ones need."""
        name = request.model if request.model is not None else next(iter(REGISTRY))
        if isinstance(request, InterpolateRequest):
            images = request.steps
        else:
            images = len(request.z) if request.z is not None else request.n
        overloaded = self.backend.shed_now(name, images) if name in REGISTRY else None
        return None if overloaded is None else overloaded.response()

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
        shed = self._shed_early(request)
        if shed is not None:
            return shed
        try:
            plan = make_plan(REGISTRY, request)
        except RequestError as exc:
            return exc.response()
        pixels = await self._infer(plan)
        if isinstance(pixels, Response):
            return pixels
        body = await encode_off_loop(encode, pixels, *args)
        return Response(body, media_type=FORMATS[request.format], headers=self._headers(plan))

    @bentoml.api(route="/generate")
    async def generate(self, request: GenerateRequest, /) -> Image.Image:
        """`n` images as one PNG/JPEG/WebP (a grid when n > 1). X-Seed reports the seed used."""
        return await self._image_response(plan_generate, request, grid_bytes, request.format)  # type: ignore[return-value]

    @bentoml.api(route="/samples")
    async def samples(self, request: GenerateRequest, /) -> SamplesResponse:
        """Like /generate, answered as JSON: each image base64-encoded with its seed and label."""
        shed = self._shed_early(request)
        if shed is not None:
            return shed  # type: ignore[return-value]
        try:
            plan = plan_generate(REGISTRY, request)
        except RequestError as exc:
            return exc.response()  # type: ignore[return-value]
        pixels = await self._infer(plan)
        if isinstance(pixels, Response):
            return pixels  # type: ignore[return-value]
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

    @bentoml.api(route="/walk")
    async def walk(self, request: WalkRequest, /) -> Image.Image:
        """A latent walk through 2..16 waypoints: a PNG strip, or an animated GIF or WebP.
        X-Frames gives the number of frames."""
        try:
            plan, durations = plan_walk(REGISTRY, request)
        except RequestError as exc:
            return exc.response()  # type: ignore[return-value]
        if request.format == "png":
            body = await self.render(plan, strip_bytes)
        else:
            body = await self.render(plan, animation_bytes, request.format, durations)
        if isinstance(body, Response):
            return body  # type: ignore[return-value]
        headers = self._headers(plan) | {"X-Frames": str(len(plan.z))}
        return Response(body, media_type=FORMATS[request.format], headers=headers)  # type: ignore[return-value]


def shed_before_parsing(path: str, body: bytes) -> Response | None:
    """503 for a request whose model's queue is full, read from the raw JSON body: under a
    flood, BentoML's parsing and validation of requests about to be shed is most of what
    shedding costs, and it runs on the loop the admitted requests need."""
    if not ADMISSION or path not in ("/generate", "/samples", "/interpolate"):
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    model = data.get("model") or next(iter(REGISTRY))
    if not isinstance(model, str):
        return None  # validation answers it
    if path == "/interpolate":
        images = data.get("steps", 8)
    else:
        images = len(data["z"]) if isinstance(data.get("z"), list) else data.get("n", 1)
    if model not in REGISTRY or type(images) is not int:
        return None  # validation answers it
    overloaded = ADMISSION[0].shed_now(model, images)
    return None if overloaded is None else overloaded.response()


signatures.precompute(GanService)

# Outermost first: the access log sees the final answer, in the one error shape.
GanService.add_asgi_middleware(
    ConnectionSpreadMiddleware, enabled=SETTINGS.connection_spread, workers=SETTINGS.workers
)
GanService.add_asgi_middleware(RequestIdMiddleware)
GanService.add_asgi_middleware(AccessLogMiddleware)
GanService.add_asgi_middleware(ErrorShapeMiddleware)
GanService.add_asgi_middleware(HeaderTimeoutMiddleware, limit_s=LIMITS.header_timeout_s)
GanService.add_asgi_middleware(ProbeMiddleware, port=LIMITS.probe_port)
GanService.add_asgi_middleware(BearerAuthMiddleware, tokens=LIMITS.api_tokens)
GanService.add_asgi_middleware(
    RequestLimitsMiddleware,
    max_body_bytes=LIMITS.max_body_bytes,
    body_timeout_s=LIMITS.body_timeout_s,
    json_paths=[
        *(api.route for api in GanService.apis.values()),
        *(f"/jobs{r.path}" for r in jobs_app.routes if r.methods & BODY_METHODS),
    ],
    bodyless_paths=["/jobs/cancel", "/jobs/retry"],
    shed=shed_before_parsing,
)

# Bulk generation jobs (service/jobs): BentoML's task routes, on the service's own store.
GanService.mount_asgi_app(jobs_app, path="/jobs")
