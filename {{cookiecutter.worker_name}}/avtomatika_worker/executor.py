"""Calling task handlers and turning whatever they return (or raise) into a protocol-valid outcome.

Result rules (documented for users in the generated README):
* a dict with `status` (default `success`) and an optional `data` object;
* `{"status": "failure", "error": {"code": ..., "message": ...} }`; a missing code becomes TRANSIENT_ERROR
  (what the orchestrator assumes anyway), a plain-string error becomes its message;
* `PermanentError`, `InvalidInputError`, `TransientError` (errors.py) become failures with their code;
* any other exception raised by the handler becomes a TRANSIENT_ERROR failure (the orchestrator
  retries), with the exception's message;
* a malformed return value (not a dict, `data` not a JSON object, unserialisable data, empty status)
  is a bug in the handler that a retry cannot fix, so it becomes a PERMANENT_ERROR failure with a
  message saying exactly what was wrong, instead of a 400 from the orchestrator and a stuck job;
* params that break the handler's input schema (explicit or inferred from a typed params annotation), or
  cannot be built into its params type, are an INVALID_INPUT_ERROR failure and the handler does not run;
* a `success` whose data breaks the output schema, or a status missing from `output_statuses` (when
  given; failure and cancelled always pass), is a PERMANENT_ERROR failure naming the handler and the
  field, instead of a contract violation the orchestrator quarantines with a larger reputation penalty;
* `metadata` (a JSON object) and `costs` (an object of numbers) beside `status` are sent with the result;
  `costs.execution_time_seconds` is the handler's run time unless the handler sets it. Metadata is
  dropped (with a warning) for a job created without metadata: 1.0b30 cannot merge it (HTTP 500).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from . import typed
from .errors import TaskFailure
from .files import FilesFactory, TaskFiles, files_kwargs, open_workspace
from .handlers import RegisteredHandler, RunSync, blocking
from .schemas import problem as schema_problem
from .typing import CANCELLED, FAILURE, INVALID_INPUT_ERROR, PERMANENT_ERROR, SUCCESS, TRANSIENT_ERROR

logger = logging.getLogger(__name__)

SendProgress = Callable[..., Coroutine[Any, Any, None]]  # (fraction: float, message: str = "") -> None
SendEvent = Callable[..., Coroutine[Any, Any, None]]
# `async def middleware(context, call_next)`: context has task_id, job_id, skill_name, params, handler_kwargs.
Middleware = Callable[
    [dict[str, Any], Callable[[], Awaitable[Any]]], Awaitable[Any]
]  # (event_type: str, payload: dict | None = None) -> None
_EXPECTED_SHAPE = "{'status': 'success', 'data': {...} }"


@dataclass(frozen=True)
class Outcome:
    """A normalised handler result, ready to be sent as a task result."""

    status: str
    data: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    costs: dict[str, float] | None = None
    data_metadata: dict[str, Any] | None = None  # output files: {data key: {uri, size, etag}} (files.py)
    execution_seconds: float | None = field(default=None, compare=False)  # measured by execute()

    def to_message(self, timing: bool = False) -> dict[str, Any]:
        """Return the `status`/`data`/`error`/`metadata`/`costs` members of a result message; with
        `timing`, costs carry `execution_time_seconds` (what the worker sends; tests leave it out)."""
        message: dict[str, Any] = {"status": self.status}
        for key in ("data", "error", "metadata", "data_metadata"):
            if (value := getattr(self, key)) is not None:
                message[key] = value
        costs = dict(self.costs or {})
        if timing and self.execution_seconds is not None:
            costs = {"execution_time_seconds": round(self.execution_seconds, 4), **costs}
        if costs:
            message["costs"] = costs
        return message


def failure(code: str, message: str, details: dict[str, Any] | None = None) -> Outcome:
    """Build a failure outcome."""
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None and _json_problem(details) is None:
        error["details"] = details
    return Outcome(status=FAILURE, error=error)


def task_deadline(task: dict[str, Any]) -> float | None:
    """The task's deadline (Unix time, seconds) when it carries one."""
    value = task.get("deadline")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def check_fraction(fraction: Any) -> None:
    """Raise ValueError unless `fraction` is a progress fraction: a finite number from 0 to 1."""
    number = isinstance(fraction, int | float) and not isinstance(fraction, bool)
    if not (number and math.isfinite(fraction) and 0 <= fraction <= 1):
        raise ValueError(
            f"send_progress(fraction={fraction!r}): fraction must be a number from 0 to 1, e.g. 0.4"
        )


