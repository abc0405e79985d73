"""The worker's image, as built by the stack: non-root, no secrets, healthy, small."""

from __future__ import annotations

import subprocess

import pytest

from e2e.conftest import WORKER
from e2e.stack import Compose, Mock, docker, inspect

pytestmark = pytest.mark.e2e

MAX_GROWTH_BYTES = 40 * 1024 * 1024
HEALTH_COMMAND = ["CMD", "python", "-m", "avtomatika_worker.health"]
# Run inside the image: every path that must not be there (secrets, tests, caches, local venvs).
FIND_FORBIDDEN = """
import os
bad = {".env", "tests", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".venv", ".git"}
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
