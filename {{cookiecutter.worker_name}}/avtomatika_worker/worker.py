"""The `Worker`: handler registration, the start and stop sequences of the runtime parts, and `run()`.

Start: adopt what a previous process with this worker id handed over (handover.py), keep the id out of
dispatch while a poll that process abandoned may still be open, register, heartbeat, send spooled
results, run interrupted tasks again, then poll. Stop: report `draining` (the orchestrator stops choosing
this worker), abandon the poll in flight, let running tasks finish until WORKER_SHUTDOWN_TIMEOUT, hand back
the ones still running, deliver results, leave the hand-over files; all within the timeout + 2 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Iterable
from types import TracebackType
from typing import Any, Self, TypeVar

import aiohttp
import redis.asyncio as aioredis

from ._logging import configure_logging
from .cancellation import Cancellations
from .config import WorkerConfig, load_env_file
from .errors import ConfigError, OrchestratorRejectedError, RegistrationError
from .executor import Handler, RegisteredHandler
from .handover import Handover
from .heartbeat import Heartbeater
from .liveness import LivenessFile
from .peers import PeerView, idle_peers
from .poller import Poller
from .ratelimit import RESULT, RateBudget
from .results import ResultSender, ResultSpool
from .retry import Backoff, Sleep, retrying
from .runner import TaskRunner
from .stalls import ReplyWatch
from .stopping import TAIL, Stopping
from .tasks import refusal
from .transport import OrchestratorClient
from .typing import DRAINING, IDLE

logger = logging.getLogger(__name__)

H = TypeVar("H", bound=Handler)


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
    ) -> None:
        self.worker_type = worker_type
        self._config = config
        self._session = session
        self._sleep = sleep
        self._backoff = backoff or Backoff(sleep=sleep)
        self._cancellations = Cancellations(lambda: self.config, redis_client, sleep=sleep)
        self._handlers: dict[str, RegisteredHandler] = {}
        self._client: OrchestratorClient | None = None
        self._results: ResultSender | None = None
        self._heartbeater: Heartbeater | None = None
        self._runner: TaskRunner | None = None
        self._poller: Poller | None = None
        self._liveness: LivenessFile | None = None
        self._handover: Handover | None = None
        self._loops: dict[str, asyncio.Task[None]] = {}
        self._draining = False
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

    # ---- start -----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Take over from a predecessor, register, heartbeat, then poll (`.env` loading is run()'s)."""
        if self._client is not None:
            raise RuntimeError("the worker is already running")
        config = self.config
        if not self._handlers:
            logger.warning("no task handlers registered: this worker will never receive tasks")
        self._crashed.clear()
        self._force_stop.clear()
        self._draining = False
        handover = self._handover = Handover(config.spool_path, config.worker_id)
        liveness = LivenessFile(config.health_path, config.worker_id, 2 * config.heartbeat_interval)
        watch = ReplyWatch(on_stall=liveness.trouble)
        liveness.details = lambda: {"poll_hold": watch.poll_hold}
        predecessor_poll = handover.predecessor_poll(
            config.health_path, config.heartbeat_interval, watch.poll_hold
        )
        self._liveness = liveness
        budget = RateBudget(config.rate_limits, sleep=self._sleep)
        budget.restore(handover.take_rate_limits(), time.time())
        client = self._client = OrchestratorClient(
            config, self._session, liveness.observe, budget=budget, watch=watch
        )
        results = self._results = ResultSender(
            ResultSpool(config.spool_path),
            client.send_result,
            self._backoff,
            lambda: budget.delay(RESULT) == 0,
        )
        results.start()
        heartbeater = self._heartbeater = Heartbeater(
            client, self._heartbeat_message, self._register, self._cancellations.cancel_jobs,
            config.heartbeat_interval,
        )  # fmt: skip
        slots = asyncio.Semaphore(config.max_concurrent_tasks)
        runner = self._runner = TaskRunner(
            config, self._handlers, client, self._cancellations, results, slots
        )
        self._watch("resume", self._resume(handover.take_tasks(), slots))
        logger.info(
            "worker %s (%s) connecting to %s with skills %s",
            config.worker_id,
            self.worker_type,
            config.orchestrator_url,
            ", ".join(self._handlers) or "(none)",
        )
        if predecessor_poll is not None:
            await self._wait_out_predecessor(predecessor_poll)
        await self._register()
        await heartbeater.beat()
        results.replay()  # after registering: a handed-back failure must find this worker idle
        await self._cancellations.start(client.ws_connect if config.enable_websockets else None)
        poller = self._poller = Poller(
            client, slots, runner.spawn, self._backoff, heartbeater.wake,
            secret=config.orchestrator_secret_key, refuse=runner.refuse, on_task=heartbeater.nudge,
        )  # fmt: skip
        self._watch("heartbeat", heartbeater.run())
        self._watch("poll", poller.run())

    async def _wait_out_predecessor(self, until: float) -> None:
        """A previous process's abandoned poll may be open until `until`: with other idle workers, keep
        this worker id out of dispatch until then; alone, take tasks at once (waiting would get every
        job created meanwhile quarantined, whereas the one the dead poll may take is re-dispatched by
        the orchestrator after its timeout)."""
        wait = until - time.time()
        view = await self._peek(self.skills)
        if view is None or not set(self.skills) <= view.skills:
            logger.warning(
                "a previous process with worker id %s may still have a task poll open on the orchestrator "
                "for %.0f s; a task handed to it before then is re-dispatched after the job's timeout",
                self.config.worker_id,
                wait,
            )
            return
        self._draining = True
        if self._heartbeater is not None:
            await self._heartbeater.beat(urgent=True)  # the record may still say `idle`
        logger.warning(
            "a previous process with worker id %s may still have a task poll open on the orchestrator for "
            "%.0f s; other idle workers take the tasks until then, so that none is handed to it and lost",
            self.config.worker_id,
            wait,
        )
        await self._sleep(wait)
        self._draining = False

    async def _resume(self, tasks: list[dict[str, Any]], slots: asyncio.Semaphore) -> None:
        """Run again the tasks a previous stop interrupted (they are still assigned to this worker id)."""
        if tasks:
            logger.info("running %d task(s) interrupted by the previous stop again", len(tasks))
        for task in tasks:
            deadline = task.get("deadline")
            if refusal(task, None) is not None or (
                isinstance(deadline, int | float) and deadline < time.time()
            ):
                logger.warning(
                    "not running the interrupted task %s again: malformed or past its deadline",
                    task.get("task_id"),
                )
                continue
            await slots.acquire()
            if self._runner is None:
                slots.release()
                return
            self._runner.spawn(task)

    def _watch(self, name: str, loop: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(loop, name=f"avtomatika-{name}")
        task.add_done_callback(self._on_loop_done)
        self._loops[name] = task
        return task

    def _on_loop_done(self, loop: asyncio.Task[None]) -> None:
        if not loop.cancelled() and loop.exception() is not None:
            logger.error("worker loop %s crashed", loop.get_name(), exc_info=loop.exception())
            self._crashed.set()

    # ---- stop ------------------------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop taking tasks, drain running ones (WORKER_SHUTDOWN_TIMEOUT), hand back the rest, disconnect."""
        if self._client is None:  # never started (or start failed before connecting)
            await self._cancellations.stop()
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.shutdown_timeout
        await self._cancel_loop("resume")
        if self._runner is not None and self._poller is not None and self._heartbeater is not None:
            assert self._results is not None and self._handover is not None
            await Stopping(
                self.config.worker_id, self.skills, self._heartbeater, self._poller, self._loops.pop("poll", None),
                self._runner, self._results, self._handover, self._peek, self._client.watch.poll_hold,
                self._set_draining, self._force_stop,
            ).run(deadline)  # fmt: skip
        await self._cancel_loop("poll")
        if self._results is not None:
            if not self._force_stop.is_set():
                remaining = max(0.0, deadline + TAIL + 0.2 - loop.time())
                if not await self._results.flush(remaining):
                    logger.warning(
                        "the orchestrator did not take every result in time; they stay in the spool"
                    )
            await self._results.stop()
        await self._cancel_loop("heartbeat")
        await self._cancellations.stop()
        self._leave_rate_limits()
        await self._client.close()
        if self._liveness is not None:
            self._liveness.remove()
        self._client = self._results = self._heartbeater = self._runner = self._poller = None
        self._liveness = None

    def _set_draining(self, draining: bool) -> None:
        self._draining = draining

    async def _peek(self, skills: Iterable[str]) -> PeerView | None:
        return await idle_peers(self._cancellations.redis_client(), self.config.worker_id, skills)

    def _leave_rate_limits(self) -> None:
        if self._client is not None and self._handover is not None:
            self._handover.save_rate_limits(self._client.budget.snapshot(time.time()))

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

    # ---- orchestrator calls ----------------------------------------------------------------------

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

    def _heartbeat_message(self) -> dict[str, Any]:
        config = self.config
        message: dict[str, Any] = {
            "worker_id": config.worker_id,
            "status": DRAINING if self._draining else IDLE,
            # The orchestrator matches these against job ids only (WorkerService.update_worker_heartbeat).
            "current_tasks": self._runner.running_jobs() if self._runner is not None else [],
            "available_skills": list(self._handlers),
        }
        if config.enable_websockets:
            message["capabilities"] = {"websockets": True}
        return message

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
