"""Validate every cookiecutter answer before anything is generated, and keep the user's own files safe.

The answers are read only through Jinja's ``tojson`` filter and ``json.loads``: ``tojson`` escapes
quotes (``'`` becomes ``\\u0027``), so no answer can close the raw string below or become Python code.

What the user sees on a bad answer: one ``error:`` line per bad answer (field, value, rule, example), then
one ``retry:`` line, all on stderr. cookiecutter 2.7's CLI then always logs its own traceback of the
FailedHookException (``hooks.run_hook_from_repo_dir`` calls ``logger.exception``; a hook cannot stop
that) and ends with ``Hook script failed (exit status: 1)``: our lines stay the first ones printed.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MIN_COOKIECUTTER = (2, 7)
# Template files an option can switch off (the post-gen hook removes them when it is off).
OPTIONAL_FILES = {
    "github_actions": (".github/workflows/ci.yml", ".github/dependabot.yml"),
    "pre_commit": (".pre-commit-config.yaml",),
    "s3_files": (
        "s3/Dockerfile",
        "s3/serve.py",
        "tests/e2e/test_files.py",
        "tests/test_mock_files.py",
        "tests/test_sdk_files.py",
    ),
}
# Where pre-gen moves a file a disabled option would overwrite (post-gen restores it unless it is ours),
# and leaves post-gen what it learnt (HANDOVER): the hooks run as separate scripts that share no module.
KEPT_DIR = ".cookiecutter-kept"
HANDOVER = "handover.json"
# Built by concatenation: this file is rendered by Jinja, where these literals would be syntax.
RAW_OPEN, RAW_CLOSE = "{" + "% raw %}", "{" + "% endraw %}"
JINJA_MARKERS = ("{" + "{", "{" + "%", "{" + "#")


def read_answers() -> dict[str, object]:
    """The user's answers, decoded from JSON (never pasted into this source as code)."""
    # Keep r''': tojson escapes every ' so no answer can close this string.
    # fmt: off
    answers: dict[str, object] = json.loads(
        r'''{{ {
            "worker_name": cookiecutter.worker_name,
            "worker_type": cookiecutter.worker_type,
            "description": cookiecutter.description,
            "author": cookiecutter.author,
            "license": cookiecutter.license,
            "python_version": cookiecutter.python_version,
            "websocket_cancellation": cookiecutter.websocket_cancellation,
            "github_actions": cookiecutter.github_actions,
            "pre_commit": cookiecutter.pre_commit,
            "s3_files": cookiecutter.s3_files,
        } | tojson }}'''
    )
    # fmt: on
    return answers


def read_run() -> dict[str, str]:
    """How cookiecutter was run: template as typed, output and template dirs (absent under cruft)."""
    # fmt: off
    run: dict[str, str] = json.loads(
        r'''{{ {
            "template": cookiecutter._template | default(""),
            "output_dir": cookiecutter._output_dir | default(""),
            "repo_dir": cookiecutter._repo_dir | default(""),
        } | tojson }}'''
    )
    # fmt: on
    return run


def matches(pattern: str, min_len: int, max_len: int) -> Callable[[object], bool]:
    regex = re.compile(pattern)
    return lambda v: isinstance(v, str) and min_len <= len(v) <= max_len and bool(regex.fullmatch(v))


def one_line(max_len: int) -> Callable[[object], bool]:
    def check(v: object) -> bool:
        if not isinstance(v, str) or not v.strip() or len(v) > max_len:
            return False
        # No line breaks or other control characters (\n, \r, \t, \x0b, \x85, \u2028, ...).
        return len(v.splitlines()) == 1 and not any(unicodedata.category(c) == "Cc" for c in v)

    return check


def is_bool(v: object) -> bool:
    return isinstance(v, bool)


@dataclass(frozen=True)
class Rule:
    check: Callable[[object], bool]
    rule: str
    example: str


