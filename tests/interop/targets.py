"""The two orchestrators the contract test talks to, behind one small adapter each.

What differs by design is only how work is created, cancelled and inspected: the mock's control API
(`/api/v1/tasks`) versus the real orchestrator's client API (`/api/v1/jobs/<blueprint>`). Outcomes are
reported in one vocabulary: the worker status that ended the work (`success`, a custom status), or
`quarantined`, `failed`, `cancelled`; None while it is still going.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from interop.real import CLIENT_TOKEN, WORKER_TOKEN, RealOrchestrator
from interop.wire import Reply
from processes import answers, free_port, logged_process, wait_for

SCENARIO_BLUEPRINT = "scenario"
REAL_END_STATES = {"finished": "success", "out_of_stock": "out_of_stock"}
MOCK_TERMINAL = {"success", "failure", "cancelled", "quarantined"}


class Target(Protocol):
    """An orchestrator as the contract test sees it."""

    name: str
    base_url: str
    redis_url: str
    worker_token: str

    async def create(self, http: aiohttp.ClientSession, skill: str, params: dict[str, Any]) -> str:
        """Submit one task of `skill`; return a handle for cancel/outcome."""
        ...

    async def cancel(self, http: aiohttp.ClientSession, handle: str) -> Reply:
        """Cancel the work behind `handle`; the raw reply."""
        ...

    async def outcome(self, http: aiohttp.ClientSession, handle: str) -> str | None:
        """The outcome in the shared vocabulary, or None while not terminal."""
        ...


async def _call(http: aiohttp.ClientSession, method: str, url: str, body: Any = None) -> Reply:
    async with http.request(method, url, json=body, headers={"X-Client-Token": CLIENT_TOKEN}) as resp:
        return Reply(resp.status, await resp.json(content_type=None))


@dataclass
class RealTarget:
    """The real orchestrator: one job of the test blueprint `scenario` per task."""

    orchestrator: RealOrchestrator
    name: str = "real"
    worker_token: str = WORKER_TOKEN

    @property
    def base_url(self) -> str:
        return self.orchestrator.base_url

    @property
    def redis_url(self) -> str:
        return self.orchestrator.redis_url

    async def create(self, http: aiohttp.ClientSession, skill: str, params: dict[str, Any]) -> str:
        body = {"initial_data": {"skill": skill, "params": params}, "result_timeout": 300}
        reply = await _call(http, "POST", f"{self.base_url}/api/v1/jobs/{SCENARIO_BLUEPRINT}", body)
        assert reply.status == 202, reply
        return str(reply.body["job_id"])

    async def cancel(self, http: aiohttp.ClientSession, handle: str) -> Reply:
        return await _call(http, "POST", f"{self.base_url}/api/v1/jobs/{handle}/cancel")

    async def outcome(self, http: aiohttp.ClientSession, handle: str) -> str | None:
        job = (await _call(http, "GET", f"{self.base_url}/api/v1/jobs/{handle}")).body
        status = job.get("status")
        if status == "finished" or (status == "failed" and job.get("current_state") in REAL_END_STATES):
            return REAL_END_STATES[job["current_state"]]
        return status if status in ("failed", "quarantined", "cancelled", "error") else None


@dataclass
class MockTarget:
    """The generated project's mock orchestrator: one control-API task per task."""

    base_url: str
    redis_url: str
    name: str = "mock"
    worker_token: str = WORKER_TOKEN

    async def create(self, http: aiohttp.ClientSession, skill: str, params: dict[str, Any]) -> str:
        reply = await _call(http, "POST", f"{self.base_url}/api/v1/tasks", {"type": skill, "params": params})
        assert reply.status == 201, reply
        return str(reply.body["task_id"])

    async def cancel(self, http: aiohttp.ClientSession, handle: str) -> Reply:
        return await _call(http, "POST", f"{self.base_url}/api/v1/tasks/{handle}/cancel")

    async def outcome(self, http: aiohttp.ClientSession, handle: str) -> str | None:
        task = (await _call(http, "GET", f"{self.base_url}/api/v1/tasks/{handle}")).body
        status = task.get("status")
        if status in ("queued", "running", None):
            return None
        # A failure that fails the job is "failed" in the real vocabulary; custom statuses pass through.
        return "failed" if status == "failure" else str(status)


@contextmanager
def mock_orchestrator(
    project: Path, redis_url: str, log: Path, env: dict[str, str] | None = None
) -> Iterator[MockTarget]:
    """Run `python -m mock_orchestrator` of a baked project on a free loopback port (`env` adds variables)."""
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(project),
        "WORKER_TOKEN": WORKER_TOKEN,
        "CLIENT_TOKEN": CLIENT_TOKEN,
        "MOCK_HOST": "127.0.0.1",
        "MOCK_PORT": str(port),
        "MOCK_POLL_HOLD_SECONDS": "1",
        "REDIS_URL": redis_url,
        **(env or {}),
    }
    with logged_process([sys.executable, "-m", "mock_orchestrator"], env, log, project) as proc:
        base_url = f"http://127.0.0.1:{port}"
        # Bound by this process (its own line), then answering: another test's server could otherwise
        # take the port between free_port() and the bind and answer in its place.
        bound = f"listening on {base_url} "

        def ready() -> bool:
            return bound in log.read_text(errors="replace") and answers(base_url + "/_public/status")

        wait_for(lambda: proc.poll() is not None or ready(), 30, "the mock orchestrator")
        assert proc.poll() is None, log.read_text()[-3000:]
        yield MockTarget(base_url, redis_url)
