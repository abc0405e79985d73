"""Cancellation at the mock, as avtomatika 1.0b30 does it: the cancel endpoint, the Redis flag, the
WebSocket command channel, heartbeat ``cancel_task_ids`` and what late results do to a cancelled task."""

from __future__ import annotations

import logging
import socket
from typing import Any

import aiohttp
import orjson
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient

from mock_support import (
    WORKER_ID,
    FakeClock,
    cancel,
    eventually,
    fail,
    heartbeat,
    mock_client,
    poll,
    progress_event,
    register,
    result_reply,
    seal,
    submit,
    take,
    task_view,
    worker_headers,
    worker_view,
    workers_view,
)


async def running_task(client: TestClient, clock: FakeClock) -> tuple[dict[str, Any], dict[str, Any]]:
    """Register, submit and take one task: (control-API view at submit, task payload)."""
    await register(client, clock)
    submitted = await submit(client)
    return submitted, await take(client)


async def enable_websocket_commands(client: TestClient, clock: FakeClock, worker_id: str = WORKER_ID) -> None:
    """The signed heartbeat that gives a record the top-level capabilities.websockets: avtomatika 1.0b30
    sends cancel_task only then (engine.py: cancel_job), and only a heartbeat's top-level merge sets it."""
    capabilities = {"hostname": "test", "ip_address": "127.0.0.1", "websockets": True}
    body = seal({"worker_id": worker_id, "status": "idle", "capabilities": capabilities}, clock)
    assert await (await heartbeat(client, worker_id, body)).json() == {"status": "ok"}


async def open_channel(client: TestClient, worker_id: str = WORKER_ID) -> aiohttp.ClientWebSocketResponse:
    ws = await client.ws_connect(f"/_worker/ws/{worker_id}", headers=worker_headers(worker_id))

    async def channel_open() -> bool:
        return bool((await worker_view(client, worker_id))["websocket_connected"])

    await eventually(client, channel_open)
    return ws


# --- the cancel endpoint ---------------------------------------------------------------------


async def test_cancel_of_a_running_task_is_accepted_and_marks_it_cancelled(
    client: TestClient, clock: FakeClock
) -> None:
    submitted, _ = await running_task(client, clock)
    resp = await cancel(client, submitted["task_id"])
    assert (resp.status, await resp.json()) == (200, {"status": "cancellation_request_accepted"})
    view = await task_view(client, submitted["task_id"])
    assert (view["status"], view["finished_at"]) == ("cancelled", clock.now)


async def test_cancel_of_an_unknown_task_is_404(client: TestClient) -> None:
    resp = await cancel(client, "task-nope")
    assert (resp.status, await resp.json()) == (404, {"error": "Job not found"})


@pytest.mark.parametrize("first", ["cancel", "success"])
async def test_cancel_of_a_terminal_task_is_404(client: TestClient, clock: FakeClock, first: str) -> None:
    submitted, task = await running_task(client, clock)
    if first == "cancel":
        assert (await cancel(client, submitted["task_id"])).status == 200
    else:
        await result_reply(client, clock, task)
    resp = await cancel(client, submitted["task_id"])
    assert (resp.status, await resp.json()) == (404, {"error": "Job not found or already terminal."})


async def test_cancel_requires_the_client_token(client: TestClient) -> None:
    resp = await client.post("/api/v1/tasks/task-x/cancel")
    assert (resp.status, await resp.json()) == (403, {"error": "Missing X-Client-Token header"})


async def test_task_cancelled_while_queued_is_still_delivered_like_the_real_one(
    client: TestClient, clock: FakeClock
) -> None:
    submitted = await submit(client)
    assert (await cancel(client, submitted["task_id"])).status == 200
    await register(client, clock)
    task = await take(client)
    assert task["task_id"] == submitted["task_id"]
    assert (await task_view(client, submitted["task_id"]))["status"] == "cancelled"


# --- the Redis flag --------------------------------------------------------------------------


