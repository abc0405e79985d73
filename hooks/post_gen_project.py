"""Finish the generated project (cwd): write ``.env`` with fresh secrets, drop disabled options.

The secrets are generated here, at run time, and written only to ``.env`` (mode 0600): they never
enter the cookiecutter context, the replay file, this rendered script or any other file.

Only what the template made is removed: a disabled option removes the template's own files for it (never
the rest of ``.github/`` or a user's file at the same path), and caches are removed only where the template
tree itself holds them (never a user's ``.venv`` or their own caches).
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
# What the pre-gen hook leaves here: the user's files it set aside, and HANDOVER (pre_gen_project.py).
KEPT_DIR = ".cookiecutter-kept"
HANDOVER = "handover.json"


class HookError(Exception):
    pass


def read_options() -> dict[str, object]:
    """The options this hook acts on, decoded from JSON (never pasted into this source as code)."""
    # Keep r''': tojson escapes every ' so no answer can close this string.
    # _output_dir is absent when cruft renders (it calls cookiecutter's parts directly).
    # fmt: off
    options: dict[str, object] = json.loads(
        r'''{{ {
            "github_actions": cookiecutter.github_actions,
            "pre_commit": cookiecutter.pre_commit,
            "s3_files": cookiecutter.s3_files,
            "output_dir": cookiecutter._output_dir | default(""),
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
    """Write ``.env`` from ``.env.example`` with fresh tokens, unless the project already has one."""
    example = project / ".env.example"
    if not example.is_file():
        raise HookError(".env.example is missing from the generated project")
    env = project / ".env"
    if env.exists():
        print("note: keeping the existing .env (its secrets are not rotated)", file=sys.stderr)
        return
    tokens = {name: secrets.token_urlsafe(32) for name in PLACEHOLDERS}
    write_private(env, fill_secrets(example.read_text(encoding="utf-8"), tokens))


def prune_empty_dirs(project: Path, rels: list[str]) -> None:
    """Remove the parents of ``rels`` (deepest first) that are now empty; never ``project`` itself."""
    parents = {parent for rel in rels for parent in (project / rel).parents if project in parent.parents}
    for parent in sorted(parents, key=lambda p: len(p.parts), reverse=True):
        if parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()


def read_handover(project: Path) -> tuple[dict[str, list[str]], Path | None]:
    """The optional files of each option and the template dir, as the pre-gen hook found them."""
    try:
        handover = json.loads((project / KEPT_DIR / HANDOVER).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HookError(f"the pre-gen hook's {KEPT_DIR}/{HANDOVER} is missing or unreadable ({exc})") from exc
    template = handover["template"]
    return handover["optional_files"], Path(template) if template else None


def remove_disabled(project: Path, options: dict[str, object], optional_files: dict[str, list[str]]) -> None:
    """Remove the template's files of each disabled option; keep a user's file at the same path.

    The rule: the pre-gen hook moved any file already at one of these paths into KEPT_DIR before
    generation. If it is byte-identical to what this bake generated, it is the template's (an earlier
    bake's) and goes; otherwise it is the user's and is put back unchanged. Nothing else is touched,
    and ``.github/`` is removed only if that leaves it empty.
    """
    removed = [rel for option, rels in optional_files.items() if options[option] is not True for rel in rels]
    for rel in removed:
        generated, kept = project / rel, project / KEPT_DIR / rel
        if kept.is_file() and not (generated.is_file() and generated.read_bytes() == kept.read_bytes()):
            kept.replace(generated)
        else:
            generated.unlink(missing_ok=True)
    shutil.rmtree(project / KEPT_DIR, ignore_errors=True)
    prune_empty_dirs(project, removed)


def project_template(root: Path | None) -> Path | None:
    """The template's project folder (the one named after ``cookiecutter.worker_name``), if known."""
    if root is None:
        return None
    found = [p for p in root.iterdir() if p.is_dir() and "cookiecutter." in p.name]
    return found[0] if len(found) == 1 else None


def template_cache_files(template: Path) -> list[str]:
    """Relative paths of the cache and bytecode files in the template tree (a developer's leftovers)."""
    return sorted(
        p.relative_to(template).as_posix()
        for p in template.rglob("*")
        if p.is_file()
        and (set(p.relative_to(template).parts) & set(CACHE_DIRS) or p.suffix in (".pyc", ".pyo"))
    )


def remove_caches(project: Path, template: Path | None) -> None:
    """Remove exactly the cache files copied from the template tree, and cache dirs left empty.

    Without the template dir (cruft renders from a git checkout, which holds no caches) nothing is removed.
    """
    if template is None:
        return
    rels = template_cache_files(template)
    for rel in rels:
        (project / rel).unlink(missing_ok=True)
    prune_empty_dirs(project, rels)


def next_steps(project: Path) -> str:
    """What to run after a successful bake (at most 6 lines)."""
    start = os.environ.get("PWD", "")
    folder = os.path.relpath(project, start) if start and Path(start).is_dir() else str(project)
    if folder.startswith(".."):
        folder = str(project)
    return "\n".join(
        [
            f"Created {project.name}. Next:",
            f"  cd {folder}",
            "  docker compose up --build                  # Redis, mock orchestrator and your worker",
            "  python3 -m mock_orchestrator.cli dashboard # in a second terminal: the dashboard link",
            "  make test                                  # unit tests, no Docker needed",
        ]
    )


def main() -> int:
    project = Path.cwd()
    options = read_options()
    try:
        optional_files, template = read_handover(project)
        remove_disabled(project, options, optional_files)  # first: it also puts the user's kept files back
        write_env(project)
    except HookError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    remove_caches(project, project_template(template))
    if options["output_dir"]:  # not under cruft, whose update and diff bake into temp dirs
        print(next_steps(project))
    return 0


if __name__ == "__main__":
    sys.exit(main())
