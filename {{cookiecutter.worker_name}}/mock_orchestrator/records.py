"""The mock's records: workers, tasks (one single-step job each) and their attempts, with their API views."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .requirements import Requirements

QUEUED = "queued"
RUNNING = "running"
SUCCESS = "success"
FAILURE = "failure"
CANCELLED = "cancelled"
QUARANTINED = "quarantined"
# Statuses a task can still be cancelled in (avtomatika: not finished/failed/error/quarantined/cancelled).
ACTIVE_STATUSES = frozenset({QUEUED, RUNNING})
# The real orchestrator refuses results only for finished/failed/error/quarantined jobs: a cancelled job
# still takes a late result (services/worker_service.py: process_task_result), so "cancelled" is open for results here.
RESULT_OPEN_STATUSES = frozenset({QUEUED, RUNNING, CANCELLED})
MAX_TASK_EVENTS = 100  # the newest events of a task kept for the dashboard and the CLI


@dataclass
class Worker:
    """A registered worker: the stored record (registration plus merged heartbeats) and its times."""

    worker_id: str
    record: dict[str, Any]
    registered_at: float
    last_seen: float
    last_heartbeat: float | None = None

    def skills(self) -> list[str]:
        """Names of the skills tasks are matched against (``supported_skills[].name``)."""
        raw = self.record.get("supported_skills")
        entries = raw if isinstance(raw, list) else []
        return [s["name"] for s in entries if isinstance(s, dict) and isinstance(s.get("name"), str)]

    def status(self) -> Any:
        """The status the worker last reported; registration implies ``idle``."""
        return self.record.get("status", "idle")

    def wants_websocket_commands(self) -> bool:
        """True when the record has a truthy top-level ``capabilities.websockets`` (only a heartbeat sets it)."""
        capabilities = self.record.get("capabilities")
        return isinstance(capabilities, dict) and bool(capabilities.get("websockets"))

    def view(self, websocket_connected: bool, current_task_ids: list[str]) -> dict[str, Any]:
        """The control API representation."""
        return {
            "worker_id": self.worker_id,
            "worker_type": self.record.get("worker_type", "generic"),
            "status": self.status(),
            "skills": self.skills(),
            "last_seen": self.last_seen,
            "last_heartbeat": self.last_heartbeat,
            "registered_at": self.registered_at,
            "websocket_connected": websocket_connected,
            "websocket_commands": self.wants_websocket_commands(),
            "current_task_ids": current_task_ids,
            **self.published(),
        }

    def published(self) -> dict[str, Any]:
        """What the worker declared beyond its skill names: full skill entries, resources, software, costs."""
        capabilities = self.record.get("capabilities")
        return {
            "supported_skills": self.record.get("supported_skills") or [],
            # Only the worker's own skills: the SDK withdraws its last hot skill with ["-"].
            "hot_skills": [s for s in self.record.get("hot_skills") or [] if s in self.skills()],
            "resources": self.record.get("resources"),
            "installed_software": self.record.get("installed_software"),
            "installed_artifacts": self.record.get("installed_artifacts"),
            "capabilities": capabilities if isinstance(capabilities, dict) else None,
        }


@dataclass
class Attempt:
    """One delivery of a task under one protocol task id (a retry is a new attempt with a new id)."""

    task_id: str
    payload: dict[str, Any]
    worker_id: str | None = None
    status: str = QUEUED
    error: dict[str, Any] | None = None
    started_at: float | None = None
    finished_at: float | None = None

    def view(self) -> dict[str, Any]:
        """The control API representation."""
        return {
            "task_id": self.task_id,
            "worker_id": self.worker_id,
            "status": self.status,
            "error": self.error,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }


@dataclass(eq=False)  # identity: queue membership tests must not compare every field of every task
class Task:
    """A submitted task: the control-API ``task_id`` is the first attempt's protocol task id, stable."""

    task_id: str
    job_id: str
    type: str
    params: dict[str, Any]
    priority: float
    created_at: float
    seq: int
    deadline: float | None = None
    status: str = QUEUED
    data: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    error_message: str | None = None  # the orchestrator's explanation of a failure/quarantine
    worker_id: str | None = None  # the worker the current (or last) attempt went to
    retries: int = 0
    attempts: list[Attempt] = field(default_factory=list)
    progress: Any = None
    progress_message: Any = None
    started_at: float | None = None
    finished_at: float | None = None
    requirements: Requirements = field(default_factory=Requirements)
    metadata: dict[str, Any] | None = None  # the job's: given at submission, success results merged in
    costs: dict[str, Any] | None = None
    picked_up_at: Any = None  # as the worker reported it in its result
    events: list[dict[str, Any]] = field(default_factory=list)
    params_metadata: dict[str, Any] | None = None  # FileMetadata of s3:// params, sent with the task
    data_metadata: dict[str, Any] | None = None  # FileMetadata of the result's output files

    @property
    def current(self) -> Attempt:
        """The latest attempt (the one whose task id the orchestrator accepts results for)."""
        return self.attempts[-1]

    def record_event(self, event: dict[str, Any], received_at: float) -> None:
        """Keep a worker event about this task (type, payload, when), the newest MAX_TASK_EVENTS."""
        entry = {"event_type": event["event_type"], "payload": event["payload"], "received_at": received_at}
        self.events = [*self.events[-(MAX_TASK_EVENTS - 1) :], entry]

    @property
    def current_task_id(self) -> str:
        """The protocol task id of the latest attempt."""
        return self.current.task_id

    def view(self) -> dict[str, Any]:
        """The control API representation."""
        duration = None
        if self.started_at is not None and self.finished_at is not None:
            duration = self.finished_at - self.started_at
        return {
            "task_id": self.task_id,
            "current_task_id": self.current_task_id,
            "job_id": self.job_id,
            "type": self.type,
            "params": self.params,
            "priority": self.priority,
            "deadline": self.deadline,
            "status": self.status,
            "data": self.data,
            "error": self.error,
            "error_message": self.error_message,
            "worker_id": self.worker_id,
            "retries": self.retries,
            "attempts": [a.view() for a in self.attempts],
            "progress": self.progress,
            "progress_message": self.progress_message,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration": duration,
            **self.requirements.view(),
            "metadata": self.metadata,
            "costs": self.costs,
            "picked_up_at": self.picked_up_at,
            "events": self.events,
            "params_metadata": self.params_metadata,
            "data_metadata": self.data_metadata,
        }
