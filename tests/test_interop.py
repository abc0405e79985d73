"""Interop: a baked worker against the REAL orchestrator (avtomatika, pinned) on real Redis, WebSockets off."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from interop.real import (
    SCENARIO_WORKER,
    TERMINAL,
    RealOrchestrator,
    RunningWorker,
    baked_worker,
    real_orchestrator,
    recorded,
)
from processes import wait_for

pytestmark = pytest.mark.interop

# Long-running jobs get a result_timeout: without one, avtomatika 1.0b30's watcher compares a monotonic
# deadline with wall-clock time and re-dispatches every task still running at its next tick (~20 s).
# The sample blueprints set result_timeout_seconds on their steps for the same reason.
LONG_JOB = {"result_timeout": 300}
# A 1 s watcher tick makes that bug bite within a second, so any job step the workaround misses shows up.
WATCHER_TICK = {"WATCHER_INTERVAL_SECONDS": "1"}
# Every task in this module is signed by the orchestrator and checked by the worker (1.0b30 adds
# members after signing: the worker must check only what was signed, or every job here fails).
TASK_SECRET = {"ORCHESTRATOR_SECRET_KEY": "interop-orchestrator-secret"}


@pytest.fixture(scope="module")
def orchestrator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealOrchestrator]:
    with real_orchestrator(tmp_path_factory.mktemp("orchestrator"), env=WATCHER_TICK | TASK_SECRET) as orch:
        yield orch


@pytest.fixture(scope="module")
def worker(orchestrator: RealOrchestrator, project: Path) -> Iterator[RunningWorker]:
    with baked_worker(
        orchestrator, project, f"interop-{os.getpid()}", script=SCENARIO_WORKER, env=TASK_SECRET
    ) as running:
        yield running


def test_check_inventory_job_finishes_with_the_workers_data(
    orchestrator: RealOrchestrator, worker: RunningWorker
) -> None:
    job = orchestrator.run_job("inventory", {"items": ["apple", "pear"]})
    assert job["status"] == "finished", job
    assert job["state_history"]["in_stock"] == {"apple": 12, "pear": 5}
    assert job["state_history"]["items_checked"] == 2


def test_out_of_stock_status_follows_its_transition(
    orchestrator: RealOrchestrator, worker: RunningWorker
) -> None:
    job = orchestrator.run_job("inventory", {"items": ["plum"]})
    # Only an end state named `finished` yields status `finished` in 1.0b30 (protocol.md §9).
    assert job["current_state"] == "out_of_stock", job
    assert job["status"] == "failed", job
    assert job["state_history"]["missing_items"] == ["plum"]


@pytest.mark.parametrize("skill", ["flaky_exception", "flaky_transient"])
def test_failed_attempts_are_retried_by_the_orchestrator_until_the_job_finishes(
    orchestrator: RealOrchestrator, worker: RunningWorker, tmp_path: Path, skill: str
) -> None:
    state_file = tmp_path / "attempts.jsonl"
    job = orchestrator.run_job(
        "scenario",
        {"skill": skill, "params": {"fail_times": 2, "state_file": str(state_file)}},
        **LONG_JOB,
    )
    assert job["status"] == "finished", (job, worker.tail())
    # A retry re-arms the job's watch with a monotonic time until the dispatch overwrites it (a few
    # milliseconds, docs/orchestrator-behaviours.md): a watcher tick in that window counts a retry too.
    # Such a retry also dispatches a second task, which the worker may run. The watcher and the result
    # handler update the job from their own snapshots, so one of them may overwrite the other's count.
    raced = orchestrator.watcher_timeouts(job["id"])
    assert 2 <= job["retry_count"] <= 2 + raced, (job, f"watcher timeouts: {raced}")
    assert 3 <= job["state_history"]["attempts"] <= 3 + raced, job
    task_ids = [event["task_id"] for event in recorded(state_file)]
    assert len(task_ids) == len(set(task_ids)), f"each retry is a new task id: {task_ids}"
    assert 3 <= len(task_ids) <= 3 + raced, task_ids
    assert worker.alive(), worker.tail()
    assert worker.worker_id in orchestrator.workers()
    # ... and the worker still takes work.
    assert orchestrator.run_job("inventory", {"items": ["apple"]})["status"] == "finished"


def test_job_with_result_timeout_delivers_a_float_deadline_and_finishes(
    orchestrator: RealOrchestrator, worker: RunningWorker
) -> None:
    job = orchestrator.run_job("scenario", {"skill": "report_deadline"}, **LONG_JOB)
    assert job["status"] == "finished", (job, worker.tail())
    assert job["state_history"]["deadline_type"] == "float", job
    assert job["state_history"]["deadline_seen"] > 0


def test_a_handler_still_running_at_its_deadline_is_cancelled_then_and_the_job_does_not_finish(
    orchestrator: RealOrchestrator, worker: RunningWorker, tmp_path: Path
) -> None:
    state_file = tmp_path / "deadline.jsonl"
    params = {"state_file": str(state_file)}
    job_id = orchestrator.create_job(
        "scenario", {"skill": "wait_for_cancel", "params": params}, result_timeout=2
    )
    cancelled = lambda: [e for e in recorded(state_file) if e["event"] == "cancelled_error"]
    wait_for(
        lambda: state_file.exists() and bool(cancelled()), 15, f"the handler's cancellation\n{worker.tail()}"
    )
    started = next(e for e in recorded(state_file) if e["event"] == "started")
    assert isinstance(started["deadline"], float), started
    # Cancelled at the deadline the orchestrator set (2 s after the job was created), not before.
    assert 0 <= cancelled()[0]["at"] - started["deadline"] < 1.0, (started, cancelled())
    # Its retries carry the same, past deadline and run without one (the orchestrator would take a result
    # between its watcher's ticks), but the watcher times the job out at every tick until quarantine.
    job = orchestrator.wait_job(job_id, lambda j: j.get("status") in TERMINAL, "a terminal status")
    assert job["status"] != "finished", job
    assert "the task's deadline has passed: cancelling its handler" in worker.tail()


@pytest.mark.parametrize(
    ("pinned", "runs"),
    [
        ({"skill_version": "2.0.0", "skill_type": "echo"}, True),
        ({"skill_version": "2.0.0"}, True),
        ({"skill_version": "3.0.0"}, False),
        ({"skill_type": "other"}, False),
    ],
)
def test_a_blueprint_pinning_a_skill_version_or_type_reaches_only_a_worker_that_declares_it(
    orchestrator: RealOrchestrator, worker: RunningWorker, pinned: dict[str, str], runs: bool
) -> None:
    job = orchestrator.run_job("scenario", {"skill": "versioned", **pinned}, **LONG_JOB)
    assert worker.worker_id in orchestrator.workers()
    published = orchestrator.workers()[worker.worker_id]["supported_skills"]
    (skill,) = [s for s in published if s["name"] == "versioned"]
    assert (skill["version"], skill["type"]) == ("2.0.0", "echo"), skill
    assert skill["description"].startswith("Echo the skill version"), skill
    if runs:
        assert job["status"] == "finished", (job, worker.tail())
        assert job["state_history"]["asked_version"] == pinned.get("skill_version"), job
    else:
        assert job["status"] != "finished" and "asked_version" not in job.get("state_history", {}), job
        assert "No worker satisfies" in orchestrator.log.read_text(errors="replace")


def test_job_security_and_metadata_reach_the_handler_of_a_signed_task(
    orchestrator: RealOrchestrator, worker: RunningWorker
) -> None:
    context = {"security": {"roles": ["auditor"]}, "metadata": {"tenant": "acme"}}
    job = orchestrator.run_job("scenario", {"skill": "echo_context"}, **context, **LONG_JOB)
    assert job["status"] == "finished", (job, worker.tail())
    seen = job["state_history"]["seen"]
    assert seen["security"] == context["security"], job
    assert seen["metadata"]["tenant"] == "acme", job
    assert "SECURITY_ERROR" not in worker.tail()


def test_sample_long_task_outlives_watcher_ticks_without_being_redelivered(
    orchestrator: RealOrchestrator, worker: RunningWorker
) -> None:
    job = orchestrator.run_job("long_task", {"steps": 15, "step_seconds": 0.2})
    assert job["status"] == "finished", (job, worker.tail())
    assert job["retry_count"] == 0, job
    assert job["state_history"]["completed_steps"] == 15


def running_jobs(orchestrator: RealOrchestrator, worker: RunningWorker) -> list[str]:
    """The job ids the orchestrator's record of `worker` lists as running (from its last heartbeat)."""
    record = orchestrator.workers().get(worker.worker_id, {})
    return list(record.get("current_tasks") or [])


