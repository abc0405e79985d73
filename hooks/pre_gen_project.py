"""Validate every cookiecutter answer before anything is generated.

The answers are read only through Jinja's ``tojson`` filter and ``json.loads``: ``tojson`` escapes
quotes (``'`` becomes ``\\u0027``), so no answer can close the raw string below or become Python code.
"""

from __future__ import annotations

import json
import re
import sys
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

MIN_COOKIECUTTER = (2, 7)


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
            "python_version": cookiecutter.python_version,
            "websocket_cancellation": cookiecutter.websocket_cancellation,
            "github_actions": cookiecutter.github_actions,
            "pre_commit": cookiecutter.pre_commit,
        } | tojson }}'''
    )
    # fmt: on
    return answers


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
    "python_version": Rule(
        lambda v: v in ("3.11", "3.12", "3.13"),
        "choose one of 3.11, 3.12, 3.13",
        "3.12",
    ),
    "websocket_cancellation": Rule(
        is_bool,
        "answer a boolean (true/false, yes/no, 1/0, on/off)",
        "true",
    ),
    "github_actions": Rule(
        is_bool,
        "answer a boolean (true/false, yes/no, 1/0, on/off)",
        "false",
    ),
    "pre_commit": Rule(
        is_bool,
        "answer a boolean (true/false, yes/no, 1/0, on/off)",
        "true",
    ),
}


def validate(answers: dict[str, object]) -> list[str]:
    """One error message per bad answer: variable, value (repr), rule and a valid example."""
    return [
        f"error: {name}={answers.get(name)!r} is invalid: {rule.rule}. Example: {rule.example}"
        for name, rule in RULES.items()
        if not rule.check(answers.get(name))
    ]


def version_tuple(version: str) -> tuple[int, ...]:
    parts = re.findall(r"\d+", version)[:2]
    return tuple(int(p) for p in parts)


def check_cookiecutter_version(version: str) -> list[str]:
    if version_tuple(version) >= MIN_COOKIECUTTER:
        return []
    message = f"error: cookiecutter {version!r} is too old: this template needs cookiecutter >= 2.7."
    return [f'{message} Example: pip install -U "cookiecutter>=2.7"']


def installed_cookiecutter_version() -> str:
    try:
        import cookiecutter
    except ImportError:  # pragma: no cover - the hook runs under cookiecutter's interpreter
        return "0"
    return str(getattr(cookiecutter, "__version__", "0"))


def main() -> int:
    errors = check_cookiecutter_version(installed_cookiecutter_version()) + validate(read_answers())
    for message in errors:
        print(message, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
