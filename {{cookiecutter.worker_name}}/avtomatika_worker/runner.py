"""Running tasks: one asyncio task per delivered task, the handler in its own cancellable task.

The handler's task is what cancellation (orchestrator or shutdown) cancels; the outer task always
survives to turn the outcome into a result and queue it, so that every delivered task is reported.
Tasks are keyed by task id: the same job step re-delivered with a new task id runs again and each
copy reports for its own task id.

With ORCHESTRATOR_SECRET_KEY set, a task whose `sig` is missing or wrong is not run and is reported as
a SECURITY_ERROR failure (the orchestrator quarantines the job), so a forged task or a mismatched
secret is visible at once instead of the task vanishing until a timeout (the official SDK drops it).
Tasks still running when the shutdown timeout expires are reported as TRANSIENT_ERROR failures, not
`cancelled`, so that the orchestrator re-dispatches them to another worker.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from ._logging import task_context
from .cancellation import Cancellations
from .config import WorkerConfig
from .errors import TransportError
from .executor import Outcome, RegisteredHandler, execute, failure
from .results import ResultSender
from .signing import task_signature_problem
from .transport import OrchestratorClient
from .typing import CANCELLED, PERMANENT_ERROR, PROGRESS_EVENT, SECURITY_ERROR, TRANSIENT_ERROR

logger = logging.getLogger(__name__)

SHUTDOWN_MESSAGE = "worker shut down before the task finished"
PROGRESS_TIMEOUT = 10.0  # a progress event is best effort: never hold a handler up for long
# A handler that ignores cancellation gets this long after the shutdown cancel before it is abandoned.
CANCEL_GRACE = 5.0


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
        on_change: Callable[[], None],
    ) -> None:
        self._config = config
        self._handlers = handlers
        self._client = client
        self._cancellations = cancellations
        self._results = results
        self._slots = slots
        self._on_change = on_change
        self._runs: dict[asyncio.Task[None], tuple[str, str]] = {}  # outer task -> (task_id, job_id)
        self._handler_runs: dict[str, asyncio.Task[Outcome]] = {}
        self._shut_down: set[str] = set()

    @property
    def running_count(self) -> int:
        """How many tasks are being handled."""
        return len(self._runs)

    def running_jobs(self) -> list[str]:
        """Job ids of the running tasks (what heartbeats list as `current_tasks`)."""
        return sorted({job_id for _, job_id in self._runs.values()})

    def spawn(self, task: dict[str, Any]) -> bool:
        """Start handling `task` (the caller holds a slot); False if it cannot be handled at all."""
        job_id, task_id = task.get("job_id"), task.get("task_id")
        if not isinstance(job_id, str) or not isinstance(task_id, str) or not job_id or not task_id:
            logger.error("dropping a task without job_id/task_id: %.300r", task)
            return False
        run = asyncio.create_task(self._run(task, job_id, task_id), name=f"task-{task_id}")
        self._runs[run] = (task_id, job_id)
        run.add_done_callback(self._on_done)
        self._on_change()
        return True

    def _on_done(self, run: asyncio.Task[None]) -> None:
        task_id, _ = self._runs.pop(run, ("?", "?"))
        self._slots.release()
        self._on_change()
        if not run.cancelled() and run.exception() is not None:
            logger.error("task %s crashed", task_id, exc_info=run.exception())

    async def _run(self, task: dict[str, Any], job_id: str, task_id: str) -> None:
        with task_context(task_id, job_id):
            try:
                outcome = await self._outcome(task, job_id, task_id)
            except asyncio.CancelledError:
                # Abandoned at shutdown (the handler ignored its cancellation): still report it.
                self._report(job_id, task_id, self._interrupted(task_id))
                raise
            self._report(job_id, task_id, outcome)

    def _report(self, job_id: str, task_id: str, outcome: Outcome) -> None:
        if self._cancellations.is_cancelled(task_id):
            outcome = Outcome(status=CANCELLED)  # never a late success for a cancelled task
        logger.info("task finished with status %s", outcome.status)
        message = {"job_id": job_id, "task_id": task_id, "worker_id": self._config.worker_id}
        message.update(outcome.to_message())
        self._results.submit(message)

    def _interrupted(self, task_id: str) -> Outcome:
        if self._cancellations.is_cancelled(task_id):
            return Outcome(status=CANCELLED)
        if task_id in self._shut_down:
            # A retryable failure, not `cancelled`: the orchestrator re-dispatches the job elsewhere.
            return failure(TRANSIENT_ERROR, SHUTDOWN_MESSAGE)
        return failure(TRANSIENT_ERROR, "the handler was cancelled")

    async def _outcome(self, task: dict[str, Any], job_id: str, task_id: str) -> Outcome:
        secret = self._config.orchestrator_secret_key
        problem = task_signature_problem(task, secret) if secret else None
        if problem is not None:
            logger.error("refusing to run the task: %s", problem)
            return failure(SECURITY_ERROR, f"{problem}; the task was not run")
        task_type = task.get("type")
        handler = self._handlers.get(task_type) if isinstance(task_type, str) else None
        if handler is None:
            known = ", ".join(self._handlers) or "none"
            outcome = failure(PERMANENT_ERROR, f"no handler for task type {task_type!r} (known: {known})")
            logger.error("%s", outcome.error)
            return outcome
        logger.info("task %r started", task_type)
        progress = self._progress_sender(job_id, task_id)
        handler_run = asyncio.create_task(execute(handler, task, progress), name=f"handler-{task_id}")
        self._handler_runs[task_id] = handler_run
        self._cancellations.track(task_id, job_id, handler_run)
        try:
            await asyncio.wait({handler_run})
        except asyncio.CancelledError:
            handler_run.cancel()
            raise
        finally:
            self._cancellations.untrack(task_id)
            self._handler_runs.pop(task_id, None)
        if handler_run.cancelled():
            return self._interrupted(task_id)
        return handler_run.result()

    def _progress_sender(self, job_id: str, task_id: str) -> Callable[..., Any]:
        client, worker_id = self._client, self._config.worker_id

        async def send_progress(fraction: float, message: str = "") -> None:
            """Report progress (0.0 to 1.0) to the orchestrator; best effort, network errors are logged."""
            if not _is_fraction(fraction):
                raise ValueError(
                    f"send_progress(fraction={fraction!r}): fraction must be a number from 0 to 1, e.g. 0.4"
                )
            event = {
                "event_id": str(uuid.uuid4()),
                "worker_id": worker_id,
                "origin_worker_id": worker_id,
                "event_type": PROGRESS_EVENT,
                "payload": {"progress": fraction, "message": str(message)},
                "target_job_id": job_id,
                "target_task_id": task_id,
            }
            try:
                reply = await client.send_event(event, PROGRESS_TIMEOUT)
            except TransportError as exc:
                logger.warning("progress %.2f not delivered: %s", fraction, exc)
                return
            if isinstance(reply, dict) and reply.get("status") == "error":
                logger.warning("progress %.2f refused: %s", fraction, reply.get("message"))

        return send_progress

    async def drain(self, timeout: float, force: asyncio.Event) -> None:
        """Let running tasks finish for up to `timeout` s (or until `force`), then cancel and report them."""
        if self._runs:
            logger.info("waiting up to %g s for %d running task(s)", timeout, len(self._runs))
            await _wait_all(set(self._runs), timeout, force)
        if not self._runs:
            return
        logger.warning("cancelling %d task(s) still running at shutdown", len(self._runs))
        for task_id, handler_run in list(self._handler_runs.items()):
            self._shut_down.add(task_id)
            handler_run.cancel()
        await _wait_all(set(self._runs), CANCEL_GRACE, force)
        for run in list(self._runs):
            task_id, _ = self._runs[run]
            self._shut_down.add(task_id)
            run.cancel()
        await asyncio.gather(*self._runs, return_exceptions=True)


def _is_fraction(value: Any) -> bool:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return number and math.isfinite(value) and 0 <= value <= 1


async def _wait_all(runs: set[asyncio.Task[None]], timeout: float, force: asyncio.Event) -> None:
    """Wait until every run is done, `timeout` passes or `force` is set."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    pending: set[asyncio.Future[Any]] = set(runs)
    forced = asyncio.create_task(force.wait())
    try:
        while pending and not force.is_set():
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            done, _ = await asyncio.wait(
                pending | {forced}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
            pending -= done
    finally:
        forced.cancel()
