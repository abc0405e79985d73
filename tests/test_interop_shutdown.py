"""Interop: stopping or restarting a baked worker never costs a job anything (the REAL orchestrator).

SIGTERM mid-task: with another idle worker, the task moves to it at once; alone, the next process with the
same worker id runs it again and the job spends none of its retries; never `quarantined`; exit 0 within
WORKER_SHUTDOWN_TIMEOUT + 2 s. A restart with the same worker id loses no task to the long poll the old
process left open (1.0b30 keeps serving a poll whose client is gone). Each test gets its own orchestrator:
a stopped worker's record outlives it by up to 120 s and would change what "alone" means.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from interop.real import SCENARIO_WORKER, TERMINAL, RealOrchestrator, baked_worker, real_orchestrator
from processes import wait_for

pytestmark = pytest.mark.interop

SHUTDOWN_TIMEOUT = 2.0
# A poll hold shorter than the shutdown timeout (as 1.0b30's and this SDK's defaults are: 30 s and 30 s),
# so that a stopping worker never has to abandon an open poll; a 1 s watcher tick catches any job step
# left without a deadline.
ORCHESTRATOR_ENV = {"WORKER_POLL_TIMEOUT_SECONDS": "1", "WATCHER_INTERVAL_SECONDS": "1"}
WORKER_ENV = {"WORKER_SHUTDOWN_TIMEOUT": str(SHUTDOWN_TIMEOUT), "WORKER_HEARTBEAT_INTERVAL": "2"}
LONG_JOB = {
    "result_timeout": 300
}  # without it 1.0b30's watcher re-dispatches running tasks (test_interop.py)


@pytest.fixture
def orchestrator(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[RealOrchestrator]:
    env = {**ORCHESTRATOR_ENV, **getattr(request, "param", {})}
    with real_orchestrator(tmp_path / "orchestrator", env=env) as orch:
        yield orch


def started(state_file: Path) -> list[dict[str, Any]]:
    """The `started` records of hold_until_released, oldest first."""
    lines = state_file.read_text().splitlines() if state_file.exists() else []
    return [json.loads(line) for line in lines]


def hold_job(orchestrator: RealOrchestrator, tmp_path: Path, name: str) -> tuple[str, Path, Path]:
    """A job whose task runs until its release file exists; returns the job id, state file, release file."""
    state, release = tmp_path / f"{name}.jsonl", tmp_path / f"{name}.release"
    params = {"state_file": str(state), "release": str(release)}
    job_id = orchestrator.create_job(
        "scenario", {"skill": "hold_until_released", "params": params}, **LONG_JOB
    )
    return job_id, state, release


def finished(orchestrator: RealOrchestrator, job_id: str, timeout: float = 30) -> dict[str, Any]:
    """The job once terminal (failing with the record if that takes longer than `timeout`)."""
    return orchestrator.wait_job(job_id, lambda j: j.get("status") in TERMINAL, "a terminal status", timeout)


def test_sigterm_hands_a_running_task_to_an_idle_peer_at_once(
    orchestrator: RealOrchestrator, project: Path, tmp_path: Path
) -> None:
    with baked_worker(
        orchestrator, project, "peer-a", script=SCENARIO_WORKER, env=WORKER_ENV, stays_up=False
    ) as a:
        job_id, state, release = hold_job(orchestrator, tmp_path, "job")
        wait_for(lambda: len(started(state)) == 1, 30, "worker a to start the task")
        with baked_worker(orchestrator, project, "peer-b", script=SCENARIO_WORKER, env=WORKER_ENV) as b:
            code, took = a.stop(signal.SIGTERM)
            assert code == 0, a.tail()
            assert took <= SHUTDOWN_TIMEOUT + 2, (took, a.tail())
            wait_for(lambda: len(started(state)) == 2, 10, f"worker b to take the task over\n{b.tail()}")
            release.touch()
            job = finished(orchestrator, job_id)
    assert job["status"] == "finished", (job, a.tail())
    assert job["state_history"]["done_by"] == "peer-b"
    # The hand-over is one transient failure, re-dispatched at once (plus any watcher tick that fell in
    # the retry's few-millisecond monotonic window, docs/orchestrator-behaviours.md).
    assert job["retry_count"] == 1 + orchestrator.watcher_timeouts(job_id), job


def test_sigterm_alone_keeps_three_running_tasks_for_the_restart_without_spending_a_retry(
    orchestrator: RealOrchestrator, project: Path, tmp_path: Path
) -> None:
    env = {**WORKER_ENV, "WORKER_MAX_CONCURRENT_TASKS": "3"}
    with baked_worker(
        orchestrator, project, "alone", script=SCENARIO_WORKER, env=env, stays_up=False
    ) as first:
        jobs = [hold_job(orchestrator, tmp_path, f"job{n}") for n in range(3)]
        wait_for(lambda: all(len(started(state)) == 1 for _, state, _ in jobs), 30, "three running tasks")
        code, took = first.stop(signal.SIGTERM)
    assert code == 0, first.tail()
    assert took <= SHUTDOWN_TIMEOUT + 2, (took, first.tail())
    assert "3 interrupted task(s) kept for the next process" in first.tail()
    waiting = [orchestrator.job(job_id) for job_id, _, _ in jobs]  # nothing reported: still this worker's
    assert {(job["status"], job.get("retry_count", 0)) for job in waiting} == {("waiting_for_worker", 0)}
    for _, _, release in jobs:
        release.touch()
    with baked_worker(
        orchestrator, project, "alone", script=SCENARIO_WORKER, env=env, log_name="alone-2.log"
    ):
        done = [finished(orchestrator, job_id) for job_id, _, _ in jobs]
    assert [job["status"] for job in done] == ["finished"] * 3, done
    assert [job["retry_count"] for job in done] == [0, 0, 0]
    for job, (_, state, _) in zip(done, jobs, strict=True):
        runs = started(state)
        assert len(runs) == 2 and runs[0]["task_id"] == runs[1]["task_id"], runs  # the same task, run again
        assert job["state_history"]["pid"] == runs[1]["pid"] != runs[0]["pid"]


def test_a_job_created_while_a_lone_worker_restarts_waits_for_it_instead_of_being_quarantined(
    orchestrator: RealOrchestrator, project: Path, tmp_path: Path
) -> None:
    with baked_worker(
        orchestrator, project, "solo", script=SCENARIO_WORKER, env=WORKER_ENV, stays_up=False
    ) as first:
        code, took = first.stop(signal.SIGTERM)  # idle, with a poll open on the orchestrator
    assert code == 0, first.tail()
    assert took <= SHUTDOWN_TIMEOUT + 2, (took, first.tail())
    during = orchestrator.create_job("scenario", {"skill": "sleep_for", "params": {}}, **LONG_JOB)
    with baked_worker(
        orchestrator, project, "solo", script=SCENARIO_WORKER, env=WORKER_ENV, log_name="solo-2.log"
    ):
        after = orchestrator.create_job("scenario", {"skill": "sleep_for", "params": {}}, **LONG_JOB)
        jobs = [finished(orchestrator, job_id) for job_id in (during, after)]
    assert [job["status"] for job in jobs] == ["finished", "finished"], jobs


# A hold longer than a restart: the killed process's poll is still open when the next one starts.
@pytest.mark.parametrize("orchestrator", [{"WORKER_POLL_TIMEOUT_SECONDS": "6"}], indirect=True)
def test_after_a_sigkill_the_next_process_keeps_its_id_out_of_dispatch_while_the_dead_poll_may_be_open(
    orchestrator: RealOrchestrator, project: Path, tmp_path: Path
) -> None:
    with baked_worker(orchestrator, project, "kill-peer", script=SCENARIO_WORKER, env=WORKER_ENV):
        with baked_worker(
            orchestrator, project, "killed", script=SCENARIO_WORKER, env=WORKER_ENV, stays_up=False
        ) as a:
            health = project.parent / "health-killed.json"
            learned = lambda: json.loads(health.read_text()).get("poll_hold", 30) < 10
            wait_for(lambda: health.exists() and learned(), 20, "an empty poll (the worker learns the hold)")
            a.stop(signal.SIGKILL)
        again = baked_worker(
            orchestrator, project, "killed", script=SCENARIO_WORKER, env=WORKER_ENV, log_name="killed-2.log",
            wait_registered=False,
        )  # fmt: skip
        with again as successor:
            line = "other idle workers take the tasks until then"
            wait_for(lambda: line in successor.tail(), 30, f"the successor to step aside\n{successor.tail()}")
            jobs = [orchestrator.create_job("inventory", {"items": ["apple"]}) for _ in range(6)]
            done = [finished(orchestrator, job_id, timeout=20) for job_id in jobs]
    assert [job["status"] for job in done] == ["finished"] * 6, done
