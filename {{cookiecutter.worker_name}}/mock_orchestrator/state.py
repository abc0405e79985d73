"""In-memory state of the mock: workers, tasks, the priority queue, the replay cache and change tracking.

Change subscription (for the dashboard and tests): every mutation bumps ``MockState.version`` and wakes
``MockState.changed``. ``await state.wait_for_change(since, timeout)`` returns the current version as soon
as it is greater than ``since`` (or after ``timeout`` s); ``GET /api/v1/events?since=N&wait=S`` exposes the
same over HTTP as ``{"version": V}``.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .cancel_flags import CancelFlags
from .channels import CommandChannels
from .records import (
    ACTIVE_STATUSES,
    CANCELLED,
    QUARANTINED,
    QUEUED,
    RUNNING,
    Attempt,
    Task,
    Worker,
)
from .settings import MockSettings
from .signing import normalize, sign
from .task_queue import TaskQueue

WORKER_TTL_SECONDS = 120.0  # 2 x WORKER_HEALTH_CHECK_INTERVAL_SECONDS of the real orchestrator
REPLAY_WINDOW_SECONDS = 65.0
TASK_SIG_IGNORED = ("sig", "orchestrator_signature")


class CancelRefused(LookupError):
    """The task cannot be cancelled; the text is the real orchestrator's 404 message."""


class NoSuitableWorker(RuntimeError):
    """Strict dispatch found no live idle worker with the skill (the real dispatcher's RuntimeError)."""

    def __init__(self, task_type: str) -> None:
        super().__init__(f"No suitable workers for task type '{task_type}'")


