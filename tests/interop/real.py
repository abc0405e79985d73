"""The REAL orchestrator (avtomatika, pinned) on a throw-away redis-server, and baked workers against it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from processes import (
    ORCHESTRATOR_DIR,
    free_port,
    http_json,
    logged_process,
    orchestrator_python,
    redis_server,
    wait_for,
)

WORKER_TOKEN = "interop-worker-token"
CLIENT_TOKEN = "interop-client-token"
TERMINAL = frozenset({"finished", "failed", "error", "quarantined", "cancelled"})
TEST_BLUEPRINTS = Path(__file__).with_name("blueprints")
SCENARIO_WORKER = Path(__file__).with_name("scenario_worker.py")


@dataclass
class RealOrchestrator:
    """The client API and log of a running real orchestrator."""

    base_url: str
    redis_url: str
    log: Path
    worker_rate_limits: str = "off"  # WORKER_RATE_LIMITS matching the orchestrator's RATE_LIMIT_* settings
    client_ssl: ssl.SSLContext | None = None  # with TLS_ENABLED=true: the client API's CA and certificate

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """Call the client API with the client token."""
        headers = {"X-Client-Token": CLIENT_TOKEN}
        return http_json(method, self.base_url + path, body, headers, self.client_ssl)

    def workers(self) -> dict[str, dict[str, Any]]:
        """The live worker records by id."""
        records = self.api("GET", "/api/v1/workers")
        return (
            {w["worker_id"]: w for w in records if isinstance(w, dict)} if isinstance(records, list) else {}
        )

    def create_job(self, blueprint: str, initial_data: dict[str, Any], **options: Any) -> str:
        """POST a job (options: result_timeout, dispatch_timeout, ...) and return its id."""
        reply = self.api("POST", f"/api/v1/jobs/{blueprint}", {"initial_data": initial_data, **options})
        return str(reply["job_id"])

    def job(self, job_id: str) -> dict[str, Any]:
        """The detailed job record (DETAILED_API_RESPONSES=true)."""
        return dict(self.api("GET", f"/api/v1/jobs/{job_id}"))

    def wait_job(
        self, job_id: str, done: Callable[[dict[str, Any]], bool], what: str, timeout: float = 30
    ) -> dict[str, Any]:
        """Re-read the job until `done(job)`; fail naming `what` and the last record."""
        seen: dict[str, Any] = {}

        def check() -> bool:
            seen.clear()
            seen.update(self.job(job_id))
            return done(seen)

        wait_for(check, timeout, f"job {job_id}: {what}; last seen {seen}")
        return seen

    def run_job(
        self, blueprint: str, initial_data: dict[str, Any], timeout: float = 30, **options: Any
    ) -> dict:
        """Create a job and wait for a terminal status."""
        job_id = self.create_job(blueprint, initial_data, **options)
        return self.wait_job(job_id, lambda j: j.get("status") in TERMINAL, "a terminal status", timeout)

    def cancel(self, job_id: str) -> Any:
        """Cancel a job through the client API."""
        return self.api("POST", f"/api/v1/jobs/{job_id}/cancel")

    def watcher_timeouts(self, job_id: str) -> int:
        """How often the watcher timed the job out: each one counts a retry the worker did not cause."""
        return self.log.read_text(errors="replace").count(f"Watcher: Job {job_id} timed out.")

    def wait_log(self, text: str, what: str, timeout: float = 30) -> None:
        """Wait until the orchestrator's log holds `text`."""
        wait_for(lambda: text in self.log.read_text(errors="replace"), timeout, what)


def blueprints_dir(root: Path) -> Path:
    """A BLUEPRINTS_DIR holding the generated project's sample blueprints and the test-only ones."""
    target = root / "blueprints"
    target.mkdir(parents=True, exist_ok=True)
    for source in (ORCHESTRATOR_DIR / "blueprints", TEST_BLUEPRINTS):
        for file in source.glob("*.py"):
            if file.name != "__init__.py":
                shutil.copy(file, target / file.name)
    return target


