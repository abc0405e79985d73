"""Interop: typed handler params and published schemas against the REAL orchestrator (avtomatika, pinned)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from interop.real import TERMINAL, RealOrchestrator, RunningWorker, baked_worker, real_orchestrator

pytestmark = pytest.mark.interop

SCHEMA_WORKER = Path(__file__).parent / "interop" / "schema_worker.py"
ORDER = {"customer": "ada", "lines": [{"sku": "apple", "qty": 2}, {"sku": "pear"}], "speed": "express"}
BAD_ORDER = {"customer": "ada", "lines": [{"sku": "apple", "qty": "two"}]}


@pytest.fixture(scope="module")
def orchestrator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealOrchestrator]:
    with real_orchestrator(tmp_path_factory.mktemp("orchestrator")) as orch:
        yield orch


@pytest.fixture(scope="module")
def worker(orchestrator: RealOrchestrator, project: Path) -> Iterator[RunningWorker]:
    with baked_worker(orchestrator, project, f"schemas-{os.getpid()}", script=SCHEMA_WORKER) as running:
        yield running


def skill(orchestrator: RealOrchestrator, worker: RunningWorker, name: str) -> dict:
    """The skill as the orchestrator stored it from the worker's registration."""
    skills = orchestrator.workers()[worker.worker_id]["supported_skills"]
    return next(s for s in skills if s["name"] == name)


def test_typed_params_publish_an_inferred_schema_and_reach_the_handler_as_objects(
    orchestrator: RealOrchestrator, worker: RunningWorker
) -> None:
    schema = skill(orchestrator, worker, "typed_order")["input_schema"]
    assert schema["required"] == ["customer", "lines"]
    assert schema["properties"]["speed"] == {"enum": ["standard", "express"], "type": "string"}
    job = orchestrator.run_job("scenario", {"skill": "typed_order", "params": ORDER})
    assert job["status"] == "finished", job
    seen = job["state_history"]
    assert seen["received_type"] == "Order" and seen["line_types"] == ["Line", "Line"]
    assert seen["units"] == 3 and seen["speed"] == "express"


def test_skill_properties_and_schema_dialect_are_kept_in_the_worker_record(
    orchestrator: RealOrchestrator, worker: RunningWorker
) -> None:
    published = skill(orchestrator, worker, "with_metadata")
    assert published["properties"] == {"model": "v7", "max_mb": 64}
    assert published["schema_dialect"] == "json-schema"


def test_params_breaking_a_published_schema_are_refused_at_dispatch(
    orchestrator: RealOrchestrator, worker: RunningWorker
) -> None:
    # 1.0b30 (dispatcher.py _check_worker_compliance) finds no compliant worker, retries the dispatch
    # JOB_MAX_RETRIES times, then quarantines the job: no task reaches the worker.
    job = orchestrator.run_job("scenario", {"skill": "typed_order", "params": BAD_ORDER}, timeout=60)
    assert job["status"] == "quarantined", job
    assert "schema_validation_failed" in job["error_message"], job
    assert "qty" in job["error_message"], job


def test_empty_params_skip_the_dispatch_check_and_are_refused_by_the_worker(
    orchestrator: RealOrchestrator, worker: RunningWorker
) -> None:
    # 1.0b30 checks params against input_schema only when they are non-empty.
    job = orchestrator.run_job("scenario", {"skill": "typed_order", "params": {}})
    assert job["status"] == "failed", job
    assert "invalid input" in job["error_message"], job
    assert (
        "handler 'typed_order' refused its params: params: missing required field(s)" in job["error_message"]
    )


def test_an_unpublished_schema_is_checked_by_the_worker_only(
    orchestrator: RealOrchestrator, worker: RunningWorker
) -> None:
    assert "input_schema" not in skill(orchestrator, worker, "unpublished_order")
    job = orchestrator.run_job("scenario", {"skill": "unpublished_order", "params": BAD_ORDER})
    assert job["status"] == "failed", job  # INVALID_INPUT_ERROR fails the job (no quarantine, no penalty)
    assert "params.lines[0].qty: 'two' must be integer" in job["error_message"], job
    done = orchestrator.run_job("scenario", {"skill": "unpublished_order", "params": ORDER})
    assert done["status"] == "finished" and done["state_history"]["units"] == 3, done


def test_data_breaking_the_output_schema_fails_with_the_workers_message_not_a_contract_violation(
    orchestrator: RealOrchestrator, worker: RunningWorker
) -> None:
    assert skill(orchestrator, worker, "broken_output")["output_schema"]["required"] == ["total"]
    job = orchestrator.run_job("scenario", {"skill": "broken_output", "params": {}})
    assert job["status"] == "quarantined", job  # PERMANENT_ERROR, as 1.0b30 treats it
    message = job["error_message"]
    assert "(PERMANENT_ERROR): handler 'broken_output' returned data that breaks its output schema" in message
    assert "data.total: 'a lot' must be integer" in message
    assert "Contract violation" not in orchestrator.log.read_text(errors="replace")


def test_result_metadata_merges_into_the_jobs_and_costs_are_accepted(
    orchestrator: RealOrchestrator, worker: RunningWorker
) -> None:
    job_id = orchestrator.create_job(
        "scenario", {"skill": "with_metadata", "params": {}}, metadata={"team": "a"}
    )
    job = orchestrator.wait_job(job_id, lambda j: j.get("status") in TERMINAL, "a terminal status")
    # 1.0b30 merges a result's metadata into the job's; it accepts `costs` but stores them only in
    # its history (HISTORY_DATABASE_URI), which the pinned install cannot enable (no aiosqlite).
    assert job["status"] == "finished", job
    assert job["metadata"] == {"team": "a", "model_version": "v7"}, job
    assert job["state_history"] == {"done": True}


def test_result_metadata_for_a_job_without_metadata_is_dropped_not_retried_forever(
    orchestrator: RealOrchestrator, worker: RunningWorker
) -> None:
    # 1.0b30 answers HTTP 500 to result metadata when the job was created without metadata
    # (worker_service.py: job_state.setdefault("metadata", {}) finds None): the worker leaves it out.
    job = orchestrator.run_job("scenario", {"skill": "with_metadata", "params": {}})
    assert job["status"] == "finished", job
    assert not job.get("metadata"), job
    assert "result metadata dropped: the job has no metadata" in worker.log.read_text(errors="replace")
