"""The developer-facing control API under /api/v1 (submit tasks, inspect tasks and workers)."""

from __future__ import annotations

import functools
import hmac
import logging
import math
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from .records import QUARANTINED
from .responses import error_reply, json_reply
from .state import STATE_KEY, CancelRefused, MockState
from .submissions import (
    SUBMIT_EXAMPLE,
    InvalidRequest,
    parse_metadata,
    parse_params_metadata,
    parse_requirements,
    parse_submission,
)

CLIENT_TOKEN_HEADER = "X-Client-Token"
MAX_WAIT_SECONDS = 300.0
DEFAULT_EVENTS_WAIT_SECONDS = 30.0

log = logging.getLogger("mock_orchestrator")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _client_api(handler: Handler) -> Handler:
    """Require a valid X-Client-Token (403 otherwise) and turn InvalidRequest into a 400."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        token = request.headers.get(CLIENT_TOKEN_HEADER)
        if not token:
            return error_reply(403, f"Missing {CLIENT_TOKEN_HEADER} header")
        expected = request.app[STATE_KEY].settings.client_token
        if not hmac.compare_digest(token.encode(), expected.encode()):
            return error_reply(403, "Unauthorized: Invalid token")
        try:
            return await handler(request)
        except InvalidRequest as exc:
            log.warning("rejected %s %s: 400 %s", request.method, request.path, exc)
            return error_reply(400, str(exc))

    return wrapped


@_client_api
async def submit_task(request: web.Request) -> web.StreamResponse:
    """POST /api/v1/tasks: queue a task; 201 with its view."""
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON ({exc}); e.g. {SUBMIT_EXAMPLE}") from None
    task_type, params, priority, deadline = parse_submission(body)
    requirements = parse_requirements(body)
    state: MockState = request.app[STATE_KEY]
    metadata, params_metadata = parse_metadata(body), parse_params_metadata(body)
    task = await state.submit(task_type, params, priority, deadline, requirements, metadata, params_metadata)
    if task.status == QUARANTINED:
        log.warning("task %s (%s) quarantined at dispatch: %s", task.task_id, task_type, task.error_message)
    else:
        log.info("task %s (%s) queued", task.task_id, task_type)
    if task.status != QUARANTINED and not any(task_type in w.skills() for w in state.workers.live()):
        log.info("no registered worker has skill %r yet; task %s waits for one", task_type, task.task_id)
    return json_reply(state.task_view(task), status=201)


@_client_api
async def list_tasks(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/tasks: every task, newest first."""
    state: MockState = request.app[STATE_KEY]
    return json_reply({"tasks": [state.task_view(t) for t in state.tasks.newest_first()]})


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
        return error_reply(404, f"Task {request.match_info['task_id']} not found")
    if wait:
        await state.wait_done(task, wait)
    return json_reply(state.task_view(task))


@_client_api
async def list_workers(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/workers: the live (registered, not expired) workers."""
    state: MockState = request.app[STATE_KEY]
    return json_reply({"workers": [state.worker_view(w) for w in state.workers.live()]})


@_client_api
async def cancel_task(request: web.Request) -> web.StreamResponse:
    """POST /api/v1/tasks/{task_id}/cancel: 200 accepted, or 404 (unknown or already terminal)."""
    state: MockState = request.app[STATE_KEY]
    try:
        task = await state.cancel(request.match_info["task_id"])
    except CancelRefused as exc:
        return error_reply(404, str(exc))
    log.info("task %s cancelled (protocol task id %s)", task.task_id, task.current_task_id)
    return json_reply({"status": "cancellation_request_accepted"})


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
    version = await state.changes.wait_for_change(
        since, DEFAULT_EVENTS_WAIT_SECONDS if wait is None else wait
    )
    return json_reply({"version": version})


def setup_control_routes(app: web.Application) -> None:
    """Add the /api/v1 routes to ``app``."""
    app.router.add_post("/api/v1/tasks", submit_task)
    app.router.add_get("/api/v1/tasks", list_tasks)
    app.router.add_get("/api/v1/tasks/{task_id}", get_task)
    app.router.add_get("/api/v1/workers", list_workers)
    app.router.add_post("/api/v1/tasks/{task_id}/cancel", cancel_task)
    app.router.add_get("/api/v1/events", wait_for_events)
