"""Interop soak: a baked worker under the REAL orchestrator's rate limiting, scaled down so that days of
its default settings pass in a minute (a 5 s period instead of 60 s, 8 polls and 8 heartbeats per period).

avtomatika 1.0b30 counts every request of a type, refused ones too, and resets the counter only after a
whole period without one: a worker that never pauses is locked out for good. This one must never be
forgotten, never be refused when it knows the limits, recover when it does not, and finish every job.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Self

import pytest

from interop.real import (
    SCENARIO_WORKER,
    TERMINAL,
    RealOrchestrator,
    RunningWorker,
    baked_worker,
    real_orchestrator,
)
from processes import wait_for

pytestmark = pytest.mark.interop

SCALED_LIMITS = {
    "RATE_LIMITING_ENABLED": "true",
    "RATE_LIMIT_PERIOD": "5",
    "RATE_LIMIT_POLL_LIMIT": "8",
    "RATE_LIMIT_HEARTBEAT_LIMIT": "8",
    # Also the client API's limit per address and path: high, so the test's own calls are never refused.
    "RATE_LIMIT_LIMIT": "1000",
    "WORKER_POLL_TIMEOUT_SECONDS": "1",  # idle polls come back every second: the poll limit bites early
    "WORKER_HEALTH_CHECK_INTERVAL_SECONDS": "5",  # a worker is forgotten 10 s after its last heartbeat
}
WORKER_ENV = {"WORKER_HEARTBEAT_INTERVAL": "1"}
REFUSED = re.compile(r'"[A-Z]+ /_worker/\S+ HTTP/1\.1" 429 ')


@pytest.fixture
def orchestrator(tmp_path: Path) -> Iterator[RealOrchestrator]:
    with real_orchestrator(tmp_path / "orchestrator", env=SCALED_LIMITS) as orch:
        yield orch


class Watch:
    """Samples the orchestrator's worker list in the background: was the worker ever missing?"""

    def __init__(self, orchestrator: RealOrchestrator, worker_id: str) -> None:
        self.orchestrator, self.worker_id = orchestrator, worker_id
        self.samples = self.missing = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            self.samples += 1
            if self.worker_id not in self.orchestrator.workers():
                self.missing += 1

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def idle_for(worker: RunningWorker, polls: int) -> None:
    """Let the idle worker go through `polls` more empty polls (each held 1 s by the orchestrator)."""
    pacing = worker.tail().count("pacing poll requests")
    wait_for(lambda: worker.tail().count("pacing poll requests") >= pacing + polls // 8, 60, "idle windows")


def run_jobs(orchestrator: RealOrchestrator, count: int, timeout: float) -> list[str]:
    """Create `count` short jobs at once; the status of each once all are terminal."""
    job_ids = [
        orchestrator.create_job("scenario", {"skill": "sleep_for", "params": {"seconds": 0.05}})
        for _ in range(count)
    ]
    statuses: dict[str, str] = {}

    def done() -> bool:
        for job_id in job_ids:
            if statuses.get(job_id) not in TERMINAL:
                statuses[job_id] = orchestrator.job(job_id).get("status", "")
        return all(status in TERMINAL for status in statuses.values())

    wait_for(done, timeout, f"{count} jobs to end", pause=0.5)
    return [statuses[job_id] for job_id in job_ids]


def refusals(orchestrator: RealOrchestrator) -> int:
    """How many worker requests the orchestrator answered with 429 (its access log)."""
    return len(REFUSED.findall(orchestrator.log.read_text(errors="replace")))


def test_idle_then_busy_then_idle_under_scaled_limits_never_refused_never_forgotten(
    orchestrator: RealOrchestrator, project: Path
) -> None:
    with (
        baked_worker(orchestrator, project, "soak", script=SCENARIO_WORKER, env=WORKER_ENV) as worker,
        Watch(orchestrator, worker.worker_id) as watch,
    ):
        idle_for(worker, polls=16)  # two full poll windows, idle
        statuses = run_jobs(orchestrator, 24, timeout=90)
        idle_for(worker, polls=8)
    assert statuses == ["finished"] * 24, worker.tail()
    assert refusals(orchestrator) == 0, worker.tail()
    assert watch.samples > 40 and watch.missing == 0, (watch.samples, watch.missing)
    assert "pacing heartbeat requests" in worker.tail()  # heartbeats paced too, and never refused


def test_a_worker_that_overestimates_the_limits_is_refused_once_per_window_and_recovers(
    orchestrator: RealOrchestrator, project: Path
) -> None:
    # It believes 100 polls and heartbeats per period: after each 429 it stays silent for a whole period.
    wrong = {**WORKER_ENV, "WORKER_RATE_LIMITS": "poll=100,heartbeat=100,other=1000,period=5"}
    with (
        baked_worker(orchestrator, project, "optimist", script=SCENARIO_WORKER, env=wrong) as worker,
        Watch(orchestrator, worker.worker_id) as watch,
    ):
        statuses = run_jobs(orchestrator, 24, timeout=90)
    assert statuses == ["finished"] * 24, worker.tail()
    refused = refusals(orchestrator)
    assert 1 <= refused <= 12, refused  # each refusal silences its type for a whole period: no storm
    assert watch.missing == 0, (watch.samples, watch.missing)
    assert "refused a poll request with 429" in worker.tail()
