"""Behaviour of the mock orchestrator: the worker protocol of avtomatika 1.0b30 and the control API.

Every test talks real HTTP over loopback (aiohttp TestServer). Messages are signed by the tiny
test-local signer below, written from protocol.md section 3, independently of the SDK and of the mock.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from hashlib import sha256
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from mock_orchestrator import MockSettings, create_app
from mock_orchestrator.settings import ConfigError, load_server_config
from mock_orchestrator.signing import sign
from mock_orchestrator.state import STATE_KEY, MockState

WORKER_TOKEN = "test-worker-token"
CLIENT_TOKEN = "test-client-token"
WORKER_ID = "worker-1"
SKILL = "check_inventory"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class FakeClock:
    """Wall clock under the test's control (the MockSettings.clock seam)."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


# --- test-local signer (protocol.md section 3) -------------------------------------------


def _normalise(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def signature_of(message: dict[str, Any], key: str = WORKER_TOKEN) -> str:
    body = _normalise(message)
    body.pop("security", None)
    body.pop("_signature", None)
    canonical = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    return hmac.new(key.encode(), canonical, sha256).hexdigest()


def seal(message: dict[str, Any], clock: Callable[[], float], signer: str | None = None) -> dict[str, Any]:
    """Add timestamp, nonce and security like a well-behaved worker."""
    sealed = dict(message)
    sealed.setdefault("timestamp", int(clock()))
    sealed.setdefault("nonce", uuid.uuid4().hex)
    sealed["security"] = {"signature": signature_of(sealed), "signer_id": signer or sealed.get("worker_id")}
    return sealed


# --- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def _client(clock: FakeClock, hold: float) -> TestClient:
    settings = MockSettings(WORKER_TOKEN, CLIENT_TOKEN, poll_hold_seconds=hold, clock=clock)
    client = TestClient(TestServer(create_app(settings), host="127.0.0.1"))
    await client.start_server()
    return client


@pytest.fixture
async def client(clock: FakeClock) -> AsyncIterator[TestClient]:
    c = await _client(clock, hold=0.2)
    yield c
    await c.close()


@pytest.fixture
async def slow_client(clock: FakeClock) -> AsyncIterator[TestClient]:
    """A mock whose long polls hold for 30 s, to prove that they are woken, not timed out."""
    c = await _client(clock, hold=30.0)
    yield c
    await c.close()


def state_of(client: TestClient) -> MockState:
    return client.app[STATE_KEY]


def worker_headers(worker_id: str | None = WORKER_ID, token: str | None = WORKER_TOKEN) -> dict[str, str]:
    headers = {}
    if token is not None:
        headers["X-Worker-Token"] = token
    if worker_id is not None:
        headers["X-Worker-ID"] = worker_id
    return headers


CLIENT_HEADERS = {"X-Client-Token": CLIENT_TOKEN}


def registration(worker_id: str = WORKER_ID, skills: tuple[str, ...] = (SKILL,)) -> dict[str, Any]:
    return {
        "worker_id": worker_id,
        "worker_type": "inventory-checker",
        "supported_skills": [
            {
                "name": s,
                "type": s,
                "input_schema": {"type": "object"},
            }
            for s in skills
        ],
        "available_skills": list(skills),
        "capabilities": {"hostname": "test", "ip_address": "127.0.0.1"},
    }


async def post_json(client: TestClient, path: str, body: Any, headers: dict[str, str]) -> Any:
    return await client.post(path, data=orjson.dumps(body), headers=headers)


async def register(client: TestClient, clock: FakeClock, worker_id: str = WORKER_ID, **kw: Any) -> Any:
    message = seal(registration(worker_id, **kw), clock)
    resp = await post_json(client, "/_worker/workers/register", message, worker_headers(worker_id))
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def submit(client: TestClient, task_type: str = SKILL, **fields: Any) -> dict[str, Any]:
    resp = await post_json(client, "/api/v1/tasks", dict(type=task_type, **fields), CLIENT_HEADERS)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def poll(client: TestClient, worker_id: str = WORKER_ID) -> Any:
    return await client.get(f"/_worker/workers/{worker_id}/tasks/next", headers=worker_headers(worker_id))


async def take(client: TestClient, worker_id: str = WORKER_ID) -> dict[str, Any]:
    resp = await poll(client, worker_id)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def send_result(
    client: TestClient, clock: FakeClock, task: dict[str, Any], worker_id: str = WORKER_ID, **fields: Any
) -> Any:
    body = dict(job_id=task["job_id"], task_id=task["task_id"], worker_id=worker_id, **fields)
    return await post_json(client, "/_worker/tasks/result", seal(body, clock), worker_headers(worker_id))


async def task_view(client: TestClient, task_id: str, query: str = "") -> dict[str, Any]:
    resp = await client.get(f"/api/v1/tasks/{task_id}{query}", headers=CLIENT_HEADERS)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def expect_error(resp: Any, status: int, text: str) -> None:
    assert resp.status == status, await resp.text()
    assert resp.headers["X-RXON-Version"] == "1.0b17"
    body = await resp.json()
    assert text in body["error"], body


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    """Yield to the event loop until ``condition`` holds (no fixed sleep); fail after ``within`` s."""
    give_up = time.monotonic() + within
    while not condition():
        if time.monotonic() > give_up:
            raise AssertionError("condition never became true")
        await asyncio.sleep(0)


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
            "registered_at": clock.now,
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


async def test_submitted_task_reaches_the_worker_with_the_real_field_set(
    client: TestClient, clock: FakeClock
) -> None:
    await register(client, clock)
    submitted = await submit(client, params={"items": ["apple"], "note": None, "qty": 2.0})
    task = await take(client)
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
    secret = state_of(client).task_secret
    assert task["sig"] == sign(task, secret, ignore_fields=("sig",))
    view = await task_view(client, task["task_id"])
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
    state = state_of(slow_client)
    started = time.monotonic()
    pending = asyncio.ensure_future(take(slow_client))
    await until(lambda: state.polls_waiting == 1)
    submitted = await submit(slow_client)
    task = await asyncio.wait_for(pending, timeout=5)
    assert task["task_id"] == submitted["task_id"]
    assert time.monotonic() - started < 5


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


# --- results -------------------------------------------------------------------------------


async def test_success_result_without_status_is_accepted_and_visible(
    client: TestClient, clock: FakeClock
) -> None:
    await register(client, clock)
    await submit(client)
    task = await take(client)
    clock.now += 2
    resp = await send_result(client, clock, task, data={"items_checked": 2, "empty": None})
    assert resp.status == 200
    assert await resp.json() == {"status": "accepted", "transition": "success_transition"}
    view = await task_view(client, task["task_id"])
    assert view["status"] == "success"
    assert view["data"] == {"items_checked": 2}
    assert view["worker_id"] == WORKER_ID
    assert view["finished_at"] == clock.now


async def test_custom_status_is_accepted(client: TestClient, clock: FakeClock) -> None:
    await register(client, clock)
    await submit(client)
    task = await take(client)
    resp = await send_result(client, clock, task, status="out_of_stock", data={"missing_item": "pear"})
    assert await resp.json() == {"status": "accepted", "transition": "success_transition"}
    view = await task_view(client, task["task_id"])
    assert (view["status"], view["data"]) == ("out_of_stock", {"missing_item": "pear"})


async def test_failure_with_error_is_recorded(client: TestClient, clock: FakeClock) -> None:
    await register(client, clock)
    await submit(client)
    task = await take(client)
    error = {"code": "TRANSIENT_ERROR", "message": "simulated crash"}
    resp = await send_result(client, clock, task, status="failure", error=error)
    assert await resp.json() == {"status": "accepted", "transition": "failure_handled"}
    view = await task_view(client, task["task_id"])
    assert (view["status"], view["error"]) == ("failure", error)


async def test_cancelled_result_is_accepted(client: TestClient, clock: FakeClock) -> None:
    await register(client, clock)
    await submit(client)
    task = await take(client)
    resp = await send_result(client, clock, task, status="cancelled")
    assert await resp.json() == {"status": "accepted", "transition": "cancelled_handled"}
    assert (await task_view(client, task["task_id"]))["status"] == "cancelled"


async def test_result_for_unknown_job_is_ignored(client: TestClient, clock: FakeClock) -> None:
    job_id = str(uuid.uuid4())
    resp = await send_result(client, clock, {"job_id": job_id, "task_id": "task-x"})
    assert await resp.json() == {
        "status": "ignored",
        "reason": "job_not_found",
        "message": f"Job {job_id} not found (expired or deleted).",
    }


async def test_result_from_another_worker_is_ignored(client: TestClient, clock: FakeClock) -> None:
    await register(client, clock)
    await register(client, clock, "worker-2")
    await submit(client)
    task = await take(client)
    body = await (await send_result(client, clock, task, worker_id="worker-2")).json()
    assert (body["status"], body["reason"]) == ("ignored", "worker_mismatch")
    assert (await task_view(client, task["task_id"]))["status"] == "running"


async def test_result_with_an_old_task_id_is_stale(client: TestClient, clock: FakeClock) -> None:
    await register(client, clock)
    await submit(client)
    task = await take(client)
    body = await (await send_result(client, clock, dict(task, task_id="task-old"))).json()
    assert body == {
        "status": "ignored",
        "reason": "stale_task",
        "message": f"Result ignored: task_id task-old is no longer active for job {task['job_id']}.",
    }


async def test_second_result_is_ignored_as_already_terminated(client: TestClient, clock: FakeClock) -> None:
    await register(client, clock)
    await submit(client)
    task = await take(client)
    assert (await send_result(client, clock, task)).status == 200
    body = await (await send_result(client, clock, task, status="failure")).json()
    assert (body["status"], body["reason"]) == ("ignored", "job_already_terminated")
    assert (await task_view(client, task["task_id"]))["status"] == "success"


async def test_result_for_another_worker_id_is_forbidden(client: TestClient, clock: FakeClock) -> None:
    await register(client, clock)
    await submit(client)
    task = await take(client)
    body = seal(
        {"job_id": task["job_id"], "task_id": task["task_id"], "worker_id": "worker-2"},
        clock,
        signer=WORKER_ID,
    )
    resp = await post_json(client, "/_worker/tasks/result", body, worker_headers(WORKER_ID))
    await expect_error(
        resp,
        403,
        "Forbidden: Authenticated worker 'worker-1' cannot submit results for another worker 'worker-2'.",
    )


# --- heartbeats and events -----------------------------------------------------------------


async def heartbeat(client: TestClient, worker_id: str, body: dict[str, Any] | None) -> Any:
    data = orjson.dumps(body) if body is not None else None
    return await client.patch(f"/_worker/workers/{worker_id}", data=data, headers=worker_headers(worker_id))


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


def progress_event(task: dict[str, Any], worker_id: str = WORKER_ID, **payload: Any) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "worker_id": worker_id,
        "origin_worker_id": worker_id,
        "event_type": "progress",
        "payload": payload,
        "target_job_id": task["job_id"],
        "target_task_id": task["task_id"],
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


# --- control API ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "text"),
    [({}, "Missing X-Client-Token header"), ({"X-Client-Token": "wrong"}, "Unauthorized: Invalid token")],
)
async def test_control_api_requires_the_client_token(
    client: TestClient, headers: dict[str, str], text: str
) -> None:
    for resp in (
        await client.get("/api/v1/tasks", headers=headers),
        await client.get("/api/v1/workers", headers=headers),
        await post_json(client, "/api/v1/tasks", {"type": SKILL}, headers),
    ):
        await expect_error(resp, 403, text)


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        ({}, ["field 'type' = null", "non-empty string", "check_inventory"]),
        ({"type": 5}, ["field 'type' = 5 is invalid"]),
        ({"type": SKILL, "params": [1]}, ["field 'params' = [1] is invalid", "JSON object", "items"]),
        ({"type": SKILL, "priority": "high"}, ["field 'priority' = \"high\" is invalid", "number", "e.g."]),
        ({"type": SKILL, "deadline": -1}, ["field 'deadline' = -1 is invalid", "positive number of seconds"]),
        (
            {"type": SKILL, "prio": 1},
            ["unknown field 'prio'", "allowed fields are type, params, priority, deadline"],
        ),
        ([SKILL], ["request body must be a JSON object"]),
    ],
)
async def test_bad_submissions_are_400_naming_field_value_rule_and_example(
    client: TestClient, body: Any, fragments: list[str]
) -> None:
    resp = await post_json(client, "/api/v1/tasks", body, CLIENT_HEADERS)
    assert resp.status == 400
    message = (await resp.json())["error"]
    for fragment in fragments:
        assert fragment in message, message