def test_redis_cancel_flag_reaches_the_handler_and_the_job_stays_cancelled(
    orchestrator: RealOrchestrator, worker: RunningWorker, tmp_path: Path
) -> None:
    state_file = tmp_path / "cancel.jsonl"
    params = {"state_file": str(state_file), "check_redis": True}
    job_id = orchestrator.create_job("scenario", {"skill": "wait_for_cancel", "params": params}, **LONG_JOB)
    wait_for(lambda: bool(recorded(state_file)), 30, "the handler to start")
    task_id = recorded(state_file)[0]["task_id"]
    # The heartbeat a task's arrival triggers must be through first: its reply would otherwise carry the
    # cancellation too, and interrupt the handler before its next Redis read sees the flag.
    wait_for(lambda: job_id in running_jobs(orchestrator, worker), 30, "the heartbeat listing the job")
    assert orchestrator.cancel(job_id) == {"status": "cancellation_request_accepted"}
    wait_for(
        lambda: recorded(state_file)[-1]["event"] != "started", 30, "the handler to see the cancellation"
    )
    assert recorded(state_file)[-1] == {"event": "redis_flag", "task_id": task_id}
    orchestrator.wait_log(f"Task {task_id} for job {job_id} was cancelled by worker", "the cancelled result")
    assert orchestrator.job(job_id)["status"] == "cancelled"


def test_skeleton_long_running_task_stops_on_the_redis_flag_and_stays_cancelled(
    orchestrator: RealOrchestrator, worker: RunningWorker
) -> None:
    job_id = orchestrator.create_job("long_task", {"steps": 600, "step_seconds": 0.1})
    job = orchestrator.wait_job(job_id, lambda j: "task_picked_up_at" in j, "the worker to pick the task up")
    assert orchestrator.cancel(job_id) == {"status": "cancellation_request_accepted"}
    task_id = job["current_task_id"]
    orchestrator.wait_log(f"Task {task_id} for job {job_id} was cancelled by worker", "the cancelled result")
    assert orchestrator.job(job_id)["status"] == "cancelled"
