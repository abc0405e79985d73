"""Interop: two REAL orchestrator instances on one Redis (INSTANCE_ID), one killed mid-run.

avtomatika instances that share a Redis share the worker's registration, task queue, job state and
cancel flags, so the worker may talk to either (endpoints.py). The failover time measured here is the
gap between the kill and the next handler start; it is written to the test's log, not asserted.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from interop.real import (
    SCENARIO_WORKER,
    TERMINAL,
    RealOrchestrator,
    baked_worker,
    real_orchestrator,
    recorded,
)
from processes import redis_server, wait_for

pytestmark = pytest.mark.interop

JOBS_PER_INSTANCE = 20


def instance_pid(instance_id: str) -> int:
    """The pid of the orchestrator process started with INSTANCE_ID=`instance_id`."""
    marker = f"INSTANCE_ID={instance_id}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker in environ and b"app.py" in cmdline:
            return int(entry.name)
    raise AssertionError(f"no orchestrator process with {marker!r}")


def test_every_job_finishes_when_one_of_two_instances_dies_and_a_cancel_crosses_instances(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = [f"inst-a-{os.getpid()}", f"inst-b-{os.getpid()}"]
    with redis_server() as shared:
        env = [{"REDIS_URL": shared, "INSTANCE_ID": i, "WORKER_TIMEOUT_SECONDS": "300"} for i in ids]
        with (
            real_orchestrator(tmp_path / "a", env=env[0]) as a,
            real_orchestrator(tmp_path / "b", env=env[1]) as b,
        ):
            endpoints = [{"url": a.base_url, "priority": 1}, {"url": b.base_url, "priority": 2}]
            worker_env = {"ORCHESTRATORS_CONFIG": json.dumps(endpoints), "REDIS_URL": shared}
            worker_id = f"instances-{os.getpid()}"
            with baked_worker(a, project, worker_id, script=SCENARIO_WORKER, env=worker_env) as worker:
                cancel_latency = cancel_through_the_other_instance(a, b, tmp_path / "cancel.jsonl")
                failover = kill_one_instance_mid_run(a, b, ids[0], tmp_path / "starts.jsonl")
                log = worker.log.read_text()
    # It used A (priority 1) until A died, then B.
    assert f"orchestrator {a.base_url} failed" in log
    assert f"talking to orchestrator {b.base_url} now" in log
    with capsys.disabled():
        print(f"\n[instances] cancel via the other instance -> handler: {cancel_latency:.2f} s (Redis flag)")
        print(f"[instances] instance killed -> next handler start: {failover:.2f} s")


def cancel_through_the_other_instance(a: RealOrchestrator, b: RealOrchestrator, state: Path) -> float:
    """A job dispatched through A, cancelled through B: only the Redis flag can reach the handler."""
    params = {"state_file": str(state), "check_redis": True}
    job_id = a.create_job("scenario", {"skill": "wait_for_cancel", "params": params})
    wait_for(lambda: any(r["event"] == "started" for r in recorded(state)), 30, "the cancellable task")
    cancelled_at = time.time()
    b.cancel(job_id)
    wait_for(lambda: any(r["event"] == "redis_flag" for r in recorded(state)), 30, "the handler to see it")
    latency = time.time() - cancelled_at
    job = b.wait_job(job_id, lambda j: j.get("status") in TERMINAL, "the cancelled job's end")
    assert job["status"] == "cancelled", job
    return latency


def kill_one_instance_mid_run(a: RealOrchestrator, b: RealOrchestrator, a_id: str, state: Path) -> float:
    """Jobs through both instances; SIGKILL A after a few; every job must finish (read through B)."""
    params = {"state_file": str(state), "seconds": 0.2}
    jobs = [
        instance.create_job("scenario", {"skill": "timed_sleep", "params": params})
        for _ in range(JOBS_PER_INSTANCE)
        for instance in (a, b)
    ]
    wait_for(lambda: len(recorded(state)) >= 6, 60, "the first tasks")
    os.kill(instance_pid(a_id), signal.SIGKILL)
    killed_at = time.time()
    # Jobs A's executor had claimed from the job stream wait for 1.0b30's reclaim (min idle 60 s).
    for job_id in jobs:
        job = b.wait_job(job_id, lambda j: j.get("status") in TERMINAL, "its end through B", timeout=180)
        assert job["status"] == "finished", job
    starts = sorted(r["at"] for r in recorded(state))
    return min(t for t in starts if t > killed_at) - killed_at
