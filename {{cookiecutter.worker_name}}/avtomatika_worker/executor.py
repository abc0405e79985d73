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
  message saying exactly what was wrong, instead of a 400 from the orchestrator and a stuck job.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import orjson

from .errors import TaskFailure
from .handlers import RegisteredHandler, RunSync, blocking
from .typing import CANCELLED, FAILURE, INVALID_INPUT_ERROR, PERMANENT_ERROR, SUCCESS, TRANSIENT_ERROR

logger = logging.getLogger(__name__)

SendProgress = Callable[..., Coroutine[Any, Any, None]]  # (fraction: float, message: str = "") -> None
SendEvent = Callable[..., Coroutine[Any, Any, None]]  # (event_type: str, payload: dict | None = None) -> None
_EXPECTED_SHAPE = "{'status': 'success', 'data': {...} }"


@dataclass(frozen=True)
class Outcome:
    """A normalised handler result, ready to be sent as a task result."""

    status: str
    data: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    def to_message(self) -> dict[str, Any]:
        """Return the `status`/`data`/`error` members of a result message."""
        message: dict[str, Any] = {"status": self.status}
        if self.data is not None:
            message["data"] = self.data
        if self.error is not None:
            message["error"] = self.error
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


@dataclass(frozen=True)
class TaskTools:
    """What a handler may ask for beyond the task itself; `run_sync` runs a sync handler (default: a thread)."""

    send_progress: SendProgress = _no_progress
    send_event: SendEvent = _no_event
    state: Any = None
    run_sync: RunSync | None = None


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
        elif name == "state":
            values[name] = tools.state
        else:  # task_id, job_id and what the orchestrator may add (metadata, security, ...)
            values[name] = task.get(name)
    return values


async def execute(handler: RegisteredHandler, task: dict[str, Any], tools: TaskTools = NO_TOOLS) -> Outcome:
    """Run the handler for one task and normalise its result; never raises except on cancellation."""
    params = task.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        return failure(INVALID_INPUT_ERROR, f"task params must be a JSON object, got {type(params).__name__}")
    try:
        value = await handler.call(params, _task_values(handler, task, tools), tools.run_sync)
    except TaskFailure as exc:
        logger.warning("handler %r failed with %s: %s", handler.name, exc.code, exc.message)
        return failure(exc.code, exc.message or type(exc).__name__, exc.details)
    except Exception as exc:
        logger.exception("handler %r raised; reporting %s", handler.name, TRANSIENT_ERROR)
        return failure(TRANSIENT_ERROR, str(exc) or type(exc).__name__)
    return normalise_result(handler.name, value)


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


def normalise_result(name: str, value: Any) -> Outcome:
    """Validate a handler's return value against the result contract."""
    if not isinstance(value, dict):
        return _bad_return(name, f"returned {type(value).__name__}")
    status = value.get("status", SUCCESS)
    if not isinstance(status, str) or not status:
        return _bad_return(name, f"returned status {status!r}, which is not a non-empty string")
    data = value.get("data")
    if data is not None and not isinstance(data, dict):
        return _bad_return(name, f"returned data of type {type(data).__name__}, not a JSON object")
    problem = None if data is None else _json_problem(data)
    if problem is not None:
        return _bad_return(name, f"returned data that cannot be sent as JSON ({problem})")
    if status == FAILURE:
        return Outcome(status=FAILURE, data=data, error=_normalise_error(value.get("error")))
    if status == CANCELLED:
        return Outcome(status=CANCELLED, data=data)
    return Outcome(status=status, data=data)


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
