"""In-memory state of the mock: workers, tasks, the priority queue and the replay cache."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .settings import MockSettings
from .signing import normalize, sign

QUEUED = "queued"
RUNNING = "running"
SUCCESS = "success"
FAILURE = "failure"
CANCELLED = "cancelled"
# The real orchestrator only refuses results for finished/failed/error/quarantined jobs;
# a cancelled job still accepts a late result (protocol.md section 10), so "cancelled" is not final here.
RESULT_OPEN_STATUSES = frozenset({QUEUED, RUNNING, CANCELLED})
WORKER_TTL_SECONDS = 120.0  # 2 x WORKER_HEALTH_CHECK_INTERVAL_SECONDS of the real orchestrator
REPLAY_WINDOW_SECONDS = 65.0
TASK_SIG_IGNORED = ("sig", "orchestrator_signature")


@dataclass
class Worker:
    """A registered worker: the stored record (registration plus merged heartbeats) and its times."""

    worker_id: str
    record: dict[str, Any]
    registered_at: float
    last_seen: float

    def skills(self) -> list[str]:
        """Names of the skills tasks are matched against (``supported_skills[].name``)."""
        raw = self.record.get("supported_skills")
        entries = raw if isinstance(raw, list) else []
        return [s["name"] for s in entries if isinstance(s, dict) and isinstance(s.get("name"), str)]

    def status(self) -> Any:
        """The status the worker last reported; registration implies ``idle``."""
        return self.record.get("status", "idle")

    def view(self) -> dict[str, Any]:
        """The control API representation."""
        return {
            "worker_id": self.worker_id,
            "worker_type": self.record.get("worker_type", "generic"),
            "status": self.status(),
            "skills": self.skills(),
            "last_seen": self.last_seen,
            "registered_at": self.registered_at,
        }


@dataclass
class Task:
    """One submitted task (one single-step job) and everything a worker reported about it."""

    task_id: str
    job_id: str
    type: str
    params: dict[str, Any]
    priority: float
    payload: dict[str, Any]
    created_at: float
    seq: int
    deadline: float | None = None
    status: str = QUEUED
    data: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    worker_id: str | None = None
    progress: Any = None
    progress_message: Any = None
    started_at: float | None = None
    finished_at: float | None = None

    def view(self) -> dict[str, Any]:
        """The control API representation."""
        return {
            "task_id": self.task_id,
            "job_id": self.job_id,
            "type": self.type,
            "params": self.params,
            "priority": self.priority,
            "deadline": self.deadline,
            "status": self.status,
            "data": self.data,
            "error": self.error,
            "worker_id": self.worker_id,
            "progress": self.progress,
            "progress_message": self.progress_message,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }


@dataclass
class MockState:
    """All mutable state; ``changed`` wakes long polls and waiters as soon as something happens."""

    settings: MockSettings
    workers: dict[str, Worker] = field(default_factory=dict)
    tasks: dict[str, Task] = field(default_factory=dict)
    jobs: dict[str, str] = field(default_factory=dict)
    queue: list[Task] = field(default_factory=list)
    nonces: dict[str, float] = field(default_factory=dict)
    task_secret: str = field(default_factory=lambda: secrets.token_hex(32))
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    closing: bool = False
    polls_waiting: int = 0  # long polls currently parked (observable by tests and logs)
    _seq: int = 0

    def now(self) -> float:
        """Wall-clock seconds from the settings' clock."""
        return self.settings.clock()

    async def notify(self) -> None:
        """Wake every long poll and waiter so they re-check the state."""
        async with self.changed:
            self.changed.notify_all()

    async def close(self) -> None:
        """Release pending long polls (they answer 204) so shutdown is immediate."""
        self.closing = True
        await self.notify()

    # --- workers -------------------------------------------------------------------------

    def live_worker(self, worker_id: Any) -> Worker | None:
        """The worker's record, or None when unknown or expired (120 s after the last sign of life)."""
        worker = self.workers.get(worker_id) if isinstance(worker_id, str) else None
        if worker is not None and self.now() - worker.last_seen > WORKER_TTL_SECONDS:
            del self.workers[worker_id]
            return None
        return worker

    def live_workers(self) -> list[Worker]:
        """All unexpired workers, most recently registered first."""
        alive = [w for w in list(self.workers.values()) if self.live_worker(w.worker_id) is not None]
        return sorted(alive, key=lambda w: w.registered_at, reverse=True)

    async def register(self, worker_id: str, record: dict[str, Any]) -> Worker:
        """Store (or replace) a worker's record, as a registration does."""
        now = self.now()
        worker = Worker(worker_id=worker_id, record=record, registered_at=now, last_seen=now)
        self.workers[worker_id] = worker
        await self.notify()
        return worker

    def refresh(self, worker_id: str) -> bool:
        """Extend a live worker's lifetime; False when the worker is unknown or expired."""
        worker = self.live_worker(worker_id)
        if worker is not None:
            worker.last_seen = self.now()
        return worker is not None

    async def merge_heartbeat(self, worker_id: str, update: dict[str, Any]) -> Worker | None:
        """Merge a heartbeat body into a live record (top-level update); None if the worker is unknown."""
        worker = self.live_worker(worker_id)
        if worker is None:
            return None
        worker.record.update(update)
        worker.last_seen = self.now()
        await self.notify()
        return worker

    def remember_nonce(self, key: str) -> bool:
        """Record a replay-guard key for 65 s; False when it is already there."""
        now = self.now()
        for stale in [k for k, expires in self.nonces.items() if expires <= now]:
            del self.nonces[stale]
        if key in self.nonces:
            return False
        self.nonces[key] = now + REPLAY_WINDOW_SECONDS
        return True

    # --- tasks ---------------------------------------------------------------------------

    async def submit(
        self, task_type: str, params: dict[str, Any], priority: float, deadline_in: float | None
    ) -> Task:
        """Queue a new task and wake the long polls."""
        now = self.now()
        job_id, task_id = str(uuid.uuid4()), f"task-{uuid.uuid4()}"
        deadline = now + deadline_in if deadline_in is not None else None
        payload: dict[str, Any] = {
            "job_id": job_id,
            "task_id": task_id,
            "type": task_type,
            "params": params,
            "priority": priority,
            "step": 1,
            "timestamp": int(now),
            "tracing_context": {},
            "deadline": deadline,
        }
        # The orchestrator sends its TaskPayload normalised (no nulls, integral floats as ints).
        payload = normalize(payload)
        payload["sig"] = sign(payload, self.task_secret, TASK_SIG_IGNORED)
        self._seq += 1
        task = Task(task_id, job_id, task_type, params, priority, payload, now, self._seq, deadline)
        self.tasks[task_id] = task
        self.jobs[job_id] = task_id
        self.queue.append(task)
        await self.notify()
        return task

    def task_of_job(self, job_id: Any) -> Task | None:
        """The task of a job id (each mock job has exactly one task)."""
        task_id = self.jobs.get(job_id) if isinstance(job_id, str) else None
        return self.tasks.get(task_id) if task_id else None

    def _pick(self, worker_id: str) -> Task | None:
        worker = self.live_worker(worker_id)
        if worker is None or worker.status() != "idle":
            return None
        skills = set(worker.skills())
        eligible = [t for t in self.queue if t.type in skills]
        if not eligible:
            return None
        return max(eligible, key=lambda t: (t.priority, -t.seq))

    def _hand_out(self, task: Task, worker_id: str) -> dict[str, Any]:
        self.queue.remove(task)
        task.status, task.worker_id, task.started_at = RUNNING, worker_id, self.now()
        return dict(task.payload)

    async def next_task(
        self, worker_id: str, hold: float, client_gone: Callable[[], bool]
    ) -> tuple[Task, dict[str, Any]] | None:
        """Long poll: the best matching task now, or as soon as one arrives, or None after ``hold`` s."""
        loop = asyncio.get_running_loop()
        until = loop.time() + hold
        async with self.changed:
            while not self.closing:
                if client_gone():
                    return None  # never pop a task for a connection that can no longer receive it
                task = self._pick(worker_id)
                if task is not None:
                    return task, self._hand_out(task, worker_id)
                remaining = until - loop.time()
                if remaining <= 0:
                    return None
                self.polls_waiting += 1
                try:
                    async with asyncio.timeout(remaining):
                        await self.changed.wait()
                except TimeoutError:
                    pass
                finally:
                    self.polls_waiting -= 1
        return None

    async def finish(
        self, task: Task, status: str, data: dict[str, Any] | None, error: dict[str, Any] | None
    ) -> None:
        """Record an accepted result."""
        if task in self.queue:
            self.queue.remove(task)
        task.status, task.data, task.error, task.finished_at = status, data, error, self.now()
        await self.notify()

    async def set_progress(self, task: Task, progress: Any, message: Any) -> None:
        """Record a progress event."""
        task.progress, task.progress_message = progress, message
        await self.notify()

    async def wait_done(self, task: Task, seconds: float) -> None:
        """Return when the task left queued/running, or after ``seconds``."""
        try:
            async with asyncio.timeout(seconds), self.changed:
                await self.changed.wait_for(lambda: self.closing or task.status not in (QUEUED, RUNNING))
        except TimeoutError:
            pass


STATE_KEY = web.AppKey("mock_orchestrator_state", MockState)
