"""What a handler's signature asks for, learnt once at decoration, and how to call it with a task.

A handler is an `async def` or a plain `def` (run in the worker's thread pool, never on the event loop).
It gets the task's params (the parameter named `params`, else its first positional parameter) and, by
name, any of TASK_KWARGS it declares (all of them with `**kwargs`). A required parameter the worker
cannot supply is a mistake the decorator reports at import time, naming the handler and the parameter.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, replace
from typing import Any

Handler = Callable[..., Any]
RunSync = Callable[[Callable[[], Any]], Awaitable[Any]]

# Every value a task carries, plus what the worker offers (the official SDK's names, and `state`).
TASK_KWARGS = (
    "task_id", "job_id", "priority", "deadline", "tracing_context", "metadata", "security",
    "skill_version", "send_progress", "send_event", "state",
)  # fmt: skip
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


@dataclass(frozen=True)
class Skill:
    """What the worker publishes about one skill when it registers (rxon's SkillInfo)."""

    name: str
    type: str | None = None
    version: str | None = None
    description: str | None = None
    input_schema: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None
    output_statuses: tuple[str, ...] | None = None
    events_schema: dict[str, dict[str, Any]] | None = None

    def published(self) -> dict[str, Any]:
        """The `supported_skills` entry: name, type (the name unless set), and what else is set."""
        info: dict[str, Any] = {"name": self.name, "type": self.type or self.name}
        for key in ("version", "description", "input_schema", "output_schema", "events_schema"):
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

    for field in ("type", "version", "description"):
        value = getattr(skill, field)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise bad(field, value, "must be a non-empty string", f'{field}="1.2.0"')
    for field in ("input_schema", "output_schema", "events_schema"):
        value = getattr(skill, field)
        if value is not None and not isinstance(value, dict):
            raise bad(field, value, "must be a JSON Schema object (a dict)", f'{field}={{"type": "object"}}')
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

    @classmethod
    def wrap(cls, name: str, func: Handler, skill: Skill | None = None) -> RegisteredHandler:
        """Inspect `func` once; raise TypeError naming the parameter if the worker cannot call it."""
        if not callable(func):
            raise TypeError(f"the handler for task {name!r} must be a function, got {type(func).__name__}")
        params = list(inspect.signature(func).parameters.values())
        params_as, taken = _params_binding(params)
        accepts_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
        by_name = {p.name for p in params if p.kind is not inspect.Parameter.POSITIONAL_ONLY}
        accepted = frozenset(TASK_KWARGS) if accepts_all else frozenset(TASK_KWARGS) & by_name
        for p in params:
            if p is taken or p.kind in _VARIADIC or p.default is not inspect.Parameter.empty:
                continue
            if p.name not in accepted:
                raise TypeError(_unknown_parameter(name, func, p.name))
        qualname = getattr(func, "__qualname__", repr(func))
        skill = check_skill(qualname, skill or Skill(name))
        if skill.description is None and (doc := inspect.getdoc(func)):
            skill = replace(skill, description=doc)
        return cls(name, func, accepted, params_as, inspect.iscoroutinefunction(func), skill)

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