async def test_submission_that_is_not_json_is_400(client: TestClient) -> None:
    resp = await client.post("/api/v1/tasks", data=b"type=x", headers=CLIENT_HEADERS)
    await expect_error(resp, 400, "request body is not valid JSON")


async def test_submit_returns_the_queued_task_view(client: TestClient, clock: FakeClock) -> None:
    view = await submit(client, params={"items": ["apple"]}, priority=3)
    assert view["status"] == "queued"
    assert view["type"] == SKILL and view["params"] == {"items": ["apple"]} and view["priority"] == 3
    assert view["created_at"] == clock.now
    for key in ("data", "error", "worker_id", "progress", "started_at", "finished_at"):
        assert view[key] is None


async def test_tasks_are_listed_newest_first_and_unknown_task_is_404(client: TestClient) -> None:
    first, second = await submit(client), await submit(client, "other")
    listing = await (await client.get("/api/v1/tasks", headers=CLIENT_HEADERS)).json()
    assert [t["task_id"] for t in listing["tasks"]] == [second["task_id"], first["task_id"]]
    await expect_error(
        await client.get("/api/v1/tasks/task-missing", headers=CLIENT_HEADERS), 404, "not found"
    )


async def test_wait_returns_as_soon_as_the_task_finishes(slow_client: TestClient, clock: FakeClock) -> None:
    await register(slow_client, clock)
    submitted = await submit(slow_client)
    waiter = asyncio.ensure_future(task_view(slow_client, submitted["task_id"], "?wait=30"))
    task = await take(slow_client)
    await send_result(slow_client, clock, task, data={"ok": True})
    view = await asyncio.wait_for(waiter, timeout=5)
    assert (view["status"], view["data"]) == ("success", {"ok": True})


