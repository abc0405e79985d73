"""What a poll returned, checked before anything runs: a malformed task or a bad signature is refused.

A refusal with a job id and a task id is reported to the orchestrator as a failure naming the problem,
so that the job ends instead of hanging until its timeout; the poller then backs off as for an
unreachable orchestrator, so that a stream of bad replies can never become a hot loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .signing import task_signature_problem
from .typing import INVALID_INPUT_ERROR, SECURITY_ERROR

_REQUIRED_TEXT = ("job_id", "task_id", "type")


@dataclass(frozen=True)
class Refusal:
    """Why a poll reply cannot be run, and the ids to report it under (None when it has none)."""

    code: str
    message: str
    job_id: str | None
    task_id: str | None

    @property
    def reportable(self) -> bool:
        """Whether the orchestrator can be told (a result needs both ids)."""
        return self.job_id is not None and self.task_id is not None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _describe(value: Any) -> str:
    return "null" if value is None else f"a JSON {type(value).__name__} ({str(value)[:40]!r})"


def refusal(reply: Any, secret: str | None) -> Refusal | None:
    """Why `reply` (a decoded poll reply) must not run, or None when it is a well-formed, trusted task."""
    if not isinstance(reply, dict):
        return Refusal(
            INVALID_INPUT_ERROR, f"the poll reply is {_describe(reply)}, not a task object", None, None
        )
    job_id, task_id = _text(reply.get("job_id")), _text(reply.get("task_id"))
    problems = [
        f"{name} is {'missing' if name not in reply else _describe(reply[name])}, expected a non-empty string"
        for name in _REQUIRED_TEXT
        if _text(reply.get(name)) is None
    ]
    params = reply.get("params")
    if params is not None and not isinstance(params, dict):
        problems.append(f"params is {_describe(params)}, expected a JSON object")
    if problems:
        message = "malformed task from the orchestrator: " + "; ".join(problems) + "; the task was not run"
        return Refusal(INVALID_INPUT_ERROR, message, job_id, task_id)
    problem = task_signature_problem(reply, secret) if secret else None
    if problem is not None:
        return Refusal(SECURITY_ERROR, f"{problem}; the task was not run", job_id, task_id)
    return None
