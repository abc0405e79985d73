"""The `Worker`: handler registration, registration/heartbeat/poll loops and the process entry point."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self, TypeVar

import aiohttp
import redis.asyncio as aioredis

from ._logging import configure_logging, task_context
from .cancellation import CancellationFlags
from .config import WorkerConfig, load_env_file
from .errors import (
    ConfigError,
    OrchestratorRejectedError,
    OrchestratorUnavailableError,
    RegistrationError,
    TransportError,
)
from .executor import Handler, Outcome, RegisteredHandler, execute, failure
from .retry import Sleep, retry_delay, retrying
from .transport import OrchestratorClient
from .typing import PERMANENT_ERROR

logger = logging.getLogger(__name__)

H = TypeVar("H", bound=Handler)
R = TypeVar("R")

RESULT_SEND_ATTEMPTS = 5


class Worker:
    """An Avtomatika worker: register handlers with `@worker.task(name)`, then call `worker.run()`."""

    def __init__(
        self,
        worker_type: str,
        *,
        config: WorkerConfig | None = None,
        session: aiohttp.ClientSession | None = None,
        redis_client: aioredis.Redis | None = None,
        sleep: Sleep = asyncio.sleep,
        shutdown_grace: float = 30.0,
    ) -> None:
        self.worker_type = worker_type
        self._config = config
        self._session = session
        self._cancellation = CancellationFlags(lambda: self.config.redis_url, redis_client)
        self._sleep = sleep
        self._shutdown_grace = shutdown_grace
        self._handlers: dict[str, RegisteredHandler] = {}
        self._client: OrchestratorClient | None = None
        self._slots: asyncio.Semaphore | None = None
        self._running: dict[str, str] = {}  # task_id -> job_id of tasks being handled
        self._task_runs: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._crashed = asyncio.Event()

    @property
    def config(self) -> WorkerConfig:
        """The active configuration (read from the environment on first use)."""
        if self._config is None:
            self._config = WorkerConfig.from_env(self.worker_type)
        return self._config

    @property
    def skills(self) -> list[str]:
        """Names of the registered task handlers."""
        return list(self._handlers)

    def task(self, name: str) -> Callable[[H], H]:
        """Register an `async def handler(params, **kwargs)` for tasks of type `name`."""
        if not isinstance(name, str) or not name:
            raise ValueError("task name must be a non-empty string")

        def decorator(func: H) -> H:
            if name in self._handlers:
                raise ValueError(f"a handler for task {name!r} is already registered")
            self._handlers[name] = RegisteredHandler.wrap(name, func)
            return func

        return decorator

    async def check_for_cancellation(self, task_id: str) -> bool:
        """Return True if the orchestrator flagged `task_id` as cancelled in Redis (False if unreachable)."""
        return await self._cancellation.is_cancelled(task_id)

    # ---- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Register, send the first heartbeat and start the loops (no `.env` loading: that is run()'s job)."""
        if self._loops:
            raise RuntimeError("the worker is already running")
        config = self.config
        if not self._handlers:
            logger.warning("no task handlers registered: this worker will never receive tasks")
        self._client = OrchestratorClient(config, self._session)
        self._slots = asyncio.Semaphore(config.max_concurrent_tasks)
        self._crashed.clear()
        logger.info(
            "worker %s (%s) connecting to %s with skills %s",
            config.worker_id,
            self.worker_type,
            config.orchestrator_url,
            ", ".join(self._handlers) or "(none)",
        )
        await self._register()
        await self._heartbeat_once()
        for loop in (self._heartbeat_loop(), self._poll_loop()):
            task = asyncio.create_task(loop)
            task.add_done_callback(self._on_loop_done)
            self._loops.append(task)

    async def stop(self) -> None:
        """Stop polling, let running handlers finish (up to the grace period) and close connections."""
        loops, self._loops = self._loops, []
        for loop in loops:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        if self._task_runs:
            logger.info(
                "waiting up to %g s for %d running task(s)", self._shutdown_grace, len(self._task_runs)
            )
            _, pending = await asyncio.wait(set(self._task_runs), timeout=self._shutdown_grace)
            for run in pending:
                run.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._client is not None:
            await self._client.close()
            self._client = None
        await self._cancellation.close()

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _on_loop_done(self, loop: asyncio.Task[None]) -> None:
        if not loop.cancelled() and loop.exception() is not None:
            logger.error("worker loop crashed", exc_info=loop.exception())
            self._crashed.set()

    # ---- orchestrator calls ------------------------------------------------------------------------

    def _require_client(self) -> OrchestratorClient:
        if self._client is None:
            raise RuntimeError("the worker is not started")
        return self._client

    async def _retrying(self, op: Callable[[], Awaitable[R]], what: str, attempts: int | None = None) -> R:
        return await retrying(op, what, self._sleep, attempts)

    async def _register(self) -> None:
        client = self._require_client()
        message = {
            "worker_id": self.config.worker_id,
            "worker_type": self.worker_type,
            "supported_skills": [{"name": name, "type": name} for name in self._handlers],
            "available_skills": list(self._handlers),
        }
        try:
            reply = await self._retrying(lambda: client.register(message), "registration")
        except OrchestratorRejectedError as exc:
            hint = " (check WORKER_TOKEN and WORKER_ID)" if exc.status == 403 else ""
            raise RegistrationError(f"the orchestrator refused registration: {exc}{hint}") from exc
        if isinstance(reply, dict) and reply.get("warning"):
            logger.warning("orchestrator: %s", reply["warning"])
        logger.info("registered as %s", self.config.worker_id)

    def _heartbeat_message(self) -> dict[str, Any]:
        config = self.config
        message: dict[str, Any] = {
            "worker_id": config.worker_id,
            "status": "idle" if len(self._running) < config.max_concurrent_tasks else "busy",
            # The orchestrator matches these against job ids only (protocol.md section 5).
            "current_tasks": sorted(set(self._running.values())),
            "available_skills": list(self._handlers),
        }
        if config.enable_websockets:
            message["capabilities"] = {"websockets": True}
        return message

    async def _heartbeat_once(self) -> None:
        client = self._require_client()
        try:
            # Only an empty-body heartbeat reveals whether the orchestrator still knows this worker
            # (JSON null if not): a signed one for an unknown worker is answered "ok" and dropped.
            if await client.refresh_ttl() is None:
                logger.warning("the orchestrator no longer knows this worker; registering again")
                await self._register()
            reply = await client.heartbeat(self._heartbeat_message())
        except OrchestratorUnavailableError as exc:
            logger.warning("heartbeat failed: %s", exc)
            return
        except TransportError as exc:
            logger.error("heartbeat rejected: %s", exc)
            return
        if reply is None:
            logger.warning("the orchestrator answered the heartbeat with null; registering again")
            await self._register()

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat_interval)
            try:
                await self._heartbeat_once()
            except RegistrationError as exc:
                logger.error("%s", exc)

    # ---- tasks -------------------------------------------------------------------------------------

    async def _poll_loop(self) -> None:
        assert self._slots is not None
        while True:
            await self._slots.acquire()
            try:
                task = await self._poll_once()
            except BaseException:
                self._slots.release()
                raise
            if task is None:
                self._slots.release()
            else:
                self._spawn(task)

    async def _poll_once(self) -> dict[str, Any] | None:
        client = self._require_client()
        try:
            return await self._retrying(client.next_task, "task poll")
        except OrchestratorRejectedError as exc:
            logger.error("task poll rejected: %s", exc)
        except TransportError as exc:
            logger.error("task poll failed, a task may have been lost: %s", exc)
        # Without a pause a persistent 4xx would turn this loop into a busy loop.
        await self._sleep(retry_delay(1))
        return None

    def _spawn(self, task: dict[str, Any]) -> None:
        assert self._slots is not None
        job_id, task_id = task.get("job_id"), task.get("task_id")
        if not isinstance(job_id, str) or not isinstance(task_id, str) or not job_id or not task_id:
            logger.error("dropping a task without job_id/task_id: %.300r", task)
            self._slots.release()
            return
        self._running[task_id] = job_id
        run = asyncio.create_task(self._run_task(task, job_id, task_id), name=f"task-{task_id}")
        self._task_runs.add(run)
        run.add_done_callback(lambda done: self._on_task_done(done, task_id))

    def _on_task_done(self, run: asyncio.Task[None], task_id: str) -> None:
        self._task_runs.discard(run)
        self._running.pop(task_id, None)
        if self._slots is not None:
            self._slots.release()
        if not run.cancelled() and run.exception() is not None:
            logger.error("task %s crashed", task_id, exc_info=run.exception())

    async def _run_task(self, task: dict[str, Any], job_id: str, task_id: str) -> None:
        with task_context(task_id, job_id):
            task_type = task.get("type")
            handler = self._handlers.get(task_type) if isinstance(task_type, str) else None
            if handler is None:
                known = ", ".join(self._handlers) or "none"
                outcome = failure(PERMANENT_ERROR, f"no handler for task type {task_type!r} (known: {known})")
                logger.error("%s", outcome.error)
            else:
                logger.info("task %r started", task_type)
                outcome = await execute(handler, task)
                logger.info("task %r finished with status %s", task_type, outcome.status)
            await self._send_result(job_id, task_id, outcome)

    async def _send_result(self, job_id: str, task_id: str, outcome: Outcome) -> None:
        client = self._require_client()
        message = {"job_id": job_id, "task_id": task_id, "worker_id": self.config.worker_id}
        message.update(outcome.to_message())
        try:
            reply = await self._retrying(
                lambda: client.send_result(message), "sending the result", RESULT_SEND_ATTEMPTS
            )
        except TransportError as exc:
            logger.error("could not deliver the result (status %s): %s", outcome.status, exc)
            return
        if isinstance(reply, dict) and reply.get("status") == "accepted":
            logger.info("result accepted (%s)", reply.get("transition", "no transition"))
        else:
            logger.warning("result not accepted: %s", reply)

    # ---- process entry point -----------------------------------------------------------------------

    def run(self) -> None:
        """Load `.env` and the environment, configure logging, run until SIGINT/SIGTERM, then exit."""
        load_env_file()
        try:
            config = self.config
        except ConfigError as exc:
            print(f"configuration error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        configure_logging(config.log_level)
        code = asyncio.run(self._serve())
        if code:
            raise SystemExit(code)

    def _on_signal(self, stop_requested: asyncio.Event) -> None:
        if not stop_requested.is_set():
            stop_requested.set()
            return
        # A second Ctrl-C/SIGTERM means "now": do not wait out the grace period.
        logger.warning("second stop signal: cancelling %d running task(s)", len(self._task_runs))
        for run in self._task_runs:
            run.cancel()

    async def _serve(self) -> int:
        """Run the worker until a signal arrives or a loop crashes; returns the exit code."""
        stop_requested = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):  # Windows event loops
                loop.add_signal_handler(sig, self._on_signal, stop_requested)
        starting = asyncio.create_task(self.start())
        stopping = asyncio.create_task(stop_requested.wait())
        crashing = asyncio.create_task(self._crashed.wait())
        try:
            await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if starting.done() and starting.exception() is None:
                await asyncio.wait({stopping, crashing}, return_when=asyncio.FIRST_COMPLETED)
            elif starting.done():
                logger.error("%s", starting.exception())
                return 1
            logger.info("shutting down")
            return 1 if self._crashed.is_set() else 0
        finally:
            for waiter in (starting, stopping, crashing):
                waiter.cancel()
            await asyncio.gather(starting, stopping, crashing, return_exceptions=True)
            await self.stop()