async def _no_progress(fraction: float, message: str = "") -> None:
    """The default `send_progress` when the caller provides none (e.g. direct unit tests)."""


async def _no_event(event_type: str, payload: dict[str, Any] | None = None) -> None:
    """The default `send_event` when the caller provides none."""


def _no_hot_skill(skill: str) -> None:
    """The default `add_to_hot_skills`/`remove_from_hot_skills` when the caller provides none."""


@dataclass(frozen=True)
class TaskTools:
    """What a handler may ask for beyond the task itself; `run_sync` runs a sync handler (default: a thread)."""

    send_progress: SendProgress = _no_progress
    send_event: SendEvent = _no_event
    state: Any = None
    run_sync: RunSync | None = None
    add_to_hot_skills: Callable[[str], None] = _no_hot_skill
    remove_from_hot_skills: Callable[[str], None] = _no_hot_skill
    middlewares: tuple[Middleware, ...] = ()
    files: FilesFactory | None = None  # the task's file workspace (`files` kwarg); None: local files only


NO_TOOLS = TaskTools()


def _task_values(handler: RegisteredHandler, task: dict[str, Any], tools: TaskTools) -> dict[str, Any]:
    """The keyword arguments `handler` declared, from the task and the tools."""
    sync = not handler.is_async
    loop = asyncio.get_running_loop() if sync else None
    values: dict[str, Any] = {}
    for name in handler.accepted_kwargs:
        if name == "deadline":
            values[name] = task_deadline(task)
        elif name == "priority":
            values[name] = task.get("priority", 0)
        elif name in ("send_progress", "send_event"):
            sender = getattr(tools, name)
            values[name] = blocking(sender, loop) if loop is not None else sender
        elif name in ("state", "add_to_hot_skills", "remove_from_hot_skills"):
            values[name] = getattr(tools, name)
        else:  # task_id, job_id and what the orchestrator may add (metadata, security, ...)
            values[name] = task.get(name)
    return values


async def _through_middlewares(
    handler: RegisteredHandler, task: dict[str, Any], params: Any, kwargs: dict[str, Any], tools: TaskTools
) -> Any:
    """Call the handler inside the middlewares (the official SDK's `add_middleware` chain), outermost first."""
    if not tools.middlewares:
        return await handler.call(params, kwargs, tools.run_sync)
    # Middlewares see and may change the params and the keyword arguments before the handler gets them.
    context = {
        "task_id": task.get("task_id"),
        "job_id": task.get("job_id"),
        "skill_name": handler.name,
        "params": params,
        "handler_kwargs": kwargs,
    }

    async def innermost() -> Any:
        return await handler.call(context["params"], context["handler_kwargs"], tools.run_sync)

    call: Callable[[], Awaitable[Any]] = innermost
    for middleware in reversed(tools.middlewares):
        call = functools.partial(middleware, context, call)
    return await call()


async def execute(handler: RegisteredHandler, task: dict[str, Any], tools: TaskTools = NO_TOOLS) -> Outcome:
    """Run the handler for one task and normalise its result; never raises except on cancellation."""
    files = open_workspace(handler.accepted_kwargs, task, tools.files)
    try:
        outcome = await _execute(handler, task, tools, files)
        return outcome if files is None else await publish_outputs(handler.name, outcome, files)
    finally:
        if files is not None:
            files.close()  # however the task ends: success, failure, cancel, shutdown


