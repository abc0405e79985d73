"""Run one task handler the way the worker runs it, with no orchestrator and no Redis: for handler tests.

from avtomatika_worker.testing import TaskRun

async def test_stock_is_checked() -> None:
    result = await TaskRun(worker, "check_inventory")({"items": ["apple"]})
    assert result == {"status": "success", "data": {...}}

The worker's `on_startup` hooks run once, before its first TaskRun (as they run before it registers),
so handlers find in `state` what the hooks put there; `on_shutdown` hooks do not run.
"""

from __future__ import annotations

import asyncio
import uuid
import weakref
from collections.abc import Callable
from typing import Any

from .events import event_problem, extras_problem
from .executor import Outcome, TaskTools, check_fraction, execute
from .typing import CANCELLED
from .worker import Worker


class TaskRun:
    """One task of `worker`: call it with the params; it records progress and can be cancelled."""

    def __init__(
        self,
        worker: Worker,
        task_type: str,
        *,
        job_id: str = "job-test",
        priority: float = 0,
        deadline: float | None = None,
        metadata: dict[str, Any] | None = None,
        on_progress: Callable[[TaskRun], None] | None = None,
    ) -> None:
        if task_type not in worker.skills:
            known = ", ".join(worker.skills) or "none"
            raise KeyError(f"no handler for task type {task_type!r} (registered: {known})")
        self.worker = worker
        self.task_type = task_type
        # Unique per run: a cancellation of one run must not leak into the next.
        self.task_id = f"task-{uuid.uuid4()}"
        self.job_id = job_id
        self.priority = priority
        self.deadline = deadline
        self.metadata = {} if metadata is None else metadata  # the job's: result metadata is merged into it
        self.progress: list[tuple[float, str]] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._on_progress = on_progress  # e.g. to cancel the task after its second report

    def cancel(self, *, interrupt: bool = False) -> None:
        """Cancel the task, before or while it runs: as the orchestrator's Redis flag does
        (`check_for_cancellation` answers True), or with `interrupt=True` as its WebSocket command does
        (the handler gets `asyncio.CancelledError`)."""
        self.worker._cancellations.report(self.task_id, "TaskRun.cancel()", interrupt=interrupt)

    async def send_progress(self, fraction: float, message: str = "") -> None:
        """Record a progress report (checked as the worker checks it)."""
        check_fraction(fraction)
        self.progress.append((fraction, str(message)))
        if self._on_progress is not None:
            self._on_progress(self)

    async def send_event(
        self,
        event_type: str,
        payload: dict[str, Any] | None = None,
        *,
        priority: float = 0.0,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Record an event the handler sends (checked against the skill's events_schema as the worker does)."""
        skill = self.worker._handlers[self.task_type].skill
        problem = event_problem(skill, event_type, payload) or extras_problem(event_type, priority, metadata)
        if problem is not None:
            raise ValueError(problem)
        self.events.append((event_type, dict(payload or {})))

    async def __call__(self, params: dict[str, Any]) -> dict[str, Any]:
        """Run the handler; return the result the worker would report: `status`, and `data` or `error`."""
        task = {
            "task_id": self.task_id,
            "job_id": self.job_id,
            "type": self.task_type,
            "params": params,
            "priority": self.priority,
            "deadline": self.deadline,
            "metadata": self.metadata,
        }
        await _started(self.worker)
        # The SDK's own test seam: it reaches into the worker so that user tests never have to.
        cancellations = self.worker._cancellations
        with cancellations.offline():
            hot = self.worker.hot_skills
            middlewares = tuple(self.worker._middlewares)
            tools = TaskTools(
                self.send_progress, self.send_event, self.worker.state, None, hot.add, hot.remove, middlewares
            )
            run = asyncio.create_task(execute(self.worker._handlers[self.task_type], task, tools))
            cancellations.track(self.task_id, self.job_id, run)
            try:
                await asyncio.wait({run})
            finally:
                cancellations.untrack(self.task_id)
        outcome = Outcome(status=CANCELLED) if run.cancelled() else run.result()
        return outcome.to_message()


_STARTED: weakref.WeakSet[Worker] = weakref.WeakSet()


async def _started(worker: Worker) -> None:
    """Run the worker's on_startup hooks the first time one of its tasks runs here."""
    if worker not in _STARTED:
        _STARTED.add(worker)
        await worker._run_startup_hooks()
