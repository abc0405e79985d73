"""Every status and error code of the worker protocol (avtomatika 1.0b30), and the shapes of results
and tasks."""

from __future__ import annotations

from typing import Any, Literal, TypedDict

# Statuses a handler may return (any other non-empty string is a custom status).
SUCCESS = "success"
FAILURE = "failure"
CANCELLED = "cancelled"
TASK_STATUSES: frozenset[str] = frozenset({SUCCESS, FAILURE, CANCELLED})

# Heartbeat `status`: only "idle" keeps a worker in dispatch; anything else takes it out.
IDLE = "idle"
BUSY = "busy"
DRAINING = "draining"  # what this SDK reports while it stops (rxon's WORKER_STATUS_DRAINING)

# `status` of the orchestrator's reply to a result.
RESULT_ACCEPTED = "accepted"
RESULT_IGNORED = "ignored"

# Event types (POST /_worker/events).
PROGRESS_EVENT = "progress"

# Error codes understood by the orchestrator (protocol.md section 9).
# Retried up to 3 times with a new task id, then the job is quarantined:
TRANSIENT_ERROR = "TRANSIENT_ERROR"
TIMEOUT_ERROR = "TIMEOUT_ERROR"
RESOURCE_EXHAUSTED_ERROR = "RESOURCE_EXHAUSTED_ERROR"
DEPENDENCY_MISSING_ERROR = "DEPENDENCY_MISSING_ERROR"
INTERNAL_ERROR = "INTERNAL_ERROR"
# Quarantine the job at once:
PERMANENT_ERROR = "PERMANENT_ERROR"
SECURITY_ERROR = "SECURITY_ERROR"
DEPENDENCY_ERROR = "DEPENDENCY_ERROR"
CONTRACT_VIOLATION_ERROR = "CONTRACT_VIOLATION_ERROR"
# Fail the job at once:
INVALID_INPUT_ERROR = "INVALID_INPUT_ERROR"
INTEGRITY_MISMATCH_ERROR = "INTEGRITY_MISMATCH_ERROR"

ERROR_CODES: frozenset[str] = frozenset(
    {
        TRANSIENT_ERROR,
        TIMEOUT_ERROR,
        RESOURCE_EXHAUSTED_ERROR,
        DEPENDENCY_MISSING_ERROR,
        INTERNAL_ERROR,
        PERMANENT_ERROR,
        SECURITY_ERROR,
        DEPENDENCY_ERROR,
        CONTRACT_VIOLATION_ERROR,
        INVALID_INPUT_ERROR,
        INTEGRITY_MISMATCH_ERROR,
    }
)
QUARANTINE_ERROR_CODES: frozenset[str] = frozenset(
    {PERMANENT_ERROR, SECURITY_ERROR, DEPENDENCY_ERROR, CONTRACT_VIOLATION_ERROR}
)
FAIL_ERROR_CODES: frozenset[str] = frozenset({INVALID_INPUT_ERROR, INTEGRITY_MISMATCH_ERROR})
# Any other code (including unknown ones) is retried by the orchestrator.
RETRIED_ERROR_CODES: frozenset[str] = ERROR_CODES - QUARANTINE_ERROR_CODES - FAIL_ERROR_CODES


class _TaskErrorBase(TypedDict):
    code: str
    message: str


class TaskError(_TaskErrorBase, total=False):
    """The `error` member of a failure result."""

    details: dict[str, Any]


class SuccessResult(TypedDict, total=False):
    """A handler result with `success` or a custom status."""

    status: str
    data: dict[str, Any]


class FailureResult(TypedDict):
    """A handler result reporting a failure."""

    status: Literal["failure"]
    error: TaskError


class CancelledResult(TypedDict):
    """A handler result acknowledging a cancellation."""

    status: Literal["cancelled"]


TaskResult = SuccessResult | FailureResult | CancelledResult


class _TaskPayloadBase(TypedDict):
    job_id: str
    task_id: str
    type: str


class TaskPayload(_TaskPayloadBase, total=False):
    """A task as delivered by the orchestrator (only job_id, task_id and type are guaranteed)."""

    params: dict[str, Any]
    priority: float
    deadline: float
    step: int
    timestamp: int
    tracing_context: dict[str, Any]
    sig: str
    security: dict[str, Any]
    metadata: dict[str, Any]
    policy: dict[str, Any]
    params_metadata: dict[str, Any]


__all__ = [
    "BUSY",
    "CANCELLED",
    "CONTRACT_VIOLATION_ERROR",
    "DEPENDENCY_ERROR",
    "DEPENDENCY_MISSING_ERROR",
    "DRAINING",
    "ERROR_CODES",
    "FAILURE",
    "FAIL_ERROR_CODES",
    "IDLE",
    "INTEGRITY_MISMATCH_ERROR",
    "INTERNAL_ERROR",
    "INVALID_INPUT_ERROR",
    "PERMANENT_ERROR",
    "PROGRESS_EVENT",
    "QUARANTINE_ERROR_CODES",
    "RESOURCE_EXHAUSTED_ERROR",
    "RESULT_ACCEPTED",
    "RESULT_IGNORED",
    "RETRIED_ERROR_CODES",
    "SECURITY_ERROR",
    "SUCCESS",
    "TASK_STATUSES",
    "TIMEOUT_ERROR",
    "TRANSIENT_ERROR",
    "CancelledResult",
    "FailureResult",
    "SuccessResult",
    "TaskError",
    "TaskPayload",
    "TaskResult",
]
