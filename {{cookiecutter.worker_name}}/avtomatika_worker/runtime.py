"""One started worker: its parts wired together, with one start and one stop sequence.

Start: take over what a previous process with this worker id handed over (handover.py), keep the id out
of dispatch while a poll that process abandoned may still be open (when other workers can take the
jobs), register, heartbeat, send spooled results, run interrupted tasks again, then poll. Stop: the
stop sequence (stopping.py), then deliver results and close everything, in the reverse order of start.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any

from . import observe, tracing
from .admission import Admission
from .cancellation import Cancellations
from .config import WorkerConfig
from .detect import Detected, detect
from .errors import OrchestratorRejectedError, RegistrationError, StartupError
from .executor import Middleware
from .handlers import RegisteredHandler, Skill
from .handover import Handover
from .health_server import HealthServer
from .heartbeat import Heartbeater
from .hot_skills import HotSkills
from .liveness import LivenessFile, max_age
from .metrics import Metrics
from .peers import PeerView, idle_peers
from .poller import Poller
from .ratelimit import RESULT, RateBudget
from .results import ResultSender, ResultSpool
from .retry import retrying
from .runner import TaskRunner
from .stalls import ReplyWatch
from .stopping import TAIL, Stopping
from .tasks import refusal
from .transport import OrchestratorClient
from .typing import DRAINING, IDLE
from .wiring import Wiring

logger = logging.getLogger(__name__)


class Runtime:
    """The parts of one started worker; `start()` once, then `stop()` once."""

    def __init__(
        self,
        config: WorkerConfig,
        worker_type: str,
        handlers: Mapping[str, RegisteredHandler],
        wiring: Wiring,
        cancellations: Cancellations,
        on_crash: Callable[[], None],
        state: Any = None,
        hot_skills: HotSkills | None = None,
        detect_machine: Callable[[], Detected] = detect,
        middlewares: tuple[Middleware, ...] = (),
        admission: Admission | None = None,
    ) -> None:
        self.config = config
        self.hot_skills = hot_skills if hot_skills is not None else HotSkills()
        self._detect_machine = detect_machine
        self._dispatch_fields: dict[str, Any] = {}
        self._worker_type = worker_type
        self._handlers = handlers
        self._wiring = wiring
        self._cancellations = cancellations
        self._on_crash = on_crash
        self._loops: dict[str, asyncio.Task[None]] = {}
        self._draining = False
        self._registered = False  # a stop before the first registration owes the orchestrator no heartbeat
        self._health_server: HealthServer | None = None
        self._metrics_server: HealthServer | None = None
        self.force_stop = asyncio.Event()
        self.handover = Handover(config.spool_path, config.worker_id)
        self.liveness = LivenessFile(config.health_path, config.worker_id, 2 * config.heartbeat_interval)
        watch = ReplyWatch(on_stall=self.liveness.trouble)
        self.liveness.details = lambda: {"poll_hold": watch.poll_hold}
        budget = RateBudget(config.rate_limits, sleep=wiring.sleep)
        self.client = OrchestratorClient(
            config, wiring.session, self.liveness.observe, budget=budget, watch=watch
        )
        self.results = ResultSender(
            ResultSpool(config.spool_path),
            self.client.send_result,
            wiring.backoff,
            lambda: budget.delay(RESULT) == 0,
        )
        self.heartbeater = Heartbeater(
            self.client,
            self._heartbeat_message,
            self.register,
            cancellations.cancel_jobs,
            config.heartbeat_interval,
        )
        self._slots = asyncio.Semaphore(config.max_concurrent_tasks)
        self.runner = TaskRunner(
            config, handlers, self.client, cancellations, self.results, self._slots, state, self.hot_skills,
            middlewares, admission,
        )  # fmt: skip
        self.poller = Poller(
            self.client, self._slots, self.runner.spawn, wiring.backoff, self.heartbeater.wake,
            secret=config.orchestrator_secret_key, refuse=self.runner.refuse, on_task=self.heartbeater.nudge,
            max_polls=config.max_concurrent_tasks,
        )  # fmt: skip

    @property
    def skills(self) -> list[str]:
        """The registered task types."""
        return list(self._handlers)

    # ---- start -----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Take over from a predecessor, register, heartbeat, then poll."""
        config = self.config
        predecessor_poll = self.handover.predecessor_poll(
            config.health_path, config.heartbeat_interval, self.client.watch.poll_hold
        )
        self.client.budget.restore(self.handover.take_rate_limits(), time.time())
        self.results.start()
        detected = await asyncio.to_thread(self._detect_machine)
        self._dispatch_fields = await asyncio.to_thread(config.resources.registration, detected)
        loop = asyncio.get_running_loop()

        def publish_hot_skills() -> None:  # handlers may run in threads
            loop.call_soon_threadsafe(self.heartbeater.nudge)

        self.hot_skills.listen(publish_hot_skills)
        await self._serve_health()
        await self._serve_metrics()
        self._watch("resume", self._resume(self.handover.take_tasks()))
        logger.info(
            "worker %s (%s) connecting to %s with skills %s",
            config.worker_id,
            self._worker_type,
            config.orchestrator_url,
            ", ".join(self._handlers) or "(none)",
        )
        if predecessor_poll is not None:
            await self._wait_out_predecessor(predecessor_poll)
        await self.register()
        await self.heartbeater.beat()
        self.results.replay()  # after registering: a handed-back failure must find this worker idle
        await self._cancellations.start(self.client.ws_connect if config.enable_websockets else None)
        self._watch("heartbeat", self.heartbeater.run())
        self._watch("poll", self.poller.run())

    async def _wait_out_predecessor(self, until: float) -> None:
        """A previous process's abandoned poll may be open until `until`: with other idle workers, keep
        this worker id out of dispatch until then; alone, take tasks at once (waiting would get every
        job created meanwhile quarantined, whereas the one the dead poll may take is re-dispatched by
        the orchestrator after its timeout)."""
        wait = until - time.time()
        view = await self.peek(self.skills)
        if view is None or not set(self.skills) <= view.skills:
            logger.warning(
                "a previous process with worker id %s may still have a task poll open on the orchestrator "
                "for %.0f s; a task handed to it before then is re-dispatched after the job's timeout",
                self.config.worker_id,
                wait,
            )
            return
        self._draining = True
        await self.heartbeater.beat(urgent=True)  # the record may still say `idle`
        logger.warning(
            "a previous process with worker id %s may still have a task poll open on the orchestrator for "
            "%.0f s; other idle workers take the tasks until then, so that none is handed to it and lost",
            self.config.worker_id,
            wait,
        )
        await self._wiring.sleep(wait)
        self._draining = False

    async def _resume(self, tasks: list[dict[str, Any]]) -> None:
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
            await self._slots.acquire()
            self.runner.spawn(task)

    def _watch(self, name: str, loop: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.create_task(loop, name=f"avtomatika-{name}")
        task.add_done_callback(self._loop_done)
        self._loops[name] = task

    def _loop_done(self, loop: asyncio.Task[None]) -> None:
        if not loop.cancelled() and loop.exception() is not None:
            logger.error("worker loop %s crashed", loop.get_name(), exc_info=loop.exception())
            self._on_crash()

    # ---- stop ------------------------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop taking tasks, drain running ones (WORKER_SHUTDOWN_TIMEOUT), hand back the rest, disconnect."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.shutdown_timeout
        await self._cancel_loop("resume")
        await Stopping(
            self.config.worker_id, self.skills, self.heartbeater, self.poller, self._loops.pop("poll", None),
            self.runner, self.results, self.handover, self.peek, self.client.watch.poll_hold,
            self._set_draining, self.force_stop, reported_draining=not self._registered,
        ).run(deadline)  # fmt: skip
        if not self.force_stop.is_set():
            remaining = max(0.0, deadline + TAIL + 0.2 - loop.time())
            if not await self.results.flush(remaining):
                logger.warning("the orchestrator did not take every result in time; they stay in the spool")
        await self.results.stop()
        self.runner.close()
        await self._cancel_loop("heartbeat")
        self.hot_skills.listen(None)
        await self._cancellations.stop()
        self.handover.save_rate_limits(self.client.budget.snapshot(time.time()))
        await self.client.close()
        self.liveness.remove()
        if self._health_server is not None:
            await self._health_server.stop()
        if self._metrics_server is not None:
            await self._metrics_server.stop()
            observe.install(None)
        await asyncio.to_thread(tracing.shutdown)  # flush buffered spans (no-op when tracing is off)

    async def _serve_metrics(self) -> None:
        """Serve GET /metrics and /healthz on WORKER_METRICS_PORT when it is set (metrics.py)."""
        port = self.config.metrics_port
        if port is None:
            return
        metrics = Metrics()
        server = HealthServer(port, self.config.health_path, max_age(self.config), metrics=metrics)
        try:
            await server.start()
        except OSError as exc:
            raise StartupError(
                f"WORKER_METRICS_PORT={port}: cannot serve metrics ({exc}); pick a free port"
            ) from exc
        observe.install(metrics)
        self._metrics_server = server

    async def _serve_health(self) -> None:
        """Serve GET /health on WORKER_PORT when it is set (health_server.py)."""
        port = self.config.health_port
        if port is None:
            return
        server = HealthServer(port, self.config.health_path, max_age(self.config))
        try:
            await server.start()
        except OSError as exc:
            raise StartupError(
                f"WORKER_PORT={port}: cannot serve the health endpoint ({exc}); pick a free port"
            ) from exc
        self._health_server = server
        logger.info("health endpoint: http://0.0.0.0:%d/health", port)

    async def _cancel_loop(self, name: str) -> None:
        loop = self._loops.pop(name, None)
        if loop is not None:
            loop.cancel()
            await asyncio.gather(loop, return_exceptions=True)

    def _set_draining(self, draining: bool) -> None:
        self._draining = draining

    async def peek(self, skills: Iterable[str]) -> PeerView | None:
        """The orchestrator's dispatch index: which of `skills` another idle worker has (peers.py)."""
        return await idle_peers(self._cancellations.redis_client(), self.config.worker_id, skills)

    # ---- orchestrator calls ----------------------------------------------------------------------

    async def register(self) -> None:
        """Register (again), retrying while the orchestrator is unavailable."""
        message = {
            "worker_id": self.config.worker_id,
            "worker_type": self._worker_type,
            "supported_skills": [
                (handler.skill or Skill(name)).published() for name, handler in self._handlers.items()
            ],
            "available_skills": list(self._handlers),
            **self._dispatch_fields,
        }
        client = self.client
        try:
            reply = await retrying(lambda: client.register(message), "registration", self._wiring.backoff)
        except OrchestratorRejectedError as exc:
            hint = " (check WORKER_TOKEN and WORKER_ID)" if exc.status == 403 else ""
            if (mtls := self.config.tls.refusal_hint(exc.error, self.config.worker_id)) is not None:
                hint = f" ({mtls})"
            raise RegistrationError(f"the orchestrator refused registration: {exc}{hint}") from exc
        if isinstance(reply, dict) and reply.get("warning"):
            logger.warning("orchestrator: %s", reply["warning"])
        self._registered = True
        logger.info("registered as %s", self.config.worker_id)

    def _heartbeat_message(self) -> dict[str, Any]:
        config = self.config
        message: dict[str, Any] = {
            "worker_id": config.worker_id,
            "status": DRAINING if self._draining else IDLE,
            # The orchestrator matches these against job ids only (WorkerService.update_worker_heartbeat).
            "current_tasks": self.runner.running_jobs(),
            "available_skills": list(self._handlers),
        }
        hot = self.hot_skills.published(self._handlers)
        if hot is not None:
            message["hot_skills"] = hot
        if config.enable_websockets:
            # A heartbeat's `capabilities` replaces the registered ones: keep what the dispatcher reads.
            registered = self._dispatch_fields.get("capabilities", {})
            kept = {key: registered[key] for key in ("cost_per_skill", "extra") if key in registered}
            message["capabilities"] = {"websockets": True, **kept}
        return message
