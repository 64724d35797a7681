"""The GET routes: `/models` and the cacheable `/image/{model}`, on a FastAPI app.

BentoML's APIs answer POST only; an ASGI app mounted with `@bentoml.asgi_app` serves the GET
routes beside them, and because this one is a FastAPI app BentoML merges its routes and
schemas into the served OpenAPI document (`/docs.json`). Inference goes through the
service's own path (`GanService.render`), so a GET answer is byte for byte the POST one.
"""

from __future__ import annotations

from typing import Any

import bentoml
from fastapi import FastAPI, Path, Request
from pydantic import BaseModel, Field, ValidationError
from starlette.responses import JSONResponse, Response

from service import runtime
from service.errors import RequestError
from service.image_urls import (
    MIXTURE_DOC,
    QUERY_FIELDS,
    cache_headers,
    etag,
    etag_matches,
    request_from_query,
    validation_response,
)
from service.imaging import FORMATS
from service.plan import plan_generate
from service.render import grid_bytes
from service.schemas import GenerateRequest


class ErrorDetail(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorBody(BaseModel):
    """Every 4xx answer: the field(s) named in `error` and in `detail[].loc`."""

    error: str = Field(examples=["n: Input should be less than or equal to 64"])
    detail: list[ErrorDetail]


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "model": ErrorBody}


def _query_parameters() -> list[dict[str, Any]]:
    """OpenAPI query parameters read from `GenerateRequest`'s own schema (one source)."""
    properties = GenerateRequest.model_json_schema()["properties"]
    parameters = []
    for name in QUERY_FIELDS:
        prop = properties[name]
        # An absent query parameter is the null default: document the non-null branch only.
        prop = next((s for s in prop.get("anyOf", []) if s.get("type") != "null"), prop)
        schema = {k: v for k, v in prop.items() if k not in ("title", "description")}
        if "exclusiveMinimum" in schema:  # JSON Schema 2020-12 -> OpenAPI 3.0
            schema["minimum"], schema["exclusiveMinimum"] = schema["exclusiveMinimum"], True
        description = properties[name].get("description", "")
        if name == "label":
            schema, description = {"type": "string"}, MIXTURE_DOC
        if name == "seed":
            description += " Without a seed the answer is not cacheable (no-store)."
        parameters.append(
            {"name": name, "in": "query", "required": False, "schema": schema}
            | ({"description": description} if description else {})
        )
    parameters.append(
        {
            "name": "If-None-Match",
            "in": "header",
            "required": False,
            "schema": {"type": "string"},
            "description": "An ETag from an earlier answer: 304 Not Modified if it still holds.",
        }
    )
    return parameters


app = FastAPI(
    title="gan-service GET routes",
    # The service's own /docs.json and UI document these routes; none of FastAPI's own.
    openapi_url=None,
    docs_url=None,
    redoc_url=None,
)


# service/openapi.py documents this route's answer.
@app.get(
    "/models",
    summary="The model cards",
    description="Every model card, with the ONNX Runtime provider it actually runs on.",
    tags=["Service APIs"],
    operation_id="gan_service__models",
)
async def list_models() -> Response:
    svc = bentoml.get_current_service()
    providers = await svc.backend.providers()
    registry = runtime.registry()
    models = [
        {**entry.card.model_dump(mode="json"), "provider": providers.get(name)}
        for name, entry in registry.items()
    ]
    body = {"default": next(iter(registry)), "batching": runtime.settings().batching}
    return JSONResponse(body | {"models": models})


IMAGE_DOC = """The `/generate` image as a cacheable URL: the same fields (but `z`) as query
parameters, validated by the same schema, and the same bytes as `POST /generate`.

With a `seed` the answer never changes for this model file: a strong `ETag` and
`Cache-Control: public, max-age=31536000, immutable`; `If-None-Match` with that ETag gets a
304 without running the model. Without a seed a random one is drawn and reported in
`X-Seed`, and the answer is `no-store`."""


@app.get(
    "/image/{model}",
    summary="One image (a grid when n > 1) at a cacheable URL",
    description=IMAGE_DOC,
    tags=["Service APIs"],
    operation_id="gan_service__image",
    response_class=Response,
    responses={
        200: {
            "description": "The image; headers ETag and Cache-Control (seeded), X-Seed, X-Model.",
            "content": {
                media: {"schema": {"type": "string", "format": "binary"}}
                for media in (FORMATS["png"], FORMATS["jpeg"], FORMATS["webp"])
            },
        },
        304: {"description": "Not Modified: the If-None-Match ETag still holds."},
        400: _error("A query parameter does not fit the schema (named in `error`)."),
        401: _error("GAN_API_TOKEN is set and no valid bearer token was sent."),
        404: _error("Unknown model (the message lists them)."),
        422: _error(
            "The model cannot take it: unknown class, a label on an unconditional "
            "model, a seed range past 2^32-1."
        ),
        503: _error("Overloaded: retry after `Retry-After` seconds."),
    },
    openapi_extra={"parameters": _query_parameters()},
)
async def image(
    request: Request,
    model: str = Path(description="Model name, one of GET /models."),
) -> Response:
    try:
        req = request_from_query(model, request.query_params.multi_items())
        plan = plan_generate(runtime.registry(), req)
    except RequestError as exc:
        return exc.response()
    except ValidationError as exc:
        return validation_response(exc)
    tag = etag(req, plan) if req.seed is not None else None
    headers = cache_headers(plan, tag)
    if tag is not None and etag_matches(request.headers.get("if-none-match"), tag):
        return Response(status_code=304, headers=headers)
    svc = bentoml.get_current_service()
    body = await svc.render(plan, grid_bytes, req.format)
    if isinstance(body, Response):
        return body  # shed (503) or the client left
    return Response(body, media_type=FORMATS[req.format], headers=headers)
