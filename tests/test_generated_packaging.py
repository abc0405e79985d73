"""What the generated project ships: pyproject metadata, pre-commit hooks, the compose stack, the image."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from baking import Sandbox, bake_in, read_env_file
from processes import skip_or_fail

NASTY_DESCRIPTION = 'Say "hi" \\ to Zoë 😀 <b>&amp;\' \\u0041 \\n — ok'
NASTY_AUTHOR = 'Jöhn "Q" \\ Dœ 😀 <a@b.c>'
LOCAL_RUN_ENV = {"ORCHESTRATOR_URL": "http://localhost:8080", "REDIS_URL": "redis://localhost:6379/0"}
COMPOSE_ENV = {
    "worker": {"ORCHESTRATOR_URL": "http://mock-orchestrator:8080", "REDIS_URL": "redis://redis:6379/0"},
    "worker-real": {"ORCHESTRATOR_URL": "http://orchestrator:8080", "REDIS_URL": "redis://redis:6379/1"},
}
# Run inside the image: the added module imports, and nothing .dockerignore denies is there.
IMAGE_CHECK = """
import os, sys
import my_worker, helpers
assert my_worker.helpers.GREETING == "hello from helpers", my_worker.helpers.GREETING
assert open("/app/data/stock.json").read() == '{"apple": 1}'
denied = [".env", ".env.local", "secret.pem", "tests", "mock_orchestrator", "orchestrator", "README.md",
          "pyproject.toml", "docker-compose.yml", "Makefile", ".venv", "requirements-dev.txt"]
present = [name for name in denied if os.path.lexists(os.path.join("/app", name))]
sys.exit(f"in the image but denied: {present}" if present else 0)
"""


def pyproject(project: Path) -> dict[str, Any]:
    with (project / "pyproject.toml").open("rb") as handle:
        return tomllib.load(handle)


def requirement_lines(path: Path) -> list[str]:
    """The requirement specifiers of a requirements file (no comments, options or blanks)."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("-")]


