"""The submitted tasks (one single-step job each), their attempts and the queue they wait in."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Collection
from typing import Any

from .records import QUEUED, RUNNING, Attempt, Task
from .signing import normalize, sign
from .task_queue import TaskQueue

# Left out of a task's signature, as avtomatika 1.0b30's dispatcher does (dispatcher.py: dispatch).
TASK_SIG_IGNORED = ("sig", "orchestrator_signature")


class TaskStore:
    """Tasks by control-API id and by job id, and the queue of those waiting for a worker."""

    def __init__(self, clock: Callable[[], float], secret: str) -> None:
        self._clock = clock
        self._secret = secret
        self._tasks: dict[str, Task] = {}
        self._jobs: dict[str, Task] = {}
        self._seq = itertools.count(1)
        self.queue = TaskQueue()

    def get(self, task_id: str) -> Task | None:
        """The task of a control-API task id."""
        return self._tasks.get(task_id)

    def of_job(self, job_id: Any) -> Task | None:
        """The task of a job id (each mock job has exactly one task)."""
        return self._jobs.get(job_id) if isinstance(job_id, str) else None

    def newest_first(self) -> list[Task]:
        """Every task, the latest submission first."""
        return sorted(self._tasks.values(), key=lambda t: t.seq, reverse=True)

    def held_by(self, worker_id: str) -> list[str]:
        """Ids of the tasks the worker is running now."""
        return [
            t.task_id
            for t in self._tasks.values()
            if t.current.worker_id == worker_id and t.current.status == RUNNING
        ]

    def _attempt(self, task_id: str, job_id: str, body: dict[str, Any]) -> Attempt:
        """A new attempt whose payload is the orchestrator's normalised, signed TaskPayload."""
        payload = normalize(dict(body, job_id=job_id, task_id=task_id, timestamp=int(self._clock())))
        payload["sig"] = sign(payload, self._secret, TASK_SIG_IGNORED)
        return Attempt(task_id=task_id, payload=payload)

    def create(
        self,
        task_type: str,
        params: dict[str, Any],
        priority: float,
        deadline_in: float | None,
        params_metadata: dict[str, Any] | None = None,
    ) -> Task:
        """Store a new task with its first attempt (not queued yet); ``params_metadata`` rides in its payload."""
        now = self._clock()
        job_id, task_id = str(uuid.uuid4()), f"task-{uuid.uuid4()}"
        deadline = now + deadline_in if deadline_in is not None else None
        body = {"type": task_type, "params": params, "priority": priority, "step": 1}
        body |= {"tracing_context": {}, "deadline": deadline}
        if params_metadata:
            body["params_metadata"] = params_metadata
        task = Task(task_id, job_id, task_type, params, priority, now, next(self._seq), deadline)
        task.params_metadata = params_metadata or None
        task.attempts.append(self._attempt(task_id, job_id, body))
        self._tasks[task_id] = self._jobs[job_id] = task
        return task

    def retry(self, task: Task) -> None:
        """Queue the task again under a new protocol task id, like the real dispatcher."""
        body = {k: v for k, v in task.current.payload.items() if k not in ("sig", "task_id", "job_id")}
        task.attempts.append(self._attempt(f"task-{uuid.uuid4()}", task.job_id, body))
        task.status = QUEUED
        self.queue.push(task)

    def end(self, task: Task, status: str, *, error_message: str | None = None) -> None:
        """Put the task into a final status."""
        self.queue.discard(task)
        task.status, task.finished_at = status, self._clock()
        if error_message is not None:
            task.error_message = error_message

    def take(
        self, skills: Collection[str], worker_id: str, accepts: Callable[[Task], bool] | None = None
    ) -> tuple[Task, dict[str, Any]] | None:
        """Hand the best queued task of these skills (that ``accepts`` takes) to the worker: (task, payload)."""
        task = self.queue.best(skills, accepts)
        if task is None:
            return None
        self.queue.discard(task)
        now = self._clock()
        attempt = task.current
        attempt.status, attempt.worker_id, attempt.started_at = RUNNING, worker_id, now
        task.worker_id = worker_id
        task.started_at = task.started_at or now
        if task.status == QUEUED:  # a task cancelled while queued is still delivered, like 1.0b30 does
            task.status = RUNNING
        return task, dict(attempt.payload)
