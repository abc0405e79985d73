"""The two orchestrators behind one interface: submit no-op tasks, wait for them, read handler start times."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from .procs import (
    CLIENT_TOKEN,
    HERE,
    REPO,
    WORKER_TOKEN,
    free_port,
    logged_process,
    orchestrator_python,
    redis_server,
    wait_until,
)

TERMINAL_JOB = frozenset({"finished", "failed", "error", "quarantined", "cancelled"})
ACTIVE_TASK = frozenset({"queued", "running"})
# 1.0b30 (orchestrator/app.py) outlives SIGTERM until SIGKILL; its state is not needed once read back.
REAL_STOP_GRACE_S = 3.0
# Loopback source addresses for the client API of a rate-limited orchestrator: it counts requests per
# client address and path (RATE_LIMIT_LIMIT per period), which would otherwise bound the bench's own
# submissions and reads, not the worker under test (whose limits are per worker id).
SOURCES = tuple(f"127.0.0.{i}" for i in range(2, 34))


class _FromSource(urllib.request.HTTPHandler):
    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(http.client.HTTPConnection, req, source_address=(self.source, 0))


@cache
def _opener(source: str | None) -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(*([_FromSource(source)] if source else []))


def call(method: str, url: str, body: Any = None, source: str | None = None) -> Any:
    """One JSON request with the client token (from the loopback address `source`, if given)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"X-Client-Token": CLIENT_TOKEN})
    req.add_header("Content-Type", "application/json")
    with _opener(source).open(req, timeout=60) as resp:
        return json.loads(resp.read() or b"null")


@dataclass
class Submitted:
    """One submitted task: its id and when it was queued (orchestrator clock or submit time)."""

    ref: str
    queued_at: float


@dataclass
class Target:
    """A running orchestrator: `kind` is "mock" or "real"."""

    kind: str
    url: str
    redis_url: str
    sources: tuple[str, ...] = ()  # client requests rotate over these source addresses (rate limits on)
    _turn: int = field(default=0, repr=False)

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        source = self.sources[self._turn % len(self.sources)] if self.sources else None
        self._turn += 1
        return call(method, f"{self.url}{path}", body, source)

    def worker_ids(self) -> set[str]:
        """Ids of the live registered workers."""
        reply = self._call("GET", "/api/v1/workers")
        records = reply["workers"] if self.kind == "mock" else reply
        return {w["worker_id"] for w in records if isinstance(w, dict)}

    def submit(self, task_type: str = "noop", params: dict[str, Any] | None = None) -> Submitted:
        """Queue one task (mock) or job (real)."""
        if self.kind == "mock":
            view = self._call("POST", "/api/v1/tasks", {"type": task_type, "params": params or {}})
            return Submitted(view["task_id"], view["created_at"])
        before = time.time()
        reply = self._call("POST", "/api/v1/jobs/bench_noop", {"initial_data": params or {}})
        return Submitted(reply["job_id"], before)

    def record(self, ref: str) -> dict[str, Any]:
        """The task view (mock) or job record (real)."""
        path = "tasks" if self.kind == "mock" else "jobs"
        return dict(self._call("GET", f"/api/v1/{path}/{ref}"))

    def done(self, ref: str) -> bool:
        """Whether the task/job has ended."""
        rec = self.record(ref)
        return rec["status"] not in ACTIVE_TASK if self.kind == "mock" else rec["status"] in TERMINAL_JOB

    def wait(self, ref: str, timeout: float = 120) -> None:
        """Wait for the task/job to end (the mock long-polls; the real one is re-read)."""
        if self.kind == "mock":
            wait_until(
                lambda: self._call("GET", f"/api/v1/tasks/{ref}?wait=5")["status"] not in ACTIVE_TASK,
                timeout,
                f"task {ref}",
            )
        else:
            # 20 ms: end times come from the handler's own clock, and faster polling would load the
            # orchestrator (it logs every request) that the worker under test is talking to.
            wait_until(lambda: self.done(ref), timeout, f"job {ref}", pause=0.02)

    def started(self, ref: str) -> float | None:
        """When the no-op handler started (its time.time(), from the result data); None if it never ran
        (e.g. the real dispatcher quarantined the job: "No suitable workers")."""
        rec = self.record(ref)
        data = rec["data"] if self.kind == "mock" else rec["state_history"]
        return float(data["started"]) if data and "started" in data else None

    def cancel(self, ref: str) -> None:
        """Request cancellation through the control/client API."""
        path = "tasks" if self.kind == "mock" else "jobs"
        self._call("POST", f"/api/v1/{path}/{ref}/cancel")