async def _execute(
    handler: RegisteredHandler, task: dict[str, Any], tools: TaskTools, files: TaskFiles | None
) -> Outcome:
    params = task.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        return failure(INVALID_INPUT_ERROR, f"task params must be a JSON object, got {type(params).__name__}")
    try:
        params = typed_params(handler, params)
    except ValueError as exc:
        logger.warning("%s", exc)
        return failure(INVALID_INPUT_ERROR, str(exc))
    started = time.perf_counter()
    try:
        kwargs = _task_values(handler, task, tools) | files_kwargs(handler.accepted_kwargs, files)
        value = await _through_middlewares(handler, task, params, kwargs, tools)
    except TaskFailure as exc:
        logger.warning("handler %r failed with %s: %s", handler.name, exc.code, exc.message)
        outcome = failure(exc.code, exc.message or type(exc).__name__, exc.details)
    except Exception as exc:
        logger.exception("handler %r raised; reporting %s", handler.name, TRANSIENT_ERROR)
        outcome = failure(TRANSIENT_ERROR, str(exc) or type(exc).__name__)
    else:
        outcome = normalise_result(handler.name, value, handler)
    if outcome.metadata is not None and not isinstance(task.get("metadata"), dict):
        # avtomatika 1.0b30 merges result metadata with `job_state.setdefault("metadata", {}).update(...)`;
        # a job created without metadata holds None there, so every try of the result gets an HTTP 500.
        logger.warning(
            "result metadata dropped: the job has no metadata to merge it into (created without it)"
        )
        outcome = replace(outcome, metadata=None)
    return replace(outcome, execution_seconds=time.perf_counter() - started)


async def publish_outputs(name: str, outcome: Outcome, files: TaskFiles) -> Outcome:
    """Upload the workspace files a successful result names; their URIs in `data`, their `data_metadata`."""
    if outcome.status != SUCCESS or not outcome.data:
        return outcome
    try:
        data, uploaded = await files.publish(outcome.data)
    except TaskFailure as exc:
        return failure(exc.code, exc.message)
    except Exception as exc:
        logger.exception("handler %r: uploading its output files failed; reporting %s", name, TRANSIENT_ERROR)
        return failure(TRANSIENT_ERROR, f"uploading output files failed: {exc or type(exc).__name__}")
    return replace(outcome, data=data, data_metadata=uploaded or None)


def typed_params(handler: RegisteredHandler, params: dict[str, Any]) -> Any:
    """The params checked against the handler's input schema and built into its params type; a
    ValueError names the field, the value and the rule."""
    refused = f"handler {handler.name!r} refused its params"
    if (why := schema_problem(handler.input_check, params, "params")) is not None:
        raise ValueError(f"{refused}: {why}")
    if handler.params_type is None:
        return params
    try:
        return typed.build(handler.params_type, params)
    except (TypeError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        raise ValueError(f"{refused}: {_conversion_problem(exc)}") from exc


def _conversion_problem(exc: Exception) -> str:
    """One line for a conversion error; for pydantic's ValidationError, its first error by field."""
    errors = getattr(exc, "errors", None)
    if callable(errors) and (listed := errors()) and isinstance(listed[0], dict):
        first = listed[0]
        field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first.get("loc", ()))
        more = f" (and {len(listed) - 1} more)" if len(listed) > 1 else ""
        return f"params{field}: {_short(first.get('input'))} {first.get('msg', 'is invalid')}{more}"
    return str(exc)


def _bad_return(name: str, problem: str) -> Outcome:
    message = f"handler {name!r} {problem}; expected a dict like " + _EXPECTED_SHAPE
    logger.error("%s", message)
    return failure(PERMANENT_ERROR, message)


