"""A real Worker, in-process, against the mock orchestrator: register, poll, run handlers, report."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from avtomatika_worker import Worker
from avtomatika_worker.typing import TRANSIENT_ERROR
from mock_orchestrator import MockSettings, create_app

from sdk_faults import worker_config

WORKER_TOKEN = "roundtrip-worker-token"
CLIENT_TOKEN = "roundtrip-client-token"
WORKER_ID = "roundtrip-worker-01"
WAIT_SECONDS = 10  # the control API's ?wait= blocks until the task is done, up to this long


@pytest.fixture
async def orchestrator_url() -> AsyncIterator[str]:
    settings = MockSettings(worker_token=WORKER_TOKEN, client_token=CLIENT_TOKEN, poll_hold_seconds=30.0)
    server = TestServer(create_app(settings), host="127.0.0.1", port=0)
    await server.start_server()
    yield str(server.make_url("")).rstrip("/")
    await server.close()


@pytest.fixture
async def client(orchestrator_url: str) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(
        base_url=orchestrator_url, headers={"X-Client-Token": CLIENT_TOKEN}
    ) as session:
        yield session


def build_worker(orchestrator_url: str, tmp_path: Path) -> Worker:
    config = worker_config(orchestrator_url, tmp_path, worker_token=WORKER_TOKEN, worker_id=WORKER_ID)
    worker = Worker(worker_type="inventory-checker", config=config)

    @worker.task("check_inventory")
    async def check_inventory(params: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        items = params.get("items", [])
        if "unavailable_item" in items:
            return {"status": "out_of_stock", "data": {"missing_item": "unavailable_item"}}
        return {"status": "success", "data": {"items_checked": len(items), "job_id": kwargs["job_id"]}}

    @worker.task("flaky")
    async def flaky(params: dict[str, Any]) -> dict[str, Any]:
        raise ConnectionError("warehouse API unreachable")

    return worker


async def submit(client: aiohttp.ClientSession, task_type: str, params: dict[str, Any]) -> str:
    async with client.post("/api/v1/tasks", json={"type": task_type, "params": params}) as response:
        assert response.status == 201, await response.text()
        task_id: str = (await response.json())["task_id"]
        return task_id


async def finished(client: aiohttp.ClientSession, task_id: str) -> dict[str, Any]:
    async with client.get(f"/api/v1/tasks/{task_id}", params={"wait": str(WAIT_SECONDS)}) as response:
        assert response.status == 200, await response.text()
        view: dict[str, Any] = await response.json()
    assert view["status"] not in ("queued", "running"), f"task not done within {WAIT_SECONDS} s: {view}"
    return view


async def test_worker_registers_and_completes_tasks_end_to_end(
    orchestrator_url: str, client: aiohttp.ClientSession, tmp_path: Path
) -> None:
    async with build_worker(orchestrator_url, tmp_path):
        async with client.get("/api/v1/workers") as response:
            workers = (await response.json())["workers"]
        assert [w["worker_id"] for w in workers] == [WORKER_ID]
        assert workers[0]["worker_type"] == "inventory-checker"
        assert workers[0]["status"] == "idle"
        assert sorted(workers[0]["skills"]) == ["check_inventory", "flaky"]

        ok_id = await submit(client, "check_inventory", {"items": ["apple", "pear"]})
        custom_id = await submit(client, "check_inventory", {"items": ["unavailable_item"]})
        flaky_id = await submit(client, "flaky", {})

        ok = await finished(client, ok_id)
        custom = await finished(client, custom_id)
        failed = await finished(client, flaky_id)

    assert ok["status"] == "success"
    assert ok["data"] == {"items_checked": 2, "job_id": ok["job_id"]}
    assert ok["worker_id"] == WORKER_ID
    assert custom["status"] == "out_of_stock"
    assert custom["data"] == {"missing_item": "unavailable_item"}
    # Any exception is a TRANSIENT_ERROR: the orchestrator retries it 3 times, then quarantines the job.
    assert failed["status"] == "quarantined"
    assert len(failed["attempts"]) == 4
    assert all(
        a["error"] == {"code": TRANSIENT_ERROR, "message": "warehouse API unreachable"}
        for a in failed["attempts"]
    )


async def test_task_queued_before_the_worker_started_is_picked_up(
    orchestrator_url: str, client: aiohttp.ClientSession, tmp_path: Path
) -> None:
    task_id = await submit(client, "check_inventory", {"items": ["apple"]})
    async with build_worker(orchestrator_url, tmp_path):
        done = await finished(client, task_id)
    assert done["status"] == "success"
    assert done["data"]["items_checked"] == 1