async def test_cancel_writes_the_redis_flag_with_value_1_and_ttl_3600(
    clock: FakeClock, redis_url: str
) -> None:
    reader = aioredis.from_url(redis_url, decode_responses=True)
    try:
        async with mock_client(clock, redis_url=redis_url) as client:
            submitted, task = await running_task(client, clock)
            assert (await cancel(client, submitted["task_id"])).status == 200
            key = f"orchestrator:task_cancel:{task['task_id']}"
            assert await reader.get(key) == "1"
            assert 3590 <= await reader.ttl(key) <= 3600
            assert await reader.exists(f"orchestrator:task_cancel:{task['job_id']}") == 0
    finally:
        await reader.aclose()


async def test_cancel_flag_follows_the_current_attempt_after_a_retry(
    clock: FakeClock, redis_url: str
) -> None:
    reader = aioredis.from_url(redis_url, decode_responses=True)
    try:
        async with mock_client(clock, redis_url=redis_url) as client:
            submitted, first = await running_task(client, clock)
            await fail(client, clock, first, "TRANSIENT_ERROR")
            second = await take(client)
            assert (await cancel(client, submitted["task_id"])).status == 200
            assert await reader.get(f"orchestrator:task_cancel:{second['task_id']}") == "1"
            assert await reader.exists(f"orchestrator:task_cancel:{first['task_id']}") == 0
    finally:
        await reader.aclose()


