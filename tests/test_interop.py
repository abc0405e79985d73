"""Interop: a baked worker completes jobs against the REAL orchestrator (avtomatika, pinned) on real Redis."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import bake_in, make_sandbox
from processes import (
    ORCHESTRATOR_DIR,
    answers,
    free_port,
    http_json,
    logged_process,
    orchestrator_python,
    redis_server,
    wait_for,
)

pytestmark = pytest.mark.interop

WORKER_TOKEN = "interop-worker-token"
CLIENT_TOKEN = "interop-client-token"
TERMINAL = {"finished", "failed", "error", "quarantined", "cancelled"}


@dataclass
class Orchestrator:
    """The client API of a running real orchestrator."""

    base_url: str
    redis_url: str
    log: Path

    def api(self, method: str, path: str, body: Any = None) -> Any:
        return http_json(method, self.base_url + path, body, {"X-Client-Token": CLIENT_TOKEN})

    def worker_ids(self) -> list[str]:
        workers = self.api("GET", "/api/v1/workers")
        return [w.get("worker_id") for w in workers] if isinstance(workers, list) else []

    def run_job(self, blueprint: str, initial_data: dict[str, Any], timeout: float = 30) -> dict[str, Any]:
        job_id = self.api("POST", f"/api/v1/jobs/{blueprint}", {"initial_data": initial_data})["job_id"]
        job: dict[str, Any] = {}

        def terminal() -> bool:
            job.update(self.api("GET", f"/api/v1/jobs/{job_id}"))
            return job.get("status") in TERMINAL

        wait_for(terminal, timeout, f"job {job_id} ({blueprint}) to end; last seen {job}")
        return job


@pytest.fixture(scope="module")
def orchestrator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orchestrator]:
    python = orchestrator_python()
    logs = tmp_path_factory.mktemp("orchestrator")
    port = free_port()
    with redis_server() as redis_url:
        env = {
            **os.environ,
            "API_HOST": "127.0.0.1",
            "API_PORT": str(port),
            "REDIS_URL": redis_url,
            "GLOBAL_WORKER_TOKEN": WORKER_TOKEN,
            "CLIENT_TOKEN": CLIENT_TOKEN,
            "RATE_LIMITING_ENABLED": "false",
            "DETAILED_API_RESPONSES": "true",
            "LOG_LEVEL": "INFO",
        }
        log = logs / "orchestrator.log"
        with logged_process([str(python), "app.py"], env, log, ORCHESTRATOR_DIR) as proc:
            base_url = f"http://127.0.0.1:{port}"
            wait_for(lambda: proc.poll() is not None or answers(base_url + "/_public/status"), 60, "the orchestrator")
            assert proc.poll() is None, log.read_text()[-3000:]
            yield Orchestrator(base_url, redis_url, log)


@pytest.fixture(scope="module")
def baked_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("interop-bake")
    return bake_in(make_sandbox(root / "sandbox"), root / "out")


@pytest.fixture(scope="module")
def worker(orchestrator: Orchestrator, baked_project: Path) -> Iterator[str]:
    worker_id = f"interop-worker-{os.getpid()}"
    env = {
        **os.environ,
        "ORCHESTRATOR_URL": orchestrator.base_url,
        "WORKER_TOKEN": WORKER_TOKEN,
        "WORKER_ID": worker_id,
        "REDIS_URL": orchestrator.redis_url,
        "WORKER_ENABLE_WEBSOCKETS": "false",
    }
    log = baked_project.parent / "worker.log"
    with logged_process([sys.executable, "my_worker.py"], env, log, baked_project) as proc:
        wait_for(
            lambda: proc.poll() is not None or worker_id in orchestrator.worker_ids(), 30, "the worker to register"
        )
        assert proc.poll() is None, log.read_text()[-3000:]
        yield worker_id
        assert proc.poll() is None, "the worker died:\n" + log.read_text()[-3000:]


def test_check_inventory_job_finishes_with_the_workers_data(orchestrator: Orchestrator, worker: str) -> None:
    job = orchestrator.run_job("inventory", {"items": ["apple", "pear"]})
    assert job["status"] == "finished", job
    assert job["state_history"]["in_stock"] == {"apple": 12, "pear": 5}
    assert job["state_history"]["items_checked"] == 2


def test_out_of_stock_status_follows_its_transition(orchestrator: Orchestrator, worker: str) -> None:
    job = orchestrator.run_job("inventory", {"items": ["plum"]})
    # Only an end state named `finished` yields status `finished` in 1.0b30 (protocol.md §9).
    assert job["current_state"] == "out_of_stock", job
    assert job["status"] == "failed", job
    assert job["state_history"]["missing_items"] == ["plum"]
