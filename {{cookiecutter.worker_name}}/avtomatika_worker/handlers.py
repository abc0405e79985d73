"""What a handler's signature asks for, learnt once at decoration, and how to call it with a task.

A handler is an `async def` or a plain `def` (run in the worker's thread pool, never on the event loop).
It gets the task's params (the parameter named `params`, else its first positional parameter) and, by
name, any of TASK_KWARGS it declares (all of them with `**kwargs`). A required parameter the worker
cannot supply is a mistake the decorator reports at import time, naming the handler and the parameter.

Typed params: when the params parameter is annotated with a dataclass, TypedDict or pydantic model (and
`input_schema` is not a dict), its JSON Schema is inferred (typed.py), published and checked before the
handler runs, and the handler gets the built object. A return annotation of one of those types gives the
output schema, and the handler then returns the data itself (an instance, or the TypedDict's dict).
`input_schema=False` / `output_schema=False` keep the local check but publish no schema.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, replace
from typing import Any, get_type_hints

from . import typed

Handler = Callable[..., Any]
RunSync = Callable[[Callable[[], Any]], Awaitable[Any]]

# Every value a task carries, plus what the worker offers (the official SDK's names, and `state`).
TASK_KWARGS = (
    "task_id", "job_id", "priority", "deadline", "tracing_context", "metadata", "security",
    "skill_version", "send_progress", "send_event", "state", "add_to_hot_skills", "remove_from_hot_skills",
    "files", "task_files",
)  # fmt: skip
_BY_NAME_ONLY = frozenset({"files", "task_files"})  # a file workspace only for a handler that names it
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


@dataclass(frozen=True)
class Skill:
    """What the worker publishes about one skill when it registers (rxon's SkillInfo)."""

    name: str
    type: str | None = None
    version: str | None = None
    description: str | None = None
    input_schema: dict[str, Any] | bool | None = None  # False: infer and check, but do not publish
    output_schema: dict[str, Any] | bool | None = None
    output_statuses: tuple[str, ...] | None = None
    events_schema: dict[str, dict[str, Any]] | None = None
    schema_dialect: str | None = None  # unset: rxon's default, "json-schema"
    properties: dict[str, Any] | None = None  # free-form; 1.0b30 keeps them in the worker record

    def published(self) -> dict[str, Any]:
        """The `supported_skills` entry: name, type (the name unless set), and what else is set."""
        info: dict[str, Any] = {"name": self.name, "type": self.type or self.name}
        keys = ("version", "description", "input_schema", "output_schema", "events_schema", "schema_dialect")
        for key in (*keys, "properties"):
            if (value := getattr(self, key)) is not None:
                info[key] = value
        if self.output_statuses is not None:
            info["output_statuses"] = list(self.output_statuses)
        return info


def check_skill(handler: str, skill: Skill) -> Skill:
    """Return `skill` if every field has the right type; else raise naming the handler and the field."""

    def bad(field: str, value: Any, rule: str, example: str) -> TypeError:
        return TypeError(
            f"@worker.task({skill.name!r}) on {handler!r}: {field}={value!r} {rule}; e.g. {example}"
        )

    for field in ("type", "version", "description", "schema_dialect"):
        value = getattr(skill, field)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise bad(field, value, "must be a non-empty string", f'{field}="1.2.0"')
    for field in ("input_schema", "output_schema", "events_schema"):
        value = getattr(skill, field)
        unpublished = value is False and field != "events_schema"
        if value is not None and not unpublished and not isinstance(value, dict):
            rule = "must be a JSON Schema object (a dict), or False to keep it unpublished"
            raise bad(field, value, rule, f"{field}=" + '{"type": "object"}')
    properties = skill.properties
    if properties is not None and not (
        isinstance(properties, dict) and all(isinstance(k, str) for k in properties)
    ):
        raise bad(
            "properties", properties, "must be a dict with string keys", 'properties={"model": "resnet50"}'
        )
    statuses = skill.output_statuses
    if statuses is not None and not all(isinstance(s, str) and s for s in statuses):
        raise bad(
            "output_statuses", statuses, "must be a list of non-empty strings", '["success", "out_of_stock"]'
        )
    return skill


@dataclass(frozen=True)
class RegisteredHandler:
    """A handler, how it takes the params, which task keyword arguments it accepts, and its skill."""

    name: str
    func: Handler
    accepted_kwargs: frozenset[str]
    params_as: str | None = "positional"  # "positional", "keyword" (a `params` parameter) or None
    is_async: bool = True
    skill: Skill | None = None
    params_type: Any = None  # the dataclass/TypedDict/pydantic model the params are built into
    input_check: dict[str, Any] | None = None  # checked before the handler runs (published or not)
    output_check: dict[str, Any] | None = None  # checked on a `success` result's data
    returns_data: bool = False  # the return annotation is a record type: the handler returns the data

    @classmethod
    def wrap(cls, name: str, func: Handler, skill: Skill | None = None) -> RegisteredHandler:
        """Inspect `func` once; raise TypeError naming the parameter if the worker cannot call it."""
        if not callable(func):
            raise TypeError(f"the handler for task {name!r} must be a function, got {type(func).__name__}")
        params = list(inspect.signature(func).parameters.values())
        params_as, taken = _params_binding(params)
        accepts_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
        by_name = {p.name for p in params if p.kind is not inspect.Parameter.POSITIONAL_ONLY}
        accepted = frozenset(TASK_KWARGS) - _BY_NAME_ONLY if accepts_all else frozenset(TASK_KWARGS) & by_name
        for p in params:
            if p is taken or p.kind in _VARIADIC or p.default is not inspect.Parameter.empty:
                continue
            if p.name not in accepted:
                raise TypeError(_unknown_parameter(name, func, p.name))
        qualname = getattr(func, "__qualname__", repr(func))
        skill = check_skill(qualname, skill or Skill(name))
        if skill.description is None and (doc := inspect.getdoc(func)):
            skill = replace(skill, description=doc)
        contract = _Contract.infer(name, func, taken, skill)
        return cls(
            name, func, accepted, params_as, inspect.iscoroutinefunction(func), contract.skill,
            contract.params_type, contract.input_check, contract.output_check, contract.returns_data,
        )  # fmt: skip

    async def call(self, params: Any, kwargs: Mapping[str, Any], run_sync: RunSync | None) -> Any:
        """Call the handler (a sync one through `run_sync`, by default a thread); return its value."""
        args: tuple[Any, ...] = (params,) if self.params_as == "positional" else ()
        if self.params_as == "keyword":
            kwargs = {"params": params, **kwargs}
        if self.is_async:
            return await self.func(*args, **kwargs)
        # The log context (task and job id) follows the handler into its thread.
        call = functools.partial(contextvars.copy_context().run, self.func, *args, **kwargs)
        return await (run_sync(call) if run_sync is not None else asyncio.to_thread(call))


@dataclass(frozen=True)
class _Contract:
    """The schemas of a handler: explicit, or inferred from its annotations; what is published and checked."""

    skill: Skill
    params_type: Any
    input_check: dict[str, Any] | None
    output_check: dict[str, Any] | None
    returns_data: bool

    @classmethod
    def infer(cls, name: str, func: Handler, taken: inspect.Parameter | None, skill: Skill) -> _Contract:
        """Infer what `skill` leaves open; raise TypeError naming the handler, parameter and field."""
        hints = _hints(name, func, taken)
        params_type = _record_annotation(name, func, taken, hints)
        returned = hints.get("return")
        returns_data = typed.is_record(returned)
        input_check = _schema_for(name, func, skill.input_schema, params_type, "params")
        output_check = _schema_for(
            name, func, skill.output_schema, returned if returns_data else None, "result"
        )
        published = replace(
            skill,
            input_schema=input_check if skill.input_schema is not False else None,
            output_schema=output_check if skill.output_schema is not False else None,
        )
        return cls(published, params_type, input_check, output_check, returns_data)


def _hints(name: str, func: Handler, taken: inspect.Parameter | None) -> dict[str, Any]:
    """The handler's resolved annotations; an unresolvable params annotation is a TypeError."""
    try:
        return get_type_hints(func)
    except Exception as exc:  # NameError for names imported only under TYPE_CHECKING, and the like
        if taken is None:
            return {}
        raw = getattr(func, "__annotations__", {}).get(taken.name)
        if isinstance(raw, str) and not raw.replace(" ", "").startswith(("dict", "Any", "Mapping")):
            raise TypeError(
                f"{_where(name, func)}: the annotation {raw!r} of parameter {taken.name!r} cannot be "
                f"resolved ({exc}). Fix: import that type at module level, not under TYPE_CHECKING"
            ) from exc
        return {}


def _record_annotation(
    name: str, func: Handler, taken: inspect.Parameter | None, hints: dict[str, Any]
) -> Any:
    """The params parameter's dataclass/TypedDict/pydantic annotation, or None for a plain dict."""
    if taken is None or taken.kind in _VARIADIC:
        return None
    annotation = hints.get(taken.name)
    if typed.is_plain_mapping(annotation):
        return None
    if typed.is_record(annotation):
        return annotation
    raise TypeError(
        f"{_where(name, func)}: parameter {taken.name!r} is annotated {annotation!r}, but task params are "
        "a JSON object. Fix: annotate it with a dataclass, a TypedDict, a pydantic model or dict[str, Any]"
    )


def _schema_for(
    name: str, func: Handler, given: dict[str, Any] | bool | None, annotation: Any, what: str
) -> dict[str, Any] | None:
    """The explicit schema, else the one inferred from `annotation` (None when there is none)."""
    if isinstance(given, dict):
        return given
    if annotation is None:
        return None
    try:
        return typed.record_schema(annotation, what)
    except typed.UnsupportedType as exc:
        raise TypeError(
            f"{_where(name, func)}: cannot infer the {'input' if what == 'params' else 'output'} schema: "
            f"{exc}. Fix: {typed.FIX}"
        ) from exc


def _where(name: str, func: Handler) -> str:
    return f"handler {getattr(func, '__qualname__', repr(func))!r} for task {name!r}"


def _params_binding(params: list[inspect.Parameter]) -> tuple[str | None, inspect.Parameter | None]:
    """How the handler takes the params, and the parameter that receives them."""
    for p in params:
        if p.name == "params" and p.kind is not inspect.Parameter.POSITIONAL_ONLY and p.kind not in _VARIADIC:
            return "keyword", p
    for p in params:
        if p.kind in _POSITIONAL and p.name not in TASK_KWARGS:
            return "positional", p
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        return "positional", None
    return None, None


def _unknown_parameter(name: str, func: Handler, parameter: str) -> str:
    qualname = getattr(func, "__qualname__", repr(func))
    return (
        f"handler {qualname!r} for task {name!r}: parameter {parameter!r} is required, but the worker "
        f"only passes the task's params and these keyword arguments: {', '.join(TASK_KWARGS)}. "
        f"Fix: rename it to one of them, give it a default, or take it from `state` (worker.state)"
    )


def blocking(
    coroutine_function: Callable[..., Coroutine[Any, Any, Any]], loop: asyncio.AbstractEventLoop
) -> Callable[..., Any]:
    """A sync version of an async callable, for a handler running in a thread: it waits on `loop`."""

    def call(*args: Any, **kwargs: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine_function(*args, **kwargs), loop).result()

    return call
