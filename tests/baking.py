"""Baking the template in isolation: own cookiecutter config, replay and temp dirs (tests and bench)."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from cookiecutter.main import cookiecutter

CHECKOUT = Path(__file__).resolve().parents[1]
DEFAULT_NAME = json.loads((CHECKOUT / "cookiecutter.json").read_text(encoding="utf-8"))["worker_name"]


def export_template(source: Path, dest: Path) -> Path:
    """Copy the template's own files (what a clone holds; no .venv, caches or bakes) to ``dest``.

    cookiecutter copies the whole template folder for the pre-prompt hook: baking a checkout that holds a
    .venv would copy hundreds of megabytes per bake."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=source, capture_output=True, check=True,
        ).stdout  # fmt: skip
        names = [Path(n.decode()) for n in listed.split(b"\0") if n]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: skip what .gitignore lists
        skip = {".git", ".venv", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", DEFAULT_NAME}
        names = [
            p.relative_to(source)
            for p in source.rglob("*")
            if p.is_file() and not skip & set(p.relative_to(source).parts)
        ]
    for name in names:
        if (source / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / name, dest / name)
    return dest


TEMPLATE_DIR = export_template(CHECKOUT, Path(tempfile.mkdtemp(prefix="template-")) / CHECKOUT.name)
atexit.register(shutil.rmtree, TEMPLATE_DIR.parent, True)
PROJECT_TEMPLATE = TEMPLATE_DIR / "{{cookiecutter.worker_name}}"


@dataclass(frozen=True)
class Sandbox:
    """An isolated cookiecutter user config plus the dirs it points to."""

    root: Path
    config_file: Path
    cookiecutters_dir: Path
    replay_dir: Path
    temp_dir: Path

    def env(self) -> dict[str, str]:
        """Environment for a subprocess: isolated config and temp dir, no pytest leftovers."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
        env.update(
            COOKIECUTTER_CONFIG=str(self.config_file),
            TMPDIR=str(self.temp_dir),
            PYTHONDONTWRITEBYTECODE="1",
        )
        return env

    def replay_files(self) -> list[Path]:
        return sorted(self.replay_dir.glob("*.json"))


def make_sandbox(root: Path) -> Sandbox:
    root.mkdir(parents=True, exist_ok=True)
    box = Sandbox(
        root=root,
        config_file=root / "cookiecutter-config.yaml",
        cookiecutters_dir=root / "cookiecutters",
        replay_dir=root / "replay",
        temp_dir=root / "tmp",
    )
    for d in (box.cookiecutters_dir, box.replay_dir, box.temp_dir):
        d.mkdir(exist_ok=True)
    config = {
        "cookiecutters_dir": str(box.cookiecutters_dir),
        "replay_dir": str(box.replay_dir),
        "default_context": {},
    }
    box.config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
    return box


def bake_in(
    box: Sandbox,
    output_dir: Path,
    template: Path = TEMPLATE_DIR,
    *,
    accept_hooks: bool = True,
    **extra_context: Any,
) -> Path:
    """Bake the template into ``output_dir`` with the sandbox's config; returns the project dir.

    ``accept_hooks=False`` is ``--accept-hooks no``: the answers reach the templates unvalidated."""
    output_dir.mkdir(parents=True, exist_ok=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COOKIECUTTER_CONFIG", str(box.config_file))
        mp.setenv("TMPDIR", str(box.temp_dir))
        mp.setenv("PYTHONDONTWRITEBYTECODE", "1")
        mp.setattr(tempfile, "tempdir", str(box.temp_dir))  # rendered hook scripts land here
        project = cookiecutter(
            str(template),
            no_input=True,
            extra_context=extra_context,
            output_dir=str(output_dir),
            config_file=str(box.config_file),
            accept_hooks=accept_hooks,
        )
    return Path(project)


def run_cli(
    box: Sandbox, output_dir: Path, *answers: str, template: Path = TEMPLATE_DIR
) -> subprocess.CompletedProcess[str]:
    """``python -m cookiecutter --no-input <template> key=value ...`` in a subprocess (cwd = sandbox)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "cookiecutter", "--no-input", str(template), *answers,
        "--output-dir", str(output_dir), "--config-file", str(box.config_file),
    ]  # fmt: skip
    return subprocess.run(
        cmd, cwd=box.root, env=box.env(), capture_output=True, text=True, timeout=120, check=False
    )


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines of a dotenv file (comments and blanks ignored)."""
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values