def _serve(
    args: list[str],
    env: dict[str, str],
    log: Path,
    cwd: Path,
    kind: str,
    redis_url: str,
    ready_path: str,
    sources: tuple[str, ...] = (),
    stop_grace: float = 15.0,
) -> Iterator[Target]:
    port = free_port()
    env = {**os.environ, **env, "API_PORT": str(port), "MOCK_PORT": str(port)}
    log.parent.mkdir(parents=True, exist_ok=True)
    with logged_process(args, env, log, cwd) as proc:
        target = Target(kind, f"http://127.0.0.1:{port}", redis_url, sources)

        def up() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"{kind} orchestrator exited: {log.read_text()[-2000:]}")
            try:
                call("GET", target.url + ready_path)
                return True
            except OSError:
                return False

        wait_until(up, 60, f"the {kind} orchestrator", pause=0.05)
        try:
            yield target
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=stop_grace)
            except subprocess.TimeoutExpired:
                proc.kill()


@contextmanager
def mock_orchestrator(project: Path, workdir: Path, python: str) -> Iterator[Target]:
    """The generated project's mock on loopback, writing Redis cancel flags to a throw-away Redis."""
    with redis_server() as redis_url:
        env = {
            "WORKER_TOKEN": WORKER_TOKEN,
            "CLIENT_TOKEN": CLIENT_TOKEN,
            "MOCK_HOST": "127.0.0.1",
            "REDIS_URL": redis_url,
            "MOCK_LOG_LEVEL": "WARNING",  # like LOG_LEVEL=WARNING of the real orchestrator below
        }
        yield from _serve(
            [python, "-m", "mock_orchestrator"],
            env,
            workdir / "mock.log",
            project,
            "mock",
            redis_url,
            "/api/v1/workers",
        )


@contextmanager
def real_orchestrator(workdir: Path, overrides: Mapping[str, str] | None = None) -> Iterator[Target]:
    """avtomatika (pinned) on Redis with the bench blueprint; rate limiting off unless `overrides` (added
    to its environment) turn it on, in which case the client requests rotate over SOURCES."""
    blueprints = workdir / "blueprints"
    blueprints.mkdir(parents=True, exist_ok=True)
    (blueprints / "bench_noop.py").write_text((HERE / "blueprints" / "bench_noop.py").read_text())
    orch_dir = REPO / "{{cookiecutter.worker_name}}" / "orchestrator"
    with redis_server() as redis_url:
        env = {
            "API_HOST": "127.0.0.1",
            "REDIS_URL": redis_url,
            "GLOBAL_WORKER_TOKEN": WORKER_TOKEN,
            "CLIENT_TOKEN": CLIENT_TOKEN,
            "RATE_LIMITING_ENABLED": "false",
            "DETAILED_API_RESPONSES": "true",
            "LOG_LEVEL": "WARNING",
            "BLUEPRINTS_DIR": str(blueprints),
            **(overrides or {}),
        }
        limited = env["RATE_LIMITING_ENABLED"].lower() == "true"
        yield from _serve(
            [str(orchestrator_python()), "app.py"],
            env,
            workdir / "real.log",
            orch_dir,
            "real",
            redis_url,
            "/_public/status",
            SOURCES if limited else (),
            REAL_STOP_GRACE_S,
        )
