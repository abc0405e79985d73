"""Interop: custom events against the REAL orchestrator (`event_transitions`, events_schema) and what
1.0b30 does with the `picked_up_at` every result of ours carries."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from interop.real import (
    TERMINAL,
    WORKER_TOKEN,
    RealOrchestrator,
    RunningWorker,
    baked_worker,
    real_orchestrator,
    recorded,
)
from interop.wire import WireClient, seal
from processes import wait_for

pytestmark = pytest.mark.interop

EVENTS_WORKER = Path(__file__).parent / "interop" / "events_worker.py"


@pytest.fixture(scope="module")
def orchestrator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealOrchestrator]:
    with real_orchestrator(tmp_path_factory.mktemp("orchestrator-events")) as orch:
        yield orch


@pytest.fixture(scope="module")
def worker(orchestrator: RealOrchestrator, project: Path) -> Iterator[RunningWorker]:
    with baked_worker(orchestrator, project, f"interop-events-{os.getpid()}", script=EVENTS_WORKER) as w:
        yield w


def test_an_event_mapped_in_event_transitions_moves_the_job_while_the_handler_still_runs(
    orchestrator: RealOrchestrator, worker: RunningWorker, tmp_path: Path
) -> None:
    state_file, release = tmp_path / "approve.jsonl", tmp_path / "release"
    params = {"approved_by": "ann", "state_file": str(state_file), "release": str(release)}
    job_id = orchestrator.create_job("interop_events", {"params": params})
    job = orchestrator.wait_job(
        job_id,
        lambda j: j.get("current_state") == "approved" and j.get("status") in TERMINAL,
        f"the event to move the job to `approved`\n{worker.tail()}",
    )
    assert [r["event"] for r in recorded(state_file)] == ["sent"]  # the handler is still holding
    assert job["state_history"]["approved_by"] == "ann"  # the event's payload
    release.touch()
    wait_for(lambda: recorded(state_file)[-1]["event"] == "returned", 30, "the handler to return")
    orchestrator.wait_log(f"Received STALE result for job {job_id}", "the handler's result, now stale")
    job = orchestrator.job(job_id)
    assert job["current_state"] == "approved" and "via" not in job["state_history"], job
    assert worker.alive(), worker.tail()


def test_a_payload_breaking_the_events_schema_raises_in_the_handler_and_the_job_does_not_move(
    orchestrator: RealOrchestrator, worker: RunningWorker, tmp_path: Path
) -> None:
    state_file = tmp_path / "approve.jsonl"
    params = {"approved_by": 5, "state_file": str(state_file), "release": str(tmp_path / "release")}
    job = orchestrator.run_job("interop_events", {"params": params})
    (record,) = recorded(state_file)
    assert record["event"] == "refused", record
    assert "send_event('approved'): payload.approved_by: 5 must be string" in record["message"]
    # Moved by the result's `success` transition, never by the event: it was not sent.
    assert (job["status"], job["current_state"]) == ("finished", "finished"), job
    assert "approved_by" not in job["state_history"], job["state_history"]


def test_the_picked_up_at_in_our_result_is_accepted_but_1_0b30_keeps_its_own_monotonic_pick_up_time(
    orchestrator: RealOrchestrator, worker: RunningWorker
) -> None:
    job = orchestrator.run_job("inventory", {"items": ["pear"]})
    # The result carried picked_up_at (wall clock, ~1.8e9) under the signature: accepted, the job finished.
    assert job["status"] == "finished", (job, worker.tail())
    # rxon's TaskResult has no such field, so process_task_result drops it before it would store it
    # (services/worker_service.py l. 333-337, 424-431): the record keeps the pick-up path's monotonic().
    picked_up = job["task_picked_up_at"]
    assert isinstance(picked_up, float) and picked_up < 1_000_000_000, picked_up


@pytest.mark.asyncio
async def test_an_event_sent_as_a_websocket_frame_moves_the_job_too_but_a_refusal_is_only_logged(
    orchestrator: RealOrchestrator,
) -> None:
    """Why our worker sends events over HTTP only (events.py): the frame has the HTTP event's effect, but
    1.0b30 answers nothing on the WebSocket (engine.py handle_rxon_message, "websocket")."""
    skill = f"approve_over_websocket_{os.getpid()}"
    async with aiohttp.ClientSession() as http:
        wire = WireClient(http, orchestrator.base_url, f"wire-events-{os.getpid()}", WORKER_TOKEN)
        assert (await wire.register([skill])).status == 200
        job_id = orchestrator.create_job("interop_events", {"skill": skill})
        task = (await wire.poll()).body
        assert task["job_id"] == job_id, task
        event: dict[str, Any] = {
            "event_id": "",
            "worker_id": wire.worker_id,
            "origin_worker_id": wire.worker_id,
        }
        event |= {"target_job_id": job_id, "target_task_id": task["task_id"]}
        refused = {**event, "event_id": "refused-over-http", "event_type": "approved", "payload": ["x"]}
        http_reply = await wire.post_signed("POST", "/_worker/events", refused)
        assert http_reply.pair()[1]["status"] == "error", http_reply  # over HTTP the worker is told
        ws = await wire.websocket()
        try:
            # A payload that is a string, not a list: its log line tells the two refusals apart.
            frame = {**refused, "event_id": "refused-over-websocket", "payload": "x"}
            await ws.send_str(orjson.dumps(seal(frame, WORKER_TOKEN, wire.worker_id)).decode())
            good: dict[str, Any] = {**event, "event_id": "approved-over-websocket", "event_type": "approved"}
            good["payload"] = {"approved_by": "websocket"}
            await ws.send_str(orjson.dumps(seal(good, WORKER_TOKEN, wire.worker_id)).decode())
            job = orchestrator.wait_job(
                job_id, lambda j: j.get("current_state") == "approved", "the WebSocket event to move the job"
            )
            assert job["state_history"]["approved_by"] == "websocket"
            # The frames are handled in order: the refusal was settled before the job moved, and nothing
            # came back for it (a short bounded read, not a wait for a condition).
            with pytest.raises(TimeoutError):
                await ws.receive(timeout=0.3)
        finally:
            await ws.close()
    orchestrator.wait_log("Expected `object`, got `str` - at `$.payload`", "the WebSocket refusal in the log")
