"""JSON Schemas inferred from type annotations, and typed params built from a task's JSON.

A handler's params annotation may be a dataclass, a TypedDict or a pydantic model (pydantic is optional:
it is never imported here; a model can only exist if the user's code imported pydantic). Their fields may
use str, int, float, bool, None, Any, Optional/Union/`X | None`, list[...], dict[str, ...], Literal, Enum and
nested dataclasses/TypedDicts. A field with a default (or `NotRequired`, `total=False`) is not required; an
Optional field of a dataclass without a default is not required either (it gets None), as in the official SDK.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import sys
import types
from collections.abc import Mapping
from typing import (
    Any,
    Literal,
    NotRequired,
    Required,
    Union,
    get_args,
    get_origin,
    get_type_hints,
    is_typeddict,
)

from .schemas import problem

_SCALARS: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    type(None): "null",
}
FIX = (
    "use str, int, float, bool, None, list[...], dict[str, ...], Literal, an Enum, Optional/Union, or a "
    "nested dataclass/TypedDict; or annotate the params as dict[str, Any] and pass input_schema= yourself"
)


class UnsupportedType(TypeError):
    """A type the SDK cannot describe as a JSON Schema; `where` names the field."""

    def __init__(self, where: str, annotation: Any, why: str) -> None:
        super().__init__(f"{where}: {_name(annotation)} {why}")
        self.where = where


def _name(annotation: Any) -> str:
    if get_origin(annotation) is not None:  # set[int], not "set"
        return repr(annotation).replace("typing.", "")
    return getattr(annotation, "__qualname__", None) or repr(annotation)


def pydantic_model(annotation: Any) -> bool:
    """Whether `annotation` is a pydantic model class (False when pydantic was never imported)."""
    pydantic = sys.modules.get("pydantic")
    base = getattr(pydantic, "BaseModel", None)
    return base is not None and isinstance(annotation, type) and issubclass(annotation, base)


def is_record(annotation: Any) -> bool:
    """Whether `annotation` is a type the SDK infers a schema for: a dataclass, TypedDict or pydantic model."""
    is_dataclass_type = isinstance(annotation, type) and dataclasses.is_dataclass(annotation)
    return is_dataclass_type or is_typeddict(annotation) or pydantic_model(annotation)


def is_plain_mapping(annotation: Any) -> bool:
    """An annotation that means "the raw JSON object, no schema": none, Any, dict, dict[...], Mapping."""
    if annotation in (None, Any, object, dict, Mapping, inspect.Parameter.empty):
        return True
    return get_origin(annotation) in (dict, Mapping)


def record_schema(annotation: Any, where: str) -> dict[str, Any]:
    """The JSON Schema of a dataclass, TypedDict or pydantic model; UnsupportedType names a bad field."""
    return _schema(annotation, where, frozenset())


def _schema(tp: Any, where: str, seen: frozenset[Any]) -> dict[str, Any]:
    if tp is Any:
        return {}
    if tp in _SCALARS or tp is None:
        return {"type": _SCALARS[type(None) if tp is None else tp]}
    if tp in seen:
        raise UnsupportedType(where, tp, "refers to itself, which a JSON Schema here cannot express")
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _enum_schema([member.value for member in tp], where, tp)
    origin, args = get_origin(tp), get_args(tp)
    if origin is Literal:
        return _enum_schema(list(args), where, tp)
    if origin in (Union, types.UnionType):
        return {"anyOf": [_schema(arg, where, seen) for arg in args]}
    if tp is list or origin is list:
        return {"type": "array", "items": _schema(args[0], f"{where}[]", seen)} if args else {"type": "array"}
    if tp is dict or origin is dict:
        if args and args[0] is not str:
            raise UnsupportedType(where, tp, "has non-string keys, which JSON objects cannot have")
        if not args or args[1] is Any:
            return {"type": "object"}
        return {"type": "object", "additionalProperties": _schema(args[1], f"{where}.*", seen)}
    if pydantic_model(tp):
        return _pydantic_schema(tp, where)
    if (isinstance(tp, type) and dataclasses.is_dataclass(tp)) or is_typeddict(tp):
        return _object_schema(tp, where, seen | {tp})
    raise UnsupportedType(where, tp, "cannot be described as a JSON Schema")


def _enum_schema(values: list[Any], where: str, tp: Any) -> dict[str, Any]:
    kinds = {_SCALARS.get(type(v)) for v in values}
    if None in kinds:
        raise UnsupportedType(where, tp, "has values that are not JSON strings, numbers, booleans or null")
    schema: dict[str, Any] = {"enum": values}
    if len(kinds) == 1:
        schema["type"] = kinds.pop()
    return schema


def _pydantic_schema(model: Any, where: str) -> dict[str, Any]:
    schema: dict[str, Any] = model.model_json_schema()
    if where != "params" and where != "result" and "$defs" in schema:
        # Nested `$ref`s point at the root document, which a schema inlined here is not.
        raise UnsupportedType(
            where, model, "is a pydantic model with nested models inside a dataclass/TypedDict"
        )
    return schema


def _field_types(tp: Any, where: str) -> dict[str, Any]:
    try:
        return get_type_hints(tp, include_extras=False)
    except Exception as exc:  # NameError for names only imported under TYPE_CHECKING, and the like
        raise UnsupportedType(where, tp, f"has annotations that cannot be resolved ({exc})") from exc


def _object_schema(tp: Any, where: str, seen: frozenset[Any]) -> dict[str, Any]:
    hints = _field_types(tp, where)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, required_field in _fields(tp, hints):
        properties[name] = _schema(hints[name], f"{where}.{name}", seen)
        if required_field:
            required.append(name)
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def _fields(tp: Any, hints: dict[str, Any]) -> list[tuple[str, bool]]:
    """(name, required) of each field the JSON object may carry."""
    if is_typeddict(tp):
        # Python 3.11 reads NotRequired/Required only from evaluated annotations, not from strings
        # (`from __future__ import annotations`): look at the resolved ones too.
        marked = get_type_hints(tp, include_extras=True)
        return [(name, _typeddict_required(tp, name, marked[name])) for name in hints]
    listed = []
    for field in dataclasses.fields(tp):
        if not field.init:
            continue
        no_default = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        listed.append((field.name, no_default and not _nullable(hints[field.name])))
    return listed


def _typeddict_required(tp: Any, name: str, annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin is NotRequired:
        return False
    return origin is Required or name in tp.__required_keys__


def _nullable(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType) and type(None) in get_args(tp)


def build(tp: Any, value: Any) -> Any:
    """`value` (JSON already checked against the schema of `tp`) as `tp`: dataclasses built recursively."""
    if pydantic_model(tp):
        return tp.model_validate(value)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp(value)
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):
        return _build_union(args, value)
    if origin is list and args and isinstance(value, list):
        return [build(args[0], item) for item in value]
    if origin is dict and len(args) == 2 and isinstance(value, dict):
        return {key: build(args[1], item) for key, item in value.items()}
    if isinstance(value, dict) and (
        (isinstance(tp, type) and dataclasses.is_dataclass(tp)) or is_typeddict(tp)
    ):
        hints = get_type_hints(tp)
        fields = _fields(tp, hints)
        built = {name: build(hints[name], value[name]) for name, _ in fields if name in value}
        if is_typeddict(tp):
            return built
        for name, required in fields:
            if name not in built and not required and _nullable(hints[name]) and _no_default(tp, name):
                built[name] = None
        return tp(**built)
    return value


def _no_default(tp: Any, name: str) -> bool:
    field = {f.name: f for f in dataclasses.fields(tp)}[name]
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


def _build_union(args: tuple[Any, ...], value: Any) -> Any:
    if value is None:
        return None
    for arg in args:
        if arg is not type(None) and problem(_schema(arg, "value", frozenset()), value, "value") is None:
            return build(arg, value)
    return value


def to_json(value: Any) -> Any:
    """A dataclass or pydantic instance as its JSON object; anything else unchanged."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if pydantic_model(type(value)):
        return value.model_dump(mode="json")
    return value


def _plain(value: Any) -> Any:
    """Enum members (which asdict keeps) as their values."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value
