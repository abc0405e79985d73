"""Per-project secrets: fresh, url-safe, only in ``.env`` (0600), never in the context or replay."""

from __future__ import annotations

import os
import re
import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cookiecutter.exceptions import FailedHookException

from baking import TEMPLATE_DIR, Sandbox, bake_in, read_env_file

TOKENS = ("WORKER_TOKEN", "CLIENT_TOKEN")
PLACEHOLDERS = {"WORKER_TOKEN": "change-me-worker-token", "CLIENT_TOKEN": "change-me-client-token"}
URL_SAFE = re.compile(r"[A-Za-z0-9_-]{32,}")


def tokens_of(project: Path) -> dict[str, str]:
    env = read_env_file(project / ".env")
    return {name: env[name] for name in TOKENS}


def files_containing(root: Path, needle: str) -> list[Path]:
    data = needle.encode()
    return [p for p in root.rglob("*") if p.is_file() and data in p.read_bytes()]


def ignore_patterns(path: Path) -> set[str]:
    return {line.strip() for line in path.read_text(encoding="utf-8").splitlines()}


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def test_tokens_are_fresh_per_bake_and_distinct(bake: Callable[..., Path]) -> None:
    first, second = tokens_of(bake()), tokens_of(bake())
    values = [*first.values(), *second.values()]
    assert len(set(values)) == 4, "tokens repeat across bakes or between WORKER_TOKEN and CLIENT_TOKEN"


def test_tokens_are_long_url_safe_text(bake: Callable[..., Path]) -> None:
    for name, value in tokens_of(bake()).items():
        assert URL_SAFE.fullmatch(value), f"{name}={value!r} is not >= 32 url-safe characters"
        assert value != PLACEHOLDERS[name]


def test_tokens_appear_only_in_dot_env(bake: Callable[..., Path], sandbox: Sandbox, tmp_path: Path) -> None:
    project = bake()
    # Everything under tmp_path: the output dir, the replay dir (the dumped cookiecutter context),
    # the cookiecutters dir and the temp dir where cookiecutter writes the rendered hook scripts.
    assert sandbox.replay_files(), "no replay file was written"
    assert any(sandbox.temp_dir.iterdir()), "rendered hooks did not land in the sandbox temp dir"
    for name, value in tokens_of(project).items():
        assert files_containing(tmp_path, value) == [project / ".env"], name


def test_env_example_keeps_the_placeholders(bake: Callable[..., Path]) -> None:
    example = read_env_file(bake() / ".env.example")
    for name, placeholder in PLACEHOLDERS.items():
        assert example[name] == placeholder


def test_env_differs_from_env_example_only_in_the_tokens(bake: Callable[..., Path]) -> None:
    project = bake()
    env_lines = (project / ".env").read_text(encoding="utf-8").splitlines()
    example_lines = (project / ".env.example").read_text(encoding="utf-8").splitlines()
    assert len(env_lines) == len(example_lines)
    changed = [(e, x) for e, x in zip(env_lines, example_lines, strict=True) if e != x]
    assert sorted(x for _, x in changed) == sorted(f"{k}={v}" for k, v in PLACEHOLDERS.items())


@pytest.mark.usefixtures("permissive_umask")
def test_dot_env_is_private_to_the_owner_even_with_a_permissive_umask(bake: Callable[..., Path]) -> None:
    mode = stat.S_IMODE((bake() / ".env").stat().st_mode)
    assert mode == 0o600, oct(mode)


@pytest.mark.parametrize("ignore_file", [".gitignore", ".dockerignore"])
def test_ignore_files_exclude_dot_env(bake: Callable[..., Path], ignore_file: str) -> None:
    patterns = ignore_patterns(bake() / ignore_file)
    assert patterns & {".env", "/.env", "**/.env"}, f"{ignore_file} does not list .env"


@pytest.mark.parametrize("broken", ["WORKER_TOKEN=something-else", "CLIENT_TOKEN=", ""])
def test_post_hook_fails_loudly_when_env_example_lacks_a_placeholder(
    sandbox: Sandbox, tmp_path: Path, capfd: pytest.CaptureFixture[str], broken: str
) -> None:
    template = tmp_path / "template"
    shutil.copytree(
        TEMPLATE_DIR, template, ignore=shutil.ignore_patterns(".git", "tests", "__pycache__", "*.pyc")
    )
    example = template / "{{cookiecutter.worker_name}}" / ".env.example"
    name = broken.split("=")[0] or "WORKER_TOKEN"
    lines = example.read_text(encoding="utf-8").splitlines(keepends=True)
    example.write_text(
        "".join(broken + "\n" if line.startswith(f"{name}=") else line for line in lines), encoding="utf-8"
    )
    with pytest.raises(FailedHookException):
        bake_in(sandbox, tmp_path / "out", template=template)
    err = capfd.readouterr().err
    assert f"error: .env.example must contain the line '{name}={PLACEHOLDERS[name]}' exactly once" in err
    assert not any((tmp_path / "out").iterdir()), "the failed project was left behind"
