"""The mock dispatches and takes results like avtomatika 1.0b30 for what a worker publishes beyond skill names.

Skill pinning, input_schema checks at dispatch, resources and max_cost (dispatcher.py), result metadata,
costs and picked_up_at, the output contract (services/worker_service.py: process_task_result) and events.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from mock_support import (
    CLIENT_HEADERS,
    SKILL,
    WORKER_ID,
    FakeClock,
    heartbeat,
    mock_client,
    poll,
    post_json,
    seal,
    submit,
    worker_headers,
)

INPUT_SCHEMA = {
    "type": "object",
    "required": ["items"],
    "properties": {"items": {"type": "array", "items": {"type": "string"}}},
}
OUTPUT_SCHEMA = {"type": "object", "required": ["in_stock"]}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def join(client: TestClient, clock: FakeClock, worker_id: str = WORKER_ID, **declared: Any) -> None:
    """Register a worker whose skill entry (and record) carry `declared` (skill=..., resources=..., ...)."""
    skill = {"name": SKILL, "type": "inventory", **declared.pop("skill", {})}
    body = {
        "worker_id": worker_id,
        "worker_type": "inventory-checker",
        "supported_skills": [skill],
        **declared,
    }
    resp = await post_json(client, "/_worker/workers/register", seal(body, clock), worker_headers(worker_id))
    assert resp.status == 200, await resp.text()


async def task_view(client: TestClient, task_id: str) -> Any:
    return await (await client.get(f"/api/v1/tasks/{task_id}", headers=CLIENT_HEADERS)).json()


async def send_result(client: TestClient, clock: FakeClock, task: dict[str, Any], **fields: Any) -> Any:
    body = {"job_id": task["job_id"], "task_id": task["task_id"], "worker_id": WORKER_ID, **fields}
    resp = await post_json(client, "/_worker/tasks/result", seal(body, clock), worker_headers())
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_a_task_pinned_to_a_skill_version_reaches_only_the_worker_declaring_it(
    clock: FakeClock,
) -> None:
    async with mock_client(clock) as client:
        await join(client, clock, "old-worker", skill={"version": "1.0"})
        await join(client, clock, WORKER_ID, skill={"version": "2.0"})
        submitted = await submit(client, params={"items": ["a"]}, skill_version="2.0", skill_type="inventory")
        assert submitted["status"] == "queued"
        assert (await poll(client, "old-worker")).status == 204
        got = await poll(client)
        assert got.status == 200 and (await got.json())["job_id"] == submitted["job_id"]


async def test_a_pinned_version_no_live_worker_declares_quarantines_with_the_reason(clock: FakeClock) -> None:
    async with mock_client(clock) as client:
        await join(client, clock, skill={"version": "1.0"})
        submitted = await submit(client, skill_version="2.0")
        assert submitted["status"] == "quarantined"
        assert submitted["error_message"] == (
            f"No worker satisfies the resource requirements for task '{SKILL}'. Reasons: "
            "{" + f"'skill_contract_mismatch: {SKILL} (expected version 2.0, type None)': 1" + "}"
        )


async def test_a_pinned_task_waits_for_a_worker_and_says_why_while_none_fits(clock: FakeClock) -> None:
    async with mock_client(clock) as client:
        submitted = await submit(client, skill_type="gpu-inventory")
        assert (submitted["status"], submitted["waiting_reason"]) == ("queued", None)
        await join(client, clock)
        assert "skill_contract_mismatch" in (await task_view(client, submitted["task_id"]))["waiting_reason"]
        assert (await poll(client)).status == 204


async def test_params_breaking_the_published_input_schema_are_refused_at_dispatch(clock: FakeClock) -> None:
    async with mock_client(clock) as client:
        await join(client, clock, skill={"input_schema": INPUT_SCHEMA})
        refused = await submit(client, params={"items": [1]})
        assert refused["status"] == "quarantined"
        assert refused["error_message"].endswith(
            """Reasons: {"schema_validation_failed: Field 'items': Item at index 0: Expected string": 1}"""
        )
        missing = await submit(client, params={"count": 1})
        assert "schema_validation_failed: Missing required field: 'items'" in missing["error_message"]
        assert (await submit(client, params={"items": ["a"]}))["status"] == "queued"


async def test_a_gpu_requirement_skips_workers_without_a_matching_device(clock: FakeClock) -> None:
    gpu = {"devices": [{"type": "gpu", "model": "NVIDIA RTX 4090", "properties": {"vram_gb": 24}}]}
    wants = {"resources": {"devices": [{"type": "gpu", "model": "rtx", "properties": {"vram_gb": 16}}]}}
    async with mock_client(clock) as client:
        await join(client, clock, "cpu-worker")
        await join(client, clock, WORKER_ID, resources=gpu)
        submitted = await submit(client, resource_requirements=wants)
        assert (await poll(client, "cpu-worker")).status == 204
        assert (await poll(client)).status == 200
        too_big = {"resources": {"devices": [{"type": "gpu", "properties": {"vram_gb": 80}}]}}
        refused = await submit(client, resource_requirements=too_big)
        assert refused["error_message"].endswith(
            "Reasons: {'missing_worker_resources': 1, 'resource_mismatch': 1}"
        ), refused
        assert submitted["resource_requirements"] == wants


async def test_max_cost_skips_dearer_workers_and_refuses_when_all_are(clock: FakeClock) -> None:
    async with mock_client(clock) as client:
        await join(client, clock, "dear", capabilities={"cost_per_skill": {SKILL: 2.0}})
        await join(client, clock, WORKER_ID, capabilities={"cost_per_skill": {SKILL: 0.5}})
        await submit(client, max_cost=1)
        assert (await poll(client, "dear")).status == 204
        assert (await poll(client)).status == 200
        refused = await submit(client, max_cost=0.1)
        assert refused["error_message"] == f"No worker meets the maximum cost (0.1) for task '{SKILL}'"


async def test_a_result_s_metadata_costs_and_pickup_time_are_kept(clock: FakeClock) -> None:
    async with mock_client(clock) as client:
        await join(client, clock)
        submitted = await submit(client, metadata={"source": "test"})
        task = await (await poll(client)).json()
        event = {
            "event_id": "e1", "worker_id": WORKER_ID, "origin_worker_id": WORKER_ID, "event_type": "low_stock",
            "payload": {"item": "pear"}, "target_job_id": task["job_id"],
        }  # fmt: skip
        resp = await post_json(client, "/_worker/events", seal(event, clock), worker_headers())
        assert (await resp.json()) == {"status": "event_accepted"}
        reply = await send_result(
            client, clock, task, status="success", data={"in_stock": True},
            metadata={"model": "v2"}, costs={"cpu_seconds": 1.5}, picked_up_at=1_800_000_001.5,
        )  # fmt: skip
        assert reply == {"status": "accepted", "transition": "success_transition"}
        view = await task_view(client, submitted["task_id"])
        assert (view["metadata"], view["costs"], view["picked_up_at"]) == (
            {"source": "test", "model": "v2"},
            {"cpu_seconds": 1.5},
            1_800_000_001.5,
        )
        assert [(e["event_type"], e["payload"]) for e in view["events"]] == [("low_stock", {"item": "pear"})]


async def test_result_metadata_for_a_task_submitted_without_metadata_is_a_500_like_1_0b30(
    clock: FakeClock,
) -> None:
    async with mock_client(clock) as client:
        await join(client, clock)
        submitted = await submit(client)
        task = await (await poll(client)).json()
        body = {"job_id": task["job_id"], "task_id": task["task_id"], "worker_id": WORKER_ID}
        message = seal(body | {"metadata": {"model": "v2"}}, clock)
        resp = await post_json(client, "/_worker/tasks/result", message, worker_headers())
        assert (resp.status, await resp.json()) == (
            500,
            {"error": "'NoneType' object has no attribute 'update'"},
        )
        assert (await task_view(client, submitted["task_id"]))["status"] == "running"
        assert await send_result(client, clock, task, data={"ok": True}) == {
            "status": "accepted",
            "transition": "success_transition",
        }


async def test_a_success_breaking_the_output_schema_is_a_contract_violation(clock: FakeClock) -> None:
    async with mock_client(clock) as client:
        await join(client, clock, skill={"output_schema": OUTPUT_SCHEMA})
        submitted = await submit(client)
        task = await (await poll(client)).json()
        reply = await send_result(client, clock, task, status="success", data={"count": 3})
        assert reply == {"status": "accepted", "transition": "failure_handled"}
        view = await task_view(client, submitted["task_id"])
        assert view["status"] == "quarantined"
        assert view["error"] == {
            "code": "CONTRACT_VIOLATION_ERROR",
            "message": "Contract violation: result data does not match output_schema. "
            "Missing required field: 'in_stock'",
        }


async def test_the_worker_view_shows_everything_the_worker_declared(clock: FakeClock) -> None:
    declared = {
        "skill": {"version": "1.2", "description": "Checks stock", "output_statuses": ["out_of_stock"]},
        "hot_skills": [SKILL],
        "installed_software": {"python": "3.12"},
        "installed_artifacts": [{"name": "model", "version": "7"}],
        "capabilities": {
            "hostname": "h",
            "ip_address": "1.2.3.4",
            "cost_per_skill": {SKILL: 0.5},
            "extra": {"zone": "eu"},
        },
    }
    async with mock_client(clock) as client:
        await join(client, clock, **declared)
        (worker,) = (await (await client.get("/api/v1/workers", headers=CLIENT_HEADERS)).json())["workers"]
        assert worker["supported_skills"][0]["description"] == "Checks stock"
        assert worker["hot_skills"] == [SKILL]
        assert worker["installed_software"] == {"python": "3.12"}
        assert worker["capabilities"]["extra"] == {"zone": "eu"}


async def test_hot_skills_follow_heartbeats_like_1_0b30_and_the_sdks_withdrawal_marker(
    clock: FakeClock,
) -> None:
    async def hot_after(hot_skills: list[str]) -> Any:
        body = {"worker_id": WORKER_ID, "status": "idle", "hot_skills": hot_skills}
        resp = await heartbeat(client, WORKER_ID, seal(body, clock))
        assert resp.status == 200, await resp.text()
        (worker,) = (await (await client.get("/api/v1/workers", headers=CLIENT_HEADERS)).json())["workers"]
        return worker["hot_skills"]

    async with mock_client(clock) as client:
        await join(client, clock)
        assert await hot_after([SKILL]) == [SKILL]
        assert await hot_after([]) == [SKILL]  # an empty list leaves them unchanged
        assert await hot_after(["-"]) == []  # what the SDK sends to withdraw its last hot skill


async def test_submission_options_are_checked_with_a_fix(clock: FakeClock) -> None:
    async with mock_client(clock) as client:
        resp = await post_json(client, "/api/v1/tasks", {"type": SKILL, "max_cost": "cheap"}, CLIENT_HEADERS)
        assert resp.status == 400
        assert "field 'max_cost' = \"cheap\" is invalid: must be a number" in (await resp.json())["error"]


async def test_a_task_for_a_draining_worker_s_skill_waits_for_the_next_worker(clock: FakeClock) -> None:
    async with mock_client(clock) as client:
        await join(client, clock, skill={"input_schema": INPUT_SCHEMA})
        beat = seal({"worker_id": WORKER_ID, "status": "draining"}, clock)
        resp = await client.patch(
            f"/_worker/workers/{WORKER_ID}", data=orjson.dumps(beat), headers=worker_headers()
        )
        assert resp.status == 200, await resp.text()
        assert (await submit(client, params={"wrong": 1}))["status"] == "queued"
