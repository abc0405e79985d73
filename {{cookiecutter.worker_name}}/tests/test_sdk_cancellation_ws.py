"""The WebSocket cancel channel against a real aiohttp server scripted like the orchestrator's /_worker/ws."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp import web

from avtomatika_worker.cancellation import Cancellations
from avtomatika_worker.config import WorkerConfig
from avtomatika_worker.retry import Backoff
from avtomatika_worker.transport import OrchestratorClient, WsConnect
from avtomatika_worker.websocket import MAX_DELAY, CommandChannel

TOKEN = "ws-test-token"
WORKER_ID = "ws-test-worker"


T = TypeVar("T")
SAFETY_DEADLINE = 10.0  # only so that a broken build fails instead of hanging; never reached when passing


async def within(awaitable: Awaitable[T]) -> T:
    """Await `awaitable`, failing the test (TimeoutError) if it never completes."""
    return await asyncio.wait_for(awaitable, SAFETY_DEADLINE)


async def interrupted(run: asyncio.Task[Any]) -> bool:
    """Wait for `run` to end (with the safety deadline); True if it ended by being cancelled."""
    await asyncio.wait({run}, timeout=SAFETY_DEADLINE)
    return run.cancelled()


def make_config(
    orchestrator_url: str, redis_url: str = "redis://127.0.0.1:9/0", *, enable_websockets: bool = True
) -> WorkerConfig:
    return WorkerConfig(
        worker_type="inventory-checker",
        orchestrator_url=orchestrator_url,
        worker_token=TOKEN,
        worker_id=WORKER_ID,
        redis_url=redis_url,
        enable_websockets=enable_websockets,
        cancel_check_interval=0.05,
    )


class ScriptedOrchestrator:
    """A real loopback server for GET /_worker/ws/{worker_id}, behaving like avtomatika 1.0b30."""

    def __init__(self) -> None:
        self.token = TOKEN
        self.port = 0
        self.connections: asyncio.Queue[web.WebSocketResponse] = asyncio.Queue()
        self.refusals: asyncio.Queue[int] = asyncio.Queue()
        self.disconnections: asyncio.Queue[int | None] = asyncio.Queue()
        self._current: web.WebSocketResponse | None = None
        self._open: set[web.WebSocketResponse] = set()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("X-Worker-Token") != self.token:
            self.refusals.put_nowait(403)
            return web.Response(status=403, text="Unauthorized: No valid token found")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        if self._current is not None and not self._current.closed:
            # What avtomatika's WebSocketManager.register does with the older connection.
            await self._current.close(code=1008, message=b"New connection established")
        self._current = ws
        self._open.add(ws)
        self.connections.put_nowait(ws)
        try:
            async for _ in ws:
                pass
        finally:
            self._open.discard(ws)
        self.disconnections.put_nowait(ws.close_code)
        return ws

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/_worker/ws/{worker_id}", self.handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        """Shut down like avtomatika: close every WebSocket with 1001, then stop listening."""
        for ws in list(self._open):
            await ws.close(code=1001, message=b"Server shutdown")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._current = None


class Gate:
    """An injected back-off sleep: records each requested delay and holds the caller until released."""

    def __init__(self) -> None:
        self.requests: asyncio.Queue[float] = asyncio.Queue()
        self._releases: asyncio.Queue[None] = asyncio.Queue()

    async def sleep(self, delay: float) -> None:
        self.requests.put_nowait(delay)
        await self._releases.get()

    def release(self) -> None:
        self._releases.put_nowait(None)


@pytest.fixture
async def orchestrator() -> AsyncIterator[ScriptedOrchestrator]:
    server = ScriptedOrchestrator()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


def connector(session: aiohttp.ClientSession, url: str) -> WsConnect:
    """The production connect function (OrchestratorClient.ws_connect) bound to the test server."""
    return OrchestratorClient(make_config(url), session).ws_connect


@pytest.fixture
async def channel_run(
    orchestrator: ScriptedOrchestrator, session: aiohttp.ClientSession
) -> AsyncIterator[tuple[Gate, asyncio.Queue[dict[str, Any]]]]:
    """A running CommandChannel with ceiling-sized (jitter = 1.0) delays and a gated sleep."""
    gate = Gate()
    received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    backoff = Backoff(cap=MAX_DELAY, uniform=lambda low, high: high, sleep=gate.sleep)
    channel = CommandChannel(connector(session, orchestrator.url), received.put_nowait, backoff)
    run = asyncio.create_task(channel.run())
    yield gate, received
    run.cancel()
    await asyncio.gather(run, return_exceptions=True)


def worker_side_tasks(before: set[asyncio.Task[Any]]) -> set[asyncio.Task[Any]]:
    """Tasks started since `before`, leaving out the test server's request handlers."""
    return {
        task
        for task in asyncio.all_tasks() - before
        if not task.get_coro().__qualname__.startswith("RequestHandler.")  # type: ignore[union-attr]
    }


