"""Finish the generated project (cwd): write ``.env`` with fresh secrets, drop disabled options.

The secrets are generated here, at run time, and written only to ``.env`` (mode 0600): they never
enter the cookiecutter context, the replay file, this rendered script or any other file.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
from pathlib import Path

PLACEHOLDERS = {
    "WORKER_TOKEN": "change-me-worker-token",
    "CLIENT_TOKEN": "change-me-client-token",
}
CACHE_DIRS = ("__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache")


class HookError(Exception):
    pass


def read_options() -> dict[str, object]:
    """The options this hook acts on, decoded from JSON (never pasted into this source as code)."""
    # Keep r''': tojson escapes every ' so no answer can close this string.
    # fmt: off
    options: dict[str, object] = json.loads(
        r'''{{ {
            "github_actions": cookiecutter.github_actions,
            "pre_commit": cookiecutter.pre_commit,
        } | tojson }}'''
    )
    # fmt: on
    return options


def fill_secrets(example: str, tokens: dict[str, str]) -> str:
    """Replace each ``NAME=<placeholder>`` line of ``.env.example``; each must occur exactly once."""
    lines = example.splitlines(keepends=True)
    for name, placeholder in PLACEHOLDERS.items():
        wanted = f"{name}={placeholder}"
        hits = [i for i, line in enumerate(lines) if line.rstrip("\r\n") == wanted]
        if len(hits) != 1:
            raise HookError(f".env.example must contain the line {wanted!r} exactly once (found {len(hits)})")
        ending = lines[hits[0]][len(wanted) :]
        lines[hits[0]] = f"{name}={tokens[name]}{ending}"
    return "".join(lines)


def write_private(path: Path, text: str) -> None:
    """Create ``path`` readable and writable by the owner only (0600), whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(text)


def write_env(project: Path) -> None:
    example = project / ".env.example"
    if not example.is_file():
        raise HookError(".env.example is missing from the generated project")
    env = project / ".env"
    if env.exists():
        print("note: keeping the existing .env (its secrets are not rotated)", file=sys.stderr)
        return
    tokens = {name: secrets.token_urlsafe(32) for name in PLACEHOLDERS}
    write_private(env, fill_secrets(example.read_text(encoding="utf-8"), tokens))


def remove_disabled(project: Path, options: dict[str, object]) -> None:
    if options["github_actions"] is not True:
        shutil.rmtree(project / ".github", ignore_errors=True)
    if options["pre_commit"] is not True:
        (project / ".pre-commit-config.yaml").unlink(missing_ok=True)


def remove_caches(project: Path) -> None:
    """Drop caches a template developer's local runs may have left in the template tree."""
    for path in sorted(project.rglob("*"), reverse=True):
        if path.is_dir() and path.name in CACHE_DIRS:
            shutil.rmtree(path)
        elif path.is_file() and path.suffix in (".pyc", ".pyo"):
            path.unlink()


def main() -> int:
    project = Path.cwd()
    try:
        write_env(project)
    except HookError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    remove_disabled(project, read_options())
    remove_caches(project)
    return 0


if __name__ == "__main__":
    sys.exit(main())
