"""Interop: with WORKER_ENABLE_WEBSOCKETS=true a cancel from the REAL orchestrator reaches the handler at once."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from interop.real import (
    SCENARIO_WORKER,
    RealOrchestrator,
    RunningWorker,
    baked_worker,
    real_orchestrator,
    recorded,
)
from processes import wait_for

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def orchestrator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealOrchestrator]:
    with real_orchestrator(tmp_path_factory.mktemp("orchestrator-ws")) as orch:
        yield orch


@pytest.fixture(scope="module")
def worker(orchestrator: RealOrchestrator, project: Path) -> Iterator[RunningWorker]:
    env = {"WORKER_ENABLE_WEBSOCKETS": "true"}
    with baked_worker(
        orchestrator, project, f"interop-ws-{os.getpid()}", script=SCENARIO_WORKER, env=env
    ) as w:
        # The orchestrator sends cancel commands only to records whose capabilities say websockets
        # (a signed heartbeat sets that; registration cannot: protocol.md §7).
        wait_for(
            lambda: bool(
                orchestrator.workers().get(w.worker_id, {}).get("capabilities", {}).get("websockets")
            ),
            30,
            "the worker to advertise capabilities.websockets in a heartbeat",
        )
        yield w


def test_worker_with_websockets_still_completes_jobs(
    orchestrator: RealOrchestrator, worker: RunningWorker
) -> None:
    job = orchestrator.run_job("inventory", {"items": ["pear"]})
    assert job["status"] == "finished", (job, worker.tail())
    assert job["state_history"]["in_stock"] == {"pear": 5}


def test_websocket_cancel_raises_cancelled_error_in_the_handler_and_the_job_stays_cancelled(
    orchestrator: RealOrchestrator, worker: RunningWorker, tmp_path: Path
) -> None:
    state_file = tmp_path / "cancel.jsonl"
    # check_redis off: only the WebSocket command can stop this handler.
    params = {"state_file": str(state_file), "check_redis": False}
    job_id = orchestrator.create_job(
        "scenario", {"skill": "wait_for_cancel", "params": params}, result_timeout=300
    )
    wait_for(lambda: bool(recorded(state_file)), 30, "the handler to start")
    task_id = recorded(state_file)[0]["task_id"]
    assert orchestrator.cancel(job_id) == {"status": "cancellation_request_accepted"}
    wait_for(
        lambda: recorded(state_file)[-1]["event"] != "started",
        30,
        f"the handler to be cancelled\n{worker.tail()}",
    )
    last = recorded(state_file)[-1]
    assert (last["event"], last["task_id"]) == ("cancelled_error", task_id), last
    orchestrator.wait_log(f"Task {task_id} for job {job_id} was cancelled by worker", "the cancelled result")
    assert orchestrator.job(job_id)["status"] == "cancelled"
    assert worker.alive(), worker.tail()
