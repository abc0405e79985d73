"""The Worker's protocol behaviour against a small scripted orchestrator (registration, heartbeats,
polling, results, retries, concurrency). The full round trip against mock_orchestrator is in
test_sdk_roundtrip.py."""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
import threading
import time
import types
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from avtomatika_worker import Backoff, RegistrationError, StartupError, Wiring, Worker, WorkerConfig
from avtomatika_worker.ratelimit import RateLimits
from avtomatika_worker.signing import sign

from services import eventually

TOKEN = "fake-worker-token"
WORKER_ID = "fake-worker-01"
Reply = tuple[int, Any]  # (HTTP status, JSON body); body None with 200 means the literal null


@dataclass
class FakeOrchestrator:
    """Records every request, checks signatures, and answers from per-endpoint scripts."""

    poll_hold: float = 5.0
    requests: list[tuple[str, str, dict[str, str], Any]] = field(default_factory=list)
    register_replies: list[Reply] = field(default_factory=list)
    heartbeat_replies: list[Reply] = field(default_factory=list)
    ttl_replies: list[Reply] = field(default_factory=list)
    result_replies: list[Reply] = field(default_factory=list)
    tasks: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    results: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    bad_signatures: int = 0
    failing_polls: int = 0  # answer this many polls with 503 first (an outage)
    gzip_tasks: bool = False
    gzip_sent: int = 0

    def bodies(self, method: str, path_end: str) -> list[Any]:
        return [b for m, p, _, b in self.requests if m == method and p.endswith(path_end)]

    async def _record(self, request: web.Request) -> Any:
        body = await request.json() if request.can_read_body else None
        self.requests.append((request.method, request.path, dict(request.headers), body))
        if isinstance(body, dict) and body.get("security", {}).get("signature") != sign(body, TOKEN):
            self.bad_signatures += 1
        return body

    @staticmethod
    def _reply(script: list[Reply], default: Any) -> web.Response:
        status, body = script.pop(0) if script else (200, default)
        return web.json_response(body, status=status)

    async def register(self, request: web.Request) -> web.Response:
        await self._record(request)
        return self._reply(self.register_replies, {"status": "registered", "version": "1.0b17"})

    async def heartbeat(self, request: web.Request) -> web.Response:
        if not await self._record(request):
            return self._reply(self.ttl_replies, {"status": "ttl_refreshed"})
        return self._reply(self.heartbeat_replies, {"status": "ok"})

    async def next_task(self, request: web.Request) -> web.Response:
        await self._record(request)
        if self.failing_polls > 0:
            self.failing_polls -= 1
            return web.json_response({"error": "down"}, status=503)
        try:
            task = await asyncio.wait_for(self.tasks.get(), self.poll_hold)
        except TimeoutError:
            return web.Response(status=204)
        response = web.json_response(task)
        if self.gzip_tasks:
            self.gzip_sent += 1
            response.enable_compression(web.ContentCoding.gzip)
        return response

    async def result(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        await self.results.put(body)
        return self._reply(self.result_replies, {"status": "accepted", "transition": "success_transition"})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/_worker/workers/register", self.register)
        app.router.add_patch("/_worker/workers/{worker_id}", self.heartbeat)
        app.router.add_get("/_worker/workers/{worker_id}/tasks/next", self.next_task)
        app.router.add_post("/_worker/tasks/result", self.result)
        return app


@pytest.fixture(autouse=True)
def isolated_tempdir(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default spool and liveness paths live under the temp dir: give each test its own."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeOrchestrator, str]]:
    orchestrator = FakeOrchestrator()
    server = TestServer(orchestrator.app(), host="127.0.0.1", port=0)
    await server.start_server()
    yield orchestrator, str(server.make_url("")).rstrip("/")
    await server.close()


def make_worker(url: str, backoff: Backoff | None = None, **overrides: Any) -> Worker:
    settings: dict[str, Any] = {
        "worker_type": "inventory-checker",
        "orchestrator_url": url,
        "worker_token": TOKEN,
        "worker_id": WORKER_ID,
        "heartbeat_interval": 30.0,
        "poll_timeout": 10.0,
        "shutdown_timeout": 5.0,
        "rate_limits": RateLimits(enabled=False, period=0.01),  # a scripted 429 silences its type briefly
    }
    settings.update(overrides)
    config = WorkerConfig(**settings)
    worker = Worker(
        worker_type="inventory-checker", config=config, wiring=Wiring(backoff=backoff or Backoff())
    )

    @worker.task("check_inventory")
    async def check(params: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return {"data": {"items": len(params.get("items", []))}}

    return worker


def task(n: int, task_type: str = "check_inventory", **extra: Any) -> dict[str, Any]:
    return dict(job_id=f"job-{n}", task_id=f"task-{n}", type=task_type, params={"items": ["a"]}, **extra)


async def test_registers_signed_with_skills_then_heartbeats_idle(fake: tuple[FakeOrchestrator, str]) -> None:
    orchestrator, url = fake
    async with make_worker(url, enable_websockets=True):
        pass
    method, path, headers, body = orchestrator.requests[0]
    assert (method, path) == ("POST", "/_worker/workers/register")
    assert headers["X-Worker-Token"] == TOKEN
    assert headers["X-Worker-ID"] == WORKER_ID
    assert headers["X-RXON-Version"] == "1.0b17"
    assert "zstd" not in headers.get("Accept-Encoding", "")
    assert body["worker_id"] == WORKER_ID
    assert body["worker_type"] == "inventory-checker"
    assert body["supported_skills"] == [{"name": "check_inventory", "type": "check_inventory"}]
    assert body["available_skills"] == ["check_inventory"]
    assert isinstance(body["timestamp"], int)
    assert body["security"]["signer_id"] == WORKER_ID
    heartbeat = orchestrator.bodies("PATCH", f"/workers/{WORKER_ID}")[0]  # no probe right after registering
    assert heartbeat["status"] == "idle"
    assert heartbeat["current_tasks"] == []
    assert heartbeat["capabilities"] == {"websockets": True}
    assert orchestrator.bad_signatures == 0


async def test_empty_heartbeat_answered_null_triggers_reregistration(
    fake: tuple[FakeOrchestrator, str],
) -> None:
    orchestrator, url = fake
    orchestrator.ttl_replies.append((200, None))  # what 1.0b30 answers once the record has expired
    orchestrator.failing_polls = 1  # an outage: once it ends, the next heartbeat starts with a probe
    orchestrator.poll_hold = 0.05
    async with make_worker(url, backoff=Backoff(base=0.01, cap=0.01)):
        await eventually(lambda: len(orchestrator.bodies("PATCH", f"/workers/{WORKER_ID}")) == 3)
        assert len(orchestrator.bodies("POST", "/workers/register")) == 2  # the probe said: forgotten
        patches = orchestrator.bodies("PATCH", f"/workers/{WORKER_ID}")
        assert [p if p is None else p["status"] for p in patches] == ["idle", None, "idle"]


async def test_null_reply_to_a_signed_heartbeat_also_triggers_reregistration(
    fake: tuple[FakeOrchestrator, str],
) -> None:
    orchestrator, url = fake
    orchestrator.heartbeat_replies.append((200, None))
    async with make_worker(url):
        assert len(orchestrator.bodies("POST", "/workers/register")) == 2


async def test_transient_errors_are_retried_with_full_jitter_capped_backoff(
    fake: tuple[FakeOrchestrator, str],
) -> None:
    orchestrator, url = fake
    orchestrator.register_replies += [(503, {"error": "busy"})] * 4 + [(429, {"error": "Too Many Requests"})]
    bounds: list[tuple[float, float]] = []
    delays: list[float] = []

    def uniform(low: float, high: float) -> float:
        bounds.append((low, high))
        return high / 2

    async def no_sleep(seconds: float) -> None:
        delays.append(seconds)

    async with make_worker(url, Backoff(base=0.5, cap=3.0, uniform=uniform, sleep=no_sleep)):
        pass
    registrations = orchestrator.bodies("POST", "/workers/register")
    assert len(registrations) == 6
    assert bounds == [(0.0, 0.5), (0.0, 1.0), (0.0, 2.0), (0.0, 3.0), (0.0, 3.0)]  # full jitter, capped
    assert delays == [0.25, 0.5, 1.0, 1.5, 1.5]
    assert len({r["nonce"] for r in registrations}) == 6  # re-sealed on every attempt


async def test_rejected_registration_raises_with_the_orchestrator_error(
    fake: tuple[FakeOrchestrator, str],
) -> None:
    orchestrator, url = fake
    orchestrator.register_replies.append((403, {"error": "Unauthorized: No valid token found"}))
    worker = make_worker(url)
    with pytest.raises(RegistrationError, match=r"No valid token found.*check WORKER_TOKEN"):
        await worker.start()
    await worker.stop()


async def test_task_result_is_signed_and_complete(fake: tuple[FakeOrchestrator, str]) -> None:
    orchestrator, url = fake
    async with make_worker(url):
        await orchestrator.tasks.put(task(1, deadline=4102444800.679986, sig="abc", step=1))
        result = await asyncio.wait_for(orchestrator.results.get(), 5)
    assert result["job_id"] == "job-1"
    assert result["task_id"] == "task-1"
    assert result["worker_id"] == WORKER_ID
    assert result["status"] == "success"
    assert result["data"] == {"items": 1}
    assert "error" not in result
    assert orchestrator.bad_signatures == 0


async def test_a_task_type_without_a_handler_is_handed_back_for_a_capable_worker(
    fake: tuple[FakeOrchestrator, str],
) -> None:
    orchestrator, url = fake
    async with make_worker(url):
        await orchestrator.tasks.put(task(1, task_type="paint_fence"))
        result = await asyncio.wait_for(orchestrator.results.get(), 5)
    assert result["status"] == "failure"
    # TRANSIENT: 1.0b30 re-dispatches it to a worker that has the skill (it got here by work stealing).
    assert result["error"]["code"] == "TRANSIENT_ERROR"
    assert "no handler for task type 'paint_fence'" in result["error"]["message"]


async def test_rejected_result_is_logged_with_the_orchestrator_error(
    fake: tuple[FakeOrchestrator, str], caplog: pytest.LogCaptureFixture
) -> None:
    orchestrator, url = fake
    orchestrator.result_replies.append((400, {"error": "Invalid TaskResult payload: bad data"}))
    with caplog.at_level(logging.ERROR, logger="avtomatika_worker"):
        async with make_worker(url):
            await orchestrator.tasks.put(task(1))
            await asyncio.wait_for(orchestrator.results.get(), 5)
            await eventually(lambda: "Invalid TaskResult payload: bad data" in caplog.text)
    assert "HTTP 400" in caplog.text


async def test_client_poll_timeout_counts_as_an_empty_poll(
    fake: tuple[FakeOrchestrator, str], caplog: pytest.LogCaptureFixture
) -> None:
    orchestrator, url = fake
    orchestrator.poll_hold = 30.0  # the server holds longer than the worker's client timeout
    with caplog.at_level(logging.WARNING, logger="avtomatika_worker"):
        async with make_worker(url, poll_timeout=0.2):
            await eventually(lambda: len(orchestrator.bodies("GET", "/tasks/next")) >= 3)
    assert caplog.records == []


async def test_runs_up_to_max_concurrent_tasks_at_once(fake: tuple[FakeOrchestrator, str]) -> None:
    orchestrator, url = fake
    worker = make_worker(url, max_concurrent_tasks=2, heartbeat_interval=0.05)
    running: set[str] = set()
    peak = 0
    release = asyncio.Event()

    @worker.task("slow")
    async def slow(params: dict[str, Any], task_id: str) -> dict[str, Any]:
        nonlocal peak
        running.add(task_id)
        peak = max(peak, len(running))
        await release.wait()
        running.discard(task_id)
        return {}

    async with worker:
        for n in range(3):
            await orchestrator.tasks.put(task(n, task_type="slow"))
        await eventually(lambda: len(running) == 2)
        assert orchestrator.tasks.qsize() == 1  # no poll while both slots are taken
        heartbeat = await next_heartbeat(orchestrator)
        assert heartbeat["status"] == "idle"  # so that 1.0b30 keeps queueing work here
        assert sorted(heartbeat["current_tasks"]) == ["job-0", "job-1"]
        release.set()
        results = [await asyncio.wait_for(orchestrator.results.get(), 5) for _ in range(3)]
    assert peak == 2
    assert sorted(r["task_id"] for r in results) == ["task-0", "task-1", "task-2"]


def reported_statuses(orchestrator: FakeOrchestrator) -> list[str]:
    """The `status` of every signed heartbeat the orchestrator received, oldest first."""
    return [b["status"] for b in orchestrator.bodies("PATCH", f"/workers/{WORKER_ID}") if b]


async def next_heartbeat(orchestrator: FakeOrchestrator) -> dict[str, Any]:
    """The next signed heartbeat the orchestrator receives (use a short heartbeat_interval)."""
    seen = len(reported_statuses(orchestrator))
    await eventually(lambda: len(reported_statuses(orchestrator)) > seen)
    body: dict[str, Any] = [b for b in orchestrator.bodies("PATCH", f"/workers/{WORKER_ID}") if b][seen]
    return body


async def test_same_job_step_redelivered_with_a_new_task_id_runs_twice_and_reports_both(
    fake: tuple[FakeOrchestrator, str],
) -> None:
    orchestrator, url = fake
    worker = make_worker(url, max_concurrent_tasks=2, heartbeat_interval=0.05)
    started: list[str] = []
    release = asyncio.Event()

    @worker.task("slow")
    async def slow(params: dict[str, Any], task_id: str) -> dict[str, Any]:
        started.append(task_id)
        await release.wait()
        return {"data": {"task": task_id}}

    async with worker:
        await orchestrator.tasks.put({"job_id": "job-7", "task_id": "task-a", "type": "slow", "params": {}})
        await orchestrator.tasks.put({"job_id": "job-7", "task_id": "task-b", "type": "slow", "params": {}})
        await eventually(lambda: len(started) == 2)
        heartbeat = await next_heartbeat(orchestrator)
        assert heartbeat["current_tasks"] == ["job-7"]
        release.set()
        results = [await asyncio.wait_for(orchestrator.results.get(), 5) for _ in range(2)]
    assert sorted((r["task_id"], r["data"]["task"]) for r in results) == [
        ("task-a", "task-a"),
        ("task-b", "task-b"),
    ]


async def test_gzip_task_with_unknown_fields_and_float_deadline_is_run(
    fake: tuple[FakeOrchestrator, str],
) -> None:
    orchestrator, url = fake
    seen: list[Any] = []
    worker = make_worker(url)

    @worker.task("deadline")
    async def with_deadline(params: dict[str, Any], deadline: float | None) -> dict[str, Any]:
        seen.append(deadline)
        return {}

    orchestrator.gzip_tasks = True
    async with worker:
        padding = "x" * 2000  # large enough that compression matters
        await orchestrator.tasks.put(
            task(1, task_type="deadline", deadline=4102444800.679986, future_field={"a": padding}, step=3)
        )
        result = await asyncio.wait_for(orchestrator.results.get(), 5)
    assert orchestrator.gzip_sent == 1
    assert result["status"] == "success"
    assert seen == [4102444800.679986]


SECRET = "orchestrator-secret-key"


@pytest.mark.parametrize(("mutate", "runs"), [("none", True), ("tamper", False), ("drop", False)])
async def test_task_signature_is_verified_when_the_secret_is_set(
    fake: tuple[FakeOrchestrator, str], mutate: str, runs: bool
) -> None:
    from avtomatika_worker.signing import sign_task

    orchestrator, url = fake
    ran: list[str] = []
    worker = make_worker(url, orchestrator_secret_key=SECRET)

    @worker.task("signed")
    async def signed(params: dict[str, Any], task_id: str) -> dict[str, Any]:
        ran.append(task_id)
        return {}

    payload = task(1, task_type="signed", deadline=4102444800.5, security={"a": 1}, step=1)
    payload["sig"] = sign_task(payload, SECRET)
    if mutate == "tamper":
        payload["params"] = {"items": ["forged"]}
    elif mutate == "drop":
        del payload["sig"]
    async with worker:
        await orchestrator.tasks.put(payload)
        result = await asyncio.wait_for(orchestrator.results.get(), 5)
    assert bool(ran) is runs
    if runs:
        assert result["status"] == "success"
    else:
        assert result["status"] == "failure"
        assert result["error"]["code"] == "SECURITY_ERROR"
        assert (
            "ORCHESTRATOR_SECRET_KEY" in result["error"]["message"]
            or "no orchestrator" in (result["error"]["message"])
        )


async def test_heartbeat_reply_cancelling_the_job_reports_cancelled_not_success(
    fake: tuple[FakeOrchestrator, str],
) -> None:
    orchestrator, url = fake
    worker = make_worker(url, heartbeat_interval=0.05)
    started = asyncio.Event()

    @worker.task("slow")
    async def slow(params: dict[str, Any]) -> dict[str, Any]:
        started.set()
        await asyncio.Event().wait()  # until cancelled
        return {}

    async with worker:
        await orchestrator.tasks.put(task(1, task_type="slow"))
        await asyncio.wait_for(started.wait(), 5)
        orchestrator.heartbeat_replies.append((200, {"status": "ok", "cancel_task_ids": ["job-1"]}))
        await next_heartbeat(orchestrator)
        result = await asyncio.wait_for(orchestrator.results.get(), 5)
    assert result["status"] == "cancelled"
    assert "data" not in result and "error" not in result


async def test_every_slot_taken_still_reports_idle_so_the_orchestrator_queues_work(
    fake: tuple[FakeOrchestrator, str],
) -> None:
    orchestrator, url = fake
    worker = make_worker(url, max_concurrent_tasks=1, heartbeat_interval=0.05)
    started, release = asyncio.Event(), asyncio.Event()

    @worker.task("slow")
    async def slow(params: dict[str, Any]) -> dict[str, Any]:
        started.set()
        await release.wait()
        return {}

    async with worker:
        await orchestrator.tasks.put(task(1, task_type="slow"))
        await started.wait()
        await next_heartbeat(orchestrator)  # the only slot is taken
        release.set()
        await asyncio.wait_for(orchestrator.results.get(), 5)
    statuses = reported_statuses(orchestrator)
    stopping = statuses.index("draining")  # the stop
    assert set(statuses[:stopping]) == {"idle"}
    assert set(statuses[stopping:]) == {"draining"}


async def test_token_never_appears_in_logs(
    fake: tuple[FakeOrchestrator, str], caplog: pytest.LogCaptureFixture
) -> None:
    orchestrator, url = fake
    orchestrator.register_replies.append((503, {"error": "busy"}))
    orchestrator.result_replies.append((403, {"error": "Invalid cryptographic signature"}))
    worker = make_worker(url, backoff=Backoff(base=0.01, cap=0.02))

    @worker.task("boom")
    async def boom(params: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("boom")

    with caplog.at_level(logging.DEBUG):
        async with worker:
            await orchestrator.tasks.put(task(1, task_type="boom"))
            await asyncio.wait_for(orchestrator.results.get(), 5)
            await asyncio.wait_for(orchestrator.results.get(), 5)  # resent after the 403
    assert "boom" in caplog.text
    assert TOKEN not in caplog.text


async def test_startup_hooks_run_before_registration_and_share_state_with_handlers(
    fake: tuple[FakeOrchestrator, str],
) -> None:
    orchestrator, url = fake
    worker = make_worker(url)
    events: list[str] = []

    @worker.on_startup
    async def open_pool() -> None:
        events.append(f"startup after {len(orchestrator.requests)} requests")
        worker.state.pool = "the pool"

    @worker.on_shutdown
    async def close_pool() -> None:
        events.append("shutdown")

    @worker.task("uses_pool")
    async def uses_pool(params: dict[str, Any], state: Any) -> dict[str, Any]:
        return {"data": {"pool": state.pool}}

    async with worker:
        await orchestrator.tasks.put(task(1, task_type="uses_pool"))
        result = await asyncio.wait_for(orchestrator.results.get(), 5)
        assert events == ["startup after 0 requests"]
    assert result["data"] == {"pool": "the pool"}
    assert events == ["startup after 0 requests", "shutdown"]


async def test_a_failing_startup_hook_stops_the_worker_before_it_registers(
    fake: tuple[FakeOrchestrator, str],
) -> None:
    orchestrator, url = fake
    worker = make_worker(url)

    @worker.on_startup
    async def load_model() -> None:
        raise FileNotFoundError("model.bin")

    with pytest.raises(
        StartupError, match=r"on_startup hook '.*load_model' failed: FileNotFoundError\('model.bin'\)"
    ):
        async with worker:
            pass
    assert orchestrator.requests == []


async def test_a_sync_handler_polls_check_for_cancellation_as_a_bool_from_its_thread(
    fake: tuple[FakeOrchestrator, str],
) -> None:
    orchestrator, url = fake
    worker = make_worker(url, heartbeat_interval=0.05)
    started = threading.Event()

    @worker.task("crunch")
    def crunch(params: dict[str, Any], task_id: str) -> dict[str, Any]:
        started.set()
        while not worker.check_for_cancellation(task_id):  # blocks briefly on the worker's loop
            time.sleep(0.01)
        return {"status": "cancelled", "data": {"stopped": True}}

    async with worker:
        await orchestrator.tasks.put(task(1, task_type="crunch"))
        await asyncio.to_thread(started.wait, 5)
        orchestrator.heartbeat_replies.append((200, {"status": "ok", "cancel_task_ids": ["job-1"]}))
        result = await asyncio.wait_for(orchestrator.results.get(), 5)
    assert result["status"] == "cancelled"
    with pytest.raises(TypeError, match="must be awaited in async code"):
        bool(worker.check_for_cancellation("task-1"))


async def test_registration_publishes_what_the_decorator_says_about_each_skill(
    fake: tuple[FakeOrchestrator, str],
) -> None:
    orchestrator, url = fake
    worker = make_worker(url)
    schema = {"type": "object", "properties": {"width": {"type": "integer"}}}

    @worker.task(
        "resize",
        version="2.1.0",
        type="image",
        input_schema=schema,
        output_statuses=["success", "too_small"],
        events_schema={"progress": {"type": "object"}},
        schema_dialect="json-schema",
        properties={"max_pixels": 4096},
    )
    async def resize(params: dict[str, Any]) -> dict[str, Any]:
        """Resize an image.

        Keeps the aspect ratio."""
        return {}

    async with worker:
        pass
    published = {
        s["name"]: s for s in orchestrator.bodies("POST", "/workers/register")[0]["supported_skills"]
    }
    assert published["resize"] == {
        "name": "resize",
        "type": "image",
        "version": "2.1.0",
        "description": "Resize an image.\n\nKeeps the aspect ratio.",
        "input_schema": schema,
        "output_statuses": ["success", "too_small"],
        "events_schema": {"progress": {"type": "object"}},
        "schema_dialect": "json-schema",
        "properties": {"max_pixels": 4096},
    }
    assert published["check_inventory"] == {"name": "check_inventory", "type": "check_inventory"}


@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"version": 2}, "version=2 must be a non-empty string"),
        ({"input_schema": "object"}, "input_schema='object' must be a JSON Schema object"),
        ({"output_statuses": ["ok", ""]}, "output_statuses=('ok', '') must be a list of non-empty strings"),
        ({"schema_dialect": ""}, "schema_dialect='' must be a non-empty string"),
        ({"properties": ["gpu"]}, "properties=['gpu'] must be a dict with string keys"),
    ],
)
def test_a_bad_skill_description_fails_at_decoration_naming_the_handler_and_the_field(
    keywords: dict[str, Any], message: str
) -> None:
    worker = Worker(worker_type="t")
    with pytest.raises(TypeError) as caught:

        @worker.task("resize", **keywords)
        async def resize(params: dict[str, Any]) -> dict[str, Any]:
            return {}

    assert "@worker.task('resize') on " in str(caught.value) and "resize'" in str(caught.value)
    assert message in str(caught.value)