async def test_bad_wait_parameter_is_400(client: TestClient) -> None:
    submitted = await submit(client)
    resp = await client.get(f"/api/v1/tasks/{submitted['task_id']}?wait=soon", headers=CLIENT_HEADERS)
    await expect_error(resp, 400, "query parameter 'wait' = 'soon' is invalid")


# --- configuration and entry point ---------------------------------------------------------


def test_environment_defaults_and_values() -> None:
    config = load_server_config({"WORKER_TOKEN": "w", "CLIENT_TOKEN": "c"})
    assert (config.host, config.port, config.settings.poll_hold_seconds) == ("0.0.0.0", 8080, 30.0)
    config = load_server_config(
        {
            "WORKER_TOKEN": "w",
            "CLIENT_TOKEN": "c",
            "MOCK_HOST": "127.0.0.1",
            "MOCK_PORT": "9000",
            "MOCK_POLL_HOLD_SECONDS": "0.5",
        }
    )
    assert (config.host, config.port, config.settings.poll_hold_seconds) == ("127.0.0.1", 9000, 0.5)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CLIENT_TOKEN": "c"}, "WORKER_TOKEN is not set: must be"),
        ({"WORKER_TOKEN": "w"}, "CLIENT_TOKEN is not set: must be"),
        (
            {"MOCK_PORT": "http"},
            "MOCK_PORT='http' is invalid: must be an integer from 1 to 65535 (e.g. MOCK_PORT=8080)",
        ),
        ({"MOCK_PORT": "0"}, "MOCK_PORT='0' is invalid"),
        (
            {"MOCK_POLL_HOLD_SECONDS": "-1"},
            "MOCK_POLL_HOLD_SECONDS='-1' is invalid: must be a number of seconds",
        ),
    ],
)
def test_bad_environment_names_variable_value_rule_and_example(env: dict[str, str], message: str) -> None:
    full = {"WORKER_TOKEN": "w", "CLIENT_TOKEN": "c"} | env
    if "WORKER_TOKEN" not in env and "CLIENT_TOKEN" in env:
        del full["WORKER_TOKEN"]
    if "CLIENT_TOKEN" not in env and "WORKER_TOKEN" in env:
        del full["CLIENT_TOKEN"]
    with pytest.raises(ConfigError) as caught:
        load_server_config(full)
    assert message in str(caught.value)


