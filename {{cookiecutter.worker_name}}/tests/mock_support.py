"""Helpers for the mock orchestrator tests: a fake clock, a test-local signer and protocol/HTTP shortcuts.

Every test talks real HTTP (and WebSocket) over loopback to an aiohttp TestServer, through the mock's
public APIs only. Messages are signed by the tiny signer below, written from rxon 1.0b17's
``security.py: sign_payload`` and avtomatika 1.0b30's ``_verify_zero_trust``, independently of the SDK
and of the mock.
"""

from __future__ import annotations

import hmac
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from hashlib import sha256
from typing import Any

import orjson
from aiohttp.test_utils import TestClient, TestServer

from mock_orchestrator import MockSettings, create_app

WORKER_TOKEN = "test-worker-token"
CLIENT_TOKEN = "test-client-token"
WORKER_ID = "worker-1"
SKILL = "check_inventory"
CLIENT_HEADERS = {"X-Client-Token": CLIENT_TOKEN}


class FakeClock:
    """Wall clock under the test's control (the MockSettings.clock seam)."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


# --- test-local signer (rxon security.py: sign_payload) ----------------------------------


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


def seal(
    message: dict[str, Any], clock: Callable[[], float], signer: str | None = None, key: str = WORKER_TOKEN
) -> dict[str, Any]:
    """Add timestamp, nonce and security like a well-behaved worker."""
    sealed = dict(message)
    sealed.setdefault("timestamp", int(clock()))
    sealed.setdefault("nonce", uuid.uuid4().hex)
    sealed["security"] = {
        "signature": signature_of(sealed, key),
        "signer_id": signer or sealed.get("worker_id"),
    }
    return sealed


# --- the mock under test ---------------------------------------------------------------------


@asynccontextmanager
async def mock_client(clock: FakeClock, hold: float = 0.2, **settings: Any) -> AsyncIterator[TestClient]:
    """A running mock (real loopback server) and an HTTP client for it."""
    redis_client = settings.pop("redis_client", None)
    config = MockSettings(WORKER_TOKEN, CLIENT_TOKEN, poll_hold_seconds=hold, clock=clock, **settings)
    client = TestClient(TestServer(create_app(config, redis_client=redis_client), host="127.0.0.1"))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


def worker_headers(worker_id: str | None = WORKER_ID, token: str | None = WORKER_TOKEN) -> dict[str, str]:
    headers = {}
    if token is not None:
        headers["X-Worker-Token"] = token
    if worker_id is not None:
        headers["X-Worker-ID"] = worker_id
    return headers


def registration(worker_id: str = WORKER_ID, skills: tuple[str, ...] = (SKILL,)) -> dict[str, Any]:
    return {
        "worker_id": worker_id,
        "worker_type": "inventory-checker",
        "supported_skills": [{"name": s, "type": s, "input_schema": {"type": "object"}} for s in skills],
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


async def result_reply(
    client: TestClient, clock: FakeClock, task: dict[str, Any], **fields: Any
) -> dict[str, Any]:
    resp = await send_result(client, clock, task, **fields)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def fail(
    client: TestClient, clock: FakeClock, task: dict[str, Any], code: str, message: str = "boom"
) -> dict[str, Any]:
    return await result_reply(client, clock, task, status="failure", error={"code": code, "message": message})


async def heartbeat(client: TestClient, worker_id: str, body: dict[str, Any] | None) -> Any:
    data = orjson.dumps(body) if body is not None else None
    return await client.patch(f"/_worker/workers/{worker_id}", data=data, headers=worker_headers(worker_id))


async def task_view(client: TestClient, task_id: str, query: str = "") -> dict[str, Any]:
    resp = await client.get(f"/api/v1/tasks/{task_id}{query}", headers=CLIENT_HEADERS)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def cancel(client: TestClient, task_id: str) -> Any:
    return await client.post(f"/api/v1/tasks/{task_id}/cancel", headers=CLIENT_HEADERS)


async def workers_view(client: TestClient) -> list[dict[str, Any]]:
    resp = await client.get("/api/v1/workers", headers=CLIENT_HEADERS)
    assert resp.status == 200, await resp.text()
    workers: list[dict[str, Any]] = (await resp.json())["workers"]
    return workers


async def expect_error(resp: Any, status: int, text: str) -> None:
    assert resp.status == status, await resp.text()
    assert resp.headers["X-RXON-Version"] == "1.0b17"
    body = await resp.json()
    assert text in body["error"], body


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


async def eventually(client: TestClient, check: Callable[[], Awaitable[bool]], within: float = 5.0) -> None:
    """Re-run ``check`` after each change the mock reports on its change feed (GET /api/v1/events)
    until it holds; fail after ``within`` s. No fixed sleep: the feed answers as soon as anything changes."""
    version, give_up = 0, time.monotonic() + within
    while not await check():
        remaining = give_up - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"{check.__name__} never became true within {within:g} s")
        resp = await client.get(
            f"/api/v1/events?since={version}&wait={remaining:.3f}", headers=CLIENT_HEADERS
        )
        version = (await resp.json())["version"]


async def worker_view(client: TestClient, worker_id: str = WORKER_ID) -> dict[str, Any]:
    """The control-API view of one worker (it must be registered)."""
    views = [w for w in await workers_view(client) if w["worker_id"] == worker_id]
    assert views, f"{worker_id} is not registered"
    return views[0]
