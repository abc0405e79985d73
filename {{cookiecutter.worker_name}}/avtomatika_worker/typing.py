"""Every status and error code of the worker protocol (avtomatika 1.0b30), e.g.
`from avtomatika_worker.typing import TRANSIENT_ERROR`."""

from __future__ import annotations

# Statuses a handler may return (any other non-empty string is a custom status).
SUCCESS = "success"
FAILURE = "failure"
CANCELLED = "cancelled"

# Heartbeat `status`: only "idle" keeps a worker in dispatch (avtomatika dispatcher.py, storage/redis.py).
IDLE = "idle"
DRAINING = "draining"  # what this SDK reports while it stops (rxon's WORKER_STATUS_DRAINING)

# `status` of the orchestrator's reply to a result.
RESULT_ACCEPTED = "accepted"
RESULT_IGNORED = "ignored"

# Event types (POST /_worker/events).
PROGRESS_EVENT = "progress"

# Error codes, by what the orchestrator does with them (services/worker_service.py, _handle_task_failure).
# Retried up to JOB_MAX_RETRIES (3) times with a new task id, then the job is quarantined (any other code too):
TRANSIENT_ERROR = "TRANSIENT_ERROR"
TIMEOUT_ERROR = "TIMEOUT_ERROR"
RESOURCE_EXHAUSTED_ERROR = "RESOURCE_EXHAUSTED_ERROR"
DEPENDENCY_MISSING_ERROR = "DEPENDENCY_MISSING_ERROR"
INTERNAL_ERROR = "INTERNAL_ERROR"
# Quarantine the job at once, and cost the worker reputation:
PERMANENT_ERROR = "PERMANENT_ERROR"
SECURITY_ERROR = "SECURITY_ERROR"
DEPENDENCY_ERROR = "DEPENDENCY_ERROR"
CONTRACT_VIOLATION_ERROR = "CONTRACT_VIOLATION_ERROR"
# Fail the job at once:
INVALID_INPUT_ERROR = "INVALID_INPUT_ERROR"
INTEGRITY_MISMATCH_ERROR = "INTEGRITY_MISMATCH_ERROR"
