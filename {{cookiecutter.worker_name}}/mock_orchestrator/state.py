"""The mock's state behind one facade: the parts, and the operations that span more than one of them.

The parts are the worker registry (``registry.py``), the task store and queue (``task_store.py``), the
replay cache (``replay.py``), the change feed (``changes.py``), the WebSocket command channels
(``channels.py``) and the Redis cancel flags (``cancel_flags.py``). Every mutation ends with
``await state.notify()``, which wakes long polls and the dashboard.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

from .cancel_flags import CancelFlags
from .changes import Changes
from .channels import CommandChannels
from .file_links import output_files
from .records import ACTIVE_STATUSES, CANCELLED, QUARANTINED, QUEUED, Task, Worker
from .registry import WorkerRegistry
from .replay import ReplayCache
from .requirements import Requirements, accepts, refusal
from .settings import MockSettings
from .task_store import TaskStore


class CancelRefused(LookupError):
    """The task cannot be cancelled; the text is the real orchestrator's 404 message."""


class NoSuitableWorker(RuntimeError):
    """Strict dispatch found no live idle worker with the skill (the real dispatcher's RuntimeError)."""

    def __init__(self, task_type: str, reason: str | None = None) -> None:
        super().__init__(reason or f"No suitable workers for task type '{task_type}'")


class MockState:
    """Workers, tasks, replay cache, change feed and command channels of one mock orchestrator."""

    def __init__(self, settings: MockSettings, cancel_flags: CancelFlags | None = None) -> None:
        self.settings = settings
        self.changes = Changes()
        self.workers = WorkerRegistry(settings.clock)
        self.tasks = TaskStore(settings.clock, settings.task_secret)
        self.replay = ReplayCache(settings.clock)
        self.channels = CommandChannels()
        self.cancel_flags = cancel_flags or CancelFlags()
        self._open_polls: Counter[str] = Counter()

    def now(self) -> float:
        """Wall-clock seconds from the settings' clock."""
        return self.settings.clock()

    async def notify(self) -> None:
        """Record a change: wakes every long poll and waiter so they re-check the state."""
        await self.changes.notify()

    async def close(self) -> None:
        """Release pending long polls (they answer 204) and close WebSockets so shutdown is immediate."""
        await self.changes.close()
        await self.channels.close_all()
        await self.cancel_flags.close()

    def worker_view(self, worker: Worker) -> dict[str, Any]:
        """The control-API view of a worker, with its channel, its open poll and the tasks it holds."""
        view = worker.view(self.channels.connected(worker.worker_id), self.tasks.held_by(worker.worker_id))
        view["polling"] = self._open_polls[worker.worker_id] > 0
        return view

    async def submit(
        self,
        task_type: str,
        params: dict[str, Any],
        priority: float,
        deadline_in: float | None,
        requirements: Requirements | None = None,
        metadata: dict[str, Any] | None = None,
        params_metadata: dict[str, Any] | None = None,
    ) -> Task:
        """Create a task; queue it, or quarantine it when the workers there are refuse it (as 1.0b30 does)."""
        task = self.tasks.create(task_type, params, priority, deadline_in, params_metadata)
        task.requirements, task.metadata = requirements or Requirements(), metadata
        reason = self.dispatch_refusal(task)
        if reason is not None:
            self.tasks.end(task, QUARANTINED, error_message=reason)
        else:
            self.tasks.queue.push(task)
        await self.notify()
        return task

    def dispatch_refusal(self, task: Task) -> str | None:
        """Why 1.0b30's dispatcher would refuse the task now; None when it may wait or be taken.

        Strict dispatch looks at idle workers only and refuses when none has the skill. Otherwise a task
        no live, non-draining worker has the skill for waits for one; live workers with the skill that all refuse it
        (pinned version/type, input_schema, resources, max_cost) make it fail like the real dispatch.
        """
        with_skill = [w for w in self.workers.live() if task.type in w.skills()]
        if self.settings.strict_dispatch:
            with_skill = [w for w in with_skill if w.status() == "idle"]
            if not with_skill:
                return str(NoSuitableWorker(task.type))
        else:  # a draining worker is going away: wait for the next one rather than judge by it
            with_skill = [w for w in with_skill if w.status() != "draining"]
        if not with_skill:
            return None
        return refusal([w.record for w in with_skill], task.type, task.params, task.requirements)

    def task_view(self, task: Task) -> dict[str, Any]:
        """The control-API view of a task; a queued one says why no live worker can take it, if so."""
        view = task.view()
        if task.data_metadata or self.settings.s3 is not None:
            view["output_files"] = output_files(task.data, task.data_metadata, self.settings.client_token)
        if task.status == QUEUED:
            view["waiting_reason"] = self.dispatch_refusal(task) if self.workers.live() else None
        return view

    def retry(self, task: Task) -> None:
        """Queue a failed task again; with strict dispatch and no worker for it, NoSuitableWorker."""
        reason = self.dispatch_refusal(task)
        if self.settings.strict_dispatch and reason is not None:
            raise NoSuitableWorker(task.type, reason)
        self.tasks.retry(task)

    def _idle_skills(self, worker_id: str) -> set[str]:
        worker = self.workers.get(worker_id)
        return set(worker.skills()) if worker is not None and worker.status() == "idle" else set()

    def _acceptor(self, worker_id: str) -> Callable[[Task], bool]:
        worker = self.workers.get(worker_id)
        record = worker.record if worker is not None else {}
        return lambda task: accepts(record, task.type, task.params, task.requirements)

    @asynccontextmanager
    async def _polling(self, worker_id: str) -> AsyncIterator[None]:
        self._open_polls[worker_id] += 1
        await self.notify()
        try:
            yield
        finally:
            self._open_polls[worker_id] -= 1
            if not self._open_polls[worker_id]:
                del self._open_polls[worker_id]
            await self.notify()  # also announces a hand-out

    async def next_task(
        self, worker_id: str, hold: float, client_gone: Callable[[], bool]
    ) -> tuple[Task, dict[str, Any]] | None:
        """Long poll: the best matching task now, or as soon as one arrives, or None after ``hold`` s."""

        def ready() -> bool:
            best = self.tasks.queue.best(self._idle_skills(worker_id), self._acceptor(worker_id))
            return client_gone() or best is not None

        async with self._polling(worker_id):
            found = await self.changes.wait_until(ready, hold)
            # Nothing else runs between the wait's last check and this take: no await in between.
            if not found or client_gone():
                return None  # never pop a task for a connection that can no longer receive it
            return self.tasks.take(self._idle_skills(worker_id), worker_id, self._acceptor(worker_id))

    async def set_progress(self, task: Task, progress: Any, message: Any) -> None:
        """Record a progress event."""
        task.progress, task.progress_message = progress, message
        await self.notify()

    async def wait_done(self, task: Task, seconds: float) -> None:
        """Return when the task left queued/running, or after ``seconds``."""
        await self.changes.wait_until(lambda: task.status not in ACTIVE_STATUSES, seconds)

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
        worker = self.workers.get(worker_id) if worker_id else None
        if worker is not None and worker.wants_websocket_commands():
            command = {"command": "cancel_task", "task_id": protocol_id, "job_id": task.job_id}
            await self.channels.send(worker.worker_id, command)
        return task


STATE_KEY = web.AppKey("mock_orchestrator_state", MockState)
