"""The answers the service sends: the one error body, its statuses, headers and GET /models."""

from __future__ import annotations

from typing import Any

from service.settings import Limits


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


def image_ok(types: list[str], headers: dict[str, Any]) -> dict[str, Any]:
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
