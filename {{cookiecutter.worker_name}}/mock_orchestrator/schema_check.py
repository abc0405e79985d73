"""JSON Schema checks of params (at dispatch) and result data (output contract), worded like avtomatika 1.0b30.

The orchestrator validates with fastjsonschema and rewrites the validator's message into a sentence
(rxon ``schema.validate_data``); ``violation`` gives the same sentences, e.g.
"Missing required field: 'items'" or "Field 'items': Item at index 0: Expected string".
"""

from __future__ import annotations

import functools
import re
from typing import Any

import fastjsonschema
import orjson

_ENUM = re.compile(r"data(?:\.(.*))? must be one of (.*)", re.DOTALL)
_REQUIRED = re.compile(r"data(.*) must contain \[(.*)\]", re.DOTALL)
_UNEXPECTED = re.compile(r"data(.*) must not contain \{(.*)\} properties", re.DOTALL)
_FIELD = re.compile(r"data\.(.*?) must be (.*)", re.DOTALL)
_WHOLE = re.compile(r"data must be (.*)", re.DOTALL)


@functools.lru_cache(maxsize=256)
def _validator(schema_json: bytes) -> Any:
    try:
        return fastjsonschema.compile(orjson.loads(schema_json))
    except fastjsonschema.JsonSchemaDefinitionException:
        return None


def _fields(path: str) -> str:
    return "".join(f"Field '{part}': " for part in path.split(".") if part)


def _value_at(data: Any, path: str) -> Any:
    for part in (p for p in path.split(".") if p):
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data


def _field_sentence(path: str, expected: str, data: Any) -> str:
    *parents, last = path.split(".")
    if last.isdigit():
        if not parents:
            return f"Item at index {last}: Expected {expected}"
        return f"{_fields('.'.join(parents[:-1]))}Field '{parents[-1]}': Item at index {last}: Expected {expected}"
    got_null = ", got null" if _value_at(data, path) is None else ""
    return f"{_fields('.'.join(parents))}Field '{last}': Expected {expected}{got_null}"


def sentence(message: str, data: Any) -> str:
    """The orchestrator's wording of a fastjsonschema ``message`` about ``data``."""
    message = re.sub(r"\[(\d+)\]", r".\1", message)
    if "cannot be validated by any definition" in message or "anyOf" in message:
        return "Value does not match any schemas"
    if m := _ENUM.match(message):
        path = m.group(1) or ""
        return f"{_fields(path)}Value '{_value_at(data, path)}' is not allowed. Must be one of: {m.group(2)}"
    if m := _REQUIRED.match(message):
        return f"{_fields(m.group(1))}Missing required field: '{m.group(2).strip(chr(39) + chr(34))}'"
    if m := _UNEXPECTED.match(message):
        return f"{_fields(m.group(1))}Unexpected field: '{m.group(2).strip(chr(39) + chr(34))}'"
    if m := _FIELD.match(message):
        return _field_sentence(m.group(1), m.group(2), data)
    if m := _WHOLE.match(message):
        return f"Expected {m.group(1)}" + (", got null" if data is None else "")
    return message


def violation(schema: Any, data: Any) -> str | None:
    """Why ``data`` breaks ``schema`` in the orchestrator's words; None when it conforms or there is no schema."""
    if not isinstance(schema, dict) or not schema:
        return None
    validate = _validator(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS))
    if validate is None:
        return "Failed to compile schema"
    try:
        validate(data)
    except fastjsonschema.JsonSchemaValueException as exc:
        return sentence(exc.message, data)
    return None
