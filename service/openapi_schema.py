"""JSON Schema 2020-12 (pydantic) rewritten as an OpenAPI 3.0 Schema Object."""

from __future__ import annotations

from typing import Any

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
