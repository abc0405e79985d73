"""Tasks through the whole stack: round trip, custom status, and cancellation over both channels."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from e2e.stack import WORKER, Compose, Mock, docker, wait_for

pytestmark = pytest.mark.e2e

# A step far longer than any test: only an interrupted handler (WebSocket cancel) ends such a task.
ENDLESS_STEP_SECONDS = 3600


def test_the_demo_task_queued_at_start_up_is_processed(mock: Mock) -> None:
    first = min(mock.tasks(), key=lambda task: float(task["created_at"]))
    assert (first["type"], first["params"]) == ("check_inventory", {"items": ["apple", "pear"]})
    assert mock.wait_done(first["task_id"])["status"] == "success"


def test_check_inventory_round_trip_returns_the_stock_levels(mock: Mock) -> None:
    task = mock.wait_done(mock.submit("check_inventory", {"items": ["apple", "pear"]}))
    assert task["status"] == "success", task
    assert task["data"] == {"items_checked": 2, "in_stock": {"apple": 12, "pear": 5}}
    assert task["worker_id"] in mock.workers()


def test_an_unavailable_item_reports_the_custom_out_of_stock_status(mock: Mock) -> None:
    task = mock.wait_done(mock.submit("check_inventory", {"items": ["apple", "plum"]}))
    assert task["status"] == "out_of_stock", task
    assert task["data"] == {"missing_items": ["plum"]}


def test_websocket_cancel_interrupts_a_handler_in_the_middle_of_a_step(mock: Mock) -> None:
    task_id = mock.submit_long_task(steps=2, step_seconds=ENDLESS_STEP_SECONDS)
    worker_id = mock.wait_running(task_id)["worker_id"]
    wait_for(lambda: bool(mock.workers()[worker_id]["websocket_connected"]), "the worker's WebSocket")
    mock.cancel(task_id)
    assert mock.wait_done(task_id)["status"] == "cancelled"
    attempt = mock.wait_reported(task_id)
    assert (attempt["status"], attempt["worker_id"]) == ("cancelled", worker_id)


@pytest.fixture
def worker_without_websockets(one_worker: Compose, mock: Mock) -> Iterator[str]:
    """The only polling worker: a one-off container with WebSockets off; yields its worker id."""
    one_worker.run("stop", WORKER)
    known = set(mock.workers())
    run = one_worker.run("run", "--detach", "--no-deps", "-e", "WORKER_ENABLE_WEBSOCKETS=false", WORKER)
    container = run.stdout.strip().splitlines()[-1]
    try:
        wait_for(lambda: bool(set(mock.workers()) - known), "the worker without WebSockets to register")
        (worker_id,) = set(mock.workers()) - known
        yield worker_id
    finally:
        docker(["docker", "rm", "--force", container])


def test_redis_flag_cancels_a_task_when_websockets_are_off(
    mock: Mock, worker_without_websockets: str
) -> None:
    steps = 10_000
    task_id = mock.submit_long_task(steps=steps, step_seconds=0.05)
    assert mock.wait_running(task_id)["worker_id"] == worker_without_websockets
    assert not mock.workers()[worker_without_websockets]["websocket_connected"]
    mock.cancel(task_id)
    assert mock.wait_done(task_id)["status"] == "cancelled"
    # Without a WebSocket, only the handler's own check_for_cancellation (the Redis flag) ends the
    # task before its 10 000 steps; the worker then reports it cancelled.
    attempt = mock.wait_reported(task_id)
    assert (attempt["status"], attempt["worker_id"]) == ("cancelled", worker_without_websockets)
