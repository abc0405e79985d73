"""The mock's worker protocol (avtomatika 1.0b30): signing, authentication, models, polling, heartbeats, events."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from mock_orchestrator.signing import sign

from mock_support import (
    CLIENT_HEADERS,
    SKILL,
    WORKER_ID,
    FakeClock,
    eventually,
    expect_error,
    heartbeat,
    mock_client,
    poll,
    post_json,
    progress_event,
    register,
    registration,
    seal,
    send_result,
    signature_of,
    submit,
    take,
    task_view,
    worker_headers,
    worker_view,
)

# --- signing -------------------------------------------------------------------------------


def test_signature_matches_golden_value_computed_with_rxon() -> None:
    # Golden value computed with the real rxon 1.0b17 (/tmp/orch/x/rxon) in a scratch venv:
    #   from rxon.security import sign_payload; sign_payload(GOLDEN, "golden-secret-token")
    # It covers dropped security/_signature, nested nulls, integral floats, non-ASCII and orjson floats.
    golden = {
        "worker_id": "golden-worker",
        "timestamp": 1795871513,
        "nonce": "n-1",
        "status": "idle",
        "ratio": 2.0,
        "pi": 3.14159,
        "tiny": 1e-7,
        "big": 1e15,
        "text": 'Привет, 世界 "q"',
        "nested": {
            "z": None,
            "a": [1, None, 2.0, {"k": None, "j": 0.1}],
            "m": {},
        },
        "empty": None,
        "flag": True,
        "security": {"signature": "ignored", "signer_id": "golden-worker"},
        "_signature": "also-ignored",
    }
    expected = "b97c5480acc4c62222b77979acab09b15bcf46a6db6062d4542d7f1769f22556"
    assert sign(golden, "golden-secret-token") == expected
    assert signature_of(golden, "golden-secret-token") == expected


# --- health, headers, registration ---------------------------------------------------------


async def test_public_status_is_unauthenticated_and_carries_rxon_version(client: TestClient) -> None:
    resp = await client.get("/_public/status")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}
    assert resp.headers["X-RXON-Version"] == "1.0b17"


async def test_unknown_path_is_a_json_error_with_version_header(client: TestClient) -> None:
    await expect_error(await client.get("/nope"), 404, "Not Found")


async def test_register_replies_registered_with_protocol_version(
    client: TestClient, clock: FakeClock
) -> None:
    assert await register(client, clock) == {"status": "registered", "version": "1.0b17"}
    workers = (await (await client.get("/api/v1/workers", headers=CLIENT_HEADERS)).json())["workers"]
    assert workers == [
        {
            "worker_id": WORKER_ID,
            "worker_type": "inventory-checker",
            "status": "idle",
            "skills": [SKILL],
            "last_seen": clock.now,
            "last_heartbeat": None,
            "registered_at": clock.now,
            "websocket_connected": False,
            "websocket_commands": False,
            "current_task_ids": [],
            "polling": False,
            "supported_skills": [{"name": SKILL, "type": SKILL, "input_schema": {"type": "object"}}],
            "hot_skills": [],
            "resources": None,
            "installed_software": None,
            "installed_artifacts": None,
            "capabilities": {"hostname": "test", "ip_address": "127.0.0.1"},
        }
    ]


async def test_register_warns_on_protocol_version_mismatch(client: TestClient, clock: FakeClock) -> None:
    headers = worker_headers() | {"X-RXON-Version": "1.0b1"}
    resp = await post_json(client, "/_worker/workers/register", seal(registration(), clock), headers)
    assert resp.status == 200
    assert (await resp.json())["warning"] == "Protocol version mismatch! Orchestrator: 1.0b17, Worker: 1.0b1."


async def test_register_rejects_invalid_worker_id(client: TestClient, clock: FakeClock) -> None:
    resp = await post_json(
        client, "/_worker/workers/register", seal(registration("bad id"), clock), worker_headers("bad id")
    )
    await expect_error(resp, 400, "Invalid worker_id: 'bad id'")


# --- authentication and signature checks (403) ---------------------------------------------


async def test_missing_worker_token_is_403(client: TestClient, clock: FakeClock) -> None:
    resp = await post_json(
        client, "/_worker/workers/register", seal(registration(), clock), worker_headers(token=None)
    )
    await expect_error(resp, 403, "Unauthorized: Missing X-Worker-Token header or client certificate.")


async def test_wrong_worker_token_is_403(client: TestClient, clock: FakeClock) -> None:
    resp = await post_json(
        client, "/_worker/workers/register", seal(registration(), clock), worker_headers(token="x")
    )
    await expect_error(resp, 403, "Unauthorized: No valid token found")


async def test_poll_with_wrong_token_is_403(client: TestClient) -> None:
    resp = await client.get("/_worker/workers/w/tasks/next", headers=worker_headers(token="nope"))
    await expect_error(resp, 403, "Unauthorized: No valid token found")


async def test_missing_timestamp_is_403(client: TestClient, clock: FakeClock) -> None:
    message = registration()
    message["security"] = {"signature": signature_of(message), "signer_id": WORKER_ID}
    resp = await post_json(client, "/_worker/workers/register", message, worker_headers())
    await expect_error(resp, 403, "Missing required timestamp for replay protection")


async def test_timestamp_older_than_60_seconds_is_403(client: TestClient, clock: FakeClock) -> None:
    fresh_enough = seal(registration(), clock)
    too_old = seal(registration(), clock)
    clock.now += 60
    resp = await post_json(client, "/_worker/workers/register", fresh_enough, worker_headers())
    assert resp.status == 200
    clock.now += 1
    resp = await post_json(client, "/_worker/workers/register", too_old, worker_headers())
    await expect_error(resp, 403, "Message timestamp expired (replay protection)")


async def test_missing_security_is_403(client: TestClient, clock: FakeClock) -> None:
    message = dict(registration(), timestamp=int(clock()), nonce="n1")
    resp = await post_json(client, "/_worker/workers/register", message, worker_headers())
    await expect_error(resp, 403, "Missing required security context")


async def test_security_without_signature_is_403(client: TestClient, clock: FakeClock) -> None:
    message = dict(registration(), timestamp=int(clock()), nonce="n1", security={"signer_id": WORKER_ID})
    resp = await post_json(client, "/_worker/workers/register", message, worker_headers())
    await expect_error(resp, 403, "Missing required cryptographic signature")


async def test_tampered_message_has_invalid_signature(client: TestClient, clock: FakeClock) -> None:
    message = seal(registration(), clock)
    message["worker_type"] = "tampered"
    resp = await post_json(client, "/_worker/workers/register", message, worker_headers())
    await expect_error(resp, 403, "Invalid cryptographic signature")


async def test_signature_with_another_key_is_403(client: TestClient, clock: FakeClock) -> None:
    message = dict(registration(), timestamp=int(clock()), nonce="n2")
    message["security"] = {"signature": signature_of(message, key="other-key"), "signer_id": WORKER_ID}
    resp = await post_json(client, "/_worker/workers/register", message, worker_headers())
    await expect_error(resp, 403, "Invalid cryptographic signature")


async def test_signer_id_must_match_worker_id(client: TestClient, clock: FakeClock) -> None:
    message = seal(registration(), clock, signer="someone-else")
    resp = await post_json(client, "/_worker/workers/register", message, worker_headers())
    await expect_error(resp, 403, "Message signer ID 'someone-else' does not match worker ID 'worker-1'")


async def test_replayed_message_is_403(client: TestClient, clock: FakeClock) -> None:
    message = seal(registration(), clock)
    assert (await post_json(client, "/_worker/workers/register", message, worker_headers())).status == 200
    resp = await post_json(client, "/_worker/workers/register", message, worker_headers())
    await expect_error(resp, 403, "Duplicate message detected (replay attack)")


async def test_replay_guard_uses_signature_when_there_is_no_nonce(
    client: TestClient, clock: FakeClock
) -> None:
    message = dict(registration(), timestamp=int(clock()))
    message["security"] = {"signature": signature_of(message), "signer_id": WORKER_ID}
    assert (await post_json(client, "/_worker/workers/register", message, worker_headers())).status == 200
    resp = await post_json(client, "/_worker/workers/register", message, worker_headers())
    await expect_error(resp, 403, "Duplicate message detected (replay attack)")


async def test_body_worker_id_differing_from_header_is_sender_mismatch(
    client: TestClient, clock: FakeClock
) -> None:
    message = seal(registration("worker-2"), clock)
    resp = await post_json(client, "/_worker/workers/register", message, worker_headers(WORKER_ID))
    await expect_error(resp, 403, "Immediate sender ID mismatch")


# --- model validation (400) ----------------------------------------------------------------


async def test_invalid_json_is_400(client: TestClient) -> None:
    resp = await client.post("/_worker/workers/register", data=b"{not json", headers=worker_headers())
    assert resp.status == 400
    assert "error" in await resp.json()


async def test_float_timestamp_on_register_is_400(client: TestClient, clock: FakeClock) -> None:
    message = seal(dict(registration(), timestamp=clock() + 0.5), clock)
    resp = await post_json(client, "/_worker/workers/register", message, worker_headers())
    await expect_error(
        resp,
        400,
        "Invalid WorkerRegistration payload: Failed to instantiate WorkerRegistration: "
        "Expected `int | null`, got `float` - at `$.timestamp`",
    )


@pytest.mark.parametrize(
    ("fields", "text"),
    [
        ({"data": [1, 2]}, "Expected `object | null`, got `array` - at `$.data`"),
        ({"status": "failure", "error": "boom"}, "Expected `object | null`, got `str` - at `$.error`"),
        (
            {
                "status": "failure",
                "error": {"code": "X"},
            },
            "Object missing required field `message` - at `$.error`",
        ),
        ({"timestamp": "1800000000"}, "Expected `int | null`, got `str` - at `$.timestamp`"),
        ({"timestamp": 1_800_000_000.5}, "Expected `int | null`, got `float` - at `$.timestamp`"),
    ],
)
async def test_malformed_result_is_400(
    client: TestClient, clock: FakeClock, fields: dict[str, Any], text: str
) -> None:
    await register(client, clock)
    await submit(client)
    task = await take(client)
    resp = await send_result(client, clock, task, **fields)
    await expect_error(resp, 400, "Invalid TaskResult payload: Failed to instantiate TaskResult: " + text)


async def test_non_object_body_fails_like_the_orchestrator(client: TestClient) -> None:
    resp = await client.post("/_worker/tasks/result", data=b"[1]", headers=worker_headers())
    await expect_error(resp, 500, "'list' object has no attribute 'get'")


# --- polling -------------------------------------------------------------------------------


async def test_empty_poll_answers_204_with_empty_body_after_the_hold(
    client: TestClient, clock: FakeClock
) -> None:
    await register(client, clock)
    resp = await poll(client)
    assert resp.status == 204
    assert await resp.read() == b""
    assert resp.headers["X-RXON-Version"] == "1.0b17"


async def test_submitted_task_reaches_the_worker_with_the_real_field_set(clock: FakeClock) -> None:
    async with mock_client(clock, task_secret="orchestrator-secret") as client:
        await register(client, clock)
        submitted = await submit(client, params={"items": ["apple"], "note": None, "qty": 2.0})
        task = await take(client)
        view = await task_view(client, task["task_id"])
    assert set(task) == {
        "job_id",
        "task_id",
        "type",
        "params",
        "priority",
        "step",
        "timestamp",
        "tracing_context",
        "sig",
    }
    assert task["task_id"] == submitted["task_id"] and task["job_id"] == submitted["job_id"]
    assert task["task_id"].startswith("task-") and uuid.UUID(task["task_id"][5:]).version == 4
    assert uuid.UUID(task["job_id"]).version == 4
    # Normalised like the orchestrator's TaskPayload: null members dropped, integral floats as ints.
    assert task["params"] == {"items": ["apple"], "qty": 2}
    assert type(task["priority"]) is int and task["priority"] == 0
    assert task["step"] == 1 and task["timestamp"] == int(clock.now) and task["tracing_context"] == {}
    assert task["sig"] == sign(task, "orchestrator-secret", ignore_fields=("sig",))
    assert view["status"] == "running" and view["worker_id"] == WORKER_ID
    assert view["started_at"] == clock.now


async def test_deadline_is_sent_as_float_epoch(client: TestClient, clock: FakeClock) -> None:
    clock.now = 1_800_000_000.25
    await register(client, clock)
    await submit(client, deadline=30)
    task = await take(client)
    assert task["deadline"] == 1_800_000_030.25


async def test_long_poll_wakes_as_soon_as_a_task_is_submitted(
    slow_client: TestClient, clock: FakeClock
) -> None:
    await register(slow_client, clock)
    assert (await worker_view(slow_client))["polling"] is False
    started = time.monotonic()
    pending = asyncio.ensure_future(take(slow_client))

    async def poll_parked() -> bool:
        return bool((await worker_view(slow_client))["polling"])

    await eventually(slow_client, poll_parked)
    submitted = await submit(slow_client)
    task = await asyncio.wait_for(pending, timeout=5)
    assert task["task_id"] == submitted["task_id"]
    assert time.monotonic() - started < 5
    assert (await worker_view(slow_client))["polling"] is False


async def test_tasks_go_only_to_workers_with_the_skill_highest_priority_first(
    client: TestClient, clock: FakeClock
) -> None:
    await register(client, clock, "inventory", skills=(SKILL,))
    await register(client, clock, "mailer", skills=("send_mail",))
    low = await submit(client, priority=1)
    high = await submit(client, priority=7.5)
    mail = await submit(client, "send_mail")
    first, second = await take(client, "inventory"), await take(client, "inventory")
    assert [first["task_id"], second["task_id"]] == [high["task_id"], low["task_id"]]
    assert first["priority"] == 7.5
    assert (await take(client, "mailer"))["task_id"] == mail["task_id"]
    assert (await poll(client, "inventory")).status == 204


async def test_unregistered_worker_gets_no_task(client: TestClient, clock: FakeClock) -> None:
    await submit(client)
    assert (await poll(client, "stranger")).status == 204


async def test_large_task_is_gzip_compressed_when_accepted(client: TestClient, clock: FakeClock) -> None:
    await register(client, clock)
    await submit(client, params={"blob": "x" * 600})
    resp = await client.get(
        f"/_worker/workers/{WORKER_ID}/tasks/next", headers=worker_headers() | {"Accept-Encoding": "gzip"}
    )
    assert resp.status == 200
    assert resp.headers["Content-Encoding"] == "gzip"
    assert (await resp.json())["params"]["blob"] == "x" * 600


# --- heartbeats and events -----------------------------------------------------------------


async def test_empty_heartbeat_answers_null_for_unknown_and_ttl_refreshed_for_known(
    client: TestClient, clock: FakeClock
) -> None:
    resp = await heartbeat(client, WORKER_ID, None)
    assert resp.status == 200 and await resp.read() == b"null"
    await register(client, clock)
    assert await (await heartbeat(client, WORKER_ID, None)).json() == {"status": "ttl_refreshed"}
    assert await (await heartbeat(client, WORKER_ID, {})).json() == {"status": "ttl_refreshed"}


async def test_worker_expires_120_seconds_after_last_sign_of_life(
    client: TestClient, clock: FakeClock
) -> None:
    await register(client, clock)
    clock.now += 120
    assert await (await heartbeat(client, WORKER_ID, None)).json() == {"status": "ttl_refreshed"}
    clock.now += 121
    assert await (await heartbeat(client, WORKER_ID, None)).read() == b"null"


async def test_signed_heartbeat_for_unknown_worker_is_ok_and_stores_nothing(
    client: TestClient, clock: FakeClock
) -> None:
    resp = await heartbeat(client, "ghost-1", seal({"worker_id": "ghost-1", "status": "idle"}, clock))
    assert await resp.json() == {"status": "ok"}
    workers = await (await client.get("/api/v1/workers", headers=CLIENT_HEADERS)).json()
    assert workers == {"workers": []}


async def test_heartbeat_status_is_merged_and_busy_workers_get_no_tasks(
    client: TestClient, clock: FakeClock
) -> None:
    await register(client, clock)
    await submit(client)
    busy = seal({"worker_id": WORKER_ID, "status": "busy", "current_tasks": []}, clock)
    assert await (await heartbeat(client, WORKER_ID, busy)).json() == {"status": "ok"}
    assert (await poll(client)).status == 204
    idle = seal({"worker_id": WORKER_ID, "status": "idle"}, clock)
    assert (await heartbeat(client, WORKER_ID, idle)).status == 200
    assert (await poll(client)).status == 200


async def test_unsigned_heartbeat_body_is_403(client: TestClient, clock: FakeClock) -> None:
    await register(client, clock)
    resp = await heartbeat(client, WORKER_ID, {"worker_id": WORKER_ID, "status": "idle"})
    await expect_error(resp, 403, "Missing required timestamp for replay protection")


async def test_heartbeat_lists_finished_job_ids_in_cancel_task_ids(
    client: TestClient, clock: FakeClock
) -> None:
    await register(client, clock)
    await submit(client)
    task = await take(client)
    await send_result(client, clock, task, status="cancelled")
    body = seal(
        {"worker_id": WORKER_ID, "status": "idle", "current_tasks": [task["job_id"], task["task_id"]]}, clock
    )
    assert await (await heartbeat(client, WORKER_ID, body)).json() == {
        "status": "ok",
        "cancel_task_ids": [task["job_id"]],
    }


async def test_progress_event_is_accepted_and_stored(client: TestClient, clock: FakeClock) -> None:
    await register(client, clock)
    await submit(client)
    task = await take(client)
    event = seal(progress_event(task, progress=0.4, message="40%"), clock)
    resp = await post_json(client, "/_worker/events", event, worker_headers())
    assert await resp.json() == {"status": "event_accepted"}
    view = await task_view(client, task["task_id"])
    assert (view["progress"], view["progress_message"]) == (0.4, "40%")


async def test_malformed_event_gets_a_200_error_reply(client: TestClient, clock: FakeClock) -> None:
    event = seal({"event_id": "e1", "worker_id": WORKER_ID, "event_type": "progress", "payload": []}, clock)
    resp = await post_json(client, "/_worker/events", event, worker_headers())
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "error"
    assert body["message"].startswith("Invalid event payload: Failed to instantiate WorkerEventPayload: ")


async def test_event_for_a_job_of_another_worker_is_403(client: TestClient, clock: FakeClock) -> None:
    await register(client, clock)
    await submit(client)
    task = await take(client)
    event = seal(progress_event(task, "worker-2", progress=0.5), clock)
    resp = await post_json(client, "/_worker/events", event, worker_headers("worker-2"))
    await expect_error(resp, 403, "Forbidden: Worker 'worker-2' is not assigned to job")
