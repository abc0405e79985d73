"""The `Worker`: handler registration, the lifecycle of one runtime (runtime.py), and `run()`."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Generator, Mapping, Sequence
from dataclasses import replace
from types import SimpleNamespace, TracebackType
from typing import Any, Literal, Self, TypeVar

from ._logging import configure_logging
from .admission import Admission, CapacityChecker, checked_capacity_checker, checked_limits
from .blueprints import SkillBlueprint, load_skills_dir
from .cancellation import Cancellations
from .config import WorkerConfig, load_env_file
from .errors import ConfigError, StartupError
from .executor import Middleware
from .handlers import Handler, RegisteredHandler, Skill
from .hot_skills import HotSkills
from .runtime import Runtime
from .wiring import Wiring

logger = logging.getLogger(__name__)

H = TypeVar("H", bound=Handler)
OFFICIAL_HEALTH_PORT = 8083  # the official SDK's WORKER_PORT default, for run_with_health_check()
Hook = Callable[[], Awaitable[None]]


def _checked_hook(hook: Hook, kind: str) -> Hook:
    if not inspect.iscoroutinefunction(hook):
        raise TypeError(
            f"{kind} hook {getattr(hook, '__qualname__', hook)!r} must be an `async def` taking no arguments"
        )
    return hook


def _module_version(func: Handler) -> str | None:
    version = getattr(sys.modules.get(getattr(func, "__module__", "") or ""), "__version__", None)
    return version if isinstance(version, str) and version.strip() else None


def _checked_dependencies(
    dependencies: Mapping[str, Sequence[str]] | None,
) -> Mapping[str, Sequence[str]] | None:
    for skill, items in (dependencies or {}).items():
        if isinstance(items, str) or not all(isinstance(i, str) and i for i in items):
            raise TypeError(
                f"skill_dependencies[{skill!r}]={items!r} must be a list of item names, "
                'e.g. skill_dependencies={"summarise": ["llama-3-8b"]}'
            )
    return dependencies


class CancellationCheck:
    """The answer of `check_for_cancellation`: `await` it in async code, or use it as a bool in a thread."""

    def __init__(
        self, check: Callable[[], Coroutine[Any, Any, bool]], loop: asyncio.AbstractEventLoop | None
    ) -> None:
        self._check = check
        self._loop = loop

    def __await__(self) -> Generator[Any, None, bool]:
        return self._check().__await__()

    def __bool__(self) -> bool:
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # a sync handler's thread: ask the worker's loop and wait for the answer
            if self._loop is None:
                raise RuntimeError("check_for_cancellation() needs a started worker") from None
            return asyncio.run_coroutine_threadsafe(self._check(), self._loop).result()
        raise TypeError(
            "check_for_cancellation() must be awaited in async code: "
            "`if await worker.check_for_cancellation(task_id):`"
        )


class Worker:
    """An Avtomatika worker: register handlers with `@worker.task(name)`, then call `worker.run()`."""

    def __init__(
        self,
        worker_type: str,
        *,
        config: WorkerConfig | None = None,
        wiring: Wiring | None = None,
        skill_dependencies: Mapping[str, Sequence[str]] | None = None,
        max_concurrent_tasks: int | None = None,
        skill_type_limits: Mapping[str, int] | None = None,
        capacity_checker: CapacityChecker | None = None,
        skills_dir: str | None = None,
    ) -> None:
        self.worker_type = worker_type
        self._skills_dir = skills_dir  # the official SDK's keyword: wins over WORKER_SKILLS_DIR
        if max_concurrent_tasks is not None and (
            isinstance(max_concurrent_tasks, bool)
            or not isinstance(max_concurrent_tasks, int)
            or max_concurrent_tasks < 1
        ):
            raise ValueError(
                f"max_concurrent_tasks={max_concurrent_tasks!r} must be a whole number of at least 1, e.g. 4"
            )
        self._default_health_port: int | None = None  # run_with_health_check()
        self._max_concurrent_tasks = (
            max_concurrent_tasks  # the official SDK's keyword: wins over the environment
        )
        self._config = config
        self._wiring = wiring or Wiring()
        self._cancellations = Cancellations(lambda: self.config, self._wiring.redis, sleep=self._wiring.sleep)
        self._handlers: dict[str, RegisteredHandler] = {}
        self._runtime: Runtime | None = None
        self._crashed = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._startup: list[Hook] = []
        self._shutdown: list[Hook] = []
        self._started_hooks = 0  # on_shutdown hooks to run at stop (those registered when startup ran)
        self._middlewares: list[Middleware] = []
        self._type_limits = checked_limits(skill_type_limits)
        self._capacity_checker = checked_capacity_checker(capacity_checker)
        self._skills_loaded = False  # WORKER_SKILLS_DIR, once per Worker
        self.hot_skills = HotSkills(_checked_dependencies(skill_dependencies))
        """Skills whose model or cache is loaded (or, with `skill_dependencies`, whose items all are):
        the dispatcher prefers this worker for them."""
        self.state = SimpleNamespace()
        """What handlers share (a pool, a client, a model): set in `on_startup`, read as `state` in handlers."""

    @property
    def config(self) -> WorkerConfig:
        """The active configuration (read from the environment on first use)."""
        if self._config is None:
            self._config = WorkerConfig.from_env(self.worker_type)
            if self._max_concurrent_tasks is not None:
                self._config = replace(self._config, max_concurrent_tasks=self._max_concurrent_tasks)
            if self._skills_dir is not None:
                self._config = replace(self._config, skills_dir=self._skills_dir)
            if self._config.health_port is None and self._default_health_port is not None:
                self._config = replace(self._config, health_port=self._default_health_port)
        return self._config

    @property
    def skills(self) -> list[str]:
        """Names of the registered task handlers."""
        return list(self._handlers)

    def task(
        self,
        name: str | None = None,
        *,
        version: str | None = None,
        type: str | None = None,  # noqa: A002 - the protocol's (and the official SDK's) name
        description: str | None = None,
        input_schema: dict[str, Any] | Literal[False] | None = None,
        output_schema: dict[str, Any] | Literal[False] | None = None,
        output_statuses: Sequence[str] | None = None,
        events_schema: dict[str, dict[str, Any]] | None = None,
        schema_dialect: str | None = None,
        properties: dict[str, Any] | None = None,
    ) -> Callable[[H], H]:
        """Register a handler (`async def` or `def`) for tasks of type `name` (default: the function's
        name); the keywords describe the skill to the orchestrator (the description defaults to the
        docstring, the version to the handler module's `__version__`, as in the official SDK)."""
        if callable(name):
            raise TypeError('write @worker.task() or @worker.task("name"), with the parentheses')
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"task name must be a non-empty string, got {name!r}")
        statuses = None if output_statuses is None else tuple(output_statuses)

        def decorator(func: H) -> H:
            task_name = name if isinstance(name, str) else str(getattr(func, "__name__", ""))
            if task_name in self._handlers:
                raise ValueError(f"a handler for task {task_name!r} is already registered")
            skill = Skill(
                task_name, type, version or _module_version(func), description, input_schema, output_schema,
                statuses, events_schema, schema_dialect, properties,
            )  # fmt: skip
            self._handlers[task_name] = RegisteredHandler.wrap(task_name, func, skill)
            return func

        return decorator

    skill = task
    """Alias of `task` (the name used by newer orchestrator documentation)."""

    def on_startup(self, hook: Hook) -> Hook:
        """Register an `async def hook()` run before the worker registers (open pools, load models)."""
        self._startup.append(_checked_hook(hook, "on_startup"))
        return hook

    def on_shutdown(self, hook: Hook) -> Hook:
        """Register an `async def hook()` run after the worker has stopped (close what on_startup opened)."""
        self._shutdown.append(_checked_hook(hook, "on_shutdown"))
        return hook

    def add_to_hot_skills(self, name: str) -> None:
        """Mark skill `name` as hot (loaded): 1.0b30 then dispatches its tasks here first; thread-safe."""
        self.hot_skills.add(name)

    def remove_from_hot_skills(self, name: str) -> None:
        """Mark skill `name` as no longer hot (unloaded); thread-safe."""
        self.hot_skills.remove(name)

    def include_blueprint(self, blueprint: SkillBlueprint) -> None:
        """Register the handlers of a `SkillBlueprint` (the official SDK's API)."""
        for name, func, keywords in blueprint.skills:
            self.task(name, **keywords)(func)

    def add_middleware(self, middleware: Middleware) -> Middleware:
        """Run `async def middleware(context, call_next)` around every handler (the official SDK's API);
        `context` has task_id, job_id, skill_name, params and handler_kwargs, which it may change."""
        if not inspect.iscoroutinefunction(middleware):
            raise TypeError(
                f"middleware {getattr(middleware, '__qualname__', middleware)!r} must be an "
                "`async def middleware(context, call_next)` that returns `await call_next()`"
            )
        self._middlewares.append(middleware)
        return middleware

    def check_for_cancellation(self, task_id: str) -> CancellationCheck:
        """Whether the orchestrator has cancelled `task_id` (Redis flag, WebSocket, heartbeat reply):
        `await` it in async code; in a sync handler (a thread) use it as a bool."""
        return CancellationCheck(lambda: self._cancellations.check(task_id), self._loop)

    # ---- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect and start taking tasks (runtime.py has the sequence); `.env` loading is run()'s."""
        if self._runtime is not None:
            raise RuntimeError("the worker is already running")
        if not self._handlers:
            logger.warning("no task handlers registered: this worker will never receive tasks")
        self._crashed.clear()
        self._loop = asyncio.get_running_loop()
        if not self._skills_loaded and self.config.skills_path.is_dir():
            load_skills_dir(self, self.config.skills_path)
        self._skills_loaded = True
        await self._run_startup_hooks()
        self._runtime = Runtime(
            self.config,
            self.worker_type,
            self._handlers,
            self._wiring,
            self._cancellations,
            self._crashed.set,
            self.state,
            self.hot_skills,
            middlewares=tuple(self._middlewares),
            admission=Admission(self._type_limits, self._capacity_checker),
        )
        await self._runtime.start()

    async def _run_startup_hooks(self) -> None:
        for hook in self._startup:
            try:
                await hook()
            except Exception as exc:  # like Starlette: no on_shutdown hook runs after a failed start-up
                name = getattr(hook, "__qualname__", repr(hook))
                raise StartupError(
                    f"on_startup hook {name!r} failed: {exc!r}; the worker did not register"
                ) from exc
        self._started_hooks = len(self._shutdown)

    async def _run_shutdown_hooks(self, count: int) -> None:
        for hook in reversed(self._shutdown[:count]):
            try:
                await hook()
            except Exception:
                logger.exception("on_shutdown hook %r failed", getattr(hook, "__qualname__", hook))

    async def stop(self) -> None:
        """Stop taking tasks, let running ones finish (WORKER_SHUTDOWN_TIMEOUT), hand back the rest."""
        runtime = self._runtime
        try:
            if runtime is None:
                await self._cancellations.stop()
                return
            try:
                await runtime.stop()
            finally:
                self._runtime = None
        finally:
            hooks, self._started_hooks = self._started_hooks, 0
            await self._run_shutdown_hooks(hooks)

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
        end_process(asyncio.run(self._serve()))

    def run_with_health_check(self) -> None:
        """The official SDK's name: `run()` serving `GET /health` on WORKER_PORT (8083 when unset)."""
        load_env_file()
        self._default_health_port = OFFICIAL_HEALTH_PORT
        self.run()

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
                return 3 if isinstance(starting.exception(), StartupError) else 1
            logger.info("shutting down")
            return 1 if self._crashed.is_set() else 0
        finally:
            for waiter in (starting, stopping, crashing):
                waiter.cancel()
            await asyncio.gather(starting, stopping, crashing, return_exceptions=True)
            await self.stop()


def end_process(code: int) -> None:
    """Exit with `code` after the worker stopped; once obstore is loaded, without the interpreter's finalisation."""
    if "obstore" not in sys.modules:
        if code:
            raise SystemExit(code)
        return
    # obstore's Rust runtime can abort the finalisation (SIGABRT, exit 134; 3 of 40 processes measured,
    # docs/s3-client.md): everything is stopped and flushed by now, so end here.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
