"""The generated tests get a real Redis the way users have one, and fail (never skip) without one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REDIS_TESTS = ["tests/test_sdk_cancellation.py", "tests/test_mock_cancellation.py"]


def run_generated(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_") and k != "CI"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=project,
        env=dict(clean, PYTHONDONTWRITEBYTECODE="1", **env),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.docker
def test_without_redis_server_the_redis_tests_use_the_compose_stacks_redis_image(project: Path) -> None:
    result = run_generated(project, *REDIS_TESTS, TEST_REDIS="docker")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout


def test_with_neither_redis_server_nor_docker_the_redis_tests_fail_saying_how_to_get_one(
    project: Path, tmp_path: Path
) -> None:
    bare_path = tmp_path / "bin"  # only this interpreter: no redis-server, no docker
    bare_path.mkdir()
    (bare_path / "python").symlink_to(sys.executable)
    result = run_generated(project, *REDIS_TESTS, "-x", PATH=str(bare_path))
    assert result.returncode == 1, result.stdout[-4000:]
    assert "skipped" not in result.stdout
    assert "these tests need a real Redis: install redis-server" in result.stdout


def test_the_handler_tests_need_no_redis_and_no_orchestrator(project: Path, tmp_path: Path) -> None:
    bare_path = tmp_path / "bin"
    bare_path.mkdir()
    result = run_generated(
        project, "tests/test_handlers.py", PATH=str(bare_path), REDIS_URL="redis://127.0.0.1:9/0"
    )
    assert result.returncode == 0, result.stdout[-4000:]
    assert "skipped" not in result.stdout
