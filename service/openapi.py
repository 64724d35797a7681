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

from service.card import ModelCard
from service.latents import MAX_SEED
from service.registry import ModelEntry
from service.schemas import MAX_IMAGES, MAX_STEPS, MAX_WEIGHT, MIN_WEIGHT
from service.settings import Limits

FLOAT32_MAX = 3.4028234663852886e38
ROUTES = {"/generate": "GenerateRequest", "/samples": "GenerateRequest"}
ROUTES["/interpolate"] = "InterpolateRequest"
ROUTES["/walk"] = "WalkRequest"
DESCRIPTION = (
    "Generate images from the served GAN generators. Every error answer has one shape "
    "(`Error`): `error` names the field at fault, `detail[].loc` locates it. Limits: "
    "request bodies up to {body} bytes (413), JSON only (415), at most {pixels} output "
    "pixels per answer (422), bounded queues per model (503 + `Retry-After`)."
)

SCHEMA_LISTS = ("anyOf", "oneOf", "allOf")
SCHEMA_MAPS = ("properties", "patternProperties")
SCHEMA_ONE = ("items", "additionalProperties", "not")


def to_oas30(schema: Any) -> Any:
    """A pydantic (JSON Schema 2020-12) schema as an OpenAPI 3.0 Schema Object."""
    if not isinstance(schema, dict):
        return schema
    s: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("root_input", "$defs"):
            continue
        if key in SCHEMA_LISTS:
            s[key] = [to_oas30(v) for v in value]
        elif key in SCHEMA_MAPS:
            s[key] = {k: to_oas30(v) for k, v in value.items()}
        elif key in SCHEMA_ONE:
            s[key] = to_oas30(value)
        else:
            s[key] = value
    for key in ("anyOf", "oneOf"):
        options = s.get(key)
        if options and any(o.get("type") == "null" for o in options):
            rest = [o for o in options if o.get("type") != "null"]
            del s[key]
            if len(rest) == 1 and "$ref" not in rest[0]:
                s = {**rest[0], **s}
            else:
                s[key] = rest
            s["nullable"] = True
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if bound in s and not isinstance(s[bound], bool):
            s[plain], s[bound] = s[bound], True
    if "const" in s:
        s["enum"] = [s.pop("const")]
    if "examples" in s:
        examples = s.pop("examples")
        s.setdefault("example", examples[0] if isinstance(examples, list) else examples)
    if s.get("nullable") and isinstance(s.get("enum"), list) and None not in s["enum"]:
        s["enum"] = [*s["enum"], None]
    return s


def _pixels(card: ModelCard) -> int:
    return card.image.channels * card.image.height * card.image.width