def cancel_frame(task_id: str, job_id: str = "job-1") -> dict[str, str]:
    return {"command": "cancel_task", "task_id": task_id, "job_id": job_id}


async def test_json_object_frames_are_handed_over_and_junk_is_skipped(
    orchestrator: ScriptedOrchestrator, channel_run: tuple[Gate, asyncio.Queue[dict[str, Any]]]
) -> None:
    _, received = channel_run
    ws = await within(orchestrator.connections.get())
    await ws.send_str("not json")
    await ws.send_str("[1, 2]")
    await ws.send_bytes(b"\x00binary")
    await ws.send_json({"command": "reboot"})
    await ws.send_json(cancel_frame("task-1"))
    assert await within(received.get()) == {"command": "reboot"}
    assert await within(received.get()) == cancel_frame("task-1")


async def test_reconnects_with_capped_exponential_backoff_after_the_server_restarts(
    orchestrator: ScriptedOrchestrator, channel_run: tuple[Gate, asyncio.Queue[dict[str, Any]]]
) -> None:
    gate, received = channel_run
    await within(orchestrator.connections.get())
    await orchestrator.stop()
    delays = [await within(gate.requests.get())]
    for _ in range(7):
        gate.release()  # the server is down: this attempt fails
        delays.append(await within(gate.requests.get()))
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]

    await orchestrator.start()  # same port
    gate.release()
    ws = await within(orchestrator.connections.get())
    await ws.send_json(cancel_frame("task-after-restart"))
    assert await within(received.get()) == cancel_frame("task-after-restart")


