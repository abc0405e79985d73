"""The `Worker`: handler registration, the lifecycle of one runtime (runtime.py), and `run()`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable
from types import TracebackType
from typing import Self, TypeVar

from ._logging import configure_logging
from .cancellation import Cancellations
from .config import WorkerConfig, load_env_file
from .errors import ConfigError
from .executor import Handler, RegisteredHandler
from .runtime import Runtime
from .wiring import Wiring

logger = logging.getLogger(__name__)

H = TypeVar("H", bound=Handler)


class Worker:
    """An Avtomatika worker: register handlers with `@worker.task(name)`, then call `worker.run()`."""

    def __init__(
        self, worker_type: str, *, config: WorkerConfig | None = None, wiring: Wiring | None = None
    ) -> None:
        self.worker_type = worker_type
        self._config = config
        self._wiring = wiring or Wiring()
        self._cancellations = Cancellations(lambda: self.config, self._wiring.redis, sleep=self._wiring.sleep)
        self._handlers: dict[str, RegisteredHandler] = {}
        self._runtime: Runtime | None = None
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
        """Connect and start taking tasks (runtime.py has the sequence); `.env` loading is run()'s."""
        if self._runtime is not None:
            raise RuntimeError("the worker is already running")
        if not self._handlers:
            logger.warning("no task handlers registered: this worker will never receive tasks")
        self._crashed.clear()
        self._runtime = Runtime(
            self.config,
            self.worker_type,
            self._handlers,
            self._wiring,
            self._cancellations,
            self._crashed.set,
        )
        await self._runtime.start()

    async def stop(self) -> None:
        """Stop taking tasks, let running ones finish (WORKER_SHUTDOWN_TIMEOUT), hand back the rest."""
        runtime = self._runtime
        if runtime is None:
            await self._cancellations.stop()
            return
        try:
            await runtime.stop()
        finally:
            self._runtime = None

    def stop_now(self) -> None:
        """Make a stop in progress (or the next one) skip the waiting: results stay in the spool."""
        if self._runtime is not None:
            self._runtime.force_stop.set()

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

    # ---- process entry point ---------------------------------------------------------------------

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
        self.stop_now()

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
