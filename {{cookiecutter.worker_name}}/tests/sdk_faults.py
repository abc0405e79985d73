"""Test helpers for the SDK runtime tests: the mock orchestrator on loopback, a fault-injecting proxy
in front of it, and small waiting helpers (no fixed sleeps: conditions are polled with a deadline)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from avtomatika_worker import Backoff, Wiring, Worker, WorkerConfig
from avtomatika_worker.ratelimit import RateLimits
from mock_orchestrator import MockSettings, create_app

WORKER_TOKEN = "runtime-worker-token-5f2c"
CLIENT_TOKEN = "runtime-client-token"
WORKER_ID = "runtime-worker-01"
FAST_BACKOFF = Backoff(base=0.01, cap=0.05)


async def start_mock(port: int = 0, poll_hold: float = 30.0, **options: Any) -> tuple[TestServer, str]:
    """The mock orchestrator on loopback (`options`: more MockSettings); returns the server and its URL."""
    settings = MockSettings(
        worker_token=WORKER_TOKEN, client_token=CLIENT_TOKEN, poll_hold_seconds=poll_hold, **options
    )
    server = TestServer(create_app(settings), host="127.0.0.1", port=port)
    await server.start_server()
    return server, str(server.make_url("")).rstrip("/")


def worker_config(url: str, tmp_path: Path, **overrides: Any) -> WorkerConfig:
    """A config for tests: fast heartbeats, private spool and liveness paths."""
    settings: dict[str, Any] = {
        "worker_type": "inventory-checker",
        "orchestrator_url": url,
        "worker_token": WORKER_TOKEN,
        "worker_id": WORKER_ID,
        "max_concurrent_tasks": 2,
        "heartbeat_interval": 15.0,
        "poll_timeout": 75.0,
        "shutdown_timeout": 5.0,
        "spool_dir": str(tmp_path / "spool"),
        "health_file": str(tmp_path / "health.json"),
        "rate_limits": RateLimits(enabled=False),  # the mock's default; pacing has tests of its own
    }
    settings.update(overrides)
    return WorkerConfig(**settings)


def make_worker(url: str, tmp_path: Path, wiring: Wiring | None = None, **overrides: Any) -> Worker:
    """A worker with one `check_inventory` skill and a fast backoff (config `overrides`)."""
    config = worker_config(url, tmp_path, **overrides)
    worker = Worker("inventory-checker", config=config, wiring=wiring or Wiring(backoff=FAST_BACKOFF))

    @worker.task("check_inventory")
    async def check(params: dict[str, Any]) -> dict[str, Any]:
        return {"data": {"items_checked": len(params.get("items", []))}}

    return worker


class ControlClient:
    """The mock's control API (X-Client-Token)."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def submit(self, task_type: str, params: dict[str, Any], **fields: Any) -> str:
        """Queue a task (`fields`: priority, deadline in seconds from now); returns its task id."""
        body = {"type": task_type, "params": params, **fields}
        async with self.session.post("/api/v1/tasks", json=body) as response:
            assert response.status == 201, await response.text()
            task_id: str = (await response.json())["task_id"]
            return task_id

    async def show(self, task_id: str, wait: float = 0) -> dict[str, Any]:
        """The task's view; with `wait`, blocks until it is done (up to `wait` s)."""
        params = {"wait": str(wait)} if wait else {}
        async with self.session.get(f"/api/v1/tasks/{task_id}", params=params) as response:
            assert response.status == 200, await response.text()
            view: dict[str, Any] = await response.json()
            return view

    async def finished(self, task_id: str, within: float = 15.0) -> dict[str, Any]:
        """The task's view once it is done."""
        view = await self.show(task_id, wait=within)
        assert view["status"] not in ("queued", "running"), f"task not done within {within} s: {view}"
        return view


@dataclass
class Fault:
    """Answer the next `count` requests matching method and path suffix with `status`, or reset them."""

    method: str
    path_end: str
    count: int
    status: int = 503  # 0 means: reset the connection without answering


@dataclass
class FaultProxy:
    """Forwards to the upstream orchestrator, except for the scripted faults; records what it saw."""

    upstream: str
    faults: list[Fault] = field(default_factory=list)
    seen: list[tuple[str, str, int, Any]] = field(default_factory=list)  # method, path, status, body
    broken: bool = False  # answer everything with 503 (the orchestrator is "down")
    open_polls: int = 0  # task polls in flight now
    peak_polls: int = 0  # the most task polls ever in flight at once

    def bodies(self, method: str, path_end: str) -> list[Any]:
        """JSON bodies of the requests seen (faulty or forwarded)."""
        return [b for m, p, _, b in self.seen if m == method and p.endswith(path_end)]

    def statuses(self, method: str, path_end: str) -> list[int]:
        """The status each matching request got (0: reset)."""
        return [s for m, p, s, _ in self.seen if m == method and p.endswith(path_end)]

    def _fault_for(self, request: web.Request) -> Fault | None:
        for fault in self.faults:
            if fault.count > 0 and request.method == fault.method and request.path.endswith(fault.path_end):
                fault.count -= 1
                return fault
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if not request.path.endswith("/tasks/next"):
            return await self._handle(request)
        self.open_polls += 1
        self.peak_polls = max(self.peak_polls, self.open_polls)
        try:
            return await self._handle(request)
        finally:
            self.open_polls -= 1

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = await request.json() if raw else None
        fault = Fault(request.method, request.path, 1) if self.broken else self._fault_for(request)
        if fault is not None:
            self.seen.append((request.method, request.path, fault.status, body))
            if fault.status == 0:
                assert request.transport is not None
                request.transport.abort()  # a connection reset in the middle of the exchange
                raise ConnectionResetError("reset by the fault proxy")
            return web.json_response({"error": "injected fault"}, status=fault.status)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        timeout = aiohttp.ClientTimeout(total=120)
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                request.method,
                self.upstream + request.path_qs,
                data=raw or None,
                headers=headers,
                timeout=timeout,
            ) as upstream,
        ):
            payload = await upstream.read()
            self.seen.append((request.method, request.path, upstream.status, body))
            content_type = upstream.headers.get("Content-Type", "application/json").split(";")[0]
            return web.Response(status=upstream.status, body=payload, content_type=content_type)

    async def start(self) -> tuple[TestServer, str]:
        """Serve on a free loopback port; returns the server and its base URL."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        server = TestServer(app, host="127.0.0.1", port=0)
        await server.start_server()
        return server, str(server.make_url("")).rstrip("/")
