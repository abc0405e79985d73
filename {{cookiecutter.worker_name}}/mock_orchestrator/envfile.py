"""The project's ``.env``, read with the standard library (the CLI must run on a bare ``python3``).

Lines are ``NAME=value`` (an ``export`` prefix, blank lines and ``#`` comments are allowed); a value may be
quoted with ``'`` or ``"``; an unquoted value ends at `` #``. No ``${...}`` expansion. The file is the one
in the current folder or the nearest parent folder; the real environment wins over it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
DOUBLE_QUOTED_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}


def find_env_file(start: Path | None = None) -> Path | None:
    """The ``.env`` in ``start`` (default: the current folder) or its nearest parent, if any."""
    folder = (start or Path.cwd()).resolve()
    for candidate in (folder, *folder.parents):
        path = candidate / ".env"
        if path.is_file():
            return path
    return None


def _unquote(value: str) -> str:
    quote = value[:1]
    if quote in ("'", '"'):
        end = value.find(quote, 1)
        while quote == '"' and end > 0 and value[end - 1] == "\\":
            end = value.find(quote, end + 1)
        if end > 0:
            inner = value[1:end]
            if quote == "'":
                return inner
            return re.sub(r"\\(.)", lambda m: DOUBLE_QUOTED_ESCAPES.get(m.group(1), m.group(0)), inner)
    comment = value.find(" #")
    return (value if comment < 0 else value[:comment]).strip()


def parse_env(text: str) -> dict[str, str]:
    """The variables of a ``.env`` text; lines that are not ``NAME=value`` are skipped."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        name, equals, value = line.partition("=")
        name = name.strip()
        if equals and NAME.fullmatch(name):
            values[name] = _unquote(value.strip())
    return values


def environment(environ: Mapping[str, str] | None = None, start: Path | None = None) -> dict[str, str]:
    """The ``.env`` variables overlaid by ``environ`` (default: the real environment)."""
    path = find_env_file(start)
    values = parse_env(path.read_text(encoding="utf-8")) if path is not None else {}
    values.update(os.environ if environ is None else environ)
    return values
