"""The generated GitHub workflow: zizmor (offline audits) finds nothing in any variant the template makes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from processes import skip_or_fail

# python_version is the only answer that changes ci.yml (github_actions off drops it).
VARIANTS = ["3.11", "3.12", "3.13"]


def zizmor() -> str:
    """The zizmor executable of this environment (requirements-dev.txt)."""
    found = shutil.which("zizmor", path=str(Path(sys.executable).parent)) or shutil.which("zizmor")
    if found is None:
        skip_or_fail("zizmor is not installed (pip install -r requirements-dev.txt)")
    return found


@pytest.mark.parametrize("python_version", VARIANTS)
def test_zizmor_finds_nothing_in_the_generated_workflow(
    bake: Callable[..., Path], python_version: str
) -> None:
    project = bake(python_version=python_version)
    workflow = project / ".github" / "workflows" / "ci.yml"
    result = subprocess.run(
        [zizmor(), "--offline", "--no-progress", "--format", "plain", str(workflow)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout + result.stderr


def test_image_job_builds_both_architectures_with_attestations(project: Path) -> None:
    text = (project / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8")
    assert "platforms: linux/amd64,linux/arm64" in text
    assert "sbom: true" in text
    assert "provenance: mode=max" in text
    assert "docker/setup-qemu-action@" in text
