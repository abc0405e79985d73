"""Cancellation through Redis flags and heartbeat job ids, against a real redis-server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import Any, TypeVar

import pytest
import redis.asyncio as aioredis

from avtomatika_worker.cancellation import CANCEL_KEY_PREFIX, Cancellations, RecentIds
from avtomatika_worker.config import WorkerConfig

from services import RedisServer, free_port

INTERVAL = 0.05
DATA_COMMANDS = ("mget", "exists", "get", "scan", "keys")


T = TypeVar("T")
SAFETY_DEADLINE = 10.0  # only so that a broken build fails instead of hanging; never reached when passing


async def within(awaitable: Awaitable[T]) -> T:
    """Await `awaitable`, failing the test (TimeoutError) if it never completes."""
    return await asyncio.wait_for(awaitable, SAFETY_DEADLINE)


async def interrupted(run: asyncio.Task[Any]) -> bool:
    """Wait for `run` to end (with the safety deadline); True if it ended by being cancelled."""
    await asyncio.wait({run}, timeout=SAFETY_DEADLINE)
    return run.cancelled()


def make_config(redis_url: str) -> WorkerConfig:
    return WorkerConfig(
        worker_type="inventory-checker",
        orchestrator_url="http://127.0.0.1:9",  # never contacted here
        worker_token="unit-test-token",
        worker_id="cancel-test-worker",
        redis_url=redis_url,
        cancel_check_interval=INTERVAL,
    )


class Ticker:
    """An injected sleep that the test advances one interval at a time."""

    def __init__(self) -> None:
        self._permits: asyncio.Queue[None] = asyncio.Queue()
        self._parked = asyncio.Event()
        self.delays: list[float] = []

    async def sleep(self, delay: float) -> None:
        self.delays.append(delay)
        self._parked.set()
        await self._permits.get()

    async def tick(self) -> None:
        """Let the loop run exactly one iteration and wait until it sleeps again."""
        await within(self._parked.wait())
        self._parked.clear()
        self._permits.put_nowait(None)
        await within(self._parked.wait())


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def command_calls(client: aioredis.Redis) -> dict[str, int]:
    """Server-side counts of the data commands run since the last CONFIG RESETSTAT."""
    stats = await client.info("commandstats")
    return {
        name: int(stats[f"cmdstat_{name}"]["calls"]) for name in DATA_COMMANDS if f"cmdstat_{name}" in stats
    }


async def wait_forever() -> None:
    await asyncio.Event().wait()


@pytest.fixture
async def admin(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
def runs() -> Iterator[list[asyncio.Task[None]]]:
    """Stand-in handler tasks; cancelled at the end of the test."""
    created: list[asyncio.Task[None]] = []
    yield created
    for run in created:
        run.cancel()


def spawn_run(runs: list[asyncio.Task[None]]) -> asyncio.Task[None]:
    run = asyncio.create_task(wait_forever())
    runs.append(run)
    return run


async def test_one_mget_per_interval_reads_the_flags_of_all_tracked_tasks(
    redis_url: str, admin: aioredis.Redis, runs: list[asyncio.Task[None]]
) -> None:
    ticker = Ticker()
    cancellations = Cancellations(lambda: make_config(redis_url), sleep=ticker.sleep)
    for index in range(20):
        cancellations.track(f"task-{index}", f"job-{index}", spawn_run(runs))
    await cancellations.start(None)
    try:
        await ticker.tick()  # the first read also opens the connection
        await admin.config_resetstat()
        for _ in range(3):
            await ticker.tick()
            assert [await cancellations.check(f"task-{index}") for index in range(20)] == [False] * 20
        assert await command_calls(admin) == {"mget": 3}
        assert ticker.delays == [INTERVAL] * len(ticker.delays)

        # Exactly what the orchestrator writes on cancel (avtomatika engine.py cancel_job: SET ... EX 3600).
        await admin.set(CANCEL_KEY_PREFIX + "task-3", "1", ex=3600)
        await ticker.tick()
        assert await cancellations.check("task-3") is True
        assert cancellations.is_cancelled("task-3") is True
        assert await cancellations.check("task-4") is False
        assert not runs[3].done()  # a Redis flag is for the handler to notice, not an interruption
        assert await command_calls(admin) == {"mget": 4}
    finally:
        await cancellations.stop()


async def test_untracked_task_is_read_at_most_once_per_interval(
    redis_url: str, admin: aioredis.Redis
) -> None:
    clock = FakeClock()
    cancellations = Cancellations(lambda: make_config(redis_url), clock=clock)
    try:
        assert await cancellations.check("task-direct") is False  # opens the connection
        await admin.config_resetstat()
        await admin.set(CANCEL_KEY_PREFIX + "task-direct", "1")
        assert await cancellations.check("task-direct") is False  # cached within the interval
        assert await command_calls(admin) == {}
        clock.now += 2 * INTERVAL
        assert await cancellations.check("task-direct") is True
        assert await cancellations.check("task-direct") is True
        assert await command_calls(admin) == {"mget": 1}
    finally:
        await cancellations.stop()


async def test_redis_outage_reads_not_cancelled_warns_once_and_recovers(
    caplog: pytest.LogCaptureFixture, runs: list[asyncio.Task[None]]
) -> None:
    server = RedisServer()  # its own server, to stop it and start it again on the same port
    url = server.url
    server.start()
    ticker = Ticker()
    cancellations = Cancellations(lambda: make_config(url), sleep=ticker.sleep)
    cancellations.track("task-1", "job-1", spawn_run(runs))
    await cancellations.start(None)
    try:
        await ticker.tick()
        server.stop()
        with caplog.at_level(logging.INFO, logger="avtomatika_worker"):
            for _ in range(3):
                await ticker.tick()
                assert await cancellations.check("task-1") is False
            assert await cancellations.check("task-untracked") is False
            warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
            assert len(warnings) == 1, [r.getMessage() for r in warnings]
            assert "cannot reach Redis" in warnings[0].getMessage()

            server.start()
            admin = aioredis.Redis.from_url(url)
            try:
                await admin.set(CANCEL_KEY_PREFIX + "task-1", "1")
            finally:
                await admin.aclose()
            await ticker.tick()
            assert await cancellations.check("task-1") is True
        assert any("reachable again" in r.getMessage() for r in caplog.records)
    finally:
        await cancellations.stop()
        server.stop()


async def test_unreachable_redis_warning_hides_credentials(caplog: pytest.LogCaptureFixture) -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    cancellations = Cancellations(lambda: make_config(url))
    try:
        with caplog.at_level(logging.WARNING, logger="avtomatika_worker"):
            assert await cancellations.check("task-1") is False
    finally:
        await cancellations.stop()
    assert "cannot reach Redis at redis://***@127.0.0.1" in caplog.text
    assert "hunter2" not in caplog.text


async def test_heartbeat_job_ids_interrupt_every_task_of_those_jobs(
    runs: list[asyncio.Task[None]],
) -> None:
    cancellations = Cancellations(lambda: make_config("redis://127.0.0.1:9/0"))
    first, second, other = spawn_run(runs), spawn_run(runs), spawn_run(runs)
    cancellations.track("task-a1", "job-a", first)
    cancellations.track("task-a2", "job-a", second)
    cancellations.track("task-b1", "job-b", other)

    cancellations.cancel_jobs(["job-a"])

    for run in (first, second):
        assert await interrupted(run)
    assert cancellations.is_cancelled("task-a1") and cancellations.is_cancelled("task-a2")
    assert await cancellations.check("task-a1") is True
    assert not cancellations.is_cancelled("task-b1")
    assert not other.done()


async def test_job_cancelled_before_its_task_is_tracked_is_interrupted_on_track(
    runs: list[asyncio.Task[None]],
) -> None:
    cancellations = Cancellations(lambda: make_config("redis://127.0.0.1:9/0"))
    cancellations.cancel_jobs(["job-early"])
    run = spawn_run(runs)
    cancellations.track("task-early", "job-early", run)
    assert await interrupted(run)
    assert cancellations.is_cancelled("task-early")


async def test_cancelled_task_stays_cancelled_after_untrack(runs: list[asyncio.Task[None]]) -> None:
    cancellations = Cancellations(lambda: make_config("redis://127.0.0.1:9/0"))
    cancellations.track("task-1", "job-1", spawn_run(runs))
    cancellations.cancel_jobs(["job-1"])
    cancellations.untrack("task-1")
    assert cancellations.is_cancelled("task-1")
    assert not cancellations.is_cancelled("task-2")


async def test_malformed_heartbeat_entries_are_ignored(
    runs: list[asyncio.Task[None]], caplog: pytest.LogCaptureFixture
) -> None:
    cancellations = Cancellations(lambda: make_config("redis://127.0.0.1:9/0"))
    run = spawn_run(runs)
    cancellations.track("task-1", "job-1", run)
    with caplog.at_level(logging.WARNING, logger="avtomatika_worker"):
        cancellations.cancel_jobs([42, ""])  # type: ignore[list-item]
    assert "ignoring cancel_task_ids entry 42" in caplog.text
    assert not run.done()


async def test_stop_cancels_its_loops_and_closes_its_own_client(
    redis_url: str, admin: aioredis.Redis
) -> None:
    before = asyncio.all_tasks()
    cancellations = Cancellations(lambda: make_config(redis_url))
    await cancellations.start(None)
    assert await cancellations.check("task-x") is False  # opens a connection
    await cancellations.stop()
    assert asyncio.all_tasks() == before
    clients = await admin.client_list()
    assert len(clients) == 1  # only `admin` itself is still connected


async def test_stop_leaves_an_injected_client_open(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        await client.set(CANCEL_KEY_PREFIX + "task-injected", "1")
        cancellations = Cancellations(lambda: make_config("redis://127.0.0.1:9/0"), client)
        assert await cancellations.check("task-injected") is True
        await cancellations.stop()
        assert await client.exists(CANCEL_KEY_PREFIX + "task-injected") == 1
    finally:
        await client.aclose()


async def test_start_twice_is_an_error(redis_url: str) -> None:
    cancellations = Cancellations(lambda: make_config(redis_url))
    await cancellations.start(None)
    try:
        with pytest.raises(RuntimeError, match="already running"):
            await cancellations.start(None)
    finally:
        await cancellations.stop()


def test_recent_ids_are_bounded_and_expire() -> None:
    clock = FakeClock()
    recent = RecentIds(clock, maxlen=3, ttl=10.0)
    for key in ("a", "b", "c", "d"):
        recent.remember(key, interrupt=False)
    assert recent.lookup("a") is None and len(recent) == 3
    recent.remember("b", interrupt=True)
    recent.remember("b", interrupt=False)
    assert recent.lookup("b") is True  # an interruption request is never downgraded
    clock.now += 10.0
    assert recent.lookup("b") is None and len(recent) == 0
