"""Pacing under the orchestrator's rate limits (ratelimit.py), on a fake clock: no sleeps, exact times."""

from __future__ import annotations

import asyncio
import logging

import pytest

from avtomatika_worker import ConfigError, WorkerConfig
from avtomatika_worker.ratelimit import HEARTBEAT, MARGIN, POLL, RESULT, RateBudget, RateLimits


class Clock:
    """A fake monotonic clock; `sleep` advances it instead of waiting."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def budget(clock: Clock, **limits: object) -> RateBudget:
    return RateBudget(RateLimits(**limits), clock=clock, sleep=clock.sleep)  # type: ignore[arg-type]


async def send(b: RateBudget, clock: Clock, kind: str, took: float = 0.01, *, urgent: bool = False) -> float:
    """One request of `kind` that takes `took` s; returns when it went out."""
    await b.acquire(kind, urgent=urgent)
    sent = clock.now
    clock.now += took
    b.release(kind)
    return sent


async def test_a_steady_poller_pauses_one_period_before_the_limit_and_is_never_refused() -> None:
    clock = Clock()
    b = budget(clock, poll=5, period=10.0)
    times = [await send(b, clock, POLL) for _ in range(12)]
    assert clock.slept == [pytest.approx(10.0 + MARGIN), pytest.approx(10.0 + MARGIN)]
    # 5 polls, then silence for a whole period after the 5th ended, then 5 more: the counter never passes 5.
    assert times[5] - (times[4] + 0.01) == pytest.approx(10.0 + MARGIN)
    assert b.stats()[POLL] == {"count": 2, "pauses": 2, "refusals": 0}


async def test_poll_and_result_windows_stay_aligned_so_results_never_pause() -> None:
    clock = Clock()
    b = budget(clock, poll=60, other=100, period=60.0)
    for _ in range(5 * 60):  # five windows of polls; each poll's result goes out after it, and takes longer
        await send(b, clock, POLL, took=0.001)
        clock.now += 0.005
        await send(b, clock, RESULT, took=0.05)
        assert b.stats()[RESULT]["count"] <= 60  # without alignment: 60, then 97, then a result pause
    assert b.stats()[RESULT]["pauses"] == 0
    assert b.stats()[POLL]["pauses"] == 4


async def test_a_quiet_period_resets_the_window_without_any_pause() -> None:
    clock = Clock()
    b = budget(clock, poll=3, period=10.0)
    for _ in range(3):
        await send(b, clock, POLL)
    clock.now += 10.0 + MARGIN  # e.g. the worker was busy with one long task
    for _ in range(3):
        await send(b, clock, POLL)
    assert clock.slept == []


async def test_a_long_poll_in_flight_keeps_the_window_open_until_it_ends() -> None:
    clock = Clock()
    b = budget(clock, poll=2, period=10.0)
    await send(b, clock, POLL)
    await send(b, clock, POLL, took=30.0)  # the orchestrator held it 30 s
    await send(b, clock, POLL)
    assert clock.slept == [pytest.approx(10.0 + MARGIN)]  # measured from the end of the held poll


async def test_a_429_silences_that_type_for_a_period_or_retry_after_whichever_is_longer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    b = budget(clock, period=10.0)
    await b.acquire(POLL)
    b.release(POLL)
    b.refused(POLL, retry_after=None)
    assert b.delay(POLL) == pytest.approx(10.0 + MARGIN)
    assert b.delay(HEARTBEAT) == 0  # other message types are counted apart
    await send(b, clock, POLL)
    assert clock.slept == [pytest.approx(10.0 + MARGIN)]
    b.refused(RESULT, retry_after=25.0)
    assert b.delay(RESULT) == pytest.approx(25.0 + MARGIN)
    assert b.stats()[RESULT]["refusals"] == 1
    assert "refused a result request with 429" in caplog.text


async def test_urgent_requests_may_use_the_reserve_routine_ones_may_not() -> None:
    clock = Clock()
    b = budget(clock, heartbeat=12, period=10.0)
    for _ in range(9):  # the reserve for heartbeats is 3 (at most a quarter of the limit)
        await send(b, clock, HEARTBEAT)
    assert b.delay(HEARTBEAT) > 0
    assert b.delay(HEARTBEAT, urgent=True) == 0
    for _ in range(3):
        await send(b, clock, HEARTBEAT, urgent=True)
    assert b.delay(HEARTBEAT, urgent=True) > 0


async def test_a_small_limit_keeps_most_of_its_budget_for_routine_requests() -> None:
    clock = Clock()
    b = budget(clock, heartbeat=3, period=10.0)
    for _ in range(3):  # a quarter of 3 is 0: nothing kept back
        await send(b, clock, HEARTBEAT)
    assert b.delay(HEARTBEAT, urgent=True) > 0


async def test_off_never_paces_but_still_honours_a_429() -> None:
    clock = Clock()
    b = budget(clock, enabled=False, period=10.0)
    for _ in range(500):
        await send(b, clock, POLL)
    assert clock.slept == []
    b.refused(POLL, retry_after=3.0)
    assert b.delay(POLL) == pytest.approx(10.0 + MARGIN)


async def test_concurrent_requests_are_all_counted_and_a_pause_waits_for_the_ones_in_flight() -> None:
    clock = Clock()
    b = budget(clock, other=4, period=10.0)
    for _ in range(4):
        await b.acquire(RESULT, urgent=True)  # four results in flight at once: the window is full
    assert b.delay(RESULT, urgent=True) == float("inf")  # and it resets only a period after they end
    for _ in range(4):
        b.release(RESULT)
    assert b.delay(RESULT, urgent=True) == pytest.approx(10.0 + MARGIN)


async def test_a_restarted_process_adopts_the_windows_its_predecessor_left() -> None:
    clock = Clock()
    first = budget(clock, poll=5, period=10.0)
    for _ in range(4):
        await send(first, clock, POLL)
    saved = first.snapshot(wall=1_000.0)
    later = Clock()
    later.now = 5.0  # another process: another monotonic origin
    second = budget(later, poll=5, period=10.0)
    second.restore(saved, wall=1_002.0)  # two seconds after the snapshot
    await send(second, later, POLL)
    assert second.delay(POLL) == pytest.approx(10.0 + MARGIN)  # the 5th poll of the window was the last


async def test_pausing_is_announced_once_per_pause_with_the_reason(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    clock = Clock()
    b = budget(clock, poll=2, period=10.0)
    for _ in range(6):
        await send(b, clock, POLL)
    pauses = [r for r in caplog.records if "pacing poll requests" in r.getMessage()]
    assert len(pauses) == 2
    assert pauses[0].levelno == logging.WARNING
    assert "limit is 2 per worker" in pauses[0].getMessage()
    assert "WORKER_RATE_LIMITS=poll=2,heartbeat=120,other=100,period=10" in pauses[0].getMessage()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("off", RateLimits(enabled=False)),
        ("ON", RateLimits()),
        ("defaults", RateLimits()),
        ("poll=10, period=5", RateLimits(poll=10, period=5.0)),
        ("poll=1,heartbeat=2,other=3,period=0.5", RateLimits(poll=1, heartbeat=2, other=3, period=0.5)),
    ],
)
def test_worker_rate_limits_accepts_off_on_and_explicit_limits(text: str, expected: RateLimits) -> None:
    config = WorkerConfig.from_env(
        "t", {"ORCHESTRATOR_URL": "http://o", "WORKER_TOKEN": "t", "WORKER_RATE_LIMITS": text}
    )
    assert config.rate_limits == expected


def test_the_default_is_avtomatika_1_0b30s_defaults() -> None:
    config = WorkerConfig.from_env("t", {"ORCHESTRATOR_URL": "http://o", "WORKER_TOKEN": "t"})
    assert config.rate_limits == RateLimits(poll=60, heartbeat=120, other=100, period=60.0, enabled=True)


@pytest.mark.parametrize(
    "text", ["poll", "poll=0", "poll=1.5", "speed=3", "poll=1,poll=2", "period=-1", "maybe"]
)
def test_a_bad_worker_rate_limits_names_the_variable_the_rule_and_an_example(text: str) -> None:
    env = {"ORCHESTRATOR_URL": "http://o", "WORKER_TOKEN": "t", "WORKER_RATE_LIMITS": text}
    with pytest.raises(ConfigError) as info:
        WorkerConfig.from_env("t", env)
    message = str(info.value)
    assert f"WORKER_RATE_LIMITS={text!r} is invalid" in message
    assert "RATE_LIMIT_POLL_LIMIT" in message
    assert "e.g. WORKER_RATE_LIMITS=poll=60,heartbeat=120,other=100,period=60" in message
