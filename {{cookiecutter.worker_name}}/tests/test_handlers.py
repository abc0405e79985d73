"""The handlers in my_worker.py, called directly (no orchestrator, no Docker)."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from types import ModuleType

import pytest
import redis.asyncio as aioredis

TASK_KWARGS = dict(task_id="task-test", job_id="job-test", priority=0)


class ProgressLog:
    """A `send_progress` that records every report."""

    def __init__(self) -> None:
        self.reports: list[tuple[float, str]] = []

    async def __call__(self, fraction: float, message: str = "") -> None:
        self.reports.append((fraction, message))


@pytest.fixture
async def handlers(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ModuleType]:
    """my_worker, freshly imported with a configuration that points at a real Redis."""
    monkeypatch.setenv("ORCHESTRATOR_URL", "http://127.0.0.1:9")  # never contacted by these tests
    monkeypatch.setenv("WORKER_TOKEN", "unit-test-token")
    monkeypatch.setenv("REDIS_URL", redis_url)
    import my_worker

    module = importlib.reload(my_worker)
    yield module
    await module.worker.stop()


async def test_items_in_stock_succeed_with_their_stock_levels(handlers: ModuleType) -> None:
    result = await handlers.check_inventory({"items": ["apple", "pear"]}, **TASK_KWARGS)
    assert result == dict(status="success", data=dict(items_checked=2, in_stock=dict(apple=12, pear=5)))


async def test_an_unavailable_item_gives_the_out_of_stock_status(handlers: ModuleType) -> None:
    result = await handlers.check_inventory({"items": ["apple", "plum", "kiwi"]}, **TASK_KWARGS)
    assert result == dict(status="out_of_stock", data=dict(missing_items=["plum", "kiwi"]))


@pytest.mark.parametrize("params", [{}, {"items": []}, {"items": "apple"}, {"items": [1]}])
async def test_malformed_items_are_an_invalid_input_failure(handlers: ModuleType, params: dict) -> None:
    result = await handlers.check_inventory(params, **TASK_KWARGS)
    assert result["status"] == "failure"
    assert result["error"]["code"] == "INVALID_INPUT_ERROR"
    assert "params.items" in result["error"]["message"]


async def test_long_task_runs_all_steps_and_reports_progress_before_each(handlers: ModuleType) -> None:
    progress = ProgressLog()
    result = await handlers.long_running_task(
        {"steps": 3, "step_seconds": 0}, task_id="task-test", send_progress=progress
    )
    assert result == dict(status="success", data=dict(completed_steps=3))
    assert progress.reports == [(0.0, "step 1 of 3"), (1 / 3, "step 2 of 3"), (2 / 3, "step 3 of 3")]


async def test_long_task_stops_when_the_orchestrator_sets_the_cancel_flag(
    handlers: ModuleType, redis_url: str
) -> None:
    client = aioredis.Redis.from_url(redis_url)
    # What the orchestrator writes on cancel (avtomatika engine.py cancel_job: SET ... EX 3600).
    await client.set("orchestrator:task_cancel:task-test", "1", ex=3600)
    await client.aclose()
    progress = ProgressLog()
    result = await handlers.long_running_task(
        {"steps": 3, "step_seconds": 0}, task_id="task-test", send_progress=progress
    )
    assert result == dict(status="cancelled", data=dict(completed_steps=0))
    assert progress.reports == []