SKILLS_MODULE = '''
from avtomatika_worker import SkillBlueprint

bp = SkillBlueprint()


@bp.skill(version="1.0")
async def shout(params):
    """Upper-case params["text"]."""
    return {"data": {"text": params["text"].upper()}}


def setup(worker):
    @worker.task("whisper")
    async def whisper(params):
        return {"data": {"text": params["text"].lower()}}
'''


async def test_skills_in_worker_skills_dir_are_loaded_at_start_and_registered(
    fake: tuple[FakeOrchestrator, str], tmp_path: Path
) -> None:
    orchestrator, url = fake
    (tmp_path / "skills").mkdir()
    (tmp_path / "skills" / "text.py").write_text(SKILLS_MODULE)
    (tmp_path / "skills" / "_private.py").write_text("raise RuntimeError('never imported')")
    worker = make_worker(url, skills_dir=str(tmp_path / "skills"))
    async with worker:
        pass
    published = {
        s["name"]: s for s in orchestrator.bodies("POST", "/workers/register")[0]["supported_skills"]
    }
    assert published["shout"]["version"] == "1.0"
    assert published["shout"]["description"] == 'Upper-case params["text"].'
    assert "whisper" in published


async def test_a_broken_skills_module_stops_the_start_naming_the_file(
    fake: tuple[FakeOrchestrator, str], tmp_path: Path
) -> None:
    orchestrator, url = fake
    (tmp_path / "broken.py").write_text("import not_a_module_anywhere\n")
    worker = make_worker(url, skills_dir=str(tmp_path))
    with pytest.raises(StartupError, match=r"skills module .*broken.py failed to load: ModuleNotFoundError"):
        async with worker:
            pass
    assert orchestrator.requests == []


