"""Running tasks: one asyncio task per delivered task, the handler in its own cancellable task.

The handler's task is what cancellation (orchestrator or shutdown) cancels; the outer task always
survives to turn the outcome into a result and queue it, so that every delivered task is reported.
Tasks are keyed by task id: the same job step re-delivered with a new task id runs again and each
copy reports for its own task id. Tasks still running when the shutdown timeout expires are not
reported here: they are collected in `interrupted`, and the worker decides how to hand them back
(worker.py, `_hand_back`).

Each result carries `picked_up_at`, the wall-clock time this worker received the task (kept in the task
under RECEIVED_AT, so that a task handed over to the next process keeps its first time, and in the result
message, so that a spooled result keeps it too).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from . import observe, tracing
from ._logging import task_context
from .admission import Admission
from .cancellation import Cancellations
from .config import WorkerConfig
from .events import EventSender
from .executor import Middleware, Outcome, TaskTools, check_fraction, execute, failure, task_deadline
from .files import FileStore
from .handlers import RegisteredHandler
from .hot_skills import HotSkills
from .results import ResultSender
from .tasks import Refusal
from .transport import OrchestratorClient
from .typing import CANCELLED, PROGRESS_EVENT, TIMEOUT_ERROR, TRANSIENT_ERROR

logger = logging.getLogger(__name__)

SHUTDOWN_MESSAGE = "worker shut down before the task finished"
RECEIVED_AT = "_received_at"  # private member of a running task: when this worker received it (Unix s)
# A handler that ignores its shutdown cancellation gets this long before it is abandoned (a stop must
# end within WORKER_SHUTDOWN_TIMEOUT + 2 s).
CANCEL_GRACE = 0.3


@dataclass(frozen=True)
class Interrupted:
    """A task the stop interrupted: the task as delivered, and the failure that would report it."""

    task: dict[str, Any]
    result: dict[str, Any]


class TaskRunner:
    """Starts, tracks, cancels and reports the tasks the poller hands over."""

    def __init__(
        self,
        config: WorkerConfig,
        handlers: Mapping[str, RegisteredHandler],
        client: OrchestratorClient,
        cancellations: Cancellations,
        results: ResultSender,
        slots: asyncio.Semaphore,
        state: Any = None,
        hot_skills: HotSkills | None = None,
        middlewares: tuple[Middleware, ...] = (),
        admission: Admission | None = None,
    ) -> None:
        self._config = config
        self._admission = admission if admission is not None else Admission()
        self._middlewares = middlewares
        self._state = state
        self._hot_skills = hot_skills if hot_skills is not None else HotSkills()
        self._pool: ThreadPoolExecutor | None = None
        self._handlers = handlers
        self._events = EventSender(client, config.worker_id)
        self._cancellations = cancellations
        self._results = results
        self._slots = slots
        self._runs: dict[asyncio.Task[None], dict[str, Any]] = {}  # outer task -> the task as delivered
        self._handler_runs: dict[str, asyncio.Task[Outcome]] = {}
        self._files = FileStore(config.files)  # the S3 client and the input cache, shared by every task
        self._shut_down: set[str] = set()
        self._freed: set[asyncio.Task[Any]] = set()
        self._expired: set[str] = (
            set()
        )  # tasks whose handler was cancelled at their deadline  # runs that gave their slot back before they ended
        self.interrupted: list[Interrupted] = []

    @property
    def running_count(self) -> int:
        """How many tasks are being handled."""
        return len(self._runs)

    def running_jobs(self) -> list[str]:
        """Job ids of the running tasks (what heartbeats list as `current_tasks`)."""
        return sorted({task["job_id"] for task in self._runs.values()})

    def spawn(self, task: dict[str, Any]) -> bool:
        """Start handling a well-formed `task` (tasks.py; the caller holds a slot)."""
        task = {**task, RECEIVED_AT: received_at(task)}
        run = asyncio.create_task(
            self._run(task, task["job_id"], task["task_id"]), name=f"task-{task['task_id']}"
        )
        self._runs[run] = task
        run.add_done_callback(self._on_done)
        return True

    def refuse(self, problem: Refusal) -> None:
        """Report a task that will not run (malformed, untrusted) as a failure naming the problem."""
        if problem.job_id is None or problem.task_id is None:
            return
        with task_context(problem.task_id, problem.job_id):
            logger.error("refusing a task: %s", problem.message)
            outcome = failure(problem.code, problem.message)
            self._report(problem.job_id, problem.task_id, outcome, round(time.time(), 3))

    def _on_done(self, run: asyncio.Task[None]) -> None:
        task = self._runs.pop(run, {})
        self._free_slot(run)
        self._freed.discard(run)
        if not run.cancelled() and run.exception() is not None:
            logger.error("task %s crashed", task.get("task_id"), exc_info=run.exception())

    def _free_slot(self, run: asyncio.Task[Any]) -> None:
        if run not in self._freed:
            self._freed.add(run)
            self._slots.release()

    async def _run(self, task: dict[str, Any], job_id: str, task_id: str) -> None:
        with task_context(task_id, job_id):
            try:
                outcome = await self._observed(task, job_id, task_id)
            except asyncio.CancelledError:
                # Abandoned at shutdown (the handler ignored its cancellation): still hand it back.
                self._finish(task, job_id, task_id, self._interrupted(task_id))
                raise
            if outcome is None:
                self._finish(task, job_id, task_id, outcome)
                return
            run = asyncio.current_task()
            assert run is not None
            self._free_slot(run)  # the next poll overlaps this result's round trip
            await self._results.deliver(self._result(task, outcome))

    def _finish(self, task: dict[str, Any], job_id: str, task_id: str, outcome: Outcome | None) -> None:
        if outcome is None:  # interrupted by the stop
            logger.warning("task interrupted by the stop; handing it back")
            message = self._message(task, failure(TRANSIENT_ERROR, SHUTDOWN_MESSAGE))
            self.interrupted.append(Interrupted(task, message))
            return
        self._results.submit(self._result(task, outcome))

    def _message(self, task: dict[str, Any], outcome: Outcome) -> dict[str, Any]:
        return self._build(task["job_id"], task["task_id"], outcome, received_at(task))

    def _build(self, job_id: str, task_id: str, outcome: Outcome, picked_up_at: float) -> dict[str, Any]:
        message: dict[str, Any] = {"job_id": job_id, "task_id": task_id, "worker_id": self._config.worker_id}
        message.update(outcome.to_message(timing=True))
        message["picked_up_at"] = picked_up_at
        return message

    def _report(self, job_id: str, task_id: str, outcome: Outcome, picked_up_at: float) -> None:
        self._results.submit(self._build(job_id, task_id, self._final(task_id, outcome), picked_up_at))

    def _result(self, task: dict[str, Any], outcome: Outcome) -> dict[str, Any]:
        return self._message(task, self._final(task["task_id"], outcome))

    def _final(self, task_id: str, outcome: Outcome) -> Outcome:
        if self._cancellations.is_cancelled(task_id):
            outcome = Outcome(status=CANCELLED)  # never a late success for a cancelled task
        logger.info("task finished with status %s", outcome.status)
        return outcome

    def _interrupted(self, task_id: str) -> Outcome | None:
        """The outcome of a cancelled handler: None when the stop interrupted it (to be handed back)."""
        if self._cancellations.is_cancelled(task_id):
            return Outcome(status=CANCELLED)
        if task_id in self._expired:
            self._expired.discard(task_id)
            return failure(
                TIMEOUT_ERROR, "the task's deadline passed while its handler ran (handler cancelled)"
            )
        if task_id in self._shut_down:
            return None
        return failure(TRANSIENT_ERROR, "the handler was cancelled")

    async def _observed(self, task: dict[str, Any], job_id: str, task_id: str) -> Outcome | None:
        """`_outcome` inside the task's span, counted by skill and outcome (observe.py, tracing.py)."""
        skill, began, status = task["type"], time.perf_counter(), "interrupted"
        observe.get().on_task_start(skill)
        with tracing.task_span(task) as set_outcome:
            try:
                outcome = await self._outcome(task, job_id, task_id)
                if outcome is not None:
                    status = CANCELLED if self._cancellations.is_cancelled(task_id) else outcome.status
                return outcome
            finally:
                set_outcome(status)
                observe.get().on_task_end(skill, status, time.perf_counter() - began)

    async def _outcome(self, task: dict[str, Any], job_id: str, task_id: str) -> Outcome | None:
        task_type = task["type"]
        handler = self._handlers.get(task_type)
        if handler is None:
            # 1.0b30's work stealing pops another worker's queue whatever the task type: a retryable
            # failure lets the orchestrator re-dispatch it to a worker that has the skill.
            known = ", ".join(self._handlers) or "none"
            message = (
                f"no handler for task type {task_type!r} (known: {known}); handed back for another worker"
            )
            logger.error("%s", message)
            return failure(TRANSIENT_ERROR, message)
        deadline = task_deadline(task)
        if deadline is not None and deadline <= time.time():
            # 1.0b30 re-dispatches a timed-out job with its first deadline, and takes a result after it
            # while its watcher has not acted: refusing such a task would only burn the job's retries.
            logger.warning(
                "the task's deadline passed %.1f s before it arrived (a retry keeps its job's first "
                "deadline): running it without one",
                time.time() - deadline,
            )
            deadline = None
        logger.info("task %r started", task_type)
        tools = self._tools(job_id, task_id, handler, task.get("tracing_context"))
        handler_run = asyncio.create_task(self._execute(handler, task, tools), name=f"handler-{task_id}")
        self._handler_runs[task_id] = handler_run
        self._cancellations.track(task_id, job_id, handler_run)
        # Past its deadline the orchestrator ignores the result anyway: stop the handler then.
        timer = None if deadline is None else self._deadline_timer(deadline, task_id, handler_run)
        try:
            await asyncio.wait({handler_run})
        except asyncio.CancelledError:
            handler_run.cancel()
            raise
        finally:
            if timer is not None:
                timer.cancel()
            self._cancellations.untrack(task_id)
            self._handler_runs.pop(task_id, None)
        if handler_run.cancelled():
            return self._interrupted(task_id)
        return handler_run.result()

    def _deadline_timer(
        self, deadline: float, task_id: str, handler_run: asyncio.Task[Outcome]
    ) -> asyncio.TimerHandle:
        def expire() -> None:
            logger.warning("the task's deadline has passed: cancelling its handler")
            self._expired.add(task_id)
            handler_run.cancel()

        return asyncio.get_running_loop().call_later(max(0.0, deadline - time.time()), expire)

    async def _execute(self, handler: RegisteredHandler, task: dict[str, Any], tools: TaskTools) -> Outcome:
        skill_type = (handler.skill.type if handler.skill else None) or handler.name
        async with self._admission.admit(handler.name, skill_type):
            return await execute(handler, task, tools)

    def _tools(self, job_id: str, task_id: str, handler: RegisteredHandler, trace: Any) -> TaskTools:
        # Events carry the task's trace context, as the official SDK's do.
        trace_context = trace if isinstance(trace, dict) and trace else None
        send_event = self._events.for_task(job_id, task_id, handler.skill, trace_context)

        async def send_progress(fraction: float, message: str = "") -> None:
            """Report progress (0.0 to 1.0) to the orchestrator; best effort, network errors are logged."""
            check_fraction(fraction)
            await send_event(PROGRESS_EVENT, {"progress": fraction, "message": str(message)})

        hot = self._hot_skills
        tools = TaskTools(
            send_progress, send_event, self._state, self._run_sync, hot.add, hot.remove, self._middlewares
        )
        return replace(tools, files=self._files.workspace)

    async def _run_sync(self, call: Callable[[], Any]) -> Any:
        """Run a sync handler in the pool, sized like the concurrency (never on the event loop)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._config.max_concurrent_tasks, "avtomatika-handler")
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    def close(self) -> None:
        """Let go of the thread pool; a sync handler still running cannot be interrupted and finishes alone."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    async def drain(self, deadline: float, force: asyncio.Event) -> None:
        """Let running tasks finish until `deadline` (loop time) or `force`; then cancel what still runs
        and collect it in `interrupted`."""
        if self._runs:
            logger.info("waiting up to %.0f s for %d running task(s)", deadline - _now(), len(self._runs))
        await _wait_until(lambda: set(self._runs), deadline, force)
        if not self._runs:
            return
        logger.warning("cancelling %d task(s) still running at shutdown", len(self._runs))
        for task in list(self._runs.values()):
            self._shut_down.add(task["task_id"])
        for handler_run in list(self._handler_runs.values()):
            handler_run.cancel()
        await _wait_until(lambda: set(self._runs), _now() + CANCEL_GRACE, force)
        for run in list(self._runs):
            run.cancel()
        await asyncio.gather(*self._runs, return_exceptions=True)


def received_at(task: dict[str, Any]) -> float:
    """When this worker (or the process that handed `task` over) received it: wall-clock Unix seconds."""
    value = task.get(RECEIVED_AT)
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return round(time.time(), 3)


def _now() -> float:
    return asyncio.get_running_loop().time()


async def _wait_until(
    pending: Callable[[], set[asyncio.Task[None]]], deadline: float, force: asyncio.Event
) -> None:
    """Wait until `pending()` is empty (re-read after each change), `deadline` (loop time) or `force`."""
    forced = asyncio.create_task(force.wait())
    try:
        while (waiting := pending()) and not force.is_set():
            remaining = deadline - _now()
            if remaining <= 0:
                break
            await asyncio.wait({*waiting, forced}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
    finally:
        forced.cancel()