def docker_cli(
    *args: str, cwd: Path, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """A docker CLI command in ``cwd`` with ``env`` added; its output is kept for the assertion messages."""
    return subprocess.run(
        ["docker", *args],
        cwd=cwd,
        env={**_base_env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _base_env() -> dict[str, str]:
    # COMPOSE_* from the caller's shell (a project name, files) would change what compose resolves.
    return {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COMPOSE_"))}


def require_docker(*args: str) -> None:
    """Skip (fail under CI) unless ``docker <args>`` works on this machine."""
    try:
        ok = subprocess.run(["docker", *args], capture_output=True, timeout=30, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    if not ok:
        skip_or_fail(f"`docker {' '.join(args)}` does not work here (install and start Docker)")


def test_pyproject_keeps_quotes_backslashes_and_non_ascii_answers_exactly(bake: Callable[..., Path]) -> None:
    project = bake(description=NASTY_DESCRIPTION, author=NASTY_AUTHOR)
    meta = pyproject(project)["project"]
    assert meta["description"] == NASTY_DESCRIPTION
    assert meta["authors"] == [{"name": 'Jöhn "Q" \\ Dœ 😀', "email": "a@b.c"}]


def test_pyproject_escapes_control_characters_that_only_a_hookless_bake_lets_through(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    description = "tab\there, bell\x07, escape\x1b, delete\x7f, next line\x85 end"
    project = bake_in(sandbox, tmp_path / "out", accept_hooks=False, description=description)
    assert pyproject(project)["project"]["description"] == description


@pytest.mark.parametrize(
    ("author", "expected"),
    [
        ("Jane Doe <jane@example.com>", {"name": "Jane Doe", "email": "jane@example.com"}),
        ("  Jane Doe   <jane@example.com>  ", {"name": "Jane Doe", "email": "jane@example.com"}),
        ("<jane@example.com>", {"email": "jane@example.com"}),
        ("Your Name", {"name": "Your Name"}),
        ("Ops team <not an address>", {"name": "Ops team <not an address>"}),
        ("Jane <jane@localhost>", {"name": "Jane <jane@localhost>"}),
        ("Jane <a@b@c.d>", {"name": "Jane <a@b@c.d>"}),
    ],
)
def test_an_author_like_name_and_address_fills_authors_email_and_anything_else_the_name(
    bake: Callable[..., Path], author: str, expected: dict[str, str]
) -> None:
    assert pyproject(bake(author=author))["project"]["authors"] == [expected]


def test_pyproject_dependencies_are_the_requirements_the_image_installs(project: Path) -> None:
    declared = pyproject(project)["project"]["dependencies"]
    assert declared == requirement_lines(project / "requirements.txt")


def test_pre_commit_hooks_build_their_own_environments_with_the_dev_tool_versions(project: Path) -> None:
    config = yaml.safe_load((project / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    hooks = {hook["id"]: hook for repo in config["repos"] for hook in repo["hooks"]}
    # `language: system` needs the venv on PATH, which a commit from an IDE or a fresh shell lacks.
    assert {hook["language"] for hook in hooks.values()} == {"python"}
    dev = set(requirement_lines(project / "requirements-dev.txt"))
    runtime = requirement_lines(project / "requirements.txt")
    for hook_id, hook in hooks.items():
        tool, *extra = hook["additional_dependencies"]
        assert tool in dev, f"hook {hook_id} installs {tool!r}, requirements-dev.txt does not"
        assert extra in ([], runtime), f"hook {hook_id}: {extra} should be requirements.txt's {runtime}"
    assert hooks["mypy"]["additional_dependencies"][1:] == runtime
    assert any(line.startswith("pre-commit") for line in dev)


def test_pre_commit_is_not_a_dev_requirement_when_the_config_is_not_generated(
    bake: Callable[..., Path],
) -> None:
    project = bake(pre_commit=False)
    assert not (project / ".pre-commit-config.yaml").exists()
    assert not any(
        line.startswith("pre-commit") for line in requirement_lines(project / "requirements-dev.txt")
    )


def test_pip_install_editable_in_a_fresh_venv_makes_the_worker_importable_anywhere(
    project: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    install = subprocess.run(
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-e", str(project)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    probe = "import avtomatika_worker, my_worker; print(my_worker.__file__)"
    imported = subprocess.run(
        [python, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert imported.returncode == 0, imported.stderr
    assert Path(imported.stdout.strip()) == project / "my_worker.py"


@pytest.fixture
def localhost_env_project(bake: Callable[..., Path]) -> Path:
    """A bake whose .env follows the local-run advice (localhost URLs for `python my_worker.py`)."""
    project = bake()
    env_file = project / ".env"
    text = env_file.read_text(encoding="utf-8")
    for name, value in LOCAL_RUN_ENV.items():
        text, count = re.subn(rf"(?m)^{name}=.*$", f"{name}={value}", text)
        assert count == 1, f".env should set {name} once"
    env_file.write_text(text, encoding="utf-8")
    assert {k: read_env_file(env_file)[k] for k in LOCAL_RUN_ENV} == LOCAL_RUN_ENV
    return project


@pytest.mark.docker
def test_compose_workers_keep_their_own_urls_when_env_points_at_localhost(
    localhost_env_project: Path,
) -> None:
    require_docker("compose", "version")
    result = docker_cli(
        "compose", "--profile", "orchestrator", "config", "--format", "json", cwd=localhost_env_project
    )
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    for service, expected in COMPOSE_ENV.items():
        environment = services[service]["environment"]
        assert {name: environment[name] for name in expected} == expected, service


@pytest.mark.docker
def test_compose_publishes_redis_on_loopback_at_redis_port(localhost_env_project: Path) -> None:
    require_docker("compose", "version")
    published = []
    for port in (None, "16379"):
        env = {} if port is None else {"REDIS_PORT": port}
        result = docker_cli("compose", "config", "--format", "json", cwd=localhost_env_project, env=env)
        assert result.returncode == 0, result.stderr
        (mapping,) = json.loads(result.stdout)["services"]["redis"]["ports"]
        published.append((mapping["host_ip"], str(mapping["published"]), mapping["target"]))
    assert published == [("127.0.0.1", "6379", 6379), ("127.0.0.1", "16379", 6379)]


@pytest.fixture
def image_with_a_helper_module(bake: Callable[..., Path]) -> Iterator[str]:
    """The worker image built from a bake whose my_worker.py imports a module and data file of its own."""
    require_docker("info")
    project = bake()
    (project / "helpers.py").write_text('"""Added by the user."""\n\nGREETING = "hello from helpers"\n')
    (project / "data").mkdir()
    (project / "data" / "stock.json").write_text('{"apple": 1}')
    (project / ".env.local").write_text("WORKER_TOKEN=local-secret\n")
    (project / "secret.pem").write_text("-----BEGIN PRIVATE KEY-----\n")
    worker = project / "my_worker.py"
    worker.write_text(worker.read_text(encoding="utf-8") + "\nimport helpers  # noqa: E402\n")
    tag = f"template-test-helper-{secrets.token_hex(4)}"
    build = docker_cli("build", "--quiet", "--tag", tag, ".", cwd=project, timeout=900)
    assert build.returncode == 0, build.stdout + build.stderr
    try:
        yield tag
    finally:
        docker_cli("image", "rm", "--force", tag, cwd=project)


@pytest.mark.docker
def test_a_module_added_beside_my_worker_ships_in_the_image_and_secrets_do_not(
    image_with_a_helper_module: str, tmp_path: Path
) -> None:
    run = docker_cli(
        "run", "--rm", "--entrypoint", "python", image_with_a_helper_module, "-c", IMAGE_CHECK, cwd=tmp_path
    )
    assert run.returncode == 0, run.stdout + run.stderr