def test_module_exits_2_with_one_clear_line_when_a_token_is_missing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("WORKER_TOKEN", "CLIENT_TOKEN")}
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    done = subprocess.run(
        [sys.executable, "-m", "mock_orchestrator"],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "WORKER_TOKEN is not set" in lines[0] and "e.g. WORKER_TOKEN=" in lines[0]


# --- demo task (what `docker compose up` shows) --------------------------------------------


def test_demo_task_is_read_from_the_environment() -> None:
    raw = '{"type": "check_inventory", "params": {"items": ["apple"]} }'
    config = load_server_config({"WORKER_TOKEN": "w", "CLIENT_TOKEN": "c", "MOCK_DEMO_TASK": raw})
    assert config.settings.demo_task == dict(type="check_inventory", params=dict(items=["apple"]))


@pytest.mark.parametrize(
    ("raw", "reason"),
    [("not json", "must be a task submission as JSON"), ('{"params": {} }', "type")],
)
def test_bad_demo_task_names_the_variable_the_value_and_the_rule(raw: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_server_config({"WORKER_TOKEN": "w", "CLIENT_TOKEN": "c", "MOCK_DEMO_TASK": raw})
    message = str(caught.value)
    assert message.startswith(f"MOCK_DEMO_TASK={raw!r} is invalid: must be a task submission as JSON")
    assert reason in message
    assert "(e.g. MOCK_DEMO_TASK=" in message


async def test_demo_task_is_queued_at_start_and_handed_to_the_first_capable_worker(clock: FakeClock) -> None:
    demo = dict(type=SKILL, params=dict(items=["apple"]))
    settings = MockSettings(WORKER_TOKEN, CLIENT_TOKEN, poll_hold_seconds=0.2, clock=clock, demo_task=demo)
    client = TestClient(TestServer(create_app(settings), host="127.0.0.1"))
    await client.start_server()
    try:
        await register(client, clock)
        task = await take(client)
        assert (task["type"], task["params"]) == (SKILL, dict(items=["apple"]))
    finally:
        await client.close()
