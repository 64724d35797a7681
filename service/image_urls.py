"""Cacheable image URLs: `GET /image/{model}?seed=7&n=16&label=Sneaker` as a `/generate` body.

The query is validated by the very model `POST /generate` uses (`GenerateRequest`), so the
fields, limits and error messages are the same. A seeded answer never changes for a given
model file, so it gets a strong ETag and a year-long immutable cache lifetime; an unseeded
one draws a fresh seed each time and must not be stored.

Nothing here runs a model: the route (service/get_routes.py) answers `If-None-Match` with a
304 before inference.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

import numpy as np
import PIL
from pydantic import ValidationError
from starlette.responses import JSONResponse

from service.errors import RequestError
from service.plan import Plan
from service.schemas import GenerateRequest

IMMUTABLE = "public, max-age=31536000, immutable"
NO_STORE = "no-store"
# Query fields of the GET route: every `/generate` field except the model (in the path) and
# explicit latents (too long for a URL; POST /generate takes them).
QUERY_FIELDS = ("n", "seed", "label", "truncation", "format")
MIXTURE_DOC = (
    "A class index, a class name (case-insensitive), or a mixture as comma-separated "
    "class:weight pairs, e.g. 7:0.5,5:0.5 or Sneaker:0.5,Sandal:0.5 (weights >= 0, "
    "normalised to sum 1)."
)


def parse_label(value: str) -> str | dict[str, str]:
    """'Sneaker' stays a name or index; 'Sneaker:0.5,Sandal:0.5' becomes a mixture.

    Weights stay strings: the pydantic model converts and range-checks them, so a bad weight
    gets the message a bad JSON weight gets.
    """
    if ":" not in value:
        return value
    mixture: dict[str, str] = {}
    for part in value.split(","):
        name, sep, weight = part.rpartition(":")
        if not sep or not name.strip():
            raise RequestError("label", f"{part!r} is not class:weight", 400)
        if name.strip() in mixture:
            raise RequestError("label", f"class {name.strip()!r} given twice", 400)
        mixture[name.strip()] = weight.strip()
    return mixture


def request_from_query(model: str, items: Iterable[tuple[str, str]]) -> GenerateRequest:
    """Path model + query pairs -> the `/generate` request. Raises `RequestError` (field
    named) for what only a URL can get wrong, pydantic's `ValidationError` for the rest."""
    body: dict[str, object] = {"model": model}
    for key, value in items:
        if key == "model":
            raise RequestError("model", "the model is part of the path: /image/{model}", 400)
        if key == "z":
            raise RequestError("z", "explicit latents are taken by POST /generate only", 400)
        if key in body:
            raise RequestError(key, "given more than once", 400)
        body[key] = parse_label(value) if key == "label" else value
    # Strings mode: "16" is an integer here, as a query string can only say it that way; the
    # JSON body stays strict about its types.
    return GenerateRequest.model_validate_strings(body)


def validation_response(exc: ValidationError) -> JSONResponse:
    """The 400 body BentoML gives a bad JSON body, with the fields named in `error`."""
    detail = exc.errors(include_context=False, include_input=False)
    summary = "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in detail
    )
    return JSONResponse({"error": summary, "detail": detail}, status_code=400)


def canonical_request(req: GenerateRequest, plan: Plan) -> str:
    """What determines the answer's bytes, in one canonical string.

    Labels are canonical as the class vector fed to the model (so 'sneaker', 'Sneaker', 7 and
    {'Sneaker': 2} agree), truncation as the float32 the latents are scaled by.
    """
    card = plan.card
    n = len(plan.z)
    labels = None
    if plan.y is not None:
        labels = [float(w) for w in plan.y[0]] if n == 1 or _same_rows(plan.y) else "cycle"
    body = {
        "model": card.name,
        "sha256": card.sha256,
        "n": n,
        "seed": plan.seed,
        "y": labels,
        "truncation": float(np.float32(req.truncation)),
        "format": req.format,
        "pillow": PIL.__version__,  # the encoder's version: bytes, not just pixels, must agree
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def _same_rows(y: np.ndarray) -> bool:
    return bool((y == y[0]).all())


def etag(req: GenerateRequest, plan: Plan) -> str:
    """A strong ETag: the same value exactly when the answer's bytes are the same."""
    return '"' + hashlib.sha256(canonical_request(req, plan).encode()).hexdigest()[:40] + '"'


def etag_matches(if_none_match: str | None, tag: str) -> bool:
    """`If-None-Match` uses the weak comparison (RFC 9110 13.1.2): W/ prefixes are ignored."""
    if not if_none_match:
        return False
    candidates = [c.strip() for c in if_none_match.split(",")]
    return "*" in candidates or any(c.removeprefix("W/") == tag for c in candidates)


def cache_headers(plan: Plan, tag: str | None) -> dict[str, str]:
    """Seeded (`tag` given): immutable; a drawn seed (no tag): never stored, the seed reported."""
    headers = {"X-Model": plan.card.name}
    if plan.seed is not None:
        headers["X-Seed"] = str(plan.seed)
    if tag is None:
        headers["Cache-Control"] = NO_STORE
    else:
        headers["Cache-Control"] = IMMUTABLE
        headers["ETag"] = tag
    return headers