def _json_problem(value: Any) -> str | None:
    """Return why `value` cannot be sent as JSON, or None when it can."""
    try:
        # The same encoder as the signature (signing.py: canonical_json), without its normalising pass.
        orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except TypeError as exc:
        return str(exc)
    return None


def normalise_result(name: str, value: Any, contract: RegisteredHandler | None = None) -> Outcome:
    """Validate a handler's return value against the result contract (and the handler's own)."""
    if (
        contract is not None
        and contract.returns_data
        and (typed.is_record(type(value)) or isinstance(value, dict))
    ):
        value = {"status": SUCCESS, "data": value}  # `-> Record` handlers return the data itself
    if not isinstance(value, dict):
        return _bad_return(name, f"returned {type(value).__name__}")
    status = value.get("status", SUCCESS)
    if not isinstance(status, str) or not status:
        return _bad_return(name, f"returned status {status!r}, which is not a non-empty string")
    data = typed.to_json(value.get("data"))
    if data is not None and not isinstance(data, dict):
        return _bad_return(name, f"returned data of type {type(data).__name__}, not a JSON object")
    problem = None if data is None else _json_problem(data)
    if problem is not None:
        return _bad_return(name, f"returned data that cannot be sent as JSON ({problem})")
    extras = _extras(name, value)
    if isinstance(extras, Outcome):
        return extras
    if contract is not None and (broken := _breaks_contract(contract, status, data)) is not None:
        logger.error("%s", broken)
        return failure(PERMANENT_ERROR, broken)
    if status == FAILURE:
        return Outcome(FAILURE, data, _normalise_error(value.get("error")), *extras)
    return Outcome(status, data, None, *extras)


def _extras(
    name: str, value: dict[str, Any]
) -> tuple[dict[str, Any] | None, dict[str, float] | None] | Outcome:
    """The result's `metadata` and `costs`, or the failure saying why they cannot be sent."""
    metadata, costs = value.get("metadata"), value.get("costs")
    if metadata is not None and (not isinstance(metadata, dict) or _json_problem(metadata) is not None):
        return _bad_return(name, f"returned metadata {_short(metadata)}, which is not a JSON object")
    if costs is not None and not (isinstance(costs, dict) and all(map(_finite_number, costs.values()))):
        return _bad_return(
            name,
            f"returned costs {_short(costs)}; costs must map names to numbers, e.g. "
            + "{'gpu_seconds': 1.5}",
        )
    return metadata, costs


def _finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _breaks_contract(handler: RegisteredHandler, status: str, data: dict[str, Any] | None) -> str | None:
    """Why a result breaks the handler's output_statuses or output schema, or None."""
    statuses = handler.skill.output_statuses if handler.skill is not None else None
    if statuses is not None and status not in (FAILURE, CANCELLED) and status not in statuses:
        return (
            f"handler {handler.name!r} returned status {status!r}, which is not among its output_statuses "
            f"{list(statuses)}. Fix: return one of them, or add it to output_statuses="
        )
    if status == SUCCESS and (why := schema_problem(handler.output_check, data, "data")) is not None:
        return (
            f"handler {handler.name!r} returned data that breaks its output schema: {why}. Fix the handler, "
            "or its output_schema (or return annotation)"
        )
    return None


def _normalise_error(error: Any) -> dict[str, Any]:
    """Coerce a handler's `error` into the `{code, message}` object the orchestrator requires."""
    if isinstance(error, dict):
        code = error.get("code") or TRANSIENT_ERROR
        message = error.get("message") or f"handler reported {code}"
        normalised: dict[str, Any] = {"code": str(code), "message": str(message)}
        details = error.get("details")
        if isinstance(details, dict) and _json_problem(details) is None:
            normalised["details"] = details
        return normalised
    if error:
        return {"code": TRANSIENT_ERROR, "message": str(error)}
    return {"code": TRANSIENT_ERROR, "message": "handler reported failure without an error"}