async def test_skill_type_limits_run_one_handler_of_a_limited_type_at_a_time(
    fake: tuple[FakeOrchestrator, str],
) -> None:
    orchestrator, url = fake
    config = make_worker(url, max_concurrent_tasks=3, heartbeat_interval=0.05).config
    worker = Worker("inventory-checker", config=config, skill_type_limits={"gpu": 1})
    running: set[str] = set()
    release = asyncio.Event()

    async def hold(task_id: str) -> dict[str, Any]:
        running.add(task_id)
        await release.wait()
        running.discard(task_id)
        return {}

    @worker.task("render", type="gpu")
    async def render(params: dict[str, Any], task_id: str) -> dict[str, Any]:
        return await hold(task_id)

    @worker.task("thumbnail")
    async def thumbnail(params: dict[str, Any], task_id: str) -> dict[str, Any]:
        return await hold(task_id)

    async with worker:
        for n, kind in enumerate(["render", "render", "thumbnail"]):
            await orchestrator.tasks.put(task(n, task_type=kind))
        await eventually(lambda: running == {"task-0", "task-2"})  # the second render waits its turn
        assert (await next_heartbeat(orchestrator))["status"] == "idle"
        release.set()
        results = [await asyncio.wait_for(orchestrator.results.get(), 5) for _ in range(3)]
    assert sorted(r["task_id"] for r in results) == ["task-0", "task-1", "task-2"]


