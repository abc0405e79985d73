"""Custom events checked against the skill's events_schema, and `picked_up_at` in every result: against
the mock orchestrator over real loopback HTTP (through the fault proxy, which records every request)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from avtomatika_worker.events import event_problem
from avtomatika_worker.handlers import Skill
from avtomatika_worker.handover import Handover
from avtomatika_worker.runner import RECEIVED_AT, received_at

from sdk_faults import CLIENT_TOKEN, WORKER_ID, ControlClient, Fault, FaultProxy, make_worker, start_mock
from services import eventually

SendEvent = Callable[..., Awaitable[None]]
APPROVAL = {
    "type": "object",
    "properties": {"approved_by": {"type": "string"}},
    "required": ["approved_by"],
}
REVIEW = Skill("review", events_schema={"approved": APPROVAL})
Stack = tuple[ControlClient, FaultProxy, str]


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    mock, mock_url = await start_mock(poll_hold=0.3)
    proxy = FaultProxy(mock_url)
    server, proxy_url = await proxy.start()
    async with aiohttp.ClientSession(base_url=mock_url, headers={"X-Client-Token": CLIENT_TOKEN}) as session:
        yield ControlClient(session), proxy, proxy_url
    await server.close()
    await mock.close()


def test_a_payload_breaking_the_events_schema_is_named_by_event_type_field_value_and_rule() -> None:
    message = event_problem(REVIEW, "approved", {"approved_by": 5})
    assert message is not None
    assert "send_event('approved')" in message
    assert "payload.approved_by: 5 must be string" in message
    assert "fix the payload, or events_schema['approved']" in message


def test_an_event_type_the_declared_events_schema_does_not_list_is_refused_with_the_declared_ones() -> None:
    message = event_problem(REVIEW, "aproved", {"approved_by": "ann"})
    assert message is not None
    assert (
        "event type 'aproved' is not in the events_schema of skill 'review' (it lists 'approved')" in message
    )
    assert "add 'aproved' to events_schema" in message


@pytest.mark.parametrize(
    ("skill", "event_type", "payload"),
    [
        (REVIEW, "approved", {"approved_by": "ann"}),
        (REVIEW, "progress", {"progress": 0.5, "message": ""}),  # send_progress always works
        (Skill("review"), "anything", {"x": 1}),  # no events_schema: nothing to check
        (Skill("review", events_schema={}), "anything", None),  # empty: like 1.0b30 and the official SDK
    ],
)
def test_events_the_contract_allows_pass_the_check(skill: Skill, event_type: str, payload: Any) -> None:
    assert event_problem(skill, event_type, payload) is None


@pytest.mark.parametrize(
    ("event_type", "payload", "expected"),
    [
        ("", {}, "event_type must be a non-empty string"),
        ("approved", ["ann"], "payload must be a JSON object (a dict), got list"),
        ("approved", {"at": object()}, "payload cannot be sent as JSON"),
    ],
)
def test_malformed_events_are_refused_before_the_schema(event_type: str, payload: Any, expected: str) -> None:
    assert expected in (event_problem(None, event_type, payload) or "")


def review_worker(url: str, tmp_path: Path, payload: dict[str, Any]) -> Any:
    """A worker whose `review` handler sends one `approved` event and reports what send_event did."""
    worker = make_worker(url, tmp_path)

    @worker.task("review", events_schema={"approved": APPROVAL})
    async def review(params: dict[str, Any], send_event: SendEvent) -> dict[str, Any]:
        try:
            await send_event("approved", payload)
        except ValueError as exc:
            return {"data": {"refused": str(exc)}}
        return {"data": {"refused": ""}}

    return worker


async def test_a_conforming_event_reaches_the_orchestrator(stack: Stack, tmp_path: Path) -> None:
    control, proxy, url = stack
    async with review_worker(url, tmp_path, {"approved_by": "ann"}):
        done = await control.finished(await control.submit("review", {}))
    assert done["data"] == {"refused": ""}
    sent = proxy.bodies("POST", "/_worker/events")
    assert [(e["event_type"], e["payload"]) for e in sent] == [("approved", {"approved_by": "ann"})]
    assert [e["event_type"] for e in done["events"]] == ["approved"]


async def test_a_payload_breaking_the_events_schema_raises_in_the_handler_and_is_not_sent(
    stack: Stack, tmp_path: Path
) -> None:
    control, proxy, url = stack
    async with review_worker(url, tmp_path, {"approved_by": 5}):
        done = await control.finished(await control.submit("review", {}))
    refused = done["data"]["refused"]
    assert "payload.approved_by: 5 must be string" in refused and "the event was not sent" in refused
    assert proxy.bodies("POST", "/_worker/events") == []


async def test_a_sync_handler_gets_the_same_value_error(stack: Stack, tmp_path: Path) -> None:
    control, proxy, url = stack
    worker = make_worker(url, tmp_path)

    @worker.task("review", events_schema={"approved": APPROVAL})
    def review(params: dict[str, Any], send_event: Callable[..., None]) -> dict[str, Any]:
        try:
            send_event("approved", {})
        except ValueError as exc:
            return {"data": {"refused": str(exc)}}
        return {"data": {"refused": ""}}

    async with worker:
        done = await control.finished(await control.submit("review", {}))
    assert "'approved_by'" in done["data"]["refused"]
    assert proxy.bodies("POST", "/_worker/events") == []


async def test_the_result_carries_the_wall_clock_time_the_worker_received_the_task(
    stack: Stack, tmp_path: Path
) -> None:
    control, proxy, url = stack
    before = time.time()
    async with make_worker(url, tmp_path):
        done = await control.finished(await control.submit("check_inventory", {"items": ["a"]}))
    (result,) = proxy.bodies("POST", "/tasks/result")
    assert before - 1 <= result["picked_up_at"] <= time.time()
    assert done["picked_up_at"] == result["picked_up_at"]  # the mock keeps it on the task


async def test_a_spooled_result_is_resent_with_its_first_picked_up_at(stack: Stack, tmp_path: Path) -> None:
    control, proxy, url = stack
    proxy.faults.append(Fault("POST", "/tasks/result", count=2))
    async with make_worker(url, tmp_path):
        done = await control.finished(await control.submit("check_inventory", {"items": ["a"]}))
    sends = proxy.bodies("POST", "/tasks/result")
    assert proxy.statuses("POST", "/tasks/result") == [503, 503, 200]
    assert len({body["picked_up_at"] for body in sends}) == 1
    assert done["picked_up_at"] == sends[0]["picked_up_at"]


async def test_a_task_handed_over_by_a_stopped_process_keeps_its_first_picked_up_at(
    stack: Stack, tmp_path: Path
) -> None:
    _, proxy, url = stack
    worker = make_worker(url, tmp_path)
    first_received = round(time.time() - 30, 3)
    task = {"job_id": "job-h", "task_id": "task-h", "type": "check_inventory", "params": {"items": []}}
    Handover(Path(worker.config.spool_path), WORKER_ID).save_tasks([{**task, RECEIVED_AT: first_received}])
    async with worker:
        await eventually(
            lambda: bool(proxy.bodies("POST", "/tasks/result")), what="the resumed task's result"
        )
    (result,) = proxy.bodies("POST", "/tasks/result")
    assert (result["task_id"], result["picked_up_at"]) == ("task-h", first_received)


def test_a_task_without_a_receipt_time_is_stamped_now() -> None:
    now = time.time()
    assert now - 1 <= received_at({"task_id": "t"}) <= now + 1
    assert received_at({RECEIVED_AT: 1_800_000_000.5}) == 1_800_000_000.5
    assert now - 1 <= received_at({RECEIVED_AT: "yesterday"}) <= now + 1


async def test_send_event_takes_the_official_priority_and_metadata_keywords_and_checks_them() -> None:
    from avtomatika_worker import Worker
    from avtomatika_worker.testing import TaskRun

    events_worker = Worker("events-test")

    @events_worker.task("notify")
    async def notify(params: dict[str, Any], send_event: Any) -> dict[str, Any]:
        await send_event("ready", {"n": 1}, priority=2.0, metadata={"source": "ocr"})
        if params.get("bad"):
            await send_event("ready", {}, metadata="not an object")
        return {"status": "success"}

    run = TaskRun(events_worker, "notify")
    assert (await run({}))["status"] == "success"
    assert run.events == [("ready", {"n": 1})]
    failed = await TaskRun(events_worker, "notify")({"bad": True})
    assert "metadata='not an object' must be a JSON object" in failed["error"]["message"]


async def test_priority_and_metadata_of_an_event_reach_the_orchestrator(stack: Stack, tmp_path: Path) -> None:
    control, proxy, url = stack
    worker = make_worker(url, tmp_path)

    @worker.task("notify")
    async def notify(params: dict[str, Any], send_event: SendEvent) -> dict[str, Any]:
        await send_event("ready", {"n": 1}, priority=2.0, metadata={"source": "ocr"})
        return {"status": "success"}

    async with worker:
        await control.finished(await control.submit("notify", {}))
    (sent,) = proxy.bodies("POST", "/_worker/events")
    assert (sent["priority"], sent["metadata"]) == (2.0, {"source": "ocr"})