@contextmanager
def real_orchestrator(
    workdir: Path,
    *,
    workers_toml: str | None = None,
    env: dict[str, str] | None = None,
    client_ssl: ssl.SSLContext | None = None,
    python: Path | None = None,
) -> Iterator[RealOrchestrator]:
    """Start redis-server and the real orchestrator (app.py of the generated project) on loopback
    (over https when `env` has TLS_ENABLED=true: `client_ssl` then serves the client API)."""
    python = python or orchestrator_python()
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    with redis_server() as redis_url:
        environment = {
            **os.environ,
            "API_HOST": "127.0.0.1",
            "API_PORT": str(port),
            "REDIS_URL": redis_url,
            "GLOBAL_WORKER_TOKEN": WORKER_TOKEN,
            "CLIENT_TOKEN": CLIENT_TOKEN,
            "RATE_LIMITING_ENABLED": "false",
            "DETAILED_API_RESPONSES": "true",
            "LOG_LEVEL": "INFO",
            "BLUEPRINTS_DIR": str(blueprints_dir(workdir)),
            **(env or {}),
        }
        if workers_toml is not None:
            (workdir / "workers.toml").write_text(workers_toml)
            environment["WORKERS_CONFIG_PATH"] = str(workdir / "workers.toml")
        log = workdir / "orchestrator.log"
        # 1.0b30 does not exit on SIGTERM within 40 s (its shutdown waits on background tasks): 3 s, then SIGKILL.
        with logged_process([str(python), "app.py"], environment, log, ORCHESTRATOR_DIR, grace=3) as proc:
            scheme = "https" if environment.get("TLS_ENABLED", "").lower() == "true" else "http"
            base_url = f"{scheme}://127.0.0.1:{port}"
            # Its own "ready" line, not just an answer on the port: between free_port() and its bind,
            # another test's server may take the port, and would then answer in its place.
            ready = f"real orchestrator ready on port {port}"
            wait_for(
                lambda: proc.poll() is not None or ready in log.read_text(errors="replace"),
                60,
                "the orchestrator",
            )
            assert proc.poll() is None, log.read_text()[-3000:]
            limits = matching_worker_limits(environment)
            yield RealOrchestrator(base_url, redis_url, log, limits, client_ssl)


def matching_worker_limits(environment: dict[str, str]) -> str:
    """The WORKER_RATE_LIMITS that tells a worker the orchestrator's RATE_LIMIT_* settings (1.0b30 config.py)."""
    if environment.get("RATE_LIMITING_ENABLED", "true").lower() != "true":
        return "off"
    setting = {"poll": "RATE_LIMIT_POLL_LIMIT", "heartbeat": "RATE_LIMIT_HEARTBEAT_LIMIT"}
    setting |= {"other": "RATE_LIMIT_LIMIT", "period": "RATE_LIMIT_PERIOD"}
    defaults = {"poll": "60", "heartbeat": "120", "other": "100", "period": "60"}
    return ",".join(f"{name}={environment.get(var, defaults[name])}" for name, var in setting.items())


@dataclass
class RunningWorker:
    """A baked worker process."""

    worker_id: str
    log: Path
    alive: Callable[[], bool]
    proc: subprocess.Popen[bytes] | None = None

    def tail(self) -> str:
        """The end of its log, for failure messages."""
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 60) -> tuple[int, float]:
        """Send `signum` and wait for the exit; returns the exit code and the seconds it took."""
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(signum)
        code = self.proc.wait(timeout=timeout)
        return code, time.monotonic() - started


@contextmanager
def baked_worker(
    orchestrator: RealOrchestrator,
    project: Path,
    worker_id: str,
    *,
    script: Path | None = None,
    env: dict[str, str] | None = None,
    stays_up: bool = True,
    log_name: str | None = None,
    wait_registered: bool = True,
) -> Iterator[RunningWorker]:
    """Run my_worker.py (or a scenario script importing it) of a baked project until registered and idle."""
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(project), os.environ.get("PYTHONPATH")])),
        "ORCHESTRATOR_URL": orchestrator.base_url,
        "WORKER_TOKEN": WORKER_TOKEN,
        "WORKER_ID": worker_id,
        "REDIS_URL": orchestrator.redis_url,
        "WORKER_ENABLE_WEBSOCKETS": "false",
        "WORKER_SPOOL_DIR": str(project.parent / f"spool-{worker_id}"),
        "WORKER_HEALTH_FILE": str(project.parent / f"health-{worker_id}.json"),
        "WORKER_RATE_LIMITS": orchestrator.worker_rate_limits,
        **(env or {}),
    }
    log = project.parent / (log_name or f"{worker_id}.log")
    args = [sys.executable, str(script or project / "my_worker.py")]
    with logged_process(args, environment, log, project) as proc:
        worker = RunningWorker(worker_id, log, lambda: proc.poll() is None, proc)

        def idle() -> bool:
            if not worker.alive():
                return True
            record = orchestrator.workers().get(worker_id)
            return record is not None and record.get("status", "idle") == "idle"

        if wait_registered:
            wait_for(idle, 60, f"worker {worker_id} to register")
        assert worker.alive(), worker.tail()
        yield worker
        if stays_up:
            assert worker.alive(), f"worker {worker_id} died:\n{worker.tail()}"
        if worker.alive():
            # The test is over: skip the clean stop's wait for the open poll (a lone worker waits out the
            # hold) with a second SIGTERM, as an operator would.
            proc.send_signal(signal.SIGTERM)
            started = lambda: not worker.alive() or "stop requested" in log.read_text(errors="replace")
            wait_for(started, 30, f"worker {worker_id} to begin its stop")
            if worker.alive():
                proc.send_signal(signal.SIGTERM)


def recorded(state_file: Path) -> list[dict[str, Any]]:
    """The JSON lines a scenario handler appended to its state file (none yet: empty)."""
    if not state_file.exists():
        return []
    return [json.loads(line) for line in state_file.read_text().splitlines()]
