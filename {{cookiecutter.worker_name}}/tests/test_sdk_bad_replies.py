"""Whatever the orchestrator sends, the worker never spins: bad poll replies are backed off like an
outage, logged once per burst and, when they carry ids, reported as failures; slow replies are named in
the log and turn the liveness file `unreachable` even though nothing fails."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from avtomatika_worker import Backoff, Wiring, Worker
from avtomatika_worker.liveness import LivenessFile, read_liveness
from avtomatika_worker.stalls import ReplyWatch
from avtomatika_worker.transport import OrchestratorClient

from sdk_faults import WORKER_ID, worker_config

GOOD_TASK = {"job_id": "job-ok", "task_id": "task-ok", "type": "check_inventory", "params": {"items": ["a"]}}
# What a broken orchestrator, proxy or load balancer might answer a poll with (all HTTP 200).
BAD_REPLIES: list[tuple[bytes, str]] = [
    (b"<html><body>502 Bad Gateway</body></html>", "text/html"),
    (b"[1, 2, 3]", "application/json"),
    (b'{"job_id": "job-1", "task_id": "task-1"}', "application/json"),  # no type
    (
        b'{"job_id": "job-2", "task_id": "task-2", "type": "check_inventory", "params": [1]}',
        "application/json",
    ),
    (b'{"task_id": 7, "type": "check_inventory"}', "application/json"),
]


class BadOrchestrator:
    """Answers `rounds` polls with the bad replies in turn, then one good task; records results."""

    def __init__(self, rounds: int) -> None:
        self.rounds = rounds
        self.polls = 0
        self.results: list[dict[str, Any]] = []
        self.done = asyncio.Event()

    async def register(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "registered", "version": "1.0b17"})

    async def heartbeat(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def poll(self, request: web.Request) -> web.Response:
        self.polls += 1
        if self.polls <= self.rounds:
            body, content_type = BAD_REPLIES[(self.polls - 1) % len(BAD_REPLIES)]
            return web.Response(body=body, content_type=content_type)
        if self.polls == self.rounds + 1:
            return web.json_response(GOOD_TASK)
        await asyncio.sleep(30)
        return web.Response(status=204)

    async def result(self, request: web.Request) -> web.Response:
        self.results.append(await request.json())
        if any(r["task_id"] == "task-ok" for r in self.results):
            self.done.set()
        return web.json_response({"status": "accepted", "transition": "failure_handled"})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/_worker/workers/register", self.register)
        app.router.add_patch("/_worker/workers/{worker_id}", self.heartbeat)
        app.router.add_get("/_worker/workers/{worker_id}/tasks/next", self.poll)
        app.router.add_post("/_worker/tasks/result", self.result)
        return app


@pytest.fixture
async def bad() -> AsyncIterator[tuple[BadOrchestrator, str]]:
    orchestrator = BadOrchestrator(rounds=40)
    server = TestServer(orchestrator.app(), host="127.0.0.1", port=0)
    await server.start_server()
    yield orchestrator, str(server.make_url("")).rstrip("/")
    await server.close()


async def test_a_stream_of_bad_replies_is_backed_off_once_each_reported_and_logged_once_per_burst(
    bad: tuple[BadOrchestrator, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    orchestrator, url = bad
    delays: list[float] = []

    async def no_wait(seconds: float) -> None:  # records the backoff instead of waiting it out
        delays.append(seconds)

    backoff = Backoff(base=0.5, cap=5.0, uniform=lambda low, high: high, sleep=no_wait)
    worker = Worker("inventory-checker", config=worker_config(url, tmp_path), wiring=Wiring(backoff=backoff))

    @worker.task("check_inventory")
    async def check(params: dict[str, Any]) -> dict[str, Any]:
        return {"data": {"n": len(params["items"])}}

    async with worker:
        await asyncio.wait_for(orchestrator.done.wait(), 10)
    assert orchestrator.polls <= 42  # 40 bad, the good one, and perhaps the next (free slot)
    assert len(delays) == 40  # one backoff per bad reply: the poll loop never spins
    assert delays[:5] == [0.5, 1.0, 2.0, 4.0, 5.0]  # growing like an outage's, capped
    failures = {r["task_id"]: r["error"] for r in orchestrator.results if r["task_id"] != "task-ok"}
    assert set(failures) == {"task-1", "task-2"}  # the bad replies that carry ids, once per reply
    assert failures["task-1"]["code"] == "INVALID_INPUT_ERROR"
    assert "type is missing, expected a non-empty string" in failures["task-1"]["message"]
    assert "params is a JSON list" in failures["task-2"]["message"]
    assert [r["status"] for r in orchestrator.results if r["task_id"] == "task-ok"] == ["success"]
    burst = [r for r in caplog.records if "bad task reply" in r.getMessage() and r.levelno >= logging.WARNING]
    assert [r.getMessage().split(":")[0] for r in burst] == [
        "bad task reply 1 in a row",
        "bad task reply 20 in a row",
        "bad task reply 40 in a row",
    ]
    assert "valid again after 40 bad one(s)" in caplog.text


async def stalled(request: web.Request) -> web.Response:
    await asyncio.sleep(3600)
    return web.json_response({"status": "ok"})


async def test_a_stalled_reply_is_named_in_the_log_and_turns_liveness_unreachable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = web.Application()
    app.router.add_patch("/_worker/workers/{worker_id}", stalled)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    health = tmp_path / "health.json"
    liveness = LivenessFile(health, WORKER_ID, unreachable_after=0.2)
    liveness.observe(True)
    watch = ReplyWatch(on_stall=liveness.trouble, reply_expected=0.1)
    config = worker_config(str(server.make_url("")).rstrip("/"), tmp_path)
    client = OrchestratorClient(config, on_exchange=liveness.observe, watch=watch)
    beat = asyncio.create_task(client.heartbeat({"worker_id": WORKER_ID, "status": "idle"}))
    try:
        while read_liveness(health)["status"] != "unreachable":
            assert not beat.done(), beat
            await asyncio.sleep(0.02)
        message = (
            f"still waiting for the orchestrator's reply to PATCH /_worker/workers/{WORKER_ID} after 0 s"
        )
        assert message in caplog.text
        assert orjson.loads(health.read_bytes())["worker_id"] == WORKER_ID
    finally:
        beat.cancel()
        await asyncio.gather(beat, return_exceptions=True)
        await client.close()
        await server.close()
