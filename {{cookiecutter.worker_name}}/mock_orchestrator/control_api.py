"""The developer-facing control API under /api/v1 (submit tasks, inspect tasks and workers)."""

from __future__ import annotations

import functools
import hmac
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from .records import QUARANTINED
from .state import STATE_KEY, CancelRefused, MockState

CLIENT_TOKEN_HEADER = "X-Client-Token"
MAX_WAIT_SECONDS = 300.0
DEFAULT_EVENTS_WAIT_SECONDS = 30.0
SUBMIT_EXAMPLE = '{"type": "check_inventory", "params": {"items": ["apple"]}, "priority": 5, "deadline": 60}'
SUBMIT_FIELDS = ("type", "params", "priority", "deadline")

log = logging.getLogger("mock_orchestrator")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class InvalidRequest(ValueError):
    """A client request the control API refuses with 400; the text says what to send instead."""


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda o: orjson.dumps(o).decode())


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status=status)


def _show(value: Any) -> str:
    text = orjson.dumps(value).decode()
    return text if len(text) <= 80 else text[:77] + "..."


def _client_api(handler: Handler) -> Handler:
    """Require a valid X-Client-Token (403 otherwise) and turn InvalidRequest into a 400."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        token = request.headers.get(CLIENT_TOKEN_HEADER)
        if not token:
            return _error(403, f"Missing {CLIENT_TOKEN_HEADER} header")
        expected = request.app[STATE_KEY].settings.client_token
        if not hmac.compare_digest(token.encode(), expected.encode()):
            return _error(403, "Unauthorized: Invalid token")
        try:
            return await handler(request)
        except InvalidRequest as exc:
            log.warning("rejected %s %s: 400 %s", request.method, request.path, exc)
            return _error(400, str(exc))

    return wrapped


def _invalid_field(name: str, value: Any, rule: str, example: str) -> InvalidRequest:
    return InvalidRequest(f"field '{name}' = {_show(value)} is invalid: {rule}; e.g. {example}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def parse_submission(body: Any) -> tuple[str, dict[str, Any], float, float | None]:
    """Validate a POST /api/v1/tasks body; return (type, params, priority, deadline seconds)."""
    if not isinstance(body, dict):
        raise InvalidRequest(f"request body must be a JSON object, got {_show(body)}; e.g. {SUBMIT_EXAMPLE}")
    for name in body:
        if name not in SUBMIT_FIELDS:
            raise InvalidRequest(
                f"unknown field '{name}' = {_show(body[name])}: allowed fields are "
                f"{', '.join(SUBMIT_FIELDS)}; e.g. {SUBMIT_EXAMPLE}"
            )
    task_type = body.get("type")
    if not isinstance(task_type, str) or not task_type.strip():
        rule = "must be a non-empty string, the name of a skill your worker registers"
        raise _invalid_field("type", task_type, rule, '{"type": "check_inventory"}')
    params = body.get("params", {})
    if not isinstance(params, dict):
        raise _invalid_field("params", params, "must be a JSON object", '{"params": {"items": ["apple"]}}')
    priority = body.get("priority", 0)
    if not _is_number(priority):
        raise _invalid_field("priority", priority, "must be a number, higher runs first", '{"priority": 5}')
    deadline = body.get("deadline")
    if deadline is not None and not (_is_number(deadline) and deadline > 0):
        rule = "must be a positive number of seconds from now"
        raise _invalid_field("deadline", deadline, rule, '{"deadline": 60}')
    return task_type, params, priority, deadline


@_client_api
async def submit_task(request: web.Request) -> web.StreamResponse:
    """POST /api/v1/tasks: queue a task; 201 with its view."""
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON ({exc}); e.g. {SUBMIT_EXAMPLE}") from None
    task_type, params, priority, deadline = parse_submission(body)
    state = request.app[STATE_KEY]
    task = await state.submit(task_type, params, priority, deadline)
    if task.status == QUARANTINED:
        log.warning(
            "task %s (%s) quarantined: %s (MOCK_STRICT_DISPATCH)", task.task_id, task_type, task.error_message
        )
    else:
        log.info("task %s (%s) queued", task.task_id, task_type)
    if task.status != QUARANTINED and not any(task_type in w.skills() for w in state.live_workers()):
        log.info("no registered worker has skill %r yet; task %s waits for one", task_type, task.task_id)
    return _json(task.view(), status=201)


@_client_api
async def list_tasks(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/tasks: every task, newest first."""
    tasks = sorted(request.app[STATE_KEY].tasks.values(), key=lambda t: t.seq, reverse=True)
    return _json({"tasks": [t.view() for t in tasks]})


def _wait_seconds(request: web.Request) -> float | None:
    raw = request.query.get("wait")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_WAIT_SECONDS:
        raise InvalidRequest(
            f"query parameter 'wait' = {raw!r} is invalid: must be a number of seconds from 0 to "
            f"{MAX_WAIT_SECONDS:g}; e.g. ?wait=30"
        )
    return seconds


@_client_api
async def get_task(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/tasks/{task_id}[?wait=SECONDS]: the task, once finished when ``wait`` is given."""
    state: MockState = request.app[STATE_KEY]
    wait = _wait_seconds(request)
    task = state.tasks.get(request.match_info["task_id"])
    if task is None:
        return _error(404, f"Task {request.match_info['task_id']} not found")
    if wait:
        await state.wait_done(task, wait)
    return _json(task.view())


@_client_api
async def list_workers(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/workers: the live (registered, not expired) workers."""
    state: MockState = request.app[STATE_KEY]
    return _json({"workers": [state.worker_view(w) for w in state.live_workers()]})


@_client_api
async def cancel_task(request: web.Request) -> web.StreamResponse:
    """POST /api/v1/tasks/{task_id}/cancel: 200 accepted, or 404 (unknown or already terminal)."""
    state: MockState = request.app[STATE_KEY]
    try:
        task = await state.cancel(request.match_info["task_id"])
    except CancelRefused as exc:
        return _error(404, str(exc))
    log.info("task %s cancelled (protocol task id %s)", task.task_id, task.current_task_id)
    return _json({"status": "cancellation_request_accepted"})


def _since(request: web.Request) -> int:
    raw = request.query.get("since", "0")
    if not raw.isdigit():
        raise InvalidRequest(
            f"query parameter 'since' = {raw!r} is invalid: must be a non-negative integer, the "
            "'version' of the previous reply; e.g. ?since=0"
        )
    return int(raw)


@_client_api
async def wait_for_events(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/events?since=N[&wait=S]: ``{"version": V}`` once V > N, or after S (default 30) s."""
    since, wait = _since(request), _wait_seconds(request)
    state: MockState = request.app[STATE_KEY]
    version = await state.wait_for_change(since, DEFAULT_EVENTS_WAIT_SECONDS if wait is None else wait)
    return _json({"version": version})


def setup_control_routes(app: web.Application) -> None:
    """Add the /api/v1 routes to ``app``."""
    app.router.add_post("/api/v1/tasks", submit_task)
    app.router.add_get("/api/v1/tasks", list_tasks)
    app.router.add_get("/api/v1/tasks/{task_id}", get_task)
    app.router.add_get("/api/v1/workers", list_workers)
    app.router.add_post("/api/v1/tasks/{task_id}/cancel", cancel_task)
    app.router.add_get("/api/v1/events", wait_for_events)
