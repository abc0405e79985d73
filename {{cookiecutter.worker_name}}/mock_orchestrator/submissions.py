"""The rules of a task submission (``POST /api/v1/tasks`` and ``MOCK_DEMO_TASK``), shared by both."""

from __future__ import annotations

import math
from typing import Any

import orjson

SUBMIT_EXAMPLE = '{"type": "check_inventory", "params": {"items": ["apple"]}, "priority": 5, "deadline": 60}'
SUBMIT_FIELDS = ("type", "params", "priority", "deadline")

Submission = tuple[str, dict[str, Any], float, float | None]


class InvalidRequest(ValueError):
    """A client request the control API refuses with 400; the text says what to send instead."""


def show(value: Any) -> str:
    """``value`` as compact JSON, cut at 80 characters (for error messages)."""
    text = orjson.dumps(value).decode()
    return text if len(text) <= 80 else text[:77] + "..."


def _invalid_field(name: str, value: Any, rule: str, example: str) -> InvalidRequest:
    return InvalidRequest(f"field '{name}' = {show(value)} is invalid: {rule}; e.g. {example}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_fields(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidRequest(f"request body must be a JSON object, got {show(body)}; e.g. {SUBMIT_EXAMPLE}")
    for name in body:
        if name not in SUBMIT_FIELDS:
            raise InvalidRequest(
                f"unknown field '{name}' = {show(body[name])}: allowed fields are "
                f"{', '.join(SUBMIT_FIELDS)}; e.g. {SUBMIT_EXAMPLE}"
            )
    return body


def parse_submission(body: Any) -> Submission:
    """Validate a submission body; return (type, params, priority, deadline seconds)."""
    fields = _check_fields(body)
    task_type = fields.get("type")
    if not isinstance(task_type, str) or not task_type.strip():
        rule = "must be a non-empty string, the name of a skill your worker registers"
        raise _invalid_field("type", task_type, rule, '{"type": "check_inventory"}')
    params = fields.get("params", {})
    if not isinstance(params, dict):
        raise _invalid_field("params", params, "must be a JSON object", '{"params": {"items": ["apple"]}}')
    priority = fields.get("priority", 0)
    if not _is_number(priority):
        raise _invalid_field("priority", priority, "must be a number, higher runs first", '{"priority": 5}')
    deadline = fields.get("deadline")
    if deadline is not None and not (_is_number(deadline) and deadline > 0):
        rule = "must be a positive number of seconds from now"
        raise _invalid_field("deadline", deadline, rule, '{"deadline": 60}')
    return task_type, params, priority, deadline
