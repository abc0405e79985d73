"""The one JSON reply of the mock: compact orjson, as the real orchestrator's ``json_response`` sends it."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web


def _dumps(data: Any) -> str:
    return orjson.dumps(data).decode()


def json_reply(data: Any, status: int = 200) -> web.Response:
    """``data`` as an ``application/json`` reply."""
    return web.json_response(data, status=status, dumps=_dumps)


def error_reply(status: int, message: str) -> web.Response:
    """The error body every API of the orchestrator uses: ``{"error": message}``."""
    return json_reply({"error": message}, status=status)
