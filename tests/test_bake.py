"""Bake the default answers and every option combination; check the generated project."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from cookiecutter.environment import StrictEnvironment

from baking import PROJECT_TEMPLATE, Sandbox, bake_in, make_sandbox, read_env_file

PYTHON_VERSIONS = ("3.11", "3.12", "3.13")
BOOLS = (True, False)
COMBOS = [
    pytest.param(
        {
            "python_version": py,
            "websocket_cancellation": ws,
            "github_actions": gh,
            "pre_commit": pc,
            "s3_files": s3,
        },
        id=f"py{py}-ws{'on' if ws else 'off'}-gha{'on' if gh else 'off'}-pc{'on' if pc else 'off'}"
        f"-s3{'on' if s3 else 'off'}",
    )
    for py, ws, gh, pc, s3 in itertools.product(PYTHON_VERSIONS, BOOLS, BOOLS, BOOLS, BOOLS)
]
VENDORED = ("avtomatika_worker", "mock_orchestrator", "orchestrator")
# GitHub Actions' own expression syntax, which a workflow cannot avoid (e.g. secrets.GITHUB_TOKEN).
# GitHub expressions and docker/metadata-action's tag patterns are meant to stay in the output.
GITHUB_EXPRESSION = re.compile(r"\$\{\{.*?\}\}|\{\{(?:version|major|minor|patch|raw)\}\}")
# What only the s3_files option generates (the post-gen hook removes them when it is off).
S3_ONLY_FILES = (
    "s3/Dockerfile",
    "s3/serve.py",
    "tests/e2e/test_files.py",
    "tests/test_mock_files.py",
    "tests/test_sdk_files.py",
)
CACHE_PARTS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
KEY_FILES = (
    "my_worker.py",
    "avtomatika_worker/__init__.py",
    "avtomatika_worker/py.typed",
    "mock_orchestrator/__main__.py",
    "Dockerfile",
    "docker-compose.yml",
    ".env",
    ".env.example",
    ".gitignore",
    ".dockerignore",
    "README.md",
    "LICENSE",
    "requirements.txt",
)


@dataclass(frozen=True)
class Baked:
    project: Path
    answers: dict[str, Any]  # the final cookiecutter context (from the replay file)
    box: Sandbox


def is_cache(rel: Path) -> bool:
    return bool(CACHE_PARTS & set(rel.parts)) or rel.suffix in (".pyc", ".pyo")


def files_under(root: Path) -> set[str]:
    return {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and not is_cache(p.relative_to(root))
    }


def expected_files(answers: dict[str, Any]) -> set[str]:
    """The template tree with names rendered, plus ``.env``, minus disabled options."""
    context = {"cookiecutter": answers}
    env = StrictEnvironment(context=context)
    rendered = {env.from_string(rel).render(**context) for rel in files_under(PROJECT_TEMPLATE)}
    rendered.add(".env")
    if not answers["github_actions"]:
        rendered = {f for f in rendered if not f.startswith(".github/")}
    if not answers["pre_commit"]:
        rendered.discard(".pre-commit-config.yaml")
    if not answers["s3_files"]:
        rendered -= set(S3_ONLY_FILES)
    return rendered


def text_files(project: Path) -> dict[str, str]:
    texts = {}
    for rel in files_under(project):
        try:
            texts[rel] = (project / rel).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
    return texts


@pytest.fixture(scope="module", params=[pytest.param({}, id="default"), *COMBOS])
def baked(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Baked:
    root = tmp_path_factory.mktemp("bake")
    box = make_sandbox(root / "sandbox")
    project = bake_in(box, root / "out", **request.param)
    (replay,) = box.replay_files()
    answers = json.loads(replay.read_text(encoding="utf-8"))["cookiecutter"]
    return Baked(project=project, answers=answers, box=box)


def test_bake_creates_the_project_folder_named_after_the_worker(baked: Baked) -> None:
    assert baked.project.is_dir()
    assert baked.project.name == baked.answers["worker_name"]
    assert [p.name for p in baked.project.parent.iterdir()] == [baked.project.name]


def test_generated_file_set_is_exactly_the_template_tree(baked: Baked) -> None:
    actual = {p.relative_to(baked.project).as_posix() for p in baked.project.rglob("*") if p.is_file()}
    assert actual == expected_files(baked.answers)


def test_key_files_are_generated(baked: Baked) -> None:
    missing = [f for f in KEY_FILES if not (baked.project / f).is_file()]
    assert not missing, f"missing generated files: {missing}"
    tests_dir = baked.project / "tests"
    assert tests_dir.is_dir() and any(tests_dir.glob("test_*.py")), "tests/ has no test_*.py"


def test_github_workflow_exists_only_when_enabled(baked: Baked) -> None:
    github = baked.project / ".github"
    if baked.answers["github_actions"]:
        assert (github / "workflows" / "ci.yml").is_file()
    else:
        assert not github.exists()


def test_no_bytecode_or_caches_are_generated(baked: Baked) -> None:
    leftovers = [
        p.relative_to(baked.project).as_posix()
        for p in baked.project.rglob("*")
        if is_cache(p.relative_to(baked.project))
    ]
    assert not leftovers


def test_no_jinja_syntax_is_left_in_text_files(baked: Baked) -> None:
    texts = text_files(baked.project)
    for rel in texts:
        if rel.startswith(".github/workflows/"):
            texts[rel] = GITHUB_EXPRESSION.sub("", texts[rel])
    leftovers = {
        rel: marker for rel, text in texts.items() for marker in ("{{", "{%", "{#") if marker in text
    }
    assert not leftovers


def test_every_python_file_compiles(baked: Baked) -> None:
    py_files = sorted(baked.project.rglob("*.py"))
    assert py_files
    for path in py_files:
        compile(path.read_bytes(), str(path), "exec", dont_inherit=True)


def test_every_yaml_toml_and_json_file_parses(baked: Baked) -> None:
    parsed = 0
    for rel, text in text_files(baked.project).items():
        if rel.endswith((".yml", ".yaml")):
            list(yaml.safe_load_all(text))
        elif rel.endswith(".toml"):
            tomllib.loads(text)
        elif rel.endswith(".json"):
            json.loads(text)
        else:
            continue
        parsed += 1
    assert parsed >= 2  # at least docker-compose.yml and pyproject.toml


@pytest.mark.parametrize("package", VENDORED)
def test_vendored_sdk_and_mock_are_byte_identical_to_the_template(baked: Baked, package: str) -> None:
    source, copy = PROJECT_TEMPLATE / package, baked.project / package
    assert files_under(copy) == files_under(source)
    different = [
        rel for rel in files_under(source) if (source / rel).read_bytes() != (copy / rel).read_bytes()
    ]
    assert not different


def test_env_enables_websockets_only_when_chosen(baked: Baked) -> None:
    env = read_env_file(baked.project / ".env")
    expected = "true" if baked.answers["websocket_cancellation"] else "false"
    assert env.get("WORKER_ENABLE_WEBSOCKETS") == expected


def base_images(dockerfile: str) -> list[str]:
    """The FROM images, with global ``ARG NAME=default`` values substituted (as docker build does)."""
    args: dict[str, str] = {}
    images = []
    for line in dockerfile.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0].upper() == "ARG" and "=" in words[1] and not images:
            name, _, default = words[1].partition("=")
            args[name] = default.strip("\"'")
        elif words and words[0].upper() == "FROM":
            image = next(w for w in words[1:] if not w.startswith("--"))
            images.append(re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), image))
    return images


def test_dockerfile_uses_the_chosen_python_slim_image(baked: Baked) -> None:
    version = baked.answers["python_version"]
    images = base_images((baked.project / "Dockerfile").read_text(encoding="utf-8"))
    python_images = [i for i in images if i.startswith("python:")]
    assert python_images, f"no python base image in FROM lines: {images}"
    for image in python_images:
        assert re.fullmatch(rf"python:{re.escape(version)}-slim(@sha256:[0-9a-f]{{64}})?", image), image


# The generated suite runs on the host's Python whatever `python_version` says (it only picks the image),
# and only `websocket_cancellation` and `s3_files` change what it runs: the default answers plus every
# option flipped cover each value, instead of 49 near-identical runs of the whole suite.
CURATED = [
    pytest.param({}, id="default"),
    pytest.param(
        {
            "python_version": "3.13",
            "websocket_cancellation": False,
            "github_actions": False,
            "pre_commit": False,
            "s3_files": True,
        },
        id="py3.13-wsoff-ghaoff-pcoff-s3on",
    ),
]


@pytest.fixture(scope="module", params=CURATED)
def curated(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Baked:
    root = tmp_path_factory.mktemp("bake-curated")
    box = make_sandbox(root / "sandbox")
    project = bake_in(box, root / "out", **request.param)
    (replay,) = box.replay_files()
    return Baked(
        project=project, answers=json.loads(replay.read_text(encoding="utf-8"))["cookiecutter"], box=box
    )


def run_in(baked: Baked, *command: str) -> None:
    """Run `command` in the baked project (tools from this interpreter's venv); it must succeed."""
    result = subprocess.run(
        command,
        cwd=baked.project,
        env=baked.box.env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]


def test_generated_unit_tests_pass(curated: Baked) -> None:
    run_in(curated, sys.executable, "-m", "pytest", "-q", "-m", "not e2e", "-p", "no:cacheprovider")


@pytest.mark.parametrize(
    "command",
    [["ruff", "check", "."], ["ruff", "format", "--check", "."], ["mypy"]],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_generated_project_passes_its_own_linters(curated: Baked, command: list[str]) -> None:
    run_in(curated, str(Path(sys.executable).parent / command[0]), *command[1:])


def test_the_template_installs_every_dev_requirement_of_the_generated_project(curated: Baked) -> None:
    def requirements(path: Path) -> set[str]:
        lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
        return {line for line in lines if line and not line.startswith(("#", "-r"))}

    template_dev = requirements(PROJECT_TEMPLATE.parent / "requirements-dev.txt")
    assert requirements(curated.project / "requirements-dev.txt") <= template_dev
