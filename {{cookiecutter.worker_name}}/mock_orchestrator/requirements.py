"""Which workers may take a task, following avtomatika 1.0b30's ``dispatcher.py`` (``_check_worker_compliance``,
the ``max_cost`` filter) and rxon's ``matches`` rules for skills, resources and artifacts.

A task may pin ``skill_version``/``skill_type``, ask for ``resource_requirements`` (``resources``,
``installed_software``, ``installed_artifacts``, ``extra_requirements``) and cap ``max_cost``; its params
must pass the skill's published ``input_schema``. Reasons use the orchestrator's words.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .schema_check import violation


@dataclass(frozen=True)
class Requirements:
    """What a task asks of a worker beyond its skill name (all optional)."""

    skill_version: str | None = None
    skill_type: str | None = None
    max_cost: float | None = None
    resource_requirements: Mapping[str, Any] = field(default_factory=dict)

    def view(self) -> dict[str, Any]:
        """The control-API representation (only what was asked for)."""
        items = {
            "skill_version": self.skill_version,
            "skill_type": self.skill_type,
            "max_cost": self.max_cost,
            "resource_requirements": dict(self.resource_requirements) or None,
        }
        return {k: v for k, v in items.items() if v is not None}


def skill_entry(record: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    """The worker's ``supported_skills`` entry named ``name`` (matched by name only, like 1.0b30)."""
    for skill in record.get("supported_skills") or []:
        if isinstance(skill, dict) and skill.get("name") == name:
            return skill
    return None


def _meets(mine: Any, wanted: Any) -> bool:
    """rxon's property rule: numbers at least, lists overlap or contain, anything else equal."""
    if mine is None:
        return False
    if isinstance(wanted, (int, float)) and isinstance(mine, (int, float)):
        return bool(mine >= wanted)
    if isinstance(wanted, list):
        return bool(set(mine) & set(wanted)) if isinstance(mine, list) else mine in wanted
    if isinstance(mine, list):
        return wanted in mine
    return bool(mine == wanted)


def _props_meet(mine: Any, wanted: Any) -> bool:
    have = mine if isinstance(mine, dict) else {}
    return all(_meets(have.get(k), v) for k, v in (wanted or {}).items())


def _device_meets(device: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    if wanted.get("type") and device.get("type") != wanted["type"]:
        return False
    model = wanted.get("model")
    if model and str(model).lower() not in str(device.get("model") or "").lower():
        return False
    if wanted.get("id") and device.get("id") != wanted["id"]:
        return False
    return _props_meet(device.get("properties"), wanted.get("properties"))


def resources_meet(mine: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Each wanted device matched by a distinct device of the worker, and the properties met."""
    free = [d for d in mine.get("devices") or [] if isinstance(d, dict)]
    for want in wanted.get("devices") or []:
        found = next((d for d in free if _device_meets(d, want)), None)
        if found is None:
            return False
        free.remove(found)
    return _props_meet(mine.get("properties"), wanted.get("properties"))


def _artifact_meets(mine: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    version = wanted.get("version", "unknown")
    return (
        mine.get("name") == wanted.get("name")
        and version in ("unknown", mine.get("version"))
        and _props_meet(mine.get("properties"), wanted.get("properties"))
    )


def _resource_rejection(record: Mapping[str, Any], wants: Mapping[str, Any]) -> str | None:
    wanted = wants.get("resources")
    if wanted:
        if "properties" not in wanted and ("cpu_cores" in wanted or "ram_gb" in wanted):
            wanted = {"properties": wanted}  # 1.0b30 accepts these two flat, too
        if not record.get("resources"):
            return "missing_worker_resources"
        if not resources_meet(record["resources"], wanted):
            return "resource_mismatch"
    installed = record.get("installed_artifacts") or []
    for want in wants.get("installed_artifacts") or []:
        want = {"name": want} if isinstance(want, str) else want
        if not any(_artifact_meets(a, want) for a in installed):
            return f"missing_artifact: {want.get('name')}"
    software = record.get("installed_software") or {}
    for name, version in (wants.get("installed_software") or {}).items():
        if name not in software:
            return f"missing_software: {name}"
        if version != "any" and software[name] != version:
            return f"software_version_mismatch: {name} ({software[name]} != {version})"
    return None


def rejection(record: Mapping[str, Any], task_type: str, params: Any, wants: Requirements) -> str | None:
    """Why this worker may not take the task (1.0b30's reason text), or None when it may."""
    if record.get("status") == "draining":
        return "worker_is_draining"
    reason = _resource_rejection(record, wants.resource_requirements)
    if reason:
        return reason
    skill = skill_entry(record, task_type)
    if skill is None:
        return f"skill_not_found: {task_type}"
    if (wants.skill_type is not None and skill.get("type") != wants.skill_type) or (
        wants.skill_version is not None and skill.get("version") != wants.skill_version
    ):
        return (
            f"skill_contract_mismatch: {task_type} "
            f"(expected version {wants.skill_version}, type {wants.skill_type})"
        )
    problem = violation(skill.get("input_schema"), params) if params else None
    if problem:
        return f"schema_validation_failed: {problem}"
    extra = (record.get("capabilities") or {}).get("extra") or {}
    for key, value in (wants.resource_requirements.get("extra_requirements") or {}).items():
        if extra.get(key) != value:
            return f"extra_mismatch: {key}"
    return None


def skill_cost(record: Mapping[str, Any], task_type: str) -> float:
    """The worker's ``capabilities.cost_per_skill`` for the task type; infinite when it names none."""
    costs = (record.get("capabilities") or {}).get("cost_per_skill")
    value = costs.get(task_type) if isinstance(costs, dict) else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else float("inf")


def accepts(record: Mapping[str, Any], task_type: str, params: Any, wants: Requirements) -> bool:
    """Whether the worker passes every check and the cost cap."""
    if rejection(record, task_type, params, wants) is not None:
        return False
    return wants.max_cost is None or skill_cost(record, task_type) <= wants.max_cost


def refusal(
    records: Iterable[Mapping[str, Any]], task_type: str, params: Any, wants: Requirements
) -> str | None:
    """Why none of these workers (all with the skill) may take the task, in 1.0b30's words; None if one may."""
    reasons: Counter[str] = Counter()
    compliant = []
    for record in records:
        reason = rejection(record, task_type, params, wants)
        if reason is None:
            compliant.append(record)
        else:
            reasons[reason] += 1
    if not compliant:
        return (
            f"No worker satisfies the resource requirements for task '{task_type}'. Reasons: {dict(reasons)}"
        )
    if wants.max_cost is not None and all(skill_cost(r, task_type) > wants.max_cost for r in compliant):
        return f"No worker meets the maximum cost ({wants.max_cost}) for task '{task_type}'"
    return None
