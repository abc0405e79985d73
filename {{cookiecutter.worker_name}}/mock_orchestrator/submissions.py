"""The rules of a task submission (``POST /api/v1/tasks`` and ``MOCK_DEMO_TASK``), shared by both."""

from __future__ import annotations

import math
from typing import Any

import orjson

from .models import FILE_METADATA, ModelError, check
from .requirements import Requirements

SUBMIT_EXAMPLE = '{"type": "check_inventory", "params": {"items": ["apple"]}, "priority": 5, "deadline": 60}'
# skill_version..resource_requirements are 1.0b30's task options, metadata its job-creation field; the four (dispatch_task's skill_version, skill_type, max_cost, resource_requirements).
SUBMIT_FIELDS = (
    "type", "params", "priority", "deadline", "skill_version", "skill_type", "max_cost", "resource_requirements",
    "metadata", "params_metadata",
)  # fmt: skip
REQUIREMENT_KEYS = ("resources", "installed_software", "installed_artifacts", "extra_requirements")

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


def _optional_text(fields: dict[str, Any], name: str, example: str) -> str | None:
    value = fields.get(name)
    if value is not None and (not isinstance(value, str) or not value):
        raise _invalid_field(name, value, "must be a non-empty string the worker's skill declares", example)
    return value


def _resource_requirements(value: Any) -> dict[str, Any]:
    example = '{"resource_requirements": {"resources": {"devices": [{"type": "gpu"}]}}}'
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _invalid_field("resource_requirements", value, "must be a JSON object", example)
    for key, item in value.items():
        if key not in REQUIREMENT_KEYS:
            rule = f"unknown key '{key}': allowed keys are {', '.join(REQUIREMENT_KEYS)}"
            raise _invalid_field("resource_requirements", value, rule, example)
        if key != "installed_artifacts" and not isinstance(item, dict):
            raise _invalid_field(f"resource_requirements.{key}", item, "must be a JSON object", example)
        if key == "installed_artifacts" and not isinstance(item, list):
            rule = "must be a list of artifact names or {name, version} objects"
            raise _invalid_field(f"resource_requirements.{key}", item, rule, example)
    return value


def parse_metadata(body: Any) -> dict[str, Any] | None:
    """The job metadata of a submission (1.0b30's job-creation ``metadata``), None when not given."""
    metadata = _check_fields(body).get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise _invalid_field("metadata", metadata, "must be a JSON object", '{"metadata": {"source": "cli"}}')
    return metadata


def parse_params_metadata(body: Any) -> dict[str, Any] | None:
    """The FileMetadata of a submission's s3:// params (what 1.0b30 sends on from a job's data_metadata).

    Keyed by param name like the orchestrator's: it sends only the entries whose key is a param.
    """
    fields = _check_fields(body)
    value = fields.get("params_metadata")
    example = '{"params_metadata": {"input_file": {"uri": "s3://avtomatika-payloads/in.csv", "size": 12}}}'
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _invalid_field(
            "params_metadata", value, "must be a JSON object of FileMetadata by param", example
        )
    params = fields.get("params") or {}
    for name, meta in value.items():
        if name not in params:
            rule = f"names no param (the params are {', '.join(params) or 'none'})"
            raise _invalid_field(f"params_metadata.{name}", meta, rule, example)
        try:
            check(FILE_METADATA, meta)
        except ModelError as exc:
            raise _invalid_field(
                f"params_metadata.{name}", meta, f"must be a FileMetadata ({exc})", example
            ) from None
    return value


def parse_requirements(body: Any) -> Requirements:
    """The 1.0b30 dispatch options of a validated submission body (skill pinning, resources, cost cap)."""
    fields = _check_fields(body)
    max_cost = fields.get("max_cost")
    if max_cost is not None and not _is_number(max_cost):
        rule = "must be a number, the highest capabilities.cost_per_skill a worker may charge"
        raise _invalid_field("max_cost", max_cost, rule, '{"max_cost": 0.5}')
    return Requirements(
        skill_version=_optional_text(fields, "skill_version", '{"skill_version": "1.2.0"}'),
        skill_type=_optional_text(fields, "skill_type", '{"skill_type": "inventory"}'),
        max_cost=max_cost,
        resource_requirements=_resource_requirements(fields.get("resource_requirements")),
    )
