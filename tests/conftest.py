"""Fixtures to bake the template in isolation (the helpers are in baking.py)."""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from baking import TEMPLATE_DIR, Sandbox, bake_in, make_sandbox, run_cli


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the real-orchestrator tests one after another (`make test` runs the rest in parallel)."""
    for item in items:
        if item.get_closest_marker("interop") is not None:
            item.add_marker(pytest.mark.xdist_group("real-orchestrator"))


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """Isolated cookiecutter config (``config_file=`` and ``COOKIECUTTER_CONFIG``) under tmp_path."""
    box = make_sandbox(tmp_path / "sandbox")
    monkeypatch.setenv("COOKIECUTTER_CONFIG", str(box.config_file))
    return box


@pytest.fixture
def bake(sandbox: Sandbox, tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """``bake(**extra_context) -> project dir``; each call gets its own output dir."""
    counter = itertools.count()

    def _bake(**extra_context: Any) -> Path:
        return bake_in(sandbox, tmp_path / f"out{next(counter)}", **extra_context)

    yield _bake


@pytest.fixture
def cli(sandbox: Sandbox, tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``cli("key=value", ...)`` runs the cookiecutter CLI into ``tmp_path / "out"``."""

    def _cli(*answers: str, template: Path = TEMPLATE_DIR) -> subprocess.CompletedProcess[str]:
        return run_cli(sandbox, tmp_path / "out", *answers, template=template)

    return _cli


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The template baked with its default answers, once per test module."""
    root = tmp_path_factory.mktemp("bake-default")
    return bake_in(make_sandbox(root / "sandbox"), root / "out")
