"""JSON Schema checks of params, results and events, with fastjsonschema (the validator avtomatika runs).

`problem(schema, value, what)` returns None when `value` conforms, else one sentence naming the field,
the value, the rule it breaks and the schema's expectation, e.g.
"params.items[0]: 5 must be string (schema: {'type': 'string'})".
fastjsonschema is imported on the first check: a worker without schemas never loads it (idle memory).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import orjson

Validator = Callable[[Any], Any]


@functools.lru_cache(maxsize=256)
def _compiled(schema_json: bytes) -> Validator:
    import fastjsonschema

    return fastjsonschema.compile(orjson.loads(schema_json))


def compile_schema(schema: dict[str, Any]) -> Validator:
    """The compiled validator of `schema` (cached by content); raises SchemaError for a bad schema."""
    import fastjsonschema

    try:
        return _compiled(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS))
    except fastjsonschema.JsonSchemaDefinitionException as exc:
        raise SchemaError(f"not a usable JSON Schema: {exc}") from exc


class SchemaError(ValueError):
    """A schema the validator cannot compile."""


def problem(schema: dict[str, Any] | None, value: Any, what: str) -> str | None:
    """Why `value` (named `what`, e.g. "params") breaks `schema`, or None when it conforms."""
    if schema is None:
        return None
    validator = compile_schema(schema)
    import fastjsonschema  # loaded by compile_schema

    try:
        validator(value)
    except fastjsonschema.JsonSchemaValueException as exc:
        field = (exc.name or "data").replace("data", what, 1)
        definition = exc.definition if isinstance(exc.definition, dict) else {}
        if exc.rule == "required" and isinstance(exc.value, dict):
            missing = [key for key in definition.get("required", []) if key not in exc.value]
            return f"{field}: missing required field(s) {missing} (required: {definition.get('required')})"
        if exc.rule == "additionalProperties" and isinstance(exc.value, dict):
            known = list(definition.get("properties", {}))
            extra = [key for key in exc.value if key not in known]
            return f"{field}: unexpected field(s) {extra} (allowed: {known})"
        rule = exc.message.replace(exc.name or "data", "", 1).strip() if exc.message else "is invalid"
        expected = f" (schema: {_short(exc.definition)})" if exc.definition is not None else ""
        return f"{field}: {_short(exc.value)} {rule}{expected}"
    return None


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
