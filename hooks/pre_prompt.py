"""Check the command line's ``key=value`` answers before cookiecutter reads them.

cookiecutter turns a boolean it cannot parse, a choice outside its list or Jinja syntax in an answer into
a traceback while it builds the context, before the pre-gen hook can run; a mistyped key it ignores
silently. This hook runs before that (in a copy of the template cookiecutter makes for it) and turns each
of them into one ``error:`` line plus one ``retry:`` command. It reads the command line from /proc
(Linux); elsewhere, and under cookiecutter's Python API or cruft, it has nothing to check.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

# The pre-gen hook holds the rules; unrendered it is plain Python (its Jinja sits in string literals).
from pre_gen_project import BOOL_RULE, JINJA_MARKERS, RAW_CLOSE, RAW_OPEN, RULES

BOOL_WORDS = {"1", "true", "t", "yes", "y", "on", "0", "false", "f", "no", "n", "off"}
# cookiecutter CLI options that take a value (so the next word is not a key=value answer).
VALUE_OPTIONS = {"-c", "--checkout", "--directory", "--replay-file", "-o", "--output-dir"}
VALUE_OPTIONS |= {"--config-file", "--debug-file", "--accept-hooks"}


def parent_argv() -> list[str]:
    """The command line of the process that runs this hook (cookiecutter), from /proc; [] elsewhere."""
    try:
        raw = Path(f"/proc/{os.getppid()}/cmdline").read_bytes()
    except OSError:
        return []
    return [w.decode("utf-8", "replace") for w in raw.split(b"\0") if w]


def cli_start(argv: list[str]) -> int | None:
    """The index of the word ``cookiecutter`` in its command line; None if argv is not cookiecutter's."""
    # `cookiecutter ...` runs as `python /path/bin/cookiecutter ...`; or `python [flags] -m cookiecutter ...`.
    names = [Path(word).name for word in argv[:2]]
    module = argv.index("-m") + 1 if "-m" in argv[:-1] else 0
    if "cookiecutter" in names:
        return names.index("cookiecutter")
    return module if module and argv[module] == "cookiecutter" else None


def cli_answers(argv: list[str]) -> list[tuple[str, str]]:
    """The ``key=value`` words of a cookiecutter command line; [] if argv is not cookiecutter's."""
    start = cli_start(argv)
    if start is None:
        return []
    answers, skip = [], False
    for word in argv[start + 1 :]:
        if skip:
            skip = False
        elif word in VALUE_OPTIONS:
            skip = True
        elif match := re.fullmatch(r"([A-Za-z_]\w*)=(.*)", word, flags=re.DOTALL):
            answers.append((match.group(1), match.group(2)))
    return answers


def questions(repo_dir: Path) -> dict[str, object]:
    """The template's questions with their defaults (a list for a choice)."""
    raw = json.loads((repo_dir / "cookiecutter.json").read_text(encoding="utf-8"))
    return {key: value for key, value in raw.items() if key in RULES}


def check_answer(key: str, value: str, asked: dict[str, object]) -> tuple[str, str | None] | None:
    """(error line, corrected answer or None to drop it) for a word cookiecutter would mishandle."""
    if key not in asked:
        if key.startswith("_"):
            return None
        close = difflib.get_close_matches(key, list(asked), n=1)
        fix = f"did you mean {close[0]}={value!r}?" if close else "the questions are " + ", ".join(asked)
        line = f"error: {key}={value!r} is not a question of this template (ignored). Fix: {fix}"
        return line, f"{close[0]}={value}" if close else None
    default = asked[key]
    if isinstance(default, bool) and value.lower() not in BOOL_WORDS:
        return f"error: {key}={value!r} is invalid: {BOOL_RULE}. Example: {RULES[key].example}", None
    if isinstance(default, list) and value not in default:
        return f"error: {key}={value!r} is invalid: {RULES[key].rule}. Example: {RULES[key].example}", None
    if problem := jinja_problem(value):
        fixed = f"{RAW_OPEN}{value}{RAW_CLOSE}"
        rule = f"cookiecutter renders an answer as a Jinja template and this one {problem}; for literal text"
        line = f"error: {key}={value!r} is invalid: {rule} wrap it in raw tags. Example: {key}={fixed!r}"
        return line, f"{key}={fixed}"
    return None


def jinja_problem(value: str) -> str | None:
    """Why cookiecutter could not render ``value`` (a syntax error, an unknown name); None if it can."""
    if not any(marker in value for marker in JINJA_MARKERS):
        return None
    try:  # the hook runs on cookiecutter's interpreter, which has Jinja
        from jinja2 import Environment, TemplateSyntaxError, meta
    except ImportError:  # pragma: no cover
        return None
    environment = Environment()
    try:
        unknown = meta.find_undeclared_variables(environment.parse(value)) - {"cookiecutter"}
    except TemplateSyntaxError as error:
        return f"is not valid Jinja ({(error.message or 'syntax error').rstrip('.')})"
    return f"uses an unknown name ({', '.join(sorted(unknown))})" if unknown else None


def check(argv: list[str], asked: dict[str, object]) -> tuple[list[str], list[str]]:
    """The error lines and the command line again with each bad answer corrected or dropped."""
    errors: list[str] = []
    replace: dict[str, str | None] = {}
    for key, value in cli_answers(argv):
        if found := check_answer(key, value, asked):
            errors.append(found[0])
            replace[f"{key}={value}"] = found[1]
    fixed = [replace.get(word, word) for word in argv]
    kept = [word for word in fixed if word is not None]
    if None in fixed:  # a dropped answer must be asked for again
        kept = [word for word in kept if word != "--no-input"]
    return errors, kept


def retry_line(argv: list[str], asks_again: bool) -> str:
    """``retry:`` and the command as the user would type it again."""
    start = cli_start(argv) or 0
    prefix = (
        "retry (your valid answers are the defaults; retype only the bad ones)" if asks_again else "retry"
    )
    return f"{prefix}: " + shlex.join(["cookiecutter", *argv[start + 1 :]])


def remove_own_copy(repo_dir: Path) -> None:
    """cookiecutter leaves the template copy it made for this hook behind when the hook fails."""
    tmp = Path(tempfile.gettempdir()).resolve()
    if repo_dir.parent.name.startswith("cookiecutter") and repo_dir.parent.parent == tmp:
        shutil.rmtree(repo_dir.parent, ignore_errors=True)


def main() -> int:
    argv = parent_argv()
    if not cli_answers(argv):
        return 0
    repo_dir = Path.cwd().resolve()
    errors, fixed = check(argv, questions(repo_dir))
    if not errors:
        return 0
    asks_again = "--no-input" in argv and "--no-input" not in fixed
    print("\n".join([*errors, retry_line(fixed, asks_again)]), file=sys.stderr)
    remove_own_copy(repo_dir)
    return 1


if __name__ == "__main__":
    sys.exit(main())
