"""Docker e2e: bake the default project and run its own pytest-docker suite against its compose stack."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from baking import bake_in, make_sandbox
from processes import skip_or_fail

# One after another (`make test` runs the rest in parallel): the swarm test's `docker swarm leave` breaks
# name resolution on every network that exists at that moment (moby/moby#45144), the other compose
# stack's included, so the two suites never overlap.
pytestmark = [pytest.mark.docker, pytest.mark.xdist_group("compose-stacks")]


def _run_e2e(project: Path, *args: str) -> str:
    """Run the generated project's e2e tests (`args`: extra pytest arguments); returns its summary line."""
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        skip_or_fail("no Docker engine is running")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "e2e", "-p", "no:cacheprovider", "-v", *args],
        cwd=project,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "E2E_SWARM": "1"},  # the swarm test too
        capture_output=True,
        text=True,
        check=False,
    )
    print(result.stdout[-20000:], result.stderr[-5000:])
    assert result.returncode == 0, "the generated e2e tests failed (output above)"
    return result.stdout.strip().splitlines()[-1]


def test_default_project_passes_its_compose_e2e_suite(tmp_path: Path) -> None:
    summary = _run_e2e(bake_in(make_sandbox(tmp_path / "sandbox"), tmp_path / "out"))
    assert re.search(r"\b\d+ passed\b", summary), summary
    assert "skipped" not in summary and "deselected" in summary, summary


def test_s3_files_project_passes_its_file_e2e_tests(tmp_path: Path) -> None:
    """s3_files on: a file task end to end, a 200 MiB input's memory, a cancelled task's folder, a bad ETag."""
    project = bake_in(make_sandbox(tmp_path / "sandbox"), tmp_path / "out", s3_files=True)
    summary = _run_e2e(project, "-s", "tests/e2e/test_files.py")
    assert re.search(r"\b5 passed\b", summary) and "skipped" not in summary, summary
