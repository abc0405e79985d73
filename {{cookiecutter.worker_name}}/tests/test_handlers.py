"""The handlers in my_worker.py, run as the worker runs them: no orchestrator, no Redis, no Docker."""

from __future__ import annotations

from typing import Any

import pytest

from avtomatika_worker.testing import TaskRun
from my_worker import worker


async def test_items_in_stock_succeed_with_their_stock_levels() -> None:
    result = await TaskRun(worker, "check_inventory")({"items": ["apple", "pear"]})
    assert result == {"status": "success", "data": {"items_checked": 2, "in_stock": {"apple": 12, "pear": 5}}}


async def test_an_unavailable_item_gives_the_out_of_stock_status() -> None:
    result = await TaskRun(worker, "check_inventory")({"items": ["apple", "plum", "kiwi"]})
    assert result == {"status": "out_of_stock", "data": {"missing_items": ["plum", "kiwi"]}}


@pytest.mark.parametrize("params", [{}, {"items": []}, {"items": "apple"}, {"items": [1]}])
async def test_malformed_items_are_an_invalid_input_failure(params: dict[str, Any]) -> None:
    result = await TaskRun(worker, "check_inventory")(params)
    assert result["status"] == "failure"
    assert result["error"]["code"] == "INVALID_INPUT_ERROR"
    assert "items" in result["error"]["message"]


async def test_long_task_runs_all_steps_and_reports_progress_before_each() -> None:
    run = TaskRun(worker, "long_running_task")
    result = await run({"steps": 3, "step_seconds": 0})
    assert result == {"status": "success", "data": {"completed_steps": 3}}
    assert run.progress == [(0.0, "step 1 of 3"), (1 / 3, "step 2 of 3"), (2 / 3, "step 3 of 3")]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"steps": "3"}, "params.steps"),
        ({"steps": 0}, "params.steps"),
        ({"step_seconds": -1}, "params.step_seconds"),
    ],
)
async def test_bad_step_settings_are_an_invalid_input_failure(params: dict[str, Any], field: str) -> None:
    result = await TaskRun(worker, "long_running_task")(params)
    assert result["error"]["code"] == "INVALID_INPUT_ERROR"
    assert field in result["error"]["message"]


async def test_long_task_stops_when_the_orchestrator_cancels_it() -> None:
    run = TaskRun(worker, "long_running_task")
    run.cancel()  # as the orchestrator's Redis flag does; the handler sees it at its next check
    result = await run({"steps": 3, "step_seconds": 0})
    assert result == {"status": "cancelled", "data": {"completed_steps": 0}}
    assert run.progress == []


async def test_long_task_cancelled_midway_reports_the_steps_it_completed() -> None:
    def cancel_at_second_report(run: TaskRun) -> None:
        if len(run.progress) == 2:
            run.cancel()

    run = TaskRun(worker, "long_running_task", on_progress=cancel_at_second_report)
    assert await run({"steps": 5, "step_seconds": 0}) == {
        "status": "cancelled",
        "data": {"completed_steps": 2},
    }


async def test_long_task_interrupted_over_websocket_ends_cancelled() -> None:
    run = TaskRun(worker, "long_running_task", on_progress=lambda run: run.cancel(interrupt=True))
    assert await run({"steps": 5, "step_seconds": 60}) == {"status": "cancelled"}
