"""What a result does to its task, following avtomatika 1.0b30's ``services/worker_service.py:
process_task_result`` (checks and transitions) and ``_handle_task_failure`` (error codes, retries)."""

from __future__ import annotations

import logging
from typing import Any

from .records import CANCELLED, FAILURE, QUARANTINED, QUEUED, RESULT_OPEN_STATUSES, SUCCESS, Task
from .requirements import skill_entry
from .schema_check import violation
from .state import MockState

log = logging.getLogger("mock_orchestrator")

JOB_MAX_RETRIES = 3  # retries after the first attempt: the 4th failure quarantines
TRANSIENT_ERROR = "TRANSIENT_ERROR"
CONTRACT_VIOLATION = "CONTRACT_VIOLATION_ERROR"
PERMANENT_CODES = frozenset(
    {"PERMANENT_ERROR", "SECURITY_ERROR", "DEPENDENCY_ERROR", "CONTRACT_VIOLATION_ERROR"}
)
FAILING_CODES = {
    "INVALID_INPUT_ERROR": "Task failed due to invalid input: {message}",
    "INTEGRITY_MISMATCH_ERROR": "Task failed due to data integrity mismatch: {message}",
}


def job_status(task_status: str) -> str:
    """The real orchestrator's job status for a finished task: only the `finished` end state says so."""
    if task_status == "success":
        return "finished"
    return QUARANTINED if task_status == QUARANTINED else "failed"


def _ignored(reason: str, message: str) -> dict[str, Any]:
    log.warning("result ignored (%s): %s", reason, message)
    return {"status": "ignored", "reason": reason, "message": message}


def _refusal(task: Task, job_id: str, task_id: str, worker_id: Any) -> dict[str, Any] | None:
    """The checks after the model, in the orchestrator's order; None when the result is accepted."""
    if task.worker_id and task.worker_id != worker_id:
        return _ignored("worker_mismatch", "Forbidden: This task is assigned to a different worker.")
    if task.current_task_id != task_id:
        return _ignored(
            "stale_task", f"Result ignored: task_id {task_id} is no longer active for job {job_id}."
        )
    if task.status not in RESULT_OPEN_STATUSES:
        reason = (
            "deadline_exceeded"
            if "timeout" in (task.error_message or "").lower()
            else "job_already_terminated"
        )
        state_text = job_status(task.status)
        return _ignored(reason, f"Result ignored: the job is already in a terminal state ({state_text}).")
    return None


def contract_violation(state: MockState, task: Task, worker_id: Any, data: Any) -> dict[str, Any] | None:
    """The error 1.0b30 puts in place of a success whose data breaks the skill's published output_schema."""
    worker = state.workers.get(worker_id)
    skill = skill_entry(worker.record, task.type) if worker is not None else None
    if skill is None or skill.get("schema_dialect", "json-schema") != "json-schema":
        return None
    problem = violation(skill.get("output_schema"), data)
    if problem is None:
        return None
    message = f"Contract violation: result data does not match output_schema. {problem}"
    return {"code": CONTRACT_VIOLATION, "message": message}


async def accept_result(
    state: MockState, result: dict[str, Any], worker_id: Any, picked_up_at: Any = None
) -> dict[str, Any]:
    """Apply a validated, authenticated result; return the reply body.

    ``picked_up_at`` is read from the raw body: it is no TaskResult field, yet 1.0b30 stores it.
    """
    job_id, task_id = result["job_id"], result["task_id"]
    task = state.tasks.of_job(job_id)
    if task is None:
        return _ignored("job_not_found", f"Job {job_id} not found (expired or deleted).")
    refusal = _refusal(task, job_id, task_id, worker_id)
    if refusal is not None:
        return refusal
    status = result.get("status", SUCCESS)
    if status == SUCCESS and (error := contract_violation(state, task, worker_id, result.get("data"))):
        log.warning("task %s: %s", task.task_id, error["message"])
        status, result = FAILURE, dict(result, status=FAILURE, error=error)
    if status not in (FAILURE, CANCELLED) and result.get("metadata") and task.metadata is None:
        log.warning(
            "task %s: avtomatika 1.0b30 fails on a result with metadata for a job created without metadata "
            '(HTTP 500; worker_service.py: process_task_result); submit the task with "metadata": {} '
            "or leave metadata out of the result",
            task.task_id,
        )
        raise AttributeError("'NoneType' object has no attribute 'update'")
    if picked_up_at:
        task.picked_up_at = picked_up_at
    task.costs = result.get("costs", task.costs)
    attempt = task.current
    attempt.worker_id = attempt.worker_id or worker_id
    task.worker_id = task.worker_id or worker_id
    attempt.status, attempt.error, attempt.finished_at = status, result.get("error"), state.now()
    try:
        reply = _apply(state, task, status, result)
    finally:
        await state.notify()
    _log_result(task, status, result.get("error"))
    return reply


def _apply(state: MockState, task: Task, status: str, result: dict[str, Any]) -> dict[str, Any]:
    if status == FAILURE:
        _apply_failure(state, task, result.get("error"))
        return {"status": "accepted", "transition": "failure_handled"}
    if status == CANCELLED:
        # 1.0b30 keeps the whole result, data included, in the job's history (its task_finished event).
        task.data, task.error = result.get("data"), None
        state.tasks.end(task, CANCELLED)
        return {"status": "accepted", "transition": "cancelled_handled"}
    # Every other status has a transition here (a mock blueprint maps them all): even after a cancel,
    # a success revives the job, exactly like 1.0b30 does. Its metadata is merged into the job's, and
    # so is its data_metadata (the FileMetadata of its output files) into the job's data_metadata.
    task.data, task.error = result.get("data"), None
    if result.get("data_metadata"):
        task.data_metadata = {**(task.data_metadata or {}), **result["data_metadata"]}
    if result.get("metadata") and task.metadata is not None:
        task.metadata.update(result["metadata"])
    state.tasks.end(task, status)
    return {"status": "accepted", "transition": "success_transition"}


def _apply_failure(state: MockState, task: Task, error: dict[str, Any] | None) -> None:
    code = error.get("code", TRANSIENT_ERROR) if error else TRANSIENT_ERROR
    message = error.get("message", "No error message provided.") if error else "No error details provided."
    task.error = error
    if code in PERMANENT_CODES:
        end = f"Task failed with permanent error ({code}): {message}"
        state.tasks.end(task, QUARANTINED, error_message=end)
    elif code in FAILING_CODES:
        state.tasks.end(task, FAILURE, error_message=FAILING_CODES[code].format(message=message))
    elif task.status == CANCELLED:
        pass  # a retryable failure of a cancelled job is swallowed: the job stays cancelled
    elif task.retries < JOB_MAX_RETRIES:
        task.retries += 1  # counted before the dispatch, which may fail: HTTP 500, like 1.0b30
        task.status = QUEUED
        log.info("task %s retry %d/%d", task.task_id, task.retries, JOB_MAX_RETRIES)
        state.retry(task)
    else:
        attempts = JOB_MAX_RETRIES + 1
        error_message = f"Task {task.current_task_id} failed after {attempts} attempts: {message}"
        state.tasks.end(task, QUARANTINED, error_message=error_message)


def _log_result(task: Task, status: str, error: dict[str, Any] | None) -> None:
    detail = f" ({error.get('code')}: {error.get('message')})" if status == FAILURE and error else ""
    log.info("task %s result: %s%s -> %s", task.task_id, status, detail, task.status)
