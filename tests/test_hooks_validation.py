"""The pre-generation hook rejects bad answers with clear messages and treats answers as data."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cookiecutter.exceptions import FailedHookException
from cookiecutter.main import cookiecutter

from baking import TEMPLATE_DIR, Sandbox, read_env_file

Cli = Callable[..., subprocess.CompletedProcess[str]]

NAME_RULE = "use lowercase letters, digits and single hyphens, starting with a letter (2-64 characters)"
TYPE_RULE = "use letters, digits, '-' and '_', starting with a letter or digit (1-64 characters)"
DESCRIPTION_RULE = "use one line of 1-200 characters"
AUTHOR_RULE = "use one line of 1-100 characters"
BOOL_RULE = "answer a boolean (true/false, yes/no, 1/0, on/off)"
EXAMPLES = {
    "worker_name": "inventory-worker",
    "worker_type": "inventory-checker",
    "description": "An Avtomatika worker that checks warehouse inventory.",
    "author": "Jane Doe <jane@example.com>",
    "license": "MIT",
    "python_version": "3.12",
    "websocket_cancellation": "true",
    "github_actions": "false",
    "pre_commit": "true",
    "s3_files": "false",
}
INVALID_TEXT_ANSWERS = [
    ("worker_name", "My Worker", NAME_RULE),
    ("worker_name", "inventory_worker", NAME_RULE),
    ("worker_name", "9lives", NAME_RULE),
    ("worker_name", "w", NAME_RULE),
    ("worker_name", "w" * 65, NAME_RULE),
    ("worker_name", "double--hyphen", NAME_RULE),
    ("worker_name", "trailing-", NAME_RULE),
    ("worker_name", "Inventory", NAME_RULE),
    ("worker_type", "bad type", TYPE_RULE),
    ("worker_type", "-leading-hyphen", TYPE_RULE),
    ("worker_type", "t" * 65, TYPE_RULE),
    ("worker_type", "tÿpe", TYPE_RULE),
    ("description", "", DESCRIPTION_RULE),
    ("description", "   ", DESCRIPTION_RULE),
    ("description", "first line\nsecond line", DESCRIPTION_RULE),
    ("description", "d" * 201, DESCRIPTION_RULE),
    ("author", "", AUTHOR_RULE),
    ("author", "Jane\u2028Doe", AUTHOR_RULE),
    ("author", "\x1b[31mJane", AUTHOR_RULE),
    ("author", "Jane\tDoe", AUTHOR_RULE),
    ("author", "a" * 101, AUTHOR_RULE),
]


def expected_message(name: str, value: object, rule: str) -> str:
    return f"error: {name}={value!r} is invalid: {rule}"


def assert_nothing_generated(box: Sandbox, output_dir: Path) -> None:
    assert not output_dir.exists() or not any(output_dir.iterdir())
    assert not [p for p in box.root.rglob(".env") if p.is_file()]


def load_hook(name: str) -> ModuleType:
    """Import a hook's unrendered source: its Jinja lives only inside a string literal."""
    spec = importlib.util.spec_from_file_location(f"hook_{name}", TEMPLATE_DIR / "hooks" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def replay_with(box: Sandbox, tmp_path: Path, baked_replay: dict[str, Any], **answers: Any) -> Path:
    """Run a replay whose answers bypass cookiecutter's own conversion, straight to the hook."""
    replay = json.loads(json.dumps(baked_replay))
    replay["cookiecutter"].update(answers)
    replay_file = tmp_path / "crafted-replay.json"
    replay_file.write_text(json.dumps(replay), encoding="utf-8")
    output_dir = tmp_path / "replayed"
    output_dir.mkdir()
    cookiecutter(
        str(TEMPLATE_DIR),
        replay=str(replay_file),
        output_dir=str(output_dir),
        config_file=str(box.config_file),
    )
    return output_dir


@pytest.fixture
def default_replay(bake: Callable[..., Path], sandbox: Sandbox) -> dict[str, Any]:
    bake()
    (replay,) = sandbox.replay_files()
    data: dict[str, Any] = json.loads(replay.read_text(encoding="utf-8"))
    return data


@pytest.mark.parametrize(("name", "value", "rule"), INVALID_TEXT_ANSWERS)
def test_invalid_text_answer_is_rejected_with_variable_value_rule_and_example(
    cli: Cli, sandbox: Sandbox, tmp_path: Path, name: str, value: str, rule: str
) -> None:
    result = cli(f"{name}={value}")
    assert result.returncode == 1
    assert expected_message(name, value, rule) in result.stderr
    assert f"Example: {EXAMPLES[name]}" in result.stderr
    assert_nothing_generated(sandbox, tmp_path / "out")


def test_every_bad_answer_gets_its_own_message(cli: Cli, sandbox: Sandbox, tmp_path: Path) -> None:
    result = cli("worker_name=Bad Name", "worker_type=bad type", "description=", "author=")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert [e.split("=", 1)[0] for e in errors] == [
        "error: worker_name",
        "error: worker_type",
        "error: description",
        "error: author",
    ]
    assert_nothing_generated(sandbox, tmp_path / "out")


def test_worker_name_escaping_the_output_dir_is_rejected_and_cleaned_up(
    cli: Cli, sandbox: Sandbox, tmp_path: Path
) -> None:
    result = cli("worker_name=../escaped")
    assert result.returncode == 1
    assert expected_message("worker_name", "../escaped", NAME_RULE) in result.stderr
    assert not (tmp_path / "escaped").exists()
    assert_nothing_generated(sandbox, tmp_path / "out")


OUT_OF_RULE_ANSWERS = [
    ("python_version", "3.10", "choose one of 3.11, 3.12, 3.13"),
    ("license", "GPL-3.0", "choose one of MIT, Apache-2.0, BSD-3-Clause, Proprietary"),
    *(
        (name, value, BOOL_RULE)
        for name in ("websocket_cancellation", "github_actions", "pre_commit", "s3_files")
        for value in ("maybe", "true", 1, None, [True])
    ),
]


@pytest.mark.parametrize(("name", "value", "rule"), OUT_OF_RULE_ANSWERS)
def test_a_choice_or_boolean_outside_its_rule_reaching_the_hook_is_rejected(
    sandbox: Sandbox,
    tmp_path: Path,
    default_replay: dict[str, Any],
    capfd: pytest.CaptureFixture[str],
    name: str,
    value: object,
    rule: str,
) -> None:
    capfd.readouterr()
    with pytest.raises(FailedHookException):
        replay_with(sandbox, tmp_path, default_replay, **{name: value})
    err = capfd.readouterr().err
    assert expected_message(name, value, rule) in err
    assert f"Example: {EXAMPLES[name]}" in err
    assert_nothing_generated(sandbox, tmp_path / "replayed")


def test_non_boolean_python_value_via_the_api_is_rejected(
    bake: Callable[..., Path], sandbox: Sandbox, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(FailedHookException):
        bake(github_actions=None)
    assert expected_message("github_actions", None, BOOL_RULE) in capfd.readouterr().err
    assert_nothing_generated(sandbox, tmp_path / "out0")


JINJA_ERROR = "error: description={answer!r} is invalid: cookiecutter renders an answer as a Jinja template and this one"


@pytest.mark.parametrize(
    ("answer", "error", "fixed"),
    [
        ("github_actions=maybe", "error: github_actions='maybe' is invalid: answer a boolean", None),
        (
            "python_version=3.9",
            "error: python_version='3.9' is invalid: choose one of 3.11, 3.12, 3.13",
            None,
        ),
        (
            "description=a {{ b",
            JINJA_ERROR.format(answer="a {{ b") + " is not valid Jinja",
            "description={% raw %}a {{ b{% endraw %}",
        ),
        (
            "description={{ team }}",
            JINJA_ERROR.format(answer="{{ team }}") + " uses an unknown name (team)",
            "description={% raw %}{{ team }}{% endraw %}",
        ),
    ],
)
def test_answers_cookiecutter_would_choke_on_get_one_line_and_a_corrected_retry(
    cli: Cli, sandbox: Sandbox, tmp_path: Path, answer: str, error: str, fixed: str | None
) -> None:
    result = cli(answer)
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    line, retry = result.stderr.splitlines()  # before the first question: one line, then the retry
    assert line.startswith(error), line
    assert_nothing_generated(sandbox, tmp_path / "out")
    words = shlex.split(retry.partition(": ")[2])
    assert words[0] == "cookiecutter"
    if fixed is None:  # left out, and asked for again: Enter at every prompt takes the defaults
        assert answer not in words and "--no-input" not in words, words
        again = subprocess.run(
            [sys.executable, "-m", *words], cwd=sandbox.root, env=sandbox.env(), input="\n" * 10,
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    else:  # corrected in place: the same non-interactive command works
        assert fixed in words and "--no-input" in words, words
        again = subprocess.run(
            [sys.executable, "-m", *words], cwd=sandbox.root, env=sandbox.env(),
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr
    project = tmp_path / "out" / EXAMPLES["worker_name"]
    if fixed is not None:
        literal = fixed.partition("=")[2].removeprefix("{% raw %}").removesuffix("{% endraw %}")
        assert literal in (project / "README.md").read_text(encoding="utf-8")


def test_literal_braces_on_the_command_line_pass_with_the_documented_raw_escape(
    cli: Cli, tmp_path: Path
) -> None:
    result = cli("description=a {% raw %}{{{% endraw %} b")
    assert result.returncode == 0, result.stderr
    assert "a {{ b" in (tmp_path / "out" / EXAMPLES["worker_name"] / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("false", False), ("no", False), ("0", False), ("off", False),
     ("true", True), ("yes", True), ("1", True), ("on", True)],
)  # fmt: skip
def test_boolean_answers_given_as_text_are_accepted(
    cli: Cli, tmp_path: Path, text: str, expected: bool
) -> None:
    result = cli(f"websocket_cancellation={text}", f"github_actions={text}", f"pre_commit={text}")
    assert result.returncode == 0, result.stderr
    project = tmp_path / "out" / EXAMPLES["worker_name"]
    env = read_env_file(project / ".env")
    assert env["WORKER_ENABLE_WEBSOCKETS"] == ("true" if expected else "false")
    assert (project / ".github").exists() is expected
    assert (project / ".pre-commit-config.yaml").exists() is expected


@pytest.mark.parametrize("hook", ["pre_gen_project", "post_gen_project"])
def test_hooks_read_answers_only_as_json_inside_a_raw_single_quoted_string(hook: str) -> None:
    source = (TEMPLATE_DIR / "hooks" / f"{hook}.py").read_text(encoding="utf-8")
    assert "{%" not in source and "{#" not in source
    expressions = re.findall(r"(.{4})\{\{(.*?)\}\}(.{3})", source, flags=re.DOTALL)
    assert expressions
    for before, body, after in expressions:
        assert (before, after) == ("r'''", "'''"), "answers must sit inside r'''...'''"
        assert body.rstrip().endswith("| tojson"), "answers must be rendered through tojson"


@pytest.mark.parametrize(
    ("version", "accepted"),
    [("2.7.1", True), ("2.7", True), ("2.10.0", True), ("3.0.0", True), ("2.6.0", False), ("1.7.3", False)],
)
def test_cookiecutter_older_than_2_7_is_rejected(version: str, accepted: bool) -> None:
    errors = load_hook("pre_gen_project").check_cookiecutter_version(version)
    if accepted:
        assert errors == []
    else:
        assert len(errors) == 1
        assert f"cookiecutter {version!r} is too old" in errors[0]
        assert ">= 2.7" in errors[0]


def test_too_old_cookiecutter_gets_only_the_version_error_not_false_answer_errors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    hook = load_hook("pre_gen_project")
    # cookiecutter < 2.7 hands booleans over as text: the answer check would flag every one of them.
    answers = {name: EXAMPLES[name] for name in hook.RULES}
    monkeypatch.setattr(hook, "installed_cookiecutter_version", lambda: "2.1.1")
    monkeypatch.setattr(hook, "read_answers", lambda: answers)
    assert hook.main() == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: cookiecutter '2.1.1' is too old")
    assert 'pip install -U "cookiecutter>=2.7"' in line


def test_every_question_of_cookiecutter_json_has_a_rule() -> None:
    questions = json.loads((TEMPLATE_DIR / "cookiecutter.json").read_text(encoding="utf-8"))
    assert list(load_hook("pre_gen_project").RULES) == [k for k in questions if not k.startswith("_")]


def test_the_workflow_option_owns_every_file_under_github_and_the_hooks_share_one_handover() -> None:
    pre, post = load_hook("pre_gen_project"), load_hook("post_gen_project")
    assert (pre.KEPT_DIR, pre.HANDOVER) == (post.KEPT_DIR, post.HANDOVER)
    github = TEMPLATE_DIR / "{{cookiecutter.worker_name}}" / ".github"
    owned = {p.relative_to(github.parent).as_posix() for p in github.rglob("*") if p.is_file()}
    assert set(pre.OPTIONAL_FILES["github_actions"]) == owned


def test_installed_cookiecutter_passes_the_version_check() -> None:
    hook = load_hook("pre_gen_project")
    assert hook.check_cookiecutter_version(hook.installed_cookiecutter_version()) == []


INJECTIONS = [
    "'''; import os; os.system(\"touch PWNED\") #",
    '"""; import os; os.system("touch PWNED") #',
    "\\'''; __import__('os').system('touch PWNED') #\\",
    "back\\slashes \\\\ and \\n and \\u0027 and trailing \\",
    "quotes ' \" ''' \"\"\" `touch PWNED` $(touch PWNED)",
    "<script>alert(1)</script> & 'x'",
]


def project_metadata(project: Path) -> dict[str, Any]:
    data: dict[str, Any] = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return data


@pytest.mark.parametrize("payload", INJECTIONS)
def test_answers_with_quotes_backslashes_and_code_are_treated_as_data(
    cli: Cli, sandbox: Sandbox, tmp_path: Path, payload: str
) -> None:
    author = payload.replace("PWNED", "PWNED_BY_AUTHOR")
    result = cli(f"description={payload}", f"author={author}")
    assert result.returncode == 0, result.stderr
    assert not list(tmp_path.rglob("PWNED*")), "an answer was executed as code"
    assert not list(TEMPLATE_DIR.rglob("PWNED*"))
    project = tmp_path / "out" / EXAMPLES["worker_name"]
    assert payload in (project / "README.md").read_text(encoding="utf-8")
    metadata = project_metadata(project)  # the fields are optional in pyproject; if present, exact
    assert metadata.get("description", payload) == payload
    assert metadata.get("authors", [{"name": author}]) == [{"name": author}]
    (replay,) = sandbox.replay_files()
    answers = json.loads(replay.read_text(encoding="utf-8"))["cookiecutter"]
    assert (answers["description"], answers["author"]) == (payload, author)


def test_invalid_answer_carrying_code_is_rejected_without_running_it(
    cli: Cli, sandbox: Sandbox, tmp_path: Path
) -> None:
    payload = "x'''\nimport os; os.system(\"touch PWNED\")\n'''"
    result = cli(f"description={payload}", f"author={payload}")
    assert result.returncode == 1
    assert expected_message("description", payload, DESCRIPTION_RULE) in result.stderr
    assert not list(tmp_path.rglob("PWNED*"))
    assert_nothing_generated(sandbox, tmp_path / "out")


def test_jinja_in_answers_is_rendered_once_by_cookiecutter_never_by_the_hooks(
    cli: Cli, sandbox: Sandbox, tmp_path: Path
) -> None:
    # cookiecutter renders answers as Jinja (documented behaviour): "{{ 7*7 }}" arrives as "49".
    # A literal "{{ 7*7 }}" (escaped with raw) must stay literal: no hook renders it a second time.
    result = cli("description={% raw %}{{ 7*7 }}{% endraw %}", "author={{ 7*7 }}")
    assert result.returncode == 0, result.stderr
    project = tmp_path / "out" / EXAMPLES["worker_name"]
    assert "{{ 7*7 }}" in (project / "README.md").read_text(encoding="utf-8")
    assert project_metadata(project).get("description", "{{ 7*7 }}") == "{{ 7*7 }}"
    (replay,) = sandbox.replay_files()
    answers = json.loads(replay.read_text(encoding="utf-8"))["cookiecutter"]
    assert (answers["description"], answers["author"]) == ("{{ 7*7 }}", "49")
