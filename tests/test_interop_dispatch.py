"""Interop: what the REAL orchestrator's dispatcher does with our resources, costs and hot skills.

Each test gives its workers a skill of its own (DISPATCH_SKILL), so workers of other tests never compete.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from interop.real import TERMINAL, RealOrchestrator, RunningWorker, baked_worker, real_orchestrator
from processes import wait_for

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="needs a machine without GPUs"),
]

DISPATCH_WORKER = Path(__file__).parent / "interop" / "dispatch_worker.py"
CAPACITY_WORKER = Path(__file__).parent / "interop" / "capacity_worker.py"
GPU = {"resources": {"devices": [{"type": "gpu"}]}}


@pytest.fixture(scope="module")
def orchestrator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealOrchestrator]:
    with real_orchestrator(tmp_path_factory.mktemp("orchestrator-dispatch")) as orch:
        yield orch


class Workers:
    """Start dispatch workers with a skill and environment of their own."""

    def __init__(self, orchestrator: RealOrchestrator, project: Path, stack: ExitStack) -> None:
        self.orchestrator, self.project, self.stack = orchestrator, project, stack

    def start(self, name: str, skill: str, **env: str) -> RunningWorker:
        worker_id = f"{name}-{os.getpid()}"
        return self.stack.enter_context(
            baked_worker(
                self.orchestrator, self.project, worker_id, script=DISPATCH_WORKER,
                env={"DISPATCH_SKILL": skill, **env},
            )
        )  # fmt: skip


@pytest.fixture
def workers(orchestrator: RealOrchestrator, project: Path) -> Iterator[Workers]:
    with ExitStack() as stack:
        yield Workers(orchestrator, project, stack)


def run(orchestrator: RealOrchestrator, skill: str, **data: Any) -> dict[str, Any]:
    """Run one dispatch job to a terminal status."""
    return orchestrator.run_job("dispatch", {"skill": skill, **data}, timeout=60)


def ran_on(job: dict[str, Any]) -> str:
    assert job["status"] == "finished", job
    return str(job["state_history"]["ran_on"])


def assert_not_dispatched(job: dict[str, Any], reason: str) -> None:
    assert job["status"] != "finished", job
    assert reason in json.dumps(job), job


def test_a_task_requiring_a_gpu_goes_only_to_the_worker_declaring_one(
    orchestrator: RealOrchestrator, workers: Workers
) -> None:
    skill = "gpu_probe"
    gpu = workers.start("dispatch-gpu", skill, GPU_MODEL="NVIDIA A100-SXM4-40GB", GPU_VRAM_GB="40")
    plain = workers.start("dispatch-cpu", skill)
    assert {ran_on(run(orchestrator, skill, resource_requirements=GPU)) for _ in range(4)} == {gpu.worker_id}
    big = {"resources": {"devices": [{"type": "gpu", "properties": {"memory_gb": 80}}]}}
    assert_not_dispatched(run(orchestrator, skill, resource_requirements=big), "resource_mismatch")
    assert orchestrator.workers()[plain.worker_id]["resources"]["properties"]["cpu_cores"] >= 1


def test_a_task_requiring_a_gpu_is_not_dispatched_to_a_worker_without_one(
    orchestrator: RealOrchestrator, workers: Workers
) -> None:
    skill = "gpu_probe_alone"
    plain = workers.start("dispatch-cpu-alone", skill)
    assert_not_dispatched(run(orchestrator, skill, resource_requirements=GPU), "resource_mismatch")
    assert ran_on(run(orchestrator, skill)) == plain.worker_id


def test_max_cost_dispatches_exactly_when_the_declared_cost_is_within_it(
    orchestrator: RealOrchestrator, workers: Workers
) -> None:
    skill = "cost_probe"
    worker = workers.start("dispatch-cost", skill, COST_PER_SKILL=json.dumps({skill: 5}))
    assert orchestrator.workers()[worker.worker_id]["capabilities"]["cost_per_skill"] == {skill: 5.0}
    assert ran_on(run(orchestrator, skill, max_cost=5)) == worker.worker_id
    assert_not_dispatched(run(orchestrator, skill, max_cost=4.99), "maximum cost")


def test_max_cost_never_dispatches_to_a_worker_declaring_no_cost(
    orchestrator: RealOrchestrator, workers: Workers
) -> None:
    skill = "no_cost_probe"
    worker = workers.start("dispatch-no-cost", skill)
    assert_not_dispatched(run(orchestrator, skill, max_cost=1_000_000), "maximum cost")
    assert ran_on(run(orchestrator, skill)) == worker.worker_id


def hot_skills(orchestrator: RealOrchestrator, worker: RunningWorker) -> list[str]:
    return list(orchestrator.workers().get(worker.worker_id, {}).get("hot_skills") or [])


def test_the_default_dispatch_prefers_the_hot_worker_over_a_cheaper_one_until_it_withdraws(
    orchestrator: RealOrchestrator, workers: Workers
) -> None:
    skill = "hot_probe"
    hot = workers.start("dispatch-hot", skill, COST_PER_SKILL=json.dumps({skill: 2}))
    assert ran_on(run(orchestrator, skill, params={"hot": True})) == hot.worker_id
    wait_for(lambda: hot_skills(orchestrator, hot) == [skill], 20, "the hot skill in the worker record")
    cheap = workers.start("dispatch-cheap", skill, COST_PER_SKILL=json.dumps({skill: 1}))
    assert {ran_on(run(orchestrator, skill)) for _ in range(4)} == {hot.worker_id}

    assert ran_on(run(orchestrator, skill, params={"hot": False})) == hot.worker_id
    wait_for(lambda: skill not in hot_skills(orchestrator, hot), 20, "the hot skill withdrawn")
    # Dispatch reads worker records through a 2 s cache (Dispatcher._get_workers_cached).
    wait_for(lambda: ran_on(run(orchestrator, skill)) == cheap.worker_id, 20, "a task on the cheaper worker")
    assert {ran_on(run(orchestrator, skill)) for _ in range(3)} == {cheap.worker_id}


def test_a_task_the_capacity_checker_refuses_waits_on_an_idle_worker_and_runs_once_allowed(
    orchestrator: RealOrchestrator, project: Path, tmp_path: Path
) -> None:
    flag = tmp_path / "capacity"
    env = {"DISPATCH_SKILL": "capacity_probe", "CAPACITY_FLAG": str(flag)}
    with baked_worker(
        orchestrator, project, f"capacity-{os.getpid()}", script=CAPACITY_WORKER, env=env
    ) as worker:
        first = orchestrator.create_job("dispatch", {"skill": "capacity_probe"})
        wait_for(lambda: "capacity_checker refuses" in worker.tail(), 30, "the checker's refusal")
        # The worker stays idle while the task waits in it, so a job created now is queued for it, not
        # quarantined ("No suitable workers"), and waits its turn too.
        assert orchestrator.workers()[worker.worker_id]["status"] == "idle"
        second = orchestrator.create_job("dispatch", {"skill": "capacity_probe"})
        assert orchestrator.job(first)["status"] not in TERMINAL
        assert orchestrator.job(second)["status"] not in TERMINAL
        flag.touch()
        for job_id in (first, second):
            job = orchestrator.wait_job(job_id, lambda j: j.get("status") in TERMINAL, "its end")
            assert job["status"] == "finished", job
