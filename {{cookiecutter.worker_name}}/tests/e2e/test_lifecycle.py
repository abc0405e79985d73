"""The worker's life in the stack: SIGTERM mid-task, restart, and three replicas sharing the work."""

from __future__ import annotations

import pytest

from e2e.stack import WORKER, Compose, Mock, inspect, wait_for

pytestmark = pytest.mark.e2e

TASK_COUNT = 50


def test_sigterm_mid_task_lets_the_task_finish_and_exits_0_within_the_grace_period(
    one_worker: Compose, mock: Mock
) -> None:
    task_id = mock.submit_long_task(steps=3, step_seconds=1)
    mock.wait_running(task_id)
    (container,) = one_worker.container_ids(WORKER)
    # `stop` sends SIGTERM, then SIGKILL after stop_grace_period: exit code 0 means the worker was done
    # before that (a SIGKILL gives 137).
    one_worker.run("stop", WORKER)
    assert inspect(container)["State"]["ExitCode"] == 0
    task = mock.task(task_id)
    assert task["status"] == "success", task
    assert task["data"] == {"completed_steps": 3}


def test_a_restarted_worker_registers_again_and_loses_no_task(one_worker: Compose, mock: Mock) -> None:
    in_flight = mock.submit_long_task(steps=2, step_seconds=1)
    worker_id = mock.wait_running(in_flight)["worker_id"]
    registered_at = mock.workers()[worker_id]["registered_at"]
    one_worker.run("stop", WORKER)
    while_down = mock.submit("check_inventory", {"items": ["pear"]})
    one_worker.run("start", WORKER)
    wait_for(
        lambda: mock.workers().get(worker_id, {}).get("registered_at", 0) > registered_at,
        f"worker {worker_id} to register again",
    )
    assert mock.wait_done(in_flight)["status"] == "success"
    done = mock.wait_done(while_down)
    assert (done["status"], done["worker_id"]) == ("success", worker_id)


def test_three_workers_share_fifty_tasks_and_run_each_exactly_once(one_worker: Compose, mock: Mock) -> None:
    one_worker.run(
        "up", "--detach", "--wait", "--wait-timeout", "120", "--scale", f"{WORKER}=3", "--no-recreate", WORKER
    )
    assert len(one_worker.running(WORKER)) == 3
    task_ids = [mock.submit_long_task(steps=1, step_seconds=0.1) for _ in range(TASK_COUNT)]
    tasks = [mock.wait_done(task_id) for task_id in task_ids]
    assert [t["status"] for t in tasks] == ["success"] * TASK_COUNT
    # One attempt each: no task was handed out twice, none was retried.
    assert [len(t["attempts"]) for t in tasks] == [1] * TASK_COUNT
    assert len({t["worker_id"] for t in tasks}) == 3
