"""Drive Docker Swarm for the live deploy test: a one-node swarm on loopback, a stack, its mock orchestrator."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from e2e.stack import docker, wait_for

GW_BRIDGE = "docker_gwbridge"
REMOVE_SECONDS = 120  # `docker stack rm` returns at once; its containers stop within stop_grace_period
# Run inside the mock's container (its image has the CLI's control-API client): the test talks to the
# mock over the container's own loopback, so the stack publishes no port.
MOCK_CLIENT = """
import json, os, sys
from mock_orchestrator.cli_client import Client
client = Client("http://127.0.0.1:8080", os.environ["CLIENT_TOKEN"])
command, *args = sys.argv[1:]
if command == "submit":
    count, body = int(args[0]), json.loads(args[1])
    result = [client.call("POST", "/api/v1/tasks", body)["task_id"] for _ in range(count)]
else:
    result = client.call("GET", args[0])
print(json.dumps(result))
"""


def run(
    args: Sequence[str], env: Mapping[str, str] | None = None, timeout: float = 300, input: str | None = None
) -> str:
    """Run a docker command; fail the test with its output unless it succeeds. Returns its stdout."""
    result = docker(args, env=env, timeout=timeout, input=input)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
    return result.stdout


@dataclass
class Swarm:
    """The engine's swarm: this test's own (initialised on loopback, left afterwards) or one already there."""

    initialised_here: bool
    made_bridge: bool = False

    @classmethod
    def join(cls) -> Swarm:
        """Use the engine's swarm if it is a manager of one, else initialise a one-node swarm on loopback."""
        if not (os.environ.get("CI") or os.environ.get("E2E_SWARM")):
            pytest.skip(
                "the swarm test deploys on this engine's swarm, or switches the engine into swarm mode and "
                "back, which breaks name resolution on the networks of running stacks (moby/moby#45144): "
                "set E2E_SWARM=1 to run it here (CI always does)"
            )
        if docker(["docker", "node", "inspect", "self"]).returncode == 0:
            return cls(initialised_here=False)  # a manager of a swarm already
        bridge_before = bool(run(["docker", "network", "ls", "--quiet", "--filter", f"name=^{GW_BRIDGE}$"]))
        # Fails with Docker's own message on a worker node of another swarm.
        run(["docker", "swarm", "init", "--advertise-addr", "127.0.0.1", "--listen-addr", "127.0.0.1:2377"])
        return cls(initialised_here=True, made_bridge=not bridge_before)

    def leave(self) -> None:
        """Leave the swarm if this test made it: the engine ends as the test found it."""
        if self.initialised_here:
            run(["docker", "swarm", "leave", "--force"])
        if self.made_bridge:  # `swarm init` creates it and `swarm leave` keeps it
            run(["docker", "network", "rm", GW_BRIDGE])


@dataclass
class SwarmStack:
    """One `docker stack` deployed from compose files, with the environment they interpolate."""

    name: str
    files: Sequence[Path]
    env: Mapping[str, str]

    def deploy(self) -> None:
        """Deploy with the local images (there is no registry to resolve them from)."""
        files = [arg for path in self.files for arg in ("-c", str(path))]
        run(["docker", "stack", "deploy", "--resolve-image", "never", *files, self.name], env=self.env)

    def service(self, name: str) -> str:
        return f"{self.name}_{name}"

    def containers(self, service: str) -> list[str]:
        """Ids of the service's running containers."""
        label = f"label=com.docker.swarm.service.name={self.service(service)}"
        return run(["docker", "ps", "--quiet", "--no-trunc", "--filter", label]).split()

    def update(self, service: str) -> float:
        """A rolling update (every replica replaced, as for a new image); returns its duration in seconds."""
        started = time.monotonic()
        run(["docker", "service", "update", "--force", "--detach=false", self.service(service)], timeout=600)
        return time.monotonic() - started

    def logs(self, service: str) -> str:
        result = docker(["docker", "service", "logs", "--no-task-ids", "--timestamps", self.service(service)])
        return result.stdout + result.stderr

    def remove(self) -> None:
        """Remove the stack and wait until its containers and network are gone."""
        docker(["docker", "stack", "rm", self.name])
        label = f"label=com.docker.stack.namespace={self.name}"

        def gone() -> bool:
            containers = docker(["docker", "ps", "--all", "--quiet", "--filter", label]).stdout.split()
            networks = docker(["docker", "network", "ls", "--quiet", "--filter", label]).stdout.split()
            return not containers and not networks

        wait_for(gone, f"stack {self.name} to be removed", timeout=REMOVE_SECONDS)


@dataclass
class SwarmMock:
    """The control API of the stack's mock orchestrator, called from inside its container."""

    stack: SwarmStack
    service: str = "mock-orchestrator"

    def _exec(self, *args: str) -> list[str]:
        """The `docker exec` command that runs the client in the mock's (only) container."""
        containers = self.stack.containers(self.service)
        assert len(containers) <= 1, f"{len(containers)} mock orchestrators run: {containers}"
        return ["docker", "exec", *containers[:1], "python", "-c", MOCK_CLIENT, *args]

    def _client(self, *args: str) -> Any:
        return json.loads(run(self._exec(*args)))

    def answers(self) -> bool:
        """Whether the mock's container runs and its control API answers."""
        if not self.stack.containers(self.service):
            return False
        return docker(self._exec("get", "/api/v1/workers"), timeout=30).returncode == 0

    def submit(self, count: int, task_type: str, params: dict[str, Any]) -> list[str]:
        """Queue ``count`` tasks of one type; their ids."""
        return list(self._client("submit", str(count), json.dumps({"type": task_type, "params": params})))

    def tasks(self) -> list[dict[str, Any]]:
        return list(self._client("get", "/api/v1/tasks")["tasks"])

    def workers(self) -> set[str]:
        """The ids of the live workers."""
        return {str(w["worker_id"]) for w in self._client("get", "/api/v1/workers")["workers"]}