BOOL_RULE = "answer a boolean (true/false, yes/no, 1/0, on/off)"
LICENSES = ("MIT", "Apache-2.0", "BSD-3-Clause", "Proprietary")
RULES: dict[str, Rule] = {
    "worker_name": Rule(
        matches(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", 2, 64),
        "use lowercase letters, digits and single hyphens, starting with a letter (2-64 characters)",
        "inventory-worker",
    ),
    "worker_type": Rule(
        matches(r"[a-zA-Z0-9][a-zA-Z0-9_-]{0,63}", 1, 64),
        "use letters, digits, '-' and '_', starting with a letter or digit (1-64 characters)",
        "inventory-checker",
    ),
    "description": Rule(
        one_line(200),
        "use one line of 1-200 characters (not blank, no line breaks or control characters)",
        "An Avtomatika worker that checks warehouse inventory.",
    ),
    "author": Rule(
        one_line(100),
        "use one line of 1-100 characters (not blank, no line breaks or control characters)",
        "Jane Doe <jane@example.com>",
    ),
    "license": Rule(lambda v: v in LICENSES, "choose one of " + ", ".join(LICENSES), "MIT"),
    "python_version": Rule(
        lambda v: v in ("3.11", "3.12", "3.13"),
        "choose one of 3.11, 3.12, 3.13",
        "3.12",
    ),
    "websocket_cancellation": Rule(is_bool, BOOL_RULE, "true"),
    "github_actions": Rule(is_bool, BOOL_RULE, "false"),
    "pre_commit": Rule(is_bool, BOOL_RULE, "true"),
    "s3_files": Rule(is_bool, BOOL_RULE, "false"),
}


def bad_answers(answers: dict[str, object]) -> list[str]:
    """The names of the answers that break their rule, in prompt order."""
    return [name for name, rule in RULES.items() if not rule.check(answers.get(name))]


def validate(answers: dict[str, object]) -> list[str]:
    """One error message per bad answer: variable, value (repr), rule and a valid example."""
    return [
        f"error: {name}={answers.get(name)!r} is invalid: {RULES[name].rule}. Example: {RULES[name].example}"
        for name in bad_answers(answers)
    ]


def version_tuple(version: str) -> tuple[int, ...]:
    parts = re.findall(r"\d+", version)[:2]
    return tuple(int(p) for p in parts)


def check_cookiecutter_version(version: str) -> list[str]:
    """An error if cookiecutter is older than MIN_COOKIECUTTER (its answers cannot be trusted then)."""
    if version_tuple(version) >= MIN_COOKIECUTTER:
        return []
    message = f"error: cookiecutter {version!r} is too old: this template needs cookiecutter >= 2.7."
    return [f'{message} Fix: pip install -U "cookiecutter>=2.7", then run the same command again']


def installed_cookiecutter_version() -> str:
    try:
        import cookiecutter
    except ImportError:  # pragma: no cover - the hook runs under cookiecutter's interpreter
        return "0"
    return str(getattr(cookiecutter, "__version__", "0"))


def answer_word(name: str, value: object) -> str:
    """``name=value`` as cookiecutter reads it back from a command line."""
    if isinstance(value, bool):
        return f"{name}={'yes' if value else 'no'}"
    text = str(value)
    if any(marker in text for marker in JINJA_MARKERS):
        text = f"{RAW_OPEN}{text}{RAW_CLOSE}"  # cookiecutter renders command-line answers as Jinja
    return f"{name}={text}"


def template_root(repo_dir: str) -> Path | None:
    """The template dir as an absolute path: cookiecutter passes a local template as typed (e.g. ".")."""
    if not repo_dir:
        return None
    candidates = [Path(repo_dir)]
    if not Path(repo_dir).is_absolute():
        try:  # cookiecutter runs hooks from inside the template dir (work_in(repo_dir))
            candidates = [Path(os.readlink(f"/proc/{os.getppid()}/cwd"))]
        except OSError:
            candidates = []
        candidates.append(Path(os.environ.get("PWD", "/nonexistent")) / repo_dir)
    found = [c for c in candidates if (c / "cookiecutter.json").is_file()]
    return found[0].resolve() if found else None


def template_defaults(repo_dir: str) -> dict[str, object]:
    """The first answer of each question in the template's cookiecutter.json ({} if unreadable)."""
    root = template_root(repo_dir)
    try:
        raw = json.loads((root / "cookiecutter.json").read_text(encoding="utf-8")) if root else {}
    except (OSError, ValueError):
        return {}
    return {k: v[0] if isinstance(v, list) and v else v for k, v in raw.items() if k in RULES}


def retry_command(answers: dict[str, object], bad: list[str], run: dict[str, str], overwrite: bool) -> str:
    """A command that asks again with the valid answers as defaults (Enter keeps them)."""
    words = ["cookiecutter", run.get("template") or "<template>"]
    output_dir = run.get("output_dir", "")
    if output_dir and output_dir != os.environ.get("PWD"):
        words += ["--output-dir", output_dir]
    if overwrite:
        words.append("-f")
    defaults = template_defaults(run.get("repo_dir", ""))
    words += [
        answer_word(name, answers[name])
        for name in RULES
        if name not in bad and name in answers and (name not in defaults or answers[name] != defaults[name])
    ]
    return "retry (your valid answers are the defaults; retype only the bad ones): " + shlex.join(words)


def keep_user_files(project: Path, answers: dict[str, object]) -> None:
    """Move aside existing files a disabled option would overwrite, for post-gen to judge.

    cookiecutter ``-f`` overwrites every template file before post-gen removes the disabled ones, so a
    user's own ``.pre-commit-config.yaml`` or workflow would be lost. Post-gen puts a kept file back
    unless it is byte-identical to what the template generates (then it was ours, from an earlier bake).
    """
    for option, paths in OPTIONAL_FILES.items():
        if answers.get(option) is True:
            continue
        for rel in paths:
            source = project / rel
            if source.is_file() and not (project / KEPT_DIR / rel).exists():
                (project / KEPT_DIR / rel).parent.mkdir(parents=True, exist_ok=True)
                source.rename(project / KEPT_DIR / rel)


def main() -> int:
    too_old = check_cookiecutter_version(installed_cookiecutter_version())
    if too_old:  # an old cookiecutter passes answers differently: its "bad answers" would be false alarms
        print(too_old[0], file=sys.stderr)
        return 1
    answers = read_answers()
    project = Path.cwd()
    errors = validate(answers)  # the command line's words were checked before that (pre_prompt.py)
    if errors:
        overwrite = any(project.iterdir())  # a re-bake over an existing project needs -f again
        retry = retry_command(answers, bad_answers(answers), read_run(), overwrite)
        print("\n".join([*errors, retry]), file=sys.stderr)
        return 1
    keep_user_files(project, answers)
    root = template_root(read_run().get("repo_dir", ""))
    handover = {"template": str(root) if root else None, "optional_files": OPTIONAL_FILES}
    (project / KEPT_DIR).mkdir(exist_ok=True)
    (project / KEPT_DIR / HANDOVER).write_text(json.dumps(handover), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