async def test_a_task_the_capacity_checker_refuses_waits_in_the_worker_which_stays_idle(
    fake: tuple[FakeOrchestrator, str],
) -> None:
    orchestrator, url = fake
    config = make_worker(url, max_concurrent_tasks=3, heartbeat_interval=0.05).config
    allowed = {"render": False, "thumbnail": True}
    asked: list[str] = []

    def has_capacity(skill: str) -> bool:
        asked.append(skill)
        return allowed[skill]

    worker = Worker("inventory-checker", config=config, capacity_checker=has_capacity)
    started: list[str] = []
    release = asyncio.Event()

    @worker.task("render")
    async def render(params: dict[str, Any]) -> dict[str, Any]:
        started.append("render")
        return {}

    @worker.task("thumbnail")
    async def thumbnail(params: dict[str, Any]) -> dict[str, Any]:
        started.append("thumbnail")
        await release.wait()
        return {}

    async with worker:
        await orchestrator.tasks.put(task(0, task_type="render"))
        await orchestrator.tasks.put(task(1, task_type="thumbnail"))
        await eventually(lambda: started == ["thumbnail"] and "render" in asked)
        assert (await next_heartbeat(orchestrator))["status"] == "idle"
        allowed["render"] = True
        release.set()  # a task's end asks the checker again at once
        results = [await asyncio.wait_for(orchestrator.results.get(), 5) for _ in range(2)]
    assert started == ["thumbnail", "render"]
    assert sorted(r["task_id"] for r in results) == ["task-0", "task-1"]


