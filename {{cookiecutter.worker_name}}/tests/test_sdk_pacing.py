"""A worker against the mock orchestrator with rate limiting on (small limits, short period): it paces
itself so that it is never refused, and one that underestimates the limits recovers instead of being
locked out for good."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from avtomatika_worker.ratelimit import RateLimits
from mock_orchestrator.settings import RateLimits as MockRateLimits

from sdk_faults import CLIENT_TOKEN, ControlClient, FaultProxy, make_worker, start_mock

MOCK_LIMITS = MockRateLimits(poll=5, heartbeat=5, other=8, period=1)
TASKS = 12


@pytest.fixture
async def limited() -> AsyncIterator[tuple[ControlClient, FaultProxy, str]]:
    server, url = await start_mock(poll_hold=0.3, rate_limits=MOCK_LIMITS)
    proxy = FaultProxy(url)  # forwards everything; records the status of every reply
    proxy_server, proxy_url = await proxy.start()
    async with aiohttp.ClientSession(base_url=url, headers={"X-Client-Token": CLIENT_TOKEN}) as session:
        yield ControlClient(session), proxy, proxy_url
    await proxy_server.close()
    await server.close()


async def run_tasks(control: ControlClient, url: str, tmp_path: Path, limits: RateLimits) -> list[dict]:
    task_ids = [await control.submit("check_inventory", {"items": ["a"]}) for _ in range(TASKS)]
    async with make_worker(url, tmp_path, heartbeat_interval=0.2, rate_limits=limits):
        return [await control.finished(task_id, within=30) for task_id in task_ids]


async def test_a_worker_told_the_limits_finishes_everything_without_a_single_429(
    limited: tuple[ControlClient, FaultProxy, str], tmp_path: Path
) -> None:
    control, proxy, url = limited
    limits = RateLimits(poll=5, heartbeat=5, other=8, period=1.0)
    done = await run_tasks(control, url, tmp_path, limits)
    assert [view["status"] for view in done] == ["success"] * TASKS
    statuses = [status for _, _, status, _ in proxy.seen]
    assert 429 not in statuses
    assert statuses.count(200) + statuses.count(204) == len(statuses)


async def test_a_worker_that_underestimates_the_limits_is_refused_but_never_locked_out(
    limited: tuple[ControlClient, FaultProxy, str], tmp_path: Path
) -> None:
    control, proxy, url = limited
    optimistic = RateLimits(poll=50, heartbeat=50, other=50, period=1.0)  # ten times too high
    done = await run_tasks(control, url, tmp_path, optimistic)
    assert [view["status"] for view in done] == ["success"] * TASKS
    refused_polls = proxy.statuses("GET", "/tasks/next").count(429)
    assert 1 <= refused_polls <= 3  # each 429 silences polls for a whole period, so the counter resets


async def test_progress_events_are_skipped_not_queued_when_their_window_is_full(
    limited: tuple[ControlClient, FaultProxy, str], tmp_path: Path
) -> None:
    control, proxy, url = limited
    worker = make_worker(url, tmp_path, rate_limits=RateLimits(poll=5, heartbeat=5, other=8, period=1.0))

    @worker.task("chatty")
    async def chatty(params: dict, send_progress: object) -> dict:
        for step in range(20):
            await send_progress(step / 20)  # type: ignore[operator]
        return {}

    task_id = await control.submit("chatty", {})
    async with worker:
        done = await asyncio.wait_for(control.finished(task_id), 15)
    assert done["status"] == "success"
    assert len(proxy.bodies("POST", "/events")) == 8  # the window holds 8; the other 12 were skipped
    assert 429 not in proxy.statuses("POST", "/events")
