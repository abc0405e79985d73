"""The worker's image, as built by the stack: non-root, no secrets, healthy, small."""

from __future__ import annotations

import subprocess

import pytest

from e2e.stack import WORKER, Compose, Mock, docker, inspect, wait_for
from services import PROJECT_ROOT

pytestmark = pytest.mark.e2e

MAX_GROWTH_BYTES = 40 * 1024 * 1024
HEALTH_COMMAND = ["CMD", "python", "-m", "avtomatika_worker.health"]
# Never in the image (.dockerignore and the Dockerfile keep them out): the project's own Python code
# is everything else at its top level.
NOT_SHIPPED = ("tests", "mock_orchestrator", "orchestrator")
# Run inside the image: every path that must not be there (secrets, tests, caches, local venvs, dev tools).
FIND_FORBIDDEN = """
import os
bad = {".env", "tests", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".venv", ".git", "mock_orchestrator",
       "orchestrator", "README.md", "pyproject.toml", "docker-compose.yml", "Makefile", "requirements-dev.txt"}
for root, dirs, files in os.walk("/app"):
    for name in dirs + files:
        if name in bad:
            print(os.path.join(root, name))
for root in ("/", "/tmp", "/opt/venv"):
    if os.path.exists(os.path.join(root, ".env")):
        print(os.path.join(root, ".env"))
"""


@pytest.fixture(scope="module")
def image(compose: Compose, mock: Mock) -> str:
    """Id of the image the stack's worker runs."""
    containers = compose.running(WORKER)
    assert containers, "no running worker container"
    return str(containers[0]["Image"])


def run_in_image(image: str, *command: str) -> subprocess.CompletedProcess[str]:
    return docker(["docker", "run", "--rm", "--entrypoint", command[0], image, *command[1:]])


def test_the_worker_runs_as_a_fixed_non_root_user(compose: Compose, image: str) -> None:
    assert inspect(image)["Config"]["User"] == "10001:10001"
    for container in compose.running(WORKER):
        result = docker(["docker", "exec", container["Id"], "id", "-u"])
        assert result.stdout.strip() == "10001", result


def test_the_image_holds_no_env_file_tests_or_caches(image: str) -> None:
    result = run_in_image(image, "python", "-c", FIND_FORBIDDEN)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""


def project_modules() -> list[str]:
    """The Python modules and packages at the project's top level that the worker image must hold."""
    return sorted(
        path.name
        for path in PROJECT_ROOT.iterdir()
        if path.name not in NOT_SHIPPED
        and not path.name.startswith(".")
        and ((path.is_file() and path.suffix == ".py") or (path / "__init__.py").is_file())
    )


def test_every_module_of_the_project_is_in_the_image_and_my_worker_imports(image: str) -> None:
    modules = project_modules()
    assert "my_worker.py" in modules and "avtomatika_worker" in modules, modules
    missing = "import os, sys; print([m for m in sys.argv[1:] if not os.path.exists('/app/' + m)])"
    result = run_in_image(image, "python", "-c", missing, *modules)
    assert (result.returncode, result.stdout.strip()) == (0, "[]"), result.stderr
    imported = run_in_image(image, "python", "-c", "import my_worker")
    assert imported.returncode == 0, imported.stderr


def test_the_image_healthcheck_runs_the_sdk_liveness_check_and_reports_healthy(
    compose: Compose, image: str
) -> None:
    assert inspect(image)["Config"]["Healthcheck"]["Test"] == HEALTH_COMMAND
    for container in compose.running(WORKER):
        assert container["State"]["Health"]["Status"] == "healthy"
        check = docker(["docker", "exec", container["Id"], *HEALTH_COMMAND[1:]])
        assert check.returncode == 0, check.stdout + check.stderr


def test_the_image_adds_at_most_40_mb_to_its_python_base(compose: Compose, image: str) -> None:
    version = compose.config()["services"][WORKER]["build"]["args"]["PYTHON_VERSION"]
    base = inspect(f"python:{version}-slim")
    growth = int(inspect(image)["Size"]) - int(base["Size"])
    assert growth <= MAX_GROWTH_BYTES, f"the image is {growth / 2**20:.1f} MiB over python:{version}-slim"


def test_the_image_serves_tasks_with_a_read_only_root_and_only_tmp_writable(
    one_worker: Compose, mock: Mock, image: str
) -> None:
    environment = one_worker.config()["services"][WORKER]["environment"]  # .env's values included
    one_worker.run("stop", WORKER)
    known = set(mock.workers())
    # As the README's `docker run`: nothing writable but a tmpfs at /tmp.
    started = docker(
        ["docker", "run", "--detach", "--init", "--read-only", "--tmpfs", "/tmp"]
        + ["--network", one_worker.network]
        + [f"--env={name}={value}" for name, value in environment.items()]
        + [image]
    )
    assert started.returncode == 0, started.stderr
    container = started.stdout.strip()
    try:
        wait_for(lambda: bool(set(mock.workers()) - known), "the read-only worker to register")
        (worker_id,) = set(mock.workers()) - known
        task = mock.wait_done(mock.submit("check_inventory", {"items": ["apple"]}))
        assert (task["status"], task["worker_id"]) == ("success", worker_id), task
        check = docker(["docker", "exec", container, *HEALTH_COMMAND[1:]])
        assert check.returncode == 0, check.stdout + check.stderr
        assert docker(["docker", "stop", "--time", "40", container]).returncode == 0
        state = inspect(container)["State"]
        assert state["ExitCode"] == 0, docker(["docker", "logs", container]).stderr
    finally:
        docker(["docker", "rm", "--force", container])
