"""Strict message models mirroring rxon 1.0b17 (msgspec semantics and error texts)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class ModelError(ValueError):
    """A message failed its model; the text follows msgspec's wording."""


@dataclass(frozen=True)
class Spec:
    """A JSON type: ``kind`` is str, int, float, any, object (dict of ``item``) or array (of ``item``)."""

    kind: str
    item: Spec | None = None
    nullable: bool = False


@dataclass(frozen=True)
class Struct(Spec):
    """An object with named fields; unknown members are ignored, listed in ``required`` must be present."""

    fields: dict[str, Spec] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    name: str = ""


STR = Spec("str")
INT = Spec("int")
FLOAT = Spec("float")
ANY = Spec("any")
OPT_STR = Spec("str", nullable=True)
OPT_INT = Spec("int", nullable=True)
OPT_OBJ = Spec("object", ANY, nullable=True)
OPT_STR_LIST = Spec("array", STR, nullable=True)


def _opt(spec: Spec) -> Spec:
    if isinstance(spec, Struct):
        return Struct(spec.kind, None, True, spec.fields, spec.required, spec.name)
    return Spec(spec.kind, spec.item, True)


def _struct(struct_name: str, required: tuple[str, ...], /, **fields: Spec) -> Struct:
    return Struct("object", None, False, fields, required, struct_name)


SECURITY_CONTEXT = _struct(
    "SecurityContext", (), signature=OPT_STR, signer_id=OPT_STR, identity_chain=OPT_STR_LIST, metadata=OPT_OBJ
)
SKILL_INFO = _struct(
    "SkillInfo",
    ("name",),
    name=STR,
    type=OPT_STR,
    description=OPT_STR,
    version=OPT_STR,
    input_schema=OPT_OBJ,
    output_schema=OPT_OBJ,
    events_schema=Spec("object", Spec("object", ANY), nullable=True),
    output_statuses=OPT_STR_LIST,
    schema_dialect=STR,
    properties=OPT_OBJ,
)
HARDWARE_DEVICE = _struct(
    "HardwareDevice", ("type",), type=STR, model=OPT_STR, id=OPT_STR, properties=OPT_OBJ, metrics=OPT_OBJ
)
RESOURCES = _struct(
    "Resources", (), devices=Spec("array", HARDWARE_DEVICE, nullable=True), properties=OPT_OBJ
)
INSTALLED_ARTIFACT = _struct(
    "InstalledArtifact", ("name",), name=STR, version=STR, type=OPT_STR, properties=OPT_OBJ
)
WORKER_CAPABILITIES = _struct(
    "WorkerCapabilities",
    (),
    hostname=STR,
    ip_address=STR,
    cost_per_skill=Spec("object", FLOAT, nullable=True),
    s3_config_hash=OPT_STR,
    extra=OPT_OBJ,
)
FILE_METADATA = _struct("FileMetadata", ("uri",), uri=STR, size=INT, etag=OPT_STR, metadata=OPT_OBJ)
TASK_ERROR = _struct("TaskError", ("code", "message"), code=STR, message=STR, details=OPT_OBJ)

WORKER_REGISTRATION = _struct(
    "WorkerRegistration",
    ("worker_id",),
    worker_id=STR,
    worker_type=STR,
    supported_skills=Spec("array", SKILL_INFO, nullable=True),
    available_skills=OPT_STR_LIST,
    hot_skills=OPT_STR_LIST,
    resources=_opt(RESOURCES),
    installed_software=Spec("object", STR, nullable=True),
    installed_artifacts=Spec("array", INSTALLED_ARTIFACT, nullable=True),
    capabilities=_opt(WORKER_CAPABILITIES),
    skills_hash=OPT_STR,
    security=_opt(SECURITY_CONTEXT),
    metadata=OPT_OBJ,
    timestamp=OPT_INT,
)
TASK_RESULT = _struct(
    "TaskResult",
    ("job_id", "task_id"),
    job_id=STR,
    task_id=STR,
    worker_id=OPT_STR,
    origin_worker_id=OPT_STR,
    status=STR,
    data=OPT_OBJ,
    error=_opt(TASK_ERROR),
    data_metadata=Spec("object", FILE_METADATA, nullable=True),
    security=_opt(SECURITY_CONTEXT),
    metadata=OPT_OBJ,
    timestamp=OPT_INT,
    costs=OPT_OBJ,
)
WORKER_EVENT = _struct(
    "WorkerEventPayload",
    ("event_id", "worker_id", "origin_worker_id", "event_type", "payload"),
    event_id=STR,
    worker_id=STR,
    origin_worker_id=STR,
    event_type=STR,
    payload=Spec("object", ANY),
    origin_task_id=OPT_STR,
    bubbling_chain=OPT_STR_LIST,
    target_job_id=OPT_STR,
    target_task_id=OPT_STR,
    trace_context=Spec("object", STR, nullable=True),
    priority=FLOAT,
    timestamp=OPT_INT,
    security=_opt(SECURITY_CONTEXT),
    metadata=OPT_OBJ,
)

_JSON_NAMES: dict[type, str] = {
    str: "str",
    bool: "bool",
    int: "int",
    float: "float",
    dict: "object",
    list: "array",
}


def _json_name(value: Any) -> str:
    return "null" if value is None else _JSON_NAMES.get(type(value), type(value).__name__)


def _fail(text: str, path: str) -> ModelError:
    return ModelError(text if path == "$" else f"{text} - at `{path}`")


def _matches(kind: str, value: Any) -> bool:
    if kind == "any":
        return True
    if kind == "str":
        return isinstance(value, str)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, dict if kind == "object" else list)


def check(spec: Spec, value: Any, path: str = "$") -> Any:
    """Validate ``value`` against ``spec``; return it with unknown struct members and nulls removed."""
    if value is None and (spec.nullable or spec.kind == "any"):
        return None
    if not _matches(spec.kind, value):
        expected = f"{spec.kind} | null" if spec.nullable else spec.kind
        raise _fail(f"Expected `{expected}`, got `{_json_name(value)}`", path)
    if isinstance(spec, Struct):
        return _check_struct(spec, value, path)
    if spec.kind == "object" and spec.item is not None:
        return {key: check(spec.item, item, f"{path}[...]") for key, item in value.items()}
    if spec.kind == "array" and spec.item is not None:
        return [check(spec.item, item, f"{path}[{index}]") for index, item in enumerate(value)]
    return value


def _check_struct(spec: Struct, value: dict[str, Any], path: str) -> dict[str, Any]:
    cleaned: dict[str, Any] = {}
    for key, item in value.items():
        member = spec.fields.get(key)
        if member is None:
            continue
        checked = check(member, item, f"{path}.{key}")
        if checked is not None:
            cleaned[key] = checked
    for name in spec.required:
        if name not in value:
            raise _fail(f"Object missing required field `{name}`", path)
    return cleaned


def parse(spec: Struct, value: Any) -> dict[str, Any]:
    """Validate a whole message; the error text matches rxon's ``from_dict``."""
    try:
        return dict(check(spec, value))
    except ModelError as exc:
        raise ModelError(f"Failed to instantiate {spec.name}: {exc}") from None
