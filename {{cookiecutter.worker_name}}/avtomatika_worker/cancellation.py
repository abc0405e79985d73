"""Task cancellation from every channel the orchestrator uses: Redis flags, WebSocket commands, heartbeats.

The orchestrator sets `orchestrator:task_cancel:{task_id}` in Redis, optionally pushes a WebSocket
`cancel_task` command, and lists cancelled *job* ids in heartbeat replies (avtomatika engine.py cancel_job,
services/worker_service.py update_worker_heartbeat).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Iterable, Iterator
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from . import observe
from .config import WorkerConfig
from .retry import Backoff, Sleep, Uniform
from .transport import WsConnect
from .websocket import MAX_DELAY, CommandChannel

logger = logging.getLogger(__name__)

CANCEL_KEY_PREFIX = "orchestrator:task_cancel:"
REDIS_TIMEOUT = 2.0
# Cancellations that arrive before their task is tracked (or after it ended) are kept this long.
RECENT_MAX = 1024
RECENT_TTL = 600.0


def redact_url(url: str) -> str:
    """Hide credentials in a URL before logging it."""
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    port = f":{parts.port}" if parts.port is not None else ""
    return parts._replace(netloc=f"***@{parts.hostname}{port}").geturl()


class RecentIds:
    """A bounded, expiring map of id -> "interrupt the handler" for cancellations of untracked ids."""

    def __init__(self, clock: Callable[[], float], maxlen: int = RECENT_MAX, ttl: float = RECENT_TTL) -> None:
        self._clock = clock
        self._maxlen = maxlen
        self._ttl = ttl
        self._items: OrderedDict[str, tuple[float, bool]] = OrderedDict()

    def remember(self, key: str, interrupt: bool) -> None:
        """Record `key` (an earlier `interrupt=True` for it is kept)."""
        previous = self._items.pop(key, None)
        self._items[key] = (self._clock(), interrupt or (previous is not None and previous[1]))
        self._prune()

    def lookup(self, key: str) -> bool | None:
        """None if `key` is unknown or expired, else whether its handler should be interrupted."""
        self._prune()
        entry = self._items.get(key)
        return None if entry is None else entry[1]

    def __len__(self) -> int:
        return len(self._items)

    def _prune(self) -> None:
        while len(self._items) > self._maxlen:
            self._items.popitem(last=False)
        horizon = self._clock() - self._ttl
        while self._items and next(iter(self._items.values()))[0] <= horizon:
            self._items.popitem(last=False)


class _Tracked(NamedTuple):
    job_id: str
    run: asyncio.Task[Any]


class Cancellations:
    """Knows which running tasks the orchestrator cancelled; interrupts them when it says so outright."""

    def __init__(
        self,
        config_getter: Callable[[], WorkerConfig],
        redis_client: aioredis.Redis | None = None,
        *,
        sleep: Sleep = asyncio.sleep,
        uniform: Uniform = random.uniform,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config_getter  # called lazily: the config may not be loaded yet
        self._client = redis_client
        self._owns_client = redis_client is None
        self._sleep = sleep
        self._uniform = uniform
        self._clock = clock
        self._tracked: dict[str, _Tracked] = {}
        self._cancelled: set[str] = set()  # tracked task ids some channel reported
        self._interrupted: set[str] = set()  # tracked task ids whose asyncio task was cancelled
        self._recent_tasks = RecentIds(clock)
        self._recent_jobs = RecentIds(clock)
        self._direct: dict[str, tuple[float, bool]] = {}  # untracked task id -> (read at, flagged)
        self._loops: list[asyncio.Task[None]] = []
        self._redis_down = False
        self._offline = False  # avtomatika_worker.testing: no Redis, no configuration needed

    # ---- lifecycle -------------------------------------------------------------------------------

    async def start(self, ws_connect: WsConnect | None) -> None:
        """Start the batched Redis reads and, if enabled and `ws_connect` is given, the WebSocket channel."""
        if self._loops:
            raise RuntimeError("cancellation channels are already running")
        self._spawn(self._redis_loop(), "avtomatika-cancel-redis")
        if ws_connect is not None and self._config().enable_websockets:
            backoff = Backoff(cap=MAX_DELAY, uniform=self._uniform, sleep=self._sleep)
            channel = CommandChannel(ws_connect, self._on_command, backoff, clock=self._clock)
            self._spawn(channel.run(), "avtomatika-cancel-websocket")

    async def stop(self) -> None:
        """Stop the background channels and close the Redis client if this object created it."""
        loops, self._loops = self._loops, []
        for loop in loops:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        loop = asyncio.create_task(coro, name=name)
        loop.add_done_callback(self._on_loop_done)
        self._loops.append(loop)

    @staticmethod
    def _on_loop_done(loop: asyncio.Task[None]) -> None:
        if not loop.cancelled() and loop.exception() is not None:
            logger.error("cancellation channel %s crashed", loop.get_name(), exc_info=loop.exception())

    # ---- tasks -----------------------------------------------------------------------------------

    def track(self, task_id: str, job_id: str, run: asyncio.Task[Any]) -> None:
        """Watch a running handler; a cancellation that arrived earlier applies now."""
        self._tracked[task_id] = _Tracked(job_id, run)
        self._direct.pop(task_id, None)
        early = self._recent_tasks.lookup(task_id)
        early_job = self._recent_jobs.lookup(job_id)
        if early is not None or early_job is not None:
            self._cancel(task_id, "before it started", interrupt=bool(early) or bool(early_job))

    def untrack(self, task_id: str) -> None:
        """Forget a finished handler (`is_cancelled` keeps answering for it for a while)."""
        self._tracked.pop(task_id, None)
        self._interrupted.discard(task_id)
        if task_id in self._cancelled:
            self._cancelled.discard(task_id)
            self._recent_tasks.remember(task_id, interrupt=False)

    def is_cancelled(self, task_id: str) -> bool:
        """True once any channel has reported `task_id` cancelled."""
        return task_id in self._cancelled or self._recent_tasks.lookup(task_id) is not None

    def cancel_jobs(self, job_ids: Iterable[str]) -> None:
        """Cancel every tracked task of these jobs (heartbeat `cancel_task_ids` are job ids)."""
        for job_id in job_ids:
            if not isinstance(job_id, str) or not job_id:
                logger.warning("ignoring cancel_task_ids entry %r: expected a job id string", job_id)
                continue
            self._recent_jobs.remember(job_id, interrupt=True)
            for task_id, entry in list(self._tracked.items()):
                if entry.job_id == job_id:
                    self._cancel(task_id, "heartbeat reply", interrupt=True)

    async def check(self, task_id: str) -> bool:
        """Whether `task_id` is cancelled; at most one Redis read per interval, False if Redis is down."""
        if self.is_cancelled(task_id):
            return True
        if self._offline or (task_id in self._tracked and self._batching()):
            return False  # offline, or the batch loop reads this task's flag
        now = self._clock()
        cached = self._direct.get(task_id)
        if cached is not None and now - cached[0] < self._interval():
            return cached[1]
        self._prune_direct(now)
        self._direct[task_id] = (now, False)  # concurrent callers reuse this instead of reading again
        flags = await self._read_flags([task_id])
        flagged = bool(flags and flags[0])
        self._direct[task_id] = (now, flagged)
        if flagged:
            self._cancel(task_id, "Redis flag", interrupt=False)
        return flagged

    def report(self, task_id: str, source: str, *, interrupt: bool) -> None:
        """Record that `task_id` was cancelled; `interrupt` also cancels its running handler."""
        self._cancel(task_id, source, interrupt=interrupt)

    @contextlib.contextmanager
    def offline(self) -> Iterator[None]:
        """Read no Redis flag while inside: only `report` cancels (avtomatika_worker.testing)."""
        previous, self._offline = self._offline, True
        try:
            yield
        finally:
            self._offline = previous

    def _cancel(self, task_id: str, source: str, *, interrupt: bool) -> None:
        entry = self._tracked.get(task_id)
        if entry is None:
            known = self._recent_tasks.lookup(task_id) is not None
            self._recent_tasks.remember(task_id, interrupt)
            if known:  # e.g. a Redis read in flight when the WebSocket command ended the task
                return
            logger.info(
                "the orchestrator cancelled task %s (%s), which is not running here (yet or any more)",
                task_id,
                source,
            )
            return
        if task_id not in self._cancelled:
            self._cancelled.add(task_id)
            observe.get().on_cancel(source)
            logger.info("the orchestrator cancelled task %s of job %s (%s)", task_id, entry.job_id, source)
        if interrupt and task_id not in self._interrupted and not entry.run.done():
            # Once only: a second cancel() would interrupt the handler's own clean-up.
            self._interrupted.add(task_id)
            entry.run.cancel()

    def _on_command(self, command: dict[str, Any]) -> None:
        name = command.get("command")
        if name != "cancel_task":
            logger.debug("ignoring unknown WebSocket command %r", name)
            return
        task_id = command.get("task_id")
        if not isinstance(task_id, str) or not task_id:
            logger.warning("ignoring a cancel_task command without a task_id: %r", command)
            return
        self._cancel(task_id, "WebSocket command", interrupt=True)

    # ---- Redis -----------------------------------------------------------------------------------

    def _interval(self) -> float:
        return self._config().cancel_check_interval

    def _batching(self) -> bool:
        return bool(self._loops) and not self._loops[0].done()

    def _prune_direct(self, now: float) -> None:
        if len(self._direct) >= RECENT_MAX:
            horizon = now - self._interval()
            self._direct = {key: value for key, value in self._direct.items() if value[0] > horizon}
            if len(self._direct) >= RECENT_MAX:
                self._direct.clear()

    async def _redis_loop(self) -> None:
        while True:
            await self._sleep(self._interval())
            pending = [task_id for task_id in self._tracked if task_id not in self._cancelled]
            if not pending:
                continue
            flags = await self._read_flags(pending)
            for task_id, flagged in zip(pending, flags or (), strict=False):
                if flagged and not self.is_cancelled(task_id):
                    self._cancel(task_id, "Redis flag", interrupt=False)

    async def _read_flags(self, task_ids: list[str]) -> list[bool] | None:
        """One MGET for all ids (one round trip); None while Redis is unreachable."""
        try:
            values = await self._redis().mget([CANCEL_KEY_PREFIX + task_id for task_id in task_ids])
        except (RedisError, OSError) as exc:
            if not self._redis_down:
                # One warning per outage: handlers may check many times a second.
                logger.warning(
                    "cannot reach Redis at %s to check for cancellation (%s); assuming not cancelled "
                    "until it is back",
                    redact_url(self._config().redis_url),
                    exc,
                )
                self._redis_down = True
            return None
        if self._redis_down:
            logger.info("Redis is reachable again; cancellation checks resumed")
            self._redis_down = False
        return [value is not None for value in values]

    def redis_client(self) -> aioredis.Redis:
        """The Redis client shared with the cancel-flag reads (the orchestrator's Redis)."""
        return self._redis()

    def _redis(self) -> aioredis.Redis:
        if self._client is None:
            self._client = aioredis.Redis.from_url(
                self._config().redis_url,
                socket_connect_timeout=REDIS_TIMEOUT,
                socket_timeout=REDIS_TIMEOUT,
                # One attempt per read: the next interval is the retry.
                retry=Retry(NoBackoff(), 0),
            )
        return self._client