async def test_a_newer_connection_for_the_same_worker_id_makes_the_older_wait_the_cap(
    orchestrator: ScriptedOrchestrator,
    session: aiohttp.ClientSession,
    channel_run: tuple[Gate, asyncio.Queue[dict[str, Any]]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    gate, received = channel_run
    await within(orchestrator.connections.get())
    with caplog.at_level(logging.WARNING, logger="avtomatika_worker"):
        intruder = await within(connector(session, orchestrator.url)())
        assert await within(gate.requests.get()) == MAX_DELAY
    assert "another connection opened for the same worker id" in caplog.text

    gate.release()
    await within(orchestrator.connections.get())  # the intruder's own connection was queued first
    ws = await within(orchestrator.connections.get())
    closing = await within(intruder.receive())
    assert (closing.type, closing.data) == (aiohttp.WSMsgType.CLOSE, 1008)
    await intruder.close()
    await ws.send_json(cancel_frame("task-2"))
    assert await within(received.get()) == cancel_frame("task-2")


async def test_a_refused_upgrade_is_logged_once_as_a_token_problem_and_retried_at_the_cap(
    orchestrator: ScriptedOrchestrator,
    session: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    orchestrator.token = "some-other-token"
    gate = Gate()
    backoff = Backoff(cap=MAX_DELAY, uniform=lambda low, high: high, sleep=gate.sleep)
    channel = CommandChannel(connector(session, orchestrator.url), lambda command: None, backoff)
    with caplog.at_level(logging.INFO, logger="avtomatika_worker"):
        run = asyncio.create_task(channel.run())
        try:
            for _ in range(3):
                assert await within(orchestrator.refusals.get()) == 403
                assert await within(gate.requests.get()) == MAX_DELAY
                gate.release()
            orchestrator.token = TOKEN
            await within(orchestrator.connections.get())
        finally:
            run.cancel()
            await asyncio.gather(run, return_exceptions=True)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, errors
    assert "HTTP 403" in errors[0] and "WORKER_TOKEN" in errors[0]


async def test_websocket_cancel_interrupts_the_tracked_handler(
    orchestrator: ScriptedOrchestrator,
    session: aiohttp.ClientSession,
    redis_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cancellations = Cancellations(lambda: make_config(orchestrator.url, redis_url))
    handler_cancelled = asyncio.Event()

    async def handler() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            handler_cancelled.set()
            raise

    run = asyncio.create_task(handler())
    cancellations.track("task-ws", "job-ws", run)
    await cancellations.start(connector(session, orchestrator.url))
    try:
        ws = await within(orchestrator.connections.get())
        with caplog.at_level(logging.DEBUG, logger="avtomatika_worker"):
            await ws.send_json({"command": "reboot"})
            await ws.send_json(cancel_frame("task-ws", "job-ws"))
            await within(handler_cancelled.wait())
        assert await interrupted(run)
        assert cancellations.is_cancelled("task-ws")
        assert await cancellations.check("task-ws") is True
        assert "ignoring unknown WebSocket command 'reboot'" in caplog.text
    finally:
        await cancellations.stop()


async def test_websocket_cancel_that_arrives_before_track_applies_on_track(
    orchestrator: ScriptedOrchestrator, session: aiohttp.ClientSession, redis_url: str
) -> None:
    cancellations = Cancellations(lambda: make_config(orchestrator.url, redis_url))
    marker = asyncio.create_task(asyncio.Event().wait())
    cancellations.track("task-marker", "job-marker", marker)
    await cancellations.start(connector(session, orchestrator.url))
    try:
        ws = await within(orchestrator.connections.get())
        await ws.send_json(cancel_frame("task-early", "job-early"))
        await ws.send_json(cancel_frame("task-marker", "job-marker"))
        assert await interrupted(marker)  # frames are handled in order: task-early was handled too
        late = asyncio.create_task(asyncio.Event().wait())
        cancellations.track("task-early", "job-early", late)
        assert await interrupted(late)
        assert cancellations.is_cancelled("task-early")
    finally:
        await cancellations.stop()


async def test_no_websocket_is_opened_when_disabled(
    orchestrator: ScriptedOrchestrator, session: aiohttp.ClientSession, redis_url: str
) -> None:
    config = make_config(orchestrator.url, redis_url, enable_websockets=False)
    before = asyncio.all_tasks()
    cancellations = Cancellations(lambda: config)
    await cancellations.start(connector(session, orchestrator.url))
    try:
        started = {task.get_name() for task in asyncio.all_tasks() - before}
        assert started == {"avtomatika-cancel-redis"}
    finally:
        await cancellations.stop()


async def test_stop_closes_the_websocket_and_leaves_no_pending_tasks(
    orchestrator: ScriptedOrchestrator, session: aiohttp.ClientSession, redis_url: str
) -> None:
    before = asyncio.all_tasks()
    cancellations = Cancellations(lambda: make_config(orchestrator.url, redis_url))
    marker = asyncio.create_task(asyncio.Event().wait())
    cancellations.track("task-marker", "job-marker", marker)
    await cancellations.start(connector(session, orchestrator.url))
    ws = await within(orchestrator.connections.get())
    await ws.send_json(cancel_frame("task-marker", "job-marker"))
    assert await interrupted(marker)  # the channel is connected and reading
    assert len(worker_side_tasks(before)) == 2  # the Redis loop and the WebSocket channel
    await cancellations.stop()
    assert worker_side_tasks(before) == set()
    assert await within(orchestrator.disconnections.get()) == 1000  # a normal close from the worker
