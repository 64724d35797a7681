"""Per-model request schemas: each card's latent size, classes and output-pixel cap."""

from __future__ import annotations

import copy
from typing import Any

from service.card import ModelCard
from service.latents import MAX_SEED
from service.schemas import MAX_IMAGES, MAX_STEPS, MAX_WEIGHT, MIN_WEIGHT
from service.settings import Limits

FLOAT32_MAX = 3.4028234663852886e38


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
