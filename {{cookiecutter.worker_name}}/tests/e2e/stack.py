"""Drive the compose stack under test: `docker compose` commands and the mock orchestrator's control API."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

WAIT_SECONDS = 90
WORKER = "worker"  # the compose service of the worker
ACTIVE = ("queued", "running")


def wait_for(condition: Callable[[], bool], what: str, timeout: float = WAIT_SECONDS) -> None:
    """Re-check ``condition`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


@dataclass
class Compose:
    """`docker compose` for one project (unique name, the project's files, extra environment)."""

    project: str
    files: Sequence[Path]
    directory: Path
    env: Mapping[str, str] = field(default_factory=dict)

    def command(self, *args: str) -> list[str]:
        files = [arg for path in self.files for arg in ("-f", str(path))]
        return [
            "docker",
            "compose",
            "-p",
            self.project,
            "--project-directory",
            str(self.directory),
            *files,
            *args,
        ]

    def run(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run a compose subcommand; on failure, fail the test with its output."""
        result = docker(self.command(*args), env=self.env, timeout=timeout)
        if check and result.returncode != 0:
            pytest.fail(
                f"docker compose {' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}"
            )
        return result

    @property
    def network(self) -> str:
        """The project's default network, where its services answer to their names."""
        return f"{self.project}_default"

    def container_ids(self, service: str) -> list[str]:
        """Ids of the service's containers (running or stopped)."""
        return self.run("ps", "--all", "--quiet", service).stdout.split()

    def running(self, service: str) -> list[dict[str, Any]]:
        """`docker inspect` of each running container of the service."""
        return [inspect(cid) for cid in self.run("ps", "--quiet", service).stdout.split()]

    def logs(self) -> str:
        result = self.run("logs", "--no-color", "--timestamps", check=False)
        return result.stdout + result.stderr

    def config(self) -> dict[str, Any]:
        """The resolved compose model."""
        model: dict[str, Any] = json.loads(self.run("config", "--format", "json").stdout)
        return model


def docker(
    args: Sequence[str], env: Mapping[str, str] | None = None, timeout: float = 300, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a docker CLI command with ``env`` added to this process's environment (``input`` on its stdin)."""
    return subprocess.run(
        list(args),
        env={**os.environ, **(env or {})},
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def inspect(object_id: str) -> dict[str, Any]:
    """`docker inspect` of one container or image, decoded."""
    result = docker(["docker", "inspect", object_id])
    assert result.returncode == 0, result.stderr
    (info,) = json.loads(result.stdout)
    return dict(info)


@dataclass
class Mock:
    """A client of the mock orchestrator's control API (X-Client-Token)."""

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

    def answers(self) -> bool:
        """Whether the control API answers at all."""
        try:
            self.call("GET", "/api/v1/workers")
            return True
        except (urllib.error.URLError, ConnectionError):
            return False

    def submit(self, task_type: str, params: dict[str, Any]) -> str:
        return str(self.call("POST", "/api/v1/tasks", {"type": task_type, "params": params})["task_id"])

    def task(self, task_id: str) -> dict[str, Any]:
        view: dict[str, Any] = self.call("GET", f"/api/v1/tasks/{task_id}")
        return view

    def tasks(self) -> list[dict[str, Any]]:
        views: list[dict[str, Any]] = self.call("GET", "/api/v1/tasks")["tasks"]
        return views

    def cancel(self, task_id: str) -> None:
        self.call("POST", f"/api/v1/tasks/{task_id}/cancel")

    def workers(self) -> dict[str, dict[str, Any]]:
        """The live workers, by id."""
        return {w["worker_id"]: w for w in self.call("GET", "/api/v1/workers")["workers"]}

    def wait_done(self, task_id: str, timeout: float = WAIT_SECONDS) -> dict[str, Any]:
        """Long-poll the task until it leaves `queued`/`running`; fail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            view: dict[str, Any] = self.call("GET", f"/api/v1/tasks/{task_id}?wait={max(1, int(remaining))}")
            if view["status"] not in ACTIVE:
                return view
            if remaining <= 0:
                pytest.fail(f"task {task_id} is still {view['status']} after {timeout:.0f} s: {view}")

    def wait_running(self, task_id: str) -> dict[str, Any]:
        """Wait until a worker has the task; returns its view."""
        views: list[dict[str, Any]] = []

        def running() -> bool:
            views.append(self.task(task_id))
            return bool(views[-1]["status"] != "queued")

        wait_for(running, f"a worker to take task {task_id}")
        assert views[-1]["status"] == "running", views[-1]
        return views[-1]

    def wait_reported(self, task_id: str) -> dict[str, Any]:
        """Wait until the worker has reported the task's latest attempt; returns that attempt's view.

        A cancel ends the task's status at once (as in the real orchestrator); the worker's own report
        of the cancelled attempt comes later.
        """
        attempts: list[dict[str, Any]] = []

        def reported() -> bool:
            attempts.append(self.task(task_id)["attempts"][-1])
            return attempts[-1]["finished_at"] is not None

        wait_for(reported, f"the worker to report task {task_id}")
        return attempts[-1]

    def submit_long_task(self, steps: int, step_seconds: float) -> str:
        return self.submit("long_running_task", {"steps": steps, "step_seconds": step_seconds})