def _most_images(card: ModelCard, cap: int, limits: Limits) -> int:
    return max(1, min(cap, limits.max_output_pixels // _pixels(card)))


def _latent(card: ModelCard) -> dict[str, Any]:
    return {
        "type": "array",
        "minItems": card.latent_dim,
        "maxItems": card.latent_dim,
        "items": {"type": "number", "minimum": -FLOAT32_MAX, "maximum": FLOAT32_MAX},
        "description": f"{card.latent_dim} finite float32 values",
    }


def label_schema(card: ModelCard, nullable: bool = True) -> dict[str, Any]:
    """index | name | mixture for a conditional model; nothing for an unconditional one."""
    if not card.conditional:
        return {
            "nullable": True,
            "enum": [None],
            "description": f"{card.name} is unconditional: no label",
        }
    k = card.num_classes
    names = list(card.class_names)
    schema: dict[str, Any] = {
        "description": (
            "A class index, a class name (any case; its index as a string works too), or a "
            f"mixture {{class: weight}}, weights in [{MIN_WEIGHT:g}, {MAX_WEIGHT:g}] "
            "normalised to sum 1. Omitted: image i gets class i mod "
            f"{k}. Classes: " + ", ".join(f"{i}={c!r}" for i, c in enumerate(names))
        ),
        "oneOf": [
            {"type": "integer", "minimum": 0, "maximum": k - 1},
            {"type": "string", "enum": names + [str(i) for i in range(k)]},
            {
                "type": "object",
                "minProperties": 1,
                "additionalProperties": False,
                "properties": {
                    c: {"type": "number", "minimum": MIN_WEIGHT, "maximum": MAX_WEIGHT}
                    for c in names
                },
            },
        ],
    }
    if nullable:
        schema["nullable"] = True
    return schema


def _model_field(card: ModelCard, default: bool) -> dict[str, Any]:
    if default:
        return {
            "type": "string",
            "enum": [card.name, None],
            "nullable": True,
            "description": f"{card.name}, the default model when omitted",
        }
    return {"type": "string", "enum": [card.name]}


def _present(field: str, type_: str) -> dict[str, Any]:
    """`field` is given and not null."""
    return {"required": [field], "properties": {field: {"type": type_}}}


def generate_variant(
    base: dict[str, Any], card: ModelCard, default: bool, limits: Limits
) -> dict[str, Any]:
    v = copy.deepcopy(base)
    props = v["properties"]
    most = _most_images(card, MAX_IMAGES, limits)
    props["model"] = _model_field(card, default)
    props["n"]["maximum"] = most
    props["z"] = {**_latent_list(card, most), "nullable": True}
    props["label"] = label_schema(card)
    if not default:
        v["required"] = ["model"]
    v["title"] = f"GenerateRequest for {card.name}"
    v.pop("example", None)
    v["not"] = {"anyOf": [_both("seed", "integer"), _both("n", "integer"), _seed_overrun()]}
    return v


def _seed_overrun() -> dict[str, Any]:
    """seed + n - 1 > MAX_SEED: image i's seed (seed + i) would leave the seed range."""
    return {
        "required": ["seed", "n"],
        "anyOf": [
            {
                "properties": {
                    "seed": {"type": "integer", "minimum": MAX_SEED - k + 2},
                    "n": {"type": "integer", "minimum": k},
                }
            }
            for k in range(2, MAX_IMAGES + 1)
        ],
    }


def _latent_list(card: ModelCard, most: int) -> dict[str, Any]:
    return {
        "type": "array",
        "minItems": 1,
        "maxItems": most,
        "items": _latent(card),
        "description": "explicit latents, one per image; excludes seed and n",
    }


def _both(other: str, type_: str) -> dict[str, Any]:
    """`other` and `z` are both given, neither null."""
    return {
        "required": [other, "z"],
        "properties": {other: {"type": type_}, "z": {"type": "array"}},
    }


def endpoint_schema(base: dict[str, Any], card: ModelCard) -> dict[str, Any]:
    e = copy.deepcopy(base)
    e["properties"]["z"] = {**_latent(card), "nullable": True}
    e["properties"]["label"] = label_schema(card)
    e["oneOf"] = [_present("seed", "integer"), _present("z", "array")]
    e["description"] = "One end: exactly one of seed or z, and an optional label."
    return e


def interpolate_variant(
    base: dict[str, Any], endpoint: dict[str, Any], card: ModelCard, default: bool, limits: Limits
) -> dict[str, Any]:
    v = copy.deepcopy(base)
    props = v["properties"]
    props["model"] = _model_field(card, default)
    props["steps"]["maximum"] = _most_images(card, MAX_STEPS, limits)
    props["start"] = props["end"] = endpoint_schema(endpoint, card)
    v["required"] = sorted(
        {*v.get("required", []), "start", "end", *([] if default else ["model"])}
    )
    if card.conditional:
        labelled = {"required": ["label"], "properties": {"label": label_schema(card, False)}}
        v["anyOf"] = [
            {"properties": {"start": labelled}},
            {"properties": {"end": labelled}},
        ]
    v["title"] = f"InterpolateRequest for {card.name}"
    v.pop("example", None)
    return v


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if headers:
        response["headers"] = headers
    return response


ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "detail"],
    "description": "Every error answer: `error` is one line naming the field(s).",
    "properties": {
        "error": {"type": "string"},
        "detail": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["loc", "msg", "type"],
                "properties": {
                    "loc": {
                        "type": "array",
                        "items": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
                        "description": "path to the field; empty for the request as a whole",
                    },
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
}
STRING = {"schema": {"type": "string"}}
IMAGE_HEADERS = {
    "X-Model": {"description": "the model that answered", **STRING},
    "X-Seed": {
        "description": "the request's seed, drawn at random when none was given; absent for z",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
}


def error_responses(limits: Limits) -> dict[str, Any]:
    retry = {"Retry-After": {"required": True, **STRING, "description": "seconds to wait"}}
    auth = {"WWW-Authenticate": {"required": True, **STRING}}
    return {
        "400": _error("The body does not fit the schema (malformed JSON, wrong type, range)."),
        "401": _error("GAN_API_TOKEN is set and no valid bearer token was sent.", auth),
        "404": _error("`model` is not one of GET /models."),
        "408": _error(f"The body did not arrive within {limits.body_timeout_s:g} s."),
        "413": _error(f"The body is larger than {limits.max_body_bytes} bytes."),
        "415": _error("Content-Type is not application/json."),
        "422": _error(
            "The model cannot take it: unknown class, a label for an unconditional model, "
            "a z of the wrong length, more output pixels than the limit."
        ),
        "500": _error("A server error; `error` carries the request id of its log entry."),
        "503": _error(
            "Overloaded: the model's queue is full, or the request could not start in time. "
            "Retry after `Retry-After` seconds.",
            retry,
        ),
    }


def _image_ok(types: list[str], headers: dict[str, Any]) -> dict[str, Any]:
    binary = {"schema": {"type": "string", "format": "binary"}}
    return {
        "description": "The image",
        "content": {f"image/{t}": binary for t in types},
        "headers": headers,
    }


def models_path(limits: Limits) -> dict[str, Any]:
    return {
        "get": {
            "tags": ["Service APIs"],
            "operationId": "gan_service__models",
            "description": "The model cards, each with the ONNX Runtime provider it runs on.",
            "responses": {
                "200": {
                    "description": "Model index",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["default", "batching", "models"],
                                "properties": {
                                    "default": {"type": "string"},
                                    "batching": {"type": "string"},
                                    "models": {"type": "array", "items": {"type": "object"}},
                                },
                            }
                        }
                    },
                },
                "401": error_responses(limits)["401"],
            },
        }
    }


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
        "/generate": _image_ok(["png", "jpeg", "webp"], IMAGE_HEADERS),
        "/interpolate": _image_ok(["png", "gif"], {"X-Model": IMAGE_HEADERS["X-Model"]}),
        "/walk": _image_ok(
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
            if path in ROUTES or path in ("/models", "/image/{model}"):
                for operation in item.values():
                    operation["security"] = [{"bearer": []}]
    return doc
