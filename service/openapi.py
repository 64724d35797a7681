"""The served OpenAPI 3.0 document: BentoML's, made valid and made to say what the service does.

BentoML generates the document from the pydantic schemas, but writes JSON Schema 2020-12
keywords OpenAPI 3.0 does not have (`exclusiveMinimum: 0`, `{"type": "null"}`), flattens
every `anyOf` in a request body to its first member (so `label` reads "integer"), and lists
400/404/500 with bodies the service never sends. `build_document` post-processes its output:

- every schema rewritten into OpenAPI 3.0 (`nullable`, boolean exclusive bounds, `enum`);
- request bodies referenced, not flattened, and split per model (`oneOf`): the model's
  `latent_dim` fixes each `z` length, its classes the valid labels (index | name | mixture),
  an unconditional model takes no label, `GAN_MAX_OUTPUT_PIXELS` caps `n` and `steps`; and
  the rules pydantic checks in code are spelled out (seed xor z, no n with z, one source
  per interpolation end, a label at one end at least for a conditional model);
- every status the service answers, each with the one error body (service/errors.py), and
  the headers it sends (`X-Seed`, `X-Model`, `Retry-After`, `WWW-Authenticate`);
- `GET /models`, which BentoML does not know about, and bearer auth when it is on;
- a description of our own: BentoML's links badge images from third-party hosts.
"""

from __future__ import annotations

import copy
from typing import Any

from service.jobs.openapi import job_paths, job_schemas
from service.openapi_responses import (
    ERROR_SCHEMA,
    IMAGE_HEADERS,
    STRING,
    error_responses,
    image_ok,
    models_path,
)
from service.openapi_schema import to_oas30
from service.openapi_variants import generate_variant, interpolate_variant
from service.registry import ModelEntry
from service.settings import Limits

__all__ = ["build_document", "to_oas30"]

ROUTES = {"/generate": "GenerateRequest", "/samples": "GenerateRequest"}
ROUTES["/interpolate"] = "InterpolateRequest"
ROUTES["/walk"] = "WalkRequest"
DESCRIPTION = (
    "Generate images from the served GAN generators. Every error answer has one shape "
    "(`Error`): `error` names the field at fault, `detail[].loc` locates it. Limits: "
    "request bodies up to {body} bytes (413), JSON only (415), at most {pixels} output "
    "pixels per answer (422), bounded queues per model (503 + `Retry-After`)."
)


def _variants(
    name: str, variants: dict[str, dict[str, Any]], description: str, example: Any
) -> dict[str, dict[str, Any]]:
    components = {f"{name}.{model}": schema for model, schema in variants.items()}
    refs = [{"$ref": f"#/components/schemas/{key}"} for key in components]
    components[name] = {"oneOf": refs, "description": description, "example": example}
    return components


def build_document(
    spec: dict[str, Any], registry: dict[str, ModelEntry], limits: Limits
) -> dict[str, Any]:
    doc = copy.deepcopy(spec)
    schemas = {k: to_oas30(v) for k, v in doc["components"]["schemas"].items()}
    for stale in ("InvalidArgument", "NotFound", "InternalServerError", "TaskStatusResponse"):
        schemas.pop(stale, None)
    schemas["Error"] = ERROR_SCHEMA
    cards = [entry.card for entry in registry.values()]
    gen, interp, endpoint = (
        schemas["GenerateRequest"],
        schemas["InterpolateRequest"],
        schemas.pop("Endpoint"),
    )
    schemas.update(
        _variants(
            "GenerateRequest",
            {c.name: generate_variant(gen, c, i == 0, limits) for i, c in enumerate(cards)},
            "One of the per-model shapes; `model` picks it (the first model when omitted).",
            gen.get("example"),
        )
    )
    schemas.update(
        _variants(
            "InterpolateRequest",
            {
                c.name: interpolate_variant(interp, endpoint, c, i == 0, limits)
                for i, c in enumerate(cards)
            },
            "One of the per-model shapes; `model` picks it (the first model when omitted).",
            interp.get("example"),
        )
    )
    errors = error_responses(limits)
    ok = {
        "/generate": image_ok(["png", "jpeg", "webp"], IMAGE_HEADERS),
        "/interpolate": image_ok(["png", "gif"], {"X-Model": IMAGE_HEADERS["X-Model"]}),
        "/walk": image_ok(
            ["png", "gif", "webp"],
            {
                "X-Model": IMAGE_HEADERS["X-Model"],
                "X-Frames": {"description": "the number of frames", **STRING},
            },
        ),
        "/samples": {
            "description": "Each image base64-encoded with its seed and label",
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/SamplesResponse"}}
            },
            "headers": IMAGE_HEADERS,
        },
    }
    for route, request in ROUTES.items():
        operation = doc["paths"][route]["post"]
        ref = {"$ref": f"#/components/schemas/{request}"}
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": ref}},
        }
        operation["responses"] = {"200": ok[route], **errors}
    for item in doc["paths"].values():
        for operation in item.values():
            for response in operation.get("responses", {}).values():
                for media in response.get("content", {}).values():
                    if "schema" in media:
                        media["schema"] = to_oas30(media["schema"])
    doc["paths"]["/models"] = models_path(limits)
    doc["paths"].update(job_paths(errors))
    schemas.update(job_schemas(to_oas30))
    doc["components"]["schemas"] = schemas
    doc["info"] = {
        "title": "gan-serving",
        "version": doc.get("info", {}).get("version", "1"),
        "description": DESCRIPTION.format(
            body=limits.max_body_bytes, pixels=limits.max_output_pixels
        ),
    }
    if limits.api_tokens:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        for path, item in doc["paths"].items():
            if path in ROUTES or path in ("/models", "/image/{model}") or path.startswith("/jobs/"):
                for operation in item.values():
                    operation["security"] = [{"bearer": []}]
    return doc
