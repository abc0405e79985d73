"""End to end: the compose stack (Redis + mock orchestrator + this worker) processes real tasks."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from dotenv import dotenv_values

from conftest import FAILED_KEY, PROJECT_ROOT, free_port, skip_or_fail

pytestmark = pytest.mark.e2e

WAIT_SECONDS = 60


def docker_engine_available() -> bool:
    """Whether a Docker engine answers."""
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def docker_compose_file() -> str:
    return str(PROJECT_ROOT / "docker-compose.yml")


@pytest.fixture(scope="session")
def docker_compose_project_name() -> str:
    return f"e2e-{os.getpid()}"


@pytest.fixture(scope="session")
def docker_setup() -> list[str]:
    if not docker_engine_available():
        skip_or_fail("no Docker engine is running")
    os.environ["MOCK_ORCHESTRATOR_PORT"] = str(free_port())
    return ["up --build --wait"]


@pytest.fixture(scope="session")
def docker_cleanup() -> list[str]:
    return ["down -v --remove-orphans"]


@dataclass
class Stack:
    """A client of the mock orchestrator's control API."""

    base_url: str
    client_token: str

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base_url + path,
            data=data,
            method=method,
            headers={"X-Client-Token": self.client_token, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=WAIT_SECONDS + 10) as response:
            return json.loads(response.read() or b"null")

    def submit(self, task_type: str, params: dict[str, Any]) -> str:
        return str(self.call("POST", "/api/v1/tasks", {"type": task_type, "params": params})["task_id"])

    def wait_until_done(self, task_id: str) -> dict[str, Any]:
        """Long-poll the task until it leaves `queued`/`running`."""
        task: dict[str, Any] = self.call("GET", f"/api/v1/tasks/{task_id}?wait={WAIT_SECONDS}")
        return task


@pytest.fixture(scope="session")
def stack(docker_services: Any, docker_compose_project_name: str) -> Stack:
    port = docker_services.port_for("mock-orchestrator", 8080)
    token = dotenv_values(PROJECT_ROOT / ".env").get("CLIENT_TOKEN") or ""
    client = Stack(f"http://127.0.0.1:{port}", token)

    def worker_registered() -> bool:
        try:
            return bool(client.call("GET", "/api/v1/workers")["workers"])
        except (urllib.error.URLError, ConnectionError):
            return False

    docker_services.wait_until_responsive(check=worker_registered, timeout=WAIT_SECONDS, pause=0.2)
    return client


@pytest.fixture(autouse=True)
def compose_logs_on_failure(request: pytest.FixtureRequest, docker_compose_project_name: str) -> Iterator[None]:
    yield
    if request.node.stash.get(FAILED_KEY, False):
        logs = subprocess.run(
            ["docker", "compose", "-p", docker_compose_project_name, "logs", "--no-color"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
        )
        print("---- docker compose logs ----\n" + logs.stdout + logs.stderr)


def test_check_inventory_task_succeeds_with_stock_data(stack: Stack) -> None:
    task = stack.wait_until_done(stack.submit("check_inventory", {"items": ["apple", "pear"]}))
    assert task["status"] == "success", task
    expected_stock = {"apple": 12, "pear": 5}
    assert task["data"] == {"items_checked": 2, "in_stock": expected_stock}
    assert task["worker_id"]


def test_unavailable_item_reports_the_custom_out_of_stock_status(stack: Stack) -> None:
    task = stack.wait_until_done(stack.submit("check_inventory", {"items": ["apple", "plum"]}))
    assert task["status"] == "out_of_stock", task
    assert task["data"] == {"missing_items": ["plum"]}
