"""Interop: when the REAL orchestrator answers very slowly (a stall on every request, behind a proxy), the
worker says so in its log, naming the request and how long it has waited, and its liveness file turns
`unreachable` once nothing has succeeded for two heartbeat intervals; when the stall ends it recovers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from interop.real import SCENARIO_WORKER, RealOrchestrator, baked_worker, real_orchestrator
from interop.stall_proxy import stall_proxy
from processes import wait_for

pytestmark = pytest.mark.interop

STALL = 8.0  # seconds every request waits while the orchestrator is "stalled"


@pytest.fixture
def orchestrator(tmp_path: Path) -> Iterator[RealOrchestrator]:
    with real_orchestrator(tmp_path / "orchestrator", env={"WORKER_POLL_TIMEOUT_SECONDS": "1"}) as orch:
        yield orch


def test_a_stalled_orchestrator_is_named_in_the_log_and_turns_liveness_unreachable(
    orchestrator: RealOrchestrator, project: Path
) -> None:
    with stall_proxy(orchestrator.base_url) as proxy:
        slow = RealOrchestrator(
            proxy.url, orchestrator.redis_url, orchestrator.log, orchestrator.worker_rate_limits
        )
        env = {"WORKER_HEARTBEAT_INTERVAL": "1"}
        with baked_worker(slow, project, "slow", script=SCENARIO_WORKER, env=env) as worker:
            health = project.parent / "health-slow.json"
            status = lambda: json.loads(health.read_text())["status"]
            wait_for(lambda: health.exists() and status() == "ok", 10, "the liveness file")
            proxy.stall = STALL
            wait_for(lambda: status() == "unreachable", 10, f"liveness to turn unreachable\n{worker.tail()}")
            line = "still waiting for the orchestrator's reply to PATCH /_worker/workers/slow after 5 s"
            wait_for(lambda: line in worker.tail(), 10, f"the stall warning\n{worker.tail()}")
            proxy.stall = 0
            wait_for(lambda: status() == "ok", 20, f"liveness to recover\n{worker.tail()}")
            job = orchestrator.run_job("inventory", {"items": ["apple"]}, timeout=30)
    assert job["status"] == "finished", (job, worker.tail())
    assert "the orchestrator answered PATCH /_worker/workers/slow after 8" in worker.tail()
