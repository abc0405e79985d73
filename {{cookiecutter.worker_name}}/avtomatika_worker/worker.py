"""The `Worker`: handler registration, the lifecycle of the runtime parts, and the process entry point."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self, TypeVar

import aiohttp
import redis.asyncio as aioredis

from ._logging import configure_logging
from .cancellation import Cancellations
from .config import WorkerConfig, load_env_file
from .errors import ConfigError, OrchestratorRejectedError, RegistrationError
from .executor import Handler, RegisteredHandler
from .heartbeat import BUSY_AFTER, Heartbeater, StatusPolicy
from .liveness import LivenessFile
from .poller import Poller
from .results import ResultSender, ResultSpool
from .retry import Backoff, Sleep, retrying
from .runner import TaskRunner
from .transport import OrchestratorClient
from .typing import IDLE

logger = logging.getLogger(__name__)

H = TypeVar("H", bound=Handler)

# After the drain, undelivered results get this long to reach the orchestrator; the rest stay spooled.
RESULT_FLUSH_TIMEOUT = 10.0


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
        backoff: Backoff | None = None,
        result_flush_timeout: float = RESULT_FLUSH_TIMEOUT,
        busy_after: float = BUSY_AFTER,
    ) -> None:
        self.worker_type = worker_type
        self._config = config
        self._session = session
        self._backoff = backoff or Backoff(sleep=sleep)
        self._flush_timeout = result_flush_timeout
        self._busy_after = busy_after
        self._cancellations = Cancellations(lambda: self.config, redis_client, sleep=sleep)
        self._handlers: dict[str, RegisteredHandler] = {}
        self._client: OrchestratorClient | None = None
        self._results: ResultSender | None = None
        self._heartbeater: Heartbeater | None = None
        self._runner: TaskRunner | None = None
        self._liveness: LivenessFile | None = None
        self._status_policy: StatusPolicy | None = None
        self._loops: dict[str, asyncio.Task[None]] = {}
        self._crashed = asyncio.Event()
        self._force_stop = asyncio.Event()

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
            raise ValueError(f"task name must be a non-empty string, got {name!r}")

        def decorator(func: H) -> H:
            if name in self._handlers:
                raise ValueError(f"a handler for task {name!r} is already registered")
            self._handlers[name] = RegisteredHandler.wrap(name, func)
            return func

        return decorator

    def skill(self, name: str) -> Callable[[H], H]:
        """Alias of `task(name)` (the name used by newer orchestrator documentation)."""
        return self.task(name)

    async def check_for_cancellation(self, task_id: str) -> bool:
        """True once the orchestrator has cancelled `task_id` (Redis flag, WebSocket, heartbeat reply)."""
        return await self._cancellations.check(task_id)

    # ---- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Replay spooled results, register, heartbeat, then poll (no `.env` loading: that is run()'s)."""
        if self._client is not None:
            raise RuntimeError("the worker is already running")
        config = self.config
        if not self._handlers:
            logger.warning("no task handlers registered: this worker will never receive tasks")
        self._crashed.clear()
        self._force_stop.clear()
        self._status_policy = StatusPolicy(
            config.max_concurrent_tasks, self._busy_after, self._status_changed
        )
        self._liveness = LivenessFile(config.health_path, config.worker_id, 2 * config.heartbeat_interval)
        client = self._client = OrchestratorClient(config, self._session, self._liveness.observe)
        self._results = ResultSender(ResultSpool(config.spool_path), client.send_result, self._backoff)
        self._results.replay()
        self._results.start()
        logger.info(
            "worker %s (%s) connecting to %s with skills %s",
            config.worker_id,
            self.worker_type,
            config.orchestrator_url,
            ", ".join(self._handlers) or "(none)",
        )
        await self._register()
        heartbeater = self._heartbeater = Heartbeater(
            client, self._heartbeat_message, self._register, self._cancellations.cancel_jobs,
            config.heartbeat_interval,
        )  # fmt: skip
        await heartbeater.beat()
        await self._cancellations.start(client.ws_connect if config.enable_websockets else None)
        slots = asyncio.Semaphore(config.max_concurrent_tasks)
        self._runner = TaskRunner(
            config, self._handlers, client, self._cancellations, self._results, slots, self._running_changed
        )
        poller = Poller(client, slots, self._runner.spawn, self._backoff, heartbeater.wake)
        self._watch("heartbeat", heartbeater.run())
        self._watch("poll", poller.run())

    def _watch(self, name: str, loop: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(loop, name=f"avtomatika-{name}")
        task.add_done_callback(self._on_loop_done)
        self._loops[name] = task

    async def stop(self) -> None:
        """Stop polling, drain running tasks (WORKER_SHUTDOWN_TIMEOUT), flush results, disconnect."""
        await self._cancel_loop("poll")
        if self._status_policy is not None:
            self._status_policy.draining = True
            self._status_changed()
        if self._runner is not None:
            await self._runner.drain(self.config.shutdown_timeout, self._force_stop)
        if self._results is not None:
            if not self._force_stop.is_set() and not await self._results.flush(self._flush_timeout):
                logger.warning("the orchestrator did not take every result in time")
            await self._results.stop()
        await self._cancel_loop("heartbeat")
        await self._cancellations.stop()
        if self._client is not None:
            await self._client.close()
        if self._liveness is not None:
            self._liveness.remove()
        if self._status_policy is not None:
            self._status_policy.close()
        self._client = self._results = self._heartbeater = self._runner = self._liveness = None
        self._status_policy = None

    async def _cancel_loop(self, name: str) -> None:
        loop = self._loops.pop(name, None)
        if loop is not None:
            loop.cancel()
            await asyncio.gather(loop, return_exceptions=True)

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
            logger.error("worker loop %s crashed", loop.get_name(), exc_info=loop.exception())
            self._crashed.set()

    # ---- orchestrator calls ------------------------------------------------------------------------

    async def _register(self) -> None:
        client = self._client
        if client is None:
            raise RuntimeError("the worker is not started")
        message = {
            "worker_id": self.config.worker_id,
            "worker_type": self.worker_type,
            "supported_skills": [{"name": name, "type": name} for name in self._handlers],
            "available_skills": list(self._handlers),
        }
        try:
            reply = await retrying(lambda: client.register(message), "registration", self._backoff)
        except OrchestratorRejectedError as exc:
            hint = " (check WORKER_TOKEN and WORKER_ID)" if exc.status == 403 else ""
            raise RegistrationError(f"the orchestrator refused registration: {exc}{hint}") from exc
        if isinstance(reply, dict) and reply.get("warning"):
            logger.warning("orchestrator: %s", reply["warning"])
        logger.info("registered as %s", self.config.worker_id)

    def _status(self) -> str:
        return self._status_policy.status() if self._status_policy is not None else IDLE

    def _running_changed(self) -> None:
        if self._status_policy is not None and self._runner is not None:
            self._status_policy.update(self._runner.running_count)

    def _status_changed(self) -> None:
        if self._heartbeater is not None:
            self._heartbeater.status_changed(self._status())

    def _heartbeat_message(self) -> dict[str, Any]:
        config = self.config
        message: dict[str, Any] = {
            "worker_id": config.worker_id,
            "status": self._status(),
            # The orchestrator matches these against job ids only (protocol.md section 5).
            "current_tasks": self._runner.running_jobs() if self._runner is not None else [],
            "available_skills": list(self._handlers),
        }
        if config.enable_websockets:
            message["capabilities"] = {"websockets": True}
        return message

    # ---- process entry point -----------------------------------------------------------------------

    def run(self) -> None:
        """Load `.env` and the environment, configure logging, run until SIGINT/SIGTERM, then exit."""
        load_env_file()
        try:
            config = self.config
        except ConfigError as exc:
            print(f"configuration error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        secrets = (config.worker_token, config.orchestrator_secret_key or "")
        configure_logging(config.log_level, config.log_format, secrets)
        code = asyncio.run(self._serve())
        if code:
            raise SystemExit(code)

    def _on_signal(self, stop_requested: asyncio.Event) -> None:
        if not stop_requested.is_set():
            logger.info(
                "stop requested: no new tasks; running tasks get up to %g s (signal again to stop now)",
                self.config.shutdown_timeout,
            )
            stop_requested.set()
            return
        logger.warning("second stop signal: stopping now; undelivered results stay in the spool")
        self._force_stop.set()

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