async def test_unreachable_redis_is_logged_and_the_cancel_still_succeeds(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as sock:  # a port nobody listens on once the socket is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with mock_client(clock, redis_url=f"redis://127.0.0.1:{port}/0") as client:
        submitted, _ = await running_task(client, clock)
        with caplog.at_level(logging.WARNING, logger="mock_orchestrator"):
            resp = await cancel(client, submitted["task_id"])
        assert resp.status == 200
        assert (await task_view(client, submitted["task_id"]))["status"] == "cancelled"
    assert any("could not write cancel flag" in r.getMessage() for r in caplog.records)


# --- the WebSocket command channel -------------------------------------------------------------


async def test_websocket_without_token_is_a_plain_text_403_before_the_upgrade(client: TestClient) -> None:
    resp = await client.get(f"/_worker/ws/{WORKER_ID}")
    assert resp.status == 403
    assert resp.content_type == "text/plain"
    assert await resp.text() == "Unauthorized: Missing X-Worker-Token header or client certificate."


async def test_websocket_with_a_wrong_token_is_refused(client: TestClient) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect(f"/_worker/ws/{WORKER_ID}", headers=worker_headers(token="wrong"))
    assert refused.value.status == 403


async def test_cancel_command_is_sent_only_after_a_heartbeat_enables_websockets(
    client: TestClient, clock: FakeClock
) -> None:
    await register(client, clock)  # registration drops capabilities.websockets ...
    ws = await open_channel(client)
    silent = await submit(client)
    await take(client)
    assert (await cancel(client, silent["task_id"])).status == 200  # ... so nothing is sent for this one
    await enable_websocket_commands(client, clock)
    loud = await submit(client)
    task = await take(client)
    assert (await cancel(client, loud["task_id"])).status == 200
    message = await ws.receive_json(timeout=5)
    assert message == {"command": "cancel_task", "task_id": task["task_id"], "job_id": task["job_id"]}
    await ws.close()


async def test_registration_cannot_enable_websocket_commands(client: TestClient, clock: FakeClock) -> None:
    message = seal(
        {
            "worker_id": WORKER_ID,
            "supported_skills": [{"name": "check_inventory"}],
            "capabilities": {"hostname": "h", "ip_address": "127.0.0.1", "websockets": True},
        },
        clock,
    )
    resp = await client.post(
        "/_worker/workers/register", data=orjson.dumps(message), headers=worker_headers()
    )
    assert resp.status == 200
    assert (await workers_view(client))[0]["websocket_commands"] is False


async def test_a_new_connection_closes_the_old_one_with_1008_and_takes_over(
    client: TestClient, clock: FakeClock
) -> None:
    await register(client, clock)
    await enable_websocket_commands(client, clock)
    old = await open_channel(client)
    new = await client.ws_connect(f"/_worker/ws/{WORKER_ID}", headers=worker_headers())
    closing = await old.receive(timeout=5)
    assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == 1008
    submitted = await submit(client)
    task = await take(client)
    assert (await cancel(client, submitted["task_id"])).status == 200
    assert (await new.receive_json(timeout=5))["task_id"] == task["task_id"]
    await new.close()


async def test_workers_view_shows_the_channel_and_the_tasks_held(
    client: TestClient, clock: FakeClock
) -> None:
    submitted, _ = await running_task(client, clock)
    ws = await open_channel(client)
    view = (await workers_view(client))[0]
    assert (view["websocket_connected"], view["current_task_ids"]) == (True, [submitted["task_id"]])
    await ws.close()

    async def channel_closed() -> bool:
        return not (await worker_view(client))["websocket_connected"]

    await eventually(client, channel_closed)


async def test_websocket_frames_are_handled_as_events(client: TestClient, clock: FakeClock) -> None:
    submitted, task = await running_task(client, clock)
    ws = await open_channel(client)
    await ws.send_str("not json")  # a bad frame is only logged; the channel stays usable
    await ws.send_bytes(orjson.dumps(seal(progress_event(task, progress=0.5, message="half"), clock)))
    await ws.send_str(orjson.dumps(seal(progress_event(task, progress=0.75, message="most"), clock)).decode())

    async def most_done() -> bool:
        return bool((await task_view(client, submitted["task_id"]))["progress"] == 0.75)

    await eventually(client, most_done)
    assert (await task_view(client, submitted["task_id"]))["progress_message"] == "most"
    await ws.close()


# --- heartbeat cancel_task_ids ------------------------------------------------------------------


async def test_heartbeat_echoes_the_job_id_of_a_cancelled_task_but_never_a_task_id(
    client: TestClient, clock: FakeClock
) -> None:
    submitted, task = await running_task(client, clock)
    current = [task["job_id"], task["task_id"]]
    body = seal({"worker_id": WORKER_ID, "status": "busy", "current_tasks": current}, clock)
    assert await (await heartbeat(client, WORKER_ID, body)).json() == {"status": "ok"}
    assert (await cancel(client, submitted["task_id"])).status == 200
    body = seal({"worker_id": WORKER_ID, "status": "busy", "current_tasks": current}, clock)
    assert await (await heartbeat(client, WORKER_ID, body)).json() == {
        "status": "ok",
        "cancel_task_ids": [task["job_id"]],
    }


# --- results for a cancelled task (services/worker_service.py: process_task_result) ------------------


@pytest.mark.parametrize(
    ("fields", "transition", "status"),
    [
        ({"status": "cancelled"}, "cancelled_handled", "cancelled"),
        ({"data": {"items_checked": 1}}, "success_transition", "success"),  # the trap: success revives it
        (
            {"status": "failure", "error": {"code": "PERMANENT_ERROR", "message": "m"}},
            "failure_handled",
            "quarantined",
        ),
        (
            {"status": "failure", "error": {"code": "TRANSIENT_ERROR", "message": "m"}},
            "failure_handled",
            "cancelled",
        ),
        (
            {"status": "failure", "error": {"code": "INVALID_INPUT_ERROR", "message": "m"}},
            "failure_handled",
            "failure",
        ),
    ],
)
async def test_result_for_a_cancelled_task(
    client: TestClient, clock: FakeClock, fields: dict[str, Any], transition: str, status: str
) -> None:
    submitted, task = await running_task(client, clock)
    assert (await cancel(client, submitted["task_id"])).status == 200
    assert await result_reply(client, clock, task, **fields) == {
        "status": "accepted",
        "transition": transition,
    }
    view = await task_view(client, submitted["task_id"])
    assert (view["status"], view["retries"]) == (status, 0)
    assert (await poll(client)).status == 204  # a swallowed retryable failure is not re-queued


@pytest.mark.parametrize("cancelled_by", ["orchestrator", "handler"])
async def test_a_cancelled_result_keeps_the_data_the_handler_returned(
    client: TestClient, clock: FakeClock, cancelled_by: str
) -> None:
    submitted, task = await running_task(client, clock)
    if cancelled_by == "orchestrator":
        assert (await cancel(client, submitted["task_id"])).status == 200
    partial = {"completed_steps": 3}
    reply = await result_reply(client, clock, task, status="cancelled", data=partial)
    assert reply == {"status": "accepted", "transition": "cancelled_handled"}
    view = await task_view(client, submitted["task_id"])
    assert (view["status"], view["data"], view["error"]) == ("cancelled", partial, None)
