"""The compose stack for the e2e suite: one per session, under a unique project name (pytest-docker)."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from dotenv import dotenv_values
from pytest_docker.plugin import DockerComposeExecutor, Services

from e2e.stack import WORKER, Compose, Mock, docker, wait_for
from services import FAILED_KEY, PROJECT_ROOT, free_port, skip_or_fail

OVERRIDE = Path(__file__).with_name("compose.e2e.yml")
# The stack's published ports; each run takes free ones (a local stack or Redis may hold the defaults).
HOST_PORTS = ("MOCK_ORCHESTRATOR_PORT", "REDIS_PORT", "S3_PORT", "PROMETHEUS_PORT")  # S3: s3_files only


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the swarm tests last: leaving swarm mode breaks name resolution on the networks made before it
    (moby/moby#45144), such as the compose stack's, so no compose test may come after."""
    items.sort(key=lambda item: "swarm_stack" in getattr(item, "fixturenames", ()))


def docker_engine_available() -> bool:
    """Whether a Docker engine answers."""
    try:
        return docker(["docker", "info"], timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def docker_compose_file() -> list[str]:
    return [str(PROJECT_ROOT / "docker-compose.yml"), str(OVERRIDE)]


@pytest.fixture(scope="session")
def docker_compose_project_name() -> str:
    return f"e2e-{os.getpid()}-{secrets.token_hex(3)}"


@pytest.fixture(scope="session")
def compose(docker_compose_file: list[str], docker_compose_project_name: str) -> Iterator[Compose]:
    """The project's compose command; its host ports are free ones, so runs never clash."""
    if not docker_engine_available():
        skip_or_fail("no Docker engine is running (start Docker, or run `pytest -m 'not e2e'`)")
    if not (PROJECT_ROOT / ".env").is_file():
        pytest.fail(".env is missing: copy .env.example to .env and fill in WORKER_TOKEN and CLIENT_TOKEN")
    ports = {name: str(free_port()) for name in HOST_PORTS}
    with pytest.MonkeyPatch.context() as patch:
        for name, port in ports.items():
            patch.setenv(name, port)  # pytest-docker's commands read os.environ
        yield Compose(
            docker_compose_project_name, [Path(f) for f in docker_compose_file], PROJECT_ROOT, ports
        )


@pytest.fixture(scope="session")
def docker_services(compose: Compose, docker_compose_command: str) -> Iterator[Services]:
    """pytest-docker's stack (`up --build --wait`), with logs and a clean `down` when bringing it up fails."""
    up = compose.run("up", "--build", "--wait", "--wait-timeout", "300", check=False, timeout=900)
    try:
        if up.returncode != 0:
            pytest.fail(
                f"docker compose up failed:\n{up.stdout}{up.stderr}\n---- logs ----\n{compose.logs()}"
            )
        executor = DockerComposeExecutor(
            docker_compose_command, [str(f) for f in compose.files], compose.project
        )
        yield Services(executor)
    finally:
        compose.run("down", "--volumes", "--remove-orphans", "--timeout", "45", check=False)


@pytest.fixture(scope="session")
def mock(docker_services: Services) -> Mock:
    """The mock orchestrator's control API, once a worker has registered."""
    port = docker_services.port_for("mock-orchestrator", 8080)
    token = dotenv_values(PROJECT_ROOT / ".env").get("CLIENT_TOKEN") or ""
    client = Mock(f"http://127.0.0.1:{port}", token)
    wait_for(client.answers, "the mock orchestrator's control API")
    wait_for(lambda: bool(client.workers()), "a worker to register")
    return client


@pytest.fixture
def one_worker(compose: Compose, mock: Mock) -> Iterator[Compose]:
    """The stack as the test found it afterwards: one healthy `worker` container, whatever the test did."""
    yield compose
    compose.run(
        "up", "--detach", "--wait", "--wait-timeout", "120", "--scale", f"{WORKER}=1", "--no-recreate", WORKER
    )


@pytest.fixture(autouse=True)
def compose_logs_on_failure(request: pytest.FixtureRequest, compose: Compose) -> Iterator[None]:
    """Print every container's log when the test failed."""
    yield
    if request.node.stash.get(FAILED_KEY, False):
        print("---- docker compose logs ----\n" + compose.logs())