@dataclass
class MockState:
    """All mutable state; ``changed`` wakes long polls and waiters as soon as something happens."""

    settings: MockSettings
    workers: dict[str, Worker] = field(default_factory=dict)
    tasks: dict[str, Task] = field(default_factory=dict)
    jobs: dict[str, str] = field(default_factory=dict)
    queue: TaskQueue = field(default_factory=TaskQueue)
    nonces: OrderedDict[str, float] = field(default_factory=OrderedDict)
    task_secret: str = field(default_factory=lambda: secrets.token_hex(32))
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    channels: CommandChannels = field(default_factory=CommandChannels)
    cancel_flags: CancelFlags = field(default_factory=CancelFlags)
    closing: bool = False
    version: int = 0  # bumped on every change (see wait_for_change)
    polls_waiting: int = 0  # long polls currently parked (observable by tests and logs)
    _seq: int = 0

    def now(self) -> float:
        """Wall-clock seconds from the settings' clock."""
        return self.settings.clock()

    async def notify(self) -> None:
        """Record a change and wake every long poll and waiter so they re-check the state."""
        async with self.changed:
            self.version += 1
            self.changed.notify_all()

    async def wait_for_change(self, since: int, timeout: float) -> int:
        """Return the version once it is greater than ``since``, or after ``timeout`` seconds."""
        try:
            async with asyncio.timeout(timeout), self.changed:
                await self.changed.wait_for(lambda: self.closing or self.version > since)
        except TimeoutError:
            pass
        return self.version

    async def close(self) -> None:
        """Release pending long polls (they answer 204) and close WebSockets so shutdown is immediate."""
        self.closing = True
        await self.notify()
        await self.channels.close_all()
        await self.cancel_flags.close()

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

    def worker_view(self, worker: Worker) -> dict[str, Any]:
        """The control-API view of a worker, with its channel state and the tasks it holds."""
        holding = [
            t.task_id
            for t in self.tasks.values()
            if t.current.worker_id == worker.worker_id and t.current.status == RUNNING
        ]
        return worker.view(self.channels.connected(worker.worker_id), holding)

    async def register(self, worker_id: str, record: dict[str, Any]) -> Worker:
        """Store (or replace) a worker's record, as a registration does."""
        now = self.now()
        worker = Worker(worker_id=worker_id, record=record, registered_at=now, last_seen=now)
        self.workers[worker_id] = worker
        await self.notify()
        return worker

    async def refresh(self, worker_id: str) -> bool:
        """Extend a live worker's lifetime; False when the worker is unknown or expired."""
        worker = self.live_worker(worker_id)
        if worker is not None:
            worker.last_seen = worker.last_heartbeat = self.now()
            await self.notify()
        return worker is not None

    async def merge_heartbeat(self, worker_id: str, update: dict[str, Any]) -> Worker | None:
        """Merge a heartbeat body into a live record (top-level update); None if the worker is unknown."""
        worker = self.live_worker(worker_id)
        if worker is None:
            return None
        worker.record.update(update)
        worker.last_seen = worker.last_heartbeat = self.now()
        await self.notify()
        return worker

    def remember_nonce(self, key: str) -> bool:
        """Record a replay-guard key for 65 s; False when it is already there."""
        now = self.now()
        # Every key gets the same window, so keys expire in insertion order: drop from the oldest end.
        while self.nonces and next(iter(self.nonces.values())) <= now:
            self.nonces.popitem(last=False)
        if key in self.nonces:
            return False
        self.nonces[key] = now + REPLAY_WINDOW_SECONDS
        return True

    def can_dispatch(self, task_type: str) -> bool:
        """Whether a live worker reporting ``idle`` has the skill (the real dispatcher's first filter)."""
        return any(w.status() == "idle" and task_type in w.skills() for w in self.live_workers())

    # --- tasks ---------------------------------------------------------------------------

    def _attempt(self, task_id: str, job_id: str, body: dict[str, Any]) -> Attempt:
        """A new attempt whose payload is the orchestrator's normalised, signed TaskPayload."""
        payload = normalize(dict(body, job_id=job_id, task_id=task_id, timestamp=int(self.now())))
        payload["sig"] = sign(payload, self.task_secret, TASK_SIG_IGNORED)
        return Attempt(task_id=task_id, payload=payload)

    async def submit(
        self, task_type: str, params: dict[str, Any], priority: float, deadline_in: float | None
    ) -> Task:
        """Create a task; queue it (or, with strict dispatch and no idle capable worker, quarantine it)."""
        now = self.now()
        job_id, task_id = str(uuid.uuid4()), f"task-{uuid.uuid4()}"
        deadline = now + deadline_in if deadline_in is not None else None
        body = {"type": task_type, "params": params, "priority": priority, "step": 1}
        body |= {"tracing_context": {}, "deadline": deadline}
        self._seq += 1
        task = Task(task_id, job_id, task_type, params, priority, now, self._seq, deadline)
        task.attempts.append(self._attempt(task_id, job_id, body))
        self.tasks[task_id] = task
        self.jobs[job_id] = task_id
        if self.settings.strict_dispatch and not self.can_dispatch(task_type):
            self.end(task, QUARANTINED, error_message=str(NoSuitableWorker(task_type)))
        else:
            self.queue.push(task)
        await self.notify()
        return task

    def requeue(self, task: Task) -> None:
        """Queue the task again under a new protocol task id (a retry), like the real dispatcher."""
        if self.settings.strict_dispatch and not self.can_dispatch(task.type):
            raise NoSuitableWorker(task.type)
        body = {k: v for k, v in task.current.payload.items() if k not in ("sig", "task_id", "job_id")}
        task.attempts.append(self._attempt(f"task-{uuid.uuid4()}", task.job_id, body))
        task.status = QUEUED
        self.queue.push(task)

    def end(self, task: Task, status: str, *, error_message: str | None = None) -> None:
        """Put the task into a final status (call notify() afterwards)."""
        self.queue.discard(task)
        task.status, task.finished_at = status, self.now()
        if error_message is not None:
            task.error_message = error_message

    def task_of_job(self, job_id: Any) -> Task | None:
        """The task of a job id (each mock job has exactly one task)."""
        task_id = self.jobs.get(job_id) if isinstance(job_id, str) else None
        return self.tasks.get(task_id) if task_id else None

    def _pick(self, worker_id: str) -> Task | None:
        worker = self.live_worker(worker_id)
        if worker is None or worker.status() != "idle":
            return None
        return self.queue.best(set(worker.skills()))

    def _hand_out(self, task: Task, worker_id: str) -> dict[str, Any]:
        self.queue.discard(task)
        now = self.now()
        attempt = task.current
        attempt.status, attempt.worker_id, attempt.started_at = RUNNING, worker_id, now
        task.worker_id = worker_id
        task.started_at = task.started_at or now
        if task.status == QUEUED:  # a task cancelled while queued is still delivered, like 1.0b30 does
            task.status = RUNNING
        return dict(attempt.payload)

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
                    payload = self._hand_out(task, worker_id)
                    self.version += 1
                    self.changed.notify_all()
                    return task, payload
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

    async def set_progress(self, task: Task, progress: Any, message: Any) -> None:
        """Record a progress event."""
        task.progress, task.progress_message = progress, message
        await self.notify()

    async def wait_done(self, task: Task, seconds: float) -> None:
        """Return when the task left queued/running, or after ``seconds``."""
        try:
            async with asyncio.timeout(seconds), self.changed:
                await self.changed.wait_for(lambda: self.closing or task.status not in ACTIVE_STATUSES)
        except TimeoutError:
            pass

    async def cancel(self, task_id: str) -> Task:
        """Cancel like avtomatika's cancel_job: Redis flag, status ``cancelled``, WebSocket command if enabled."""
        task = self.tasks.get(task_id)
        if task is None:
            raise CancelRefused("Job not found")
        if task.status not in ACTIVE_STATUSES:
            raise CancelRefused("Job not found or already terminal.")
        protocol_id, worker_id = task.current_task_id, task.current.worker_id
        await self.cancel_flags.set(protocol_id)
        task.status, task.finished_at = CANCELLED, self.now()
        await self.notify()
        worker = self.live_worker(worker_id) if worker_id else None
        if worker is not None and worker.wants_websocket_commands():
            command = {"command": "cancel_task", "task_id": protocol_id, "job_id": task.job_id}
            await self.channels.send(worker.worker_id, command)
        return task


STATE_KEY = web.AppKey("mock_orchestrator_state", MockState)
