"""A newcomer's first hour: bad answers, re-bakes over their own work, licences, next steps and cruft."""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
import subprocess
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from baking import PROJECT_TEMPLATE, TEMPLATE_DIR, Sandbox, bake_in, read_env_file

NAME = "inventory-worker"
# The interactive prompts in order (cookiecutter.json): Enter keeps a default.
PROMPTS = ("worker_name", "worker_type", "description", "author", "license", "python_version",
           "websocket_cancellation", "github_actions", "pre_commit", "s3_files")  # fmt: skip
# sha256 of the Apache License 2.0 text as published at https://www.apache.org/licenses/LICENSE-2.0.txt
APACHE_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"


def cookiecutter(
    box: Sandbox, *args: str, stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """The real ``cookiecutter`` command line (interactive unless ``--no-input``), from a shell in ``cwd``."""
    cwd = cwd or box.root
    env = {**box.env(), "PWD": str(cwd)}  # as a shell sets it
    return subprocess.run(
        [sys.executable, "-m", "cookiecutter", *args],
        cwd=cwd, env=env, input=stdin if stdin is not None else "", capture_output=True,
        text=True, timeout=120, check=False,
    )  # fmt: skip


def typed(**answers: str) -> str:
    """Keyboard input for the interactive prompts: the given answers, Enter for every other one."""
    return "".join(f"{answers.get(name, '')}\n" for name in PROMPTS)


def replayed_answers(box: Sandbox) -> dict[str, Any]:
    (replay,) = box.replay_files()
    answers: dict[str, Any] = json.loads(replay.read_text(encoding="utf-8"))["cookiecutter"]
    return answers


def files_of(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_interactive_bad_answer_prints_one_line_and_a_retry_command_that_keeps_the_good_answers(
    sandbox: Sandbox,
) -> None:
    out = sandbox.root / "out"
    first = typed(worker_name="My Worker", author="Jane Doe", license="2", github_actions="n")
    result = cookiecutter(sandbox, str(TEMPLATE_DIR), "--output-dir", "out", stdin=first)
    assert result.returncode == 1
    error, retry = result.stderr.splitlines()  # exactly one line per bad answer, then the retry line
    assert error == (
        "error: worker_name='My Worker' is invalid: use lowercase letters, digits and single hyphens, "
        "starting with a letter (2-64 characters). Example: inventory-worker"
    )
    prefix, _, command = retry.partition(": ")
    assert prefix == "retry (your valid answers are the defaults; retype only the bad ones)"
    words = shlex.split(command)
    assert words == [
        "cookiecutter", str(TEMPLATE_DIR), "--output-dir", str(out),
        "author=Jane Doe", "license=Apache-2.0", "github_actions=no",
    ]  # fmt: skip
    assert not out.exists() or not any(out.iterdir())

    again = cookiecutter(sandbox, *words[1:], stdin=typed(worker_name="pricing-worker"))
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr
    answers = replayed_answers(sandbox)
    assert answers["worker_name"] == "pricing-worker"
    assert (answers["author"], answers["license"], answers["github_actions"]) == (
        "Jane Doe",
        "Apache-2.0",
        False,
    )
    assert (
        (out / "pricing-worker" / "LICENSE").read_text(encoding="utf-8").lstrip().startswith("Apache License")
    )


def test_mistyped_key_on_the_command_line_is_named_with_the_likely_fix(sandbox: Sandbox) -> None:
    result = cookiecutter(sandbox, "--no-input", str(TEMPLATE_DIR), "worker_nme=pricing-worker", "-o", "out")
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == (
        "error: worker_nme='pricing-worker' is not a question of this template (ignored). "
        "Fix: did you mean worker_name='pricing-worker'?"
    )
    # Checked before the first question, so the corrected command is the user's own, key fixed.
    fixed = ["cookiecutter", "--no-input", str(TEMPLATE_DIR), "worker_name=pricing-worker", "-o", "out"]
    assert result.stderr.splitlines()[1:] == ["retry: " + shlex.join(fixed)]
    assert not (sandbox.root / "out").exists()
    again = cookiecutter(sandbox, *fixed[1:])
    assert again.returncode == 0, again.stderr
    assert (sandbox.root / "out" / "pricing-worker" / "my_worker.py").is_file()


def test_rebake_of_an_existing_project_with_a_bad_answer_suggests_retrying_with_f(sandbox: Sandbox) -> None:
    assert cookiecutter(sandbox, "--no-input", str(TEMPLATE_DIR)).returncode == 0
    result = cookiecutter(sandbox, "--no-input", "-f", str(TEMPLATE_DIR), "worker_type=bad type")
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].endswith(f"cookiecutter {TEMPLATE_DIR} -f")
    assert (sandbox.root / NAME / "my_worker.py").is_file(), "a refused re-bake must leave the project alone"


def test_successful_bake_prints_the_next_steps_in_at_most_six_lines(sandbox: Sandbox) -> None:
    result = cookiecutter(sandbox, "--no-input", str(TEMPLATE_DIR), "-o", "out")
    assert result.returncode == 0, result.stderr
    steps = result.stdout.strip().splitlines()
    assert len(steps) <= 6
    assert steps[0] == f"Created {NAME}. Next:"
    commands = [line.split("#")[0].strip() for line in steps[1:]]
    assert commands == [
        f"cd out/{NAME}",
        "docker compose up --build",
        "python3 -m mock_orchestrator.cli dashboard",
        "make test",
    ]
    project = sandbox.root / "out" / NAME
    assert "\ntest:" in (project / "Makefile").read_text(encoding="utf-8")
    assert "dashboard" in (project / "mock_orchestrator" / "cli.py").read_text(encoding="utf-8")


USER_SETTINGS = {  # what a user adds to a generated project
    ".github/CODEOWNERS": "* @jane\n",
    ".github/workflows/release.yml": "name: release\non: workflow_dispatch\n",
    ".pre-commit-config.yaml": "repos: []  # mine\n",
    "tests/test_pricing.py": "def test_mine() -> None:\n    assert True\n",
    "tests/e2e/test_pricing_e2e.py": "# mine\n",
}
USER_CACHES = {  # and what their tools leave there
    ".venv/lib/python3.12/site-packages/pkg/__pycache__/mod.cpython-312.pyc": "bytecode",
    ".venv/pyvenv.cfg": "home = /usr/bin\n",
    ".pytest_cache/v/cache/lastfailed": "{}\n",
    "tests/__pycache__/test_mine.cpython-312.pyc": "bytecode",
    "notes/__pycache__/x.pyc": "bytecode",
}


def add_files(project: Path, files: dict[str, str]) -> dict[str, str]:
    for rel, text in files.items():
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_text(text, encoding="utf-8")
    return files


def contents(project: Path, files: dict[str, str]) -> dict[str, str]:
    return {rel: (project / rel).read_text(encoding="utf-8") for rel in files if (project / rel).is_file()}


def test_rebake_with_github_and_pre_commit_off_keeps_the_users_own_files(sandbox: Sandbox) -> None:
    assert cookiecutter(sandbox, "--no-input", str(TEMPLATE_DIR)).returncode == 0
    project = sandbox.root / NAME
    mine = add_files(project, USER_SETTINGS | USER_CACHES)
    result = cookiecutter(
        sandbox, "--no-input", "-f", str(TEMPLATE_DIR), "github_actions=no", "pre_commit=no"
    )
    assert result.returncode == 0, result.stderr
    assert contents(project, mine) == mine
    assert not (project / ".github" / "workflows" / "ci.yml").exists()
    assert not (project / ".github" / "dependabot.yml").exists()
    assert not (project / ".cookiecutter-kept").exists()


def test_rebake_with_github_and_pre_commit_off_removes_the_templates_files_and_the_empty_github_dir(
    sandbox: Sandbox,
) -> None:
    assert cookiecutter(sandbox, "--no-input", str(TEMPLATE_DIR)).returncode == 0
    project = sandbox.root / NAME
    assert (project / ".github" / "dependabot.yml").is_file()
    result = cookiecutter(
        sandbox, "--no-input", "-f", str(TEMPLATE_DIR), "github_actions=no", "pre_commit=no"
    )
    assert result.returncode == 0, result.stderr
    assert not (project / ".github").exists()
    assert not (project / ".pre-commit-config.yaml").exists()
    assert not (project / ".cookiecutter-kept").exists()


def template_copy(tmp_path: Path) -> Path:
    """The template (cookiecutter.json, hooks, project folder) copied without local caches."""
    copy = tmp_path / "template"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", ".ruff_cache", ".pytest_cache")
    shutil.copytree(TEMPLATE_DIR / "hooks", copy / "hooks", ignore=ignore)
    shutil.copytree(PROJECT_TEMPLATE, copy / PROJECT_TEMPLATE.name, ignore=ignore)
    shutil.copy2(TEMPLATE_DIR / "cookiecutter.json", copy)
    return copy


def test_caches_in_the_template_tree_are_dropped_but_the_users_caches_and_venv_are_kept(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    template = template_copy(tmp_path)
    leftovers = ["avtomatika_worker/__pycache__/worker.cpython-312.pyc", "my_worker.pyc"]
    for rel in leftovers:  # what a template developer's local runs leave in the template tree
        (template / PROJECT_TEMPLATE.name / rel).parent.mkdir(parents=True, exist_ok=True)
        (template / PROJECT_TEMPLATE.name / rel).write_bytes(b"bytecode")
    out = str(tmp_path / "out")
    # `cookiecutter .` from inside the template: cookiecutter hands the hooks the relative path ".".
    assert cookiecutter(sandbox, "--no-input", ".", "-o", out, cwd=template).returncode == 0
    project = tmp_path / "out" / NAME
    assert not [rel for rel in leftovers if (project / rel).exists()]
    assert not (project / "avtomatika_worker" / "__pycache__").exists()
    mine = add_files(project, USER_CACHES)
    result = cookiecutter(sandbox, "--no-input", "-f", ".", "-o", out, cwd=template)
    assert result.returncode == 0, result.stderr
    assert contents(project, mine) == mine
    assert not [rel for rel in leftovers if (project / rel).exists()]


def test_retry_line_for_a_template_given_as_dot_lists_only_answers_that_differ_from_the_defaults(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    template = template_copy(tmp_path)
    answers = ["worker_name=My Worker", "author=Jane Doe", "github_actions=no"]
    result = cookiecutter(sandbox, "--no-input", ".", *answers, cwd=template)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "retry (your valid answers are the defaults; retype only the bad ones): "
        "cookiecutter . 'author=Jane Doe' github_actions=no"
    )


@pytest.mark.parametrize(
    ("choice", "title", "spdx"),
    [
        ("MIT", "MIT License", "MIT"),
        ("Apache-2.0", "Apache License", "Apache-2.0"),
        ("BSD-3-Clause", "BSD 3-Clause License", "BSD-3-Clause"),
        ("Proprietary", "Copyright (c)", "LicenseRef-Proprietary"),
    ],
)
def test_license_file_and_pyproject_follow_the_chosen_license(
    sandbox: Sandbox, tmp_path: Path, choice: str, title: str, spdx: str
) -> None:
    project = bake_in(sandbox, tmp_path / "out", license=choice, author="Jane Doe <jane@example.com>")
    text = (project / "LICENSE").read_text(encoding="utf-8")
    assert text.lstrip().startswith(title)
    year = str(datetime.now(UTC).year)
    assert any(year in line and "Jane Doe <jane@example.com>" in line for line in text.splitlines())
    assert "{" not in text
    metadata = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert metadata["license"] == spdx
    if choice == "Apache-2.0":  # the standard text, with its appendix's copyright line filled in
        standard = text.replace(
            f"Copyright {year} Jane Doe <jane@example.com>", "Copyright [yyyy] [name of copyright owner]"
        )
        assert hashlib.sha256(standard.encode()).hexdigest() == APACHE_SHA256
    if choice == "Proprietary":
        assert "not open source" in text


def test_template_repository_has_an_mit_license() -> None:
    assert (TEMPLATE_DIR / "LICENSE").read_text(encoding="utf-8").startswith("MIT License\n")


def test_dependabot_updates_actions_pip_and_docker_weekly_and_goes_with_the_workflow(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    project = bake_in(sandbox, tmp_path / "on")
    config = yaml.safe_load((project / ".github" / "dependabot.yml").read_text(encoding="utf-8"))
    updates = {u["package-ecosystem"]: u for u in config["updates"]}
    assert config["version"] == 2 and set(updates) == {"github-actions", "pip", "docker"}
    assert {u["schedule"]["interval"] for u in updates.values()} == {"weekly"}
    for docker_dir in updates["docker"]["directories"]:
        assert (project / docker_dir.strip("/") / "Dockerfile").is_file()
    assert not (bake_in(sandbox, tmp_path / "off", github_actions=False) / ".github").exists()


def git(cwd: Path, *args: str) -> str:
    identity = [
        "-c",
        "user.name=Template Dev",
        "-c",
        "user.email=dev@example.com",
        "-c",
        "commit.gpgsign=false",
    ]
    result = subprocess.run(
        ["git", *identity, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=True
    )
    return result.stdout


def cruft(box: Sandbox, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [str(Path(sys.executable).with_name("cruft")), *args]
    env = {**box.env(), "GIT_AUTHOR_NAME": "u", "GIT_AUTHOR_EMAIL": "u@example.com"}
    env.update(GIT_COMMITTER_NAME="u", GIT_COMMITTER_EMAIL="u@example.com", GIT_CONFIG_NOSYSTEM="1")
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=180, check=False)


def test_cruft_update_applies_cleanly_and_never_touches_or_prints_env(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    template = template_copy(tmp_path)
    git(template, "init", "-q", "-b", "main")
    git(template, "add", "-A")
    git(template, "commit", "-q", "-m", "template v1")
    created = cruft(sandbox, tmp_path, "create", "--no-input", "--output-dir", "projects", str(template))
    assert created.returncode == 0, created.stdout[-2000:] + created.stderr
    project = tmp_path / "projects" / NAME
    env_file = project / ".env"
    before = env_file.read_bytes()
    tokens = [v for k, v in read_env_file(env_file).items() if k.endswith("_TOKEN")]
    assert len(tokens) == 2
    git(project, "init", "-q", "-b", "main")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "generated")

    readme = template / PROJECT_TEMPLATE.name / "README.md"
    readme.write_text(
        readme.read_text(encoding="utf-8") + "\nA line added by template v2.\n", encoding="utf-8"
    )
    git(template, "commit", "-q", "-am", "template v2")
    updated = cruft(sandbox, project, "update", "-y")
    diff = cruft(sandbox, project, "diff")

    assert updated.returncode == 0, updated.stdout[-2000:] + updated.stderr
    assert "A line added by template v2." in (project / "README.md").read_text(encoding="utf-8")
    assert env_file.read_bytes() == before
    assert not [p for p in project.rglob("*.rej")]
    assert diff.returncode == 0, diff.stderr
    for result in (created, updated, diff):
        output = result.stdout + result.stderr
        assert not [t for t in tokens if t in output], "a secret was printed"
    assert ".env" not in diff.stdout