async def test_a_failing_capacity_checker_lets_the_task_run_rather_than_hold_the_job(
    fake: tuple[FakeOrchestrator, str], caplog: pytest.LogCaptureFixture
) -> None:
    orchestrator, url = fake

    def broken(skill: str) -> bool:
        raise RuntimeError("gpu probe down")

    worker = Worker("inventory-checker", config=make_worker(url).config, capacity_checker=broken)

    @worker.task("render")
    async def render(params: dict[str, Any]) -> dict[str, Any]:
        return {"rendered": True}

    async with worker:
        await orchestrator.tasks.put(task(0, task_type="render"))
        result = await asyncio.wait_for(orchestrator.results.get(), 5)
    assert result["status"] == "success"
    assert "capacity_checker failed for 'render': starting the task anyway" in caplog.text


def test_an_async_capacity_checker_is_refused_at_construction() -> None:
    async def has_capacity(skill: str) -> bool:
        return True

    with pytest.raises(TypeError, match=r"capacity_checker=.* must be a plain function"):
        Worker("inventory-checker", capacity_checker=has_capacity)  # type: ignore[arg-type]


def test_a_task_without_a_name_takes_the_functions_and_its_modules_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = types.ModuleType("versioned_skills")
    module.__version__ = "3.1.0"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "versioned_skills", module)

    async def resize(params: dict[str, Any]) -> dict[str, Any]:
        return {}

    resize.__module__ = "versioned_skills"
    worker = Worker("t")
    worker.task()(resize)
    worker.task("pinned", version="1.0")(resize)
    published = {h.name: h.skill.published() for h in worker._handlers.values() if h.skill}
    assert published["resize"]["version"] == "3.1.0"
    assert published["pinned"]["version"] == "1.0"
    with pytest.raises(TypeError, match="with the parentheses"):
        worker.task(resize)  # type: ignore[arg-type]


def test_skill_type_limits_must_be_whole_numbers() -> None:
    with pytest.raises(
        ValueError, match=r"skill_type_limits\['gpu'\]=0 must be a whole number of at least 1"
    ):
        Worker("inventory-checker", skill_type_limits={"gpu": 0})
