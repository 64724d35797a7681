"""Reference server: the ceiling of BentoML's own request stack on this machine.

    bentoml serve bench.bare_bentoml:BareBentoService --port 3003

A BentoML service with as many API workers as `GanService` gets (`GAN_WORKERS`, resolved
the same way), the same traffic settings, and one `@bentoml.api` that validates the same
body (`service.schemas.GenerateRequest`) and answers a PNG rendered once at start-up: no
inference, no encoding, none of our middlewares. Whatever separates the service from this
is ours; whatever separates this from the bare Starlette server is BentoML's.
"""

from __future__ import annotations

import bentoml
from PIL import Image
from starlette.responses import Response

from bench.bare_server import precomputed_pngs
from bench.common import shipped_models
from service.schemas import GenerateRequest
from service.settings import Settings

MODELS = {m.name: m for m in shipped_models()}
DEFAULT_MODEL = next(iter(MODELS))


@bentoml.service(name="bare_bentoml", workers=Settings.from_env().workers, traffic={"timeout": 60})
class BareBentoService:
    def __init__(self) -> None:
        self.pngs = precomputed_pngs(MODELS)

    @bentoml.api(route="/generate")
    async def generate(self, request: GenerateRequest, /) -> Image.Image:
        """The constant PNG grid of `n` images of the requested model."""
        body = self.pngs[request.model or DEFAULT_MODEL, request.n]
        return Response(body, media_type="image/png")  # type: ignore[return-value]
