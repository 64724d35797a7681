"""Reference server: the ceiling of BentoML's own request stack on this machine.

    bentoml serve bench.bare_bentoml:BareBentoService --port 3003

A BentoML service with as many API workers as `GanService` gets (`GAN_WORKERS`, resolved
the same way), the same BentoML settings (traffic timeout, BentoML's access log off,
OpenTelemetry's middleware off the request path unless `GAN_TRACING=on`), and one
`@bentoml.api` that validates the same body (`service.schemas.GenerateRequest`) and answers
a PNG rendered once at start-up: no inference, no encoding, none of our middlewares.
Whatever separates the service from this is ours; whatever separates this from the bare
Starlette server is BentoML's. `BENCH_BENTOML_DEFAULTS=1` serves it with BentoML's default
settings instead (access log and OpenTelemetry middleware on), to show what those cost.
"""

from __future__ import annotations

import os
from typing import Any

import bentoml
from PIL import Image
from starlette.responses import Response

from bench.bare_server import precomputed_pngs
from bench.common import shipped_models
from service.logs import NO_BENTOML_ACCESS_LOG
from service.schemas import GenerateRequest
from service.settings import Settings
from service.tracing import tracing_config

MODELS = {m.name: m for m in shipped_models()}
DEFAULT_MODEL = next(iter(MODELS))

SETTINGS: dict[str, Any] = (
    {}
    if os.environ.get("BENCH_BENTOML_DEFAULTS") == "1"
    else {"logging": NO_BENTOML_ACCESS_LOG, **tracing_config()}
)


@bentoml.service(
    name="bare_bentoml",
    workers=Settings.from_env().workers,
    traffic={"timeout": 60},
    **SETTINGS,
)
class BareBentoService:
    def __init__(self) -> None:
        self.pngs = precomputed_pngs(MODELS)

    @bentoml.api(route="/generate")
    async def generate(self, request: GenerateRequest, /) -> Image.Image:
        """The constant PNG grid of `n` images of the requested model."""
        body = self.pngs[request.model or DEFAULT_MODEL, request.n]
        return Response(body, media_type="image/png")  # type: ignore[return-value]
