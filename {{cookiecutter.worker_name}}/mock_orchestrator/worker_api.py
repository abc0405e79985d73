"""The worker protocol routes under /_worker, answering exactly like avtomatika 1.0b30 / rxon 1.0b17."""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from .models import TASK_RESULT, WORKER_EVENT, WORKER_REGISTRATION, ModelError, parse
from .rate_limits import ENGINE_TEXT, LIMITER_KEY, RateLimited
from .records import ACTIVE_STATUSES
from .responses import json_reply
from .results import accept_result
from .security import TOKEN_HEADER, WORKER_ID_HEADER, authenticate, verify_signed, worker_id_hint
from .signing import normalize
from .state import STATE_KEY, MockState

PROTOCOL_VERSION = "1.0b17"
VERSION_HEADER = "X-RXON-Version"
IDENTIFIER = re.compile(r"^[a-zA-Z0-9_-]+$")

log = logging.getLogger("mock_orchestrator")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def protocol_json(data: Any, status: int = 200) -> web.Response:
    """A JSON reply normalised the way rxon's listener sends it (no nulls, integral floats as ints)."""
    return json_reply(normalize(data), status)


def _protocol_errors(handler: Handler) -> Handler:
    """Map exceptions like rxon's HttpListener: PermissionError 403, ValueError 400.

    Anything else is the app middleware's 500 with the exception text, as the listener answers it.
    """

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except RateLimited:  # logged once per burst by the limiter, not per request
            return protocol_json({"error": ENGINE_TEXT}, status=429)
        except PermissionError as exc:
            return _rejected(request, 403, exc)
        except ValueError as exc:
            return _rejected(request, 400, exc)

    return wrapped


def _rejected(request: web.Request, status: int, exc: Exception) -> web.Response:
    who = request.match_info.get("worker_id") or request.headers.get(WORKER_ID_HEADER) or "?"
    log.warning("rejected %s %s (worker %s): %d %s", request.method, request.path, who, status, exc)
    return protocol_json({"error": str(exc)}, status=status)


def _require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        # The orchestrator calls .get() on the body and fails with this text (HTTP 500).
        raise TypeError(f"'{type(body).__name__}' object has no attribute 'get'")
    return body


async def _json_body(request: web.Request) -> Any:
    return orjson.loads(await request.read())  # JSONDecodeError is a ValueError -> 400


def _state(request: web.Request) -> MockState:
    return request.app[STATE_KEY]


def authenticate_request(request: web.Request, body: Any, path_id: str | None = None) -> Any:
    """The authenticated worker id of a request (PermissionError with the orchestrator's text if none)."""
    hint = worker_id_hint(request.headers.get(WORKER_ID_HEADER), path_id, body)
    return authenticate(_state(request).settings, request.headers.get(TOKEN_HEADER), hint)


def admit(request: web.Request, body: Any, message_type: str, path_id: str | None = None) -> Any:
    """Authenticate, then count the request against its worker's rate limit (RateLimited when over)."""
    worker_id = authenticate_request(request, body, path_id)
    request.app[LIMITER_KEY].hit(request.headers.get(TOKEN_HEADER), worker_id, message_type)
    return worker_id


@_protocol_errors
async def register(request: web.Request) -> web.StreamResponse:
    """POST /_worker/workers/register."""
    body = await _json_body(request)
    state = _state(request)
    auth_id = admit(request, body, "register")
    worker_id = _require_object(body).get("worker_id")
    if not isinstance(worker_id, str):
        raise ValueError("Missing or invalid worker_id in registration data")  # noqa: TRY004 - a 400
    if worker_id != auth_id:
        raise PermissionError("Immediate sender ID mismatch")
    verify_signed(state.settings, state.replay, body, worker_id)
    try:
        record = normalize(parse(WORKER_REGISTRATION, body))
    except ModelError as exc:
        raise ValueError(f"Invalid WorkerRegistration payload: {exc}") from None
    record["supported_skills"] = record.get("supported_skills") or []
    if len(worker_id) > 128 or not IDENTIFIER.match(worker_id):
        raise ValueError(
            f"Invalid worker_id: '{worker_id}'. Must be alphanumeric, underscores, or hyphens only "
            "(max 128 characters)."
        )
    worker = state.workers.register(worker_id, record)
    await state.notify()
    log.info("worker %s registered (skills: %s)", worker_id, ", ".join(worker.skills()) or "none")
    reply: dict[str, Any] = {"status": "registered", "version": PROTOCOL_VERSION}
    version = request.headers.get(VERSION_HEADER)
    if version and version != PROTOCOL_VERSION:
        reply["warning"] = f"Protocol version mismatch! Orchestrator: {PROTOCOL_VERSION}, Worker: {version}."
    return protocol_json(reply)


@_protocol_errors
async def heartbeat(request: web.Request) -> web.StreamResponse:
    """PATCH /_worker/workers/{worker_id}: empty body refreshes the TTL, a signed body is merged."""
    body = await _json_body(request) if request.can_read_body else None
    state = _state(request)
    worker_id = admit(request, body, "heartbeat", request.match_info["worker_id"])
    if not body:
        refreshed = state.workers.refresh(worker_id)
        await state.notify()
        return protocol_json({"status": "ttl_refreshed"} if refreshed else None)
    verify_signed(state.settings, state.replay, _require_object(body), worker_id)
    reply: dict[str, Any] = {"status": "ok"}
    known = state.workers.get(worker_id)
    update = dict(body)
    new_hash = update.get("skills_hash")
    if known is not None and new_hash and known.record.get("skills_hash") == new_hash:
        if not known.record.get("supported_skills"):
            reply["require_full_sync"] = True
        update.pop("supported_skills", None)
    old_status = known.status() if known is not None else None
    merged = state.workers.merge_heartbeat(worker_id, update)
    await state.notify()
    if merged is None:
        log.warning("heartbeat from unregistered worker %s ignored (it must register first)", worker_id)
        return protocol_json(reply)
    if merged.status() != old_status:
        log.info("worker %s status: %s", worker_id, merged.status())
    cancel_ids = _finished_jobs(state, update.get("current_tasks"))
    if cancel_ids:
        reply["cancel_task_ids"] = cancel_ids
    return protocol_json(reply)


def _finished_jobs(state: MockState, current_tasks: Any) -> list[Any]:
    # Like 1.0b30, the ids are looked up as *job* ids, so only job ids can ever come back.
    if not isinstance(current_tasks, list):
        return []
    found = [(tid, state.tasks.of_job(tid)) for tid in current_tasks]
    return [tid for tid, task in found if task is not None and task.status not in ACTIVE_STATUSES]


@_protocol_errors
async def next_task(request: web.Request) -> web.StreamResponse:
    """GET /_worker/workers/{worker_id}/tasks/next: 200 with a task or 204 after the hold."""
    state = _state(request)
    worker_id = admit(request, None, "poll", request.match_info["worker_id"])

    def client_gone() -> bool:
        transport = request.transport
        return transport is None or transport.is_closing()

    got = await state.next_task(worker_id, state.settings.poll_hold_seconds, client_gone)
    if got is None:
        return web.Response(status=204)
    task, payload = got
    log.info("task %s -> worker %s", task.task_id, worker_id)
    return protocol_json(payload)


@_protocol_errors
async def task_result(request: web.Request) -> web.StreamResponse:
    """POST /_worker/tasks/result, checked in process_task_result's order."""
    body = await _json_body(request)
    state = _state(request)
    auth_id = admit(request, body, "result")
    verify_signed(state.settings, state.replay, _require_object(body), auth_id)
    try:
        result = normalize(parse(TASK_RESULT, body))
    except ModelError as exc:
        raise ValueError(f"Invalid TaskResult payload: {exc}") from None
    sender = result.get("worker_id", auth_id)
    if sender != auth_id:
        raise PermissionError(
            f"Forbidden: Authenticated worker '{auth_id}' cannot submit results for another worker '{sender}'."
        )
    return protocol_json(await accept_result(state, result, auth_id, body.get("picked_up_at")))


@_protocol_errors
async def worker_event(request: web.Request) -> web.StreamResponse:
    """POST /_worker/events: progress events update the task; model errors are 200 replies."""
    body = await _json_body(request)
    auth_id = admit(request, body, "event")
    return protocol_json(await process_event(_state(request), auth_id, body))


async def process_event(state: MockState, auth_id: Any, body: Any) -> dict[str, Any]:
    """Handle a worker event (HTTP body or WebSocket frame) like WorkerService.process_worker_event."""
    verify_signed(state.settings, state.replay, _require_object(body), auth_id, ("bubbling_chain",))
    try:
        event = parse(WORKER_EVENT, body)
    except ModelError as exc:
        return {"status": "error", "message": f"Invalid event payload: {exc}"}
    if event["worker_id"] != auth_id:
        raise PermissionError("Immediate sender ID mismatch")
    target = event.get("target_job_id") or event.get("target_task_id")
    task = state.tasks.of_job(target) if target else None
    if task is not None and task.worker_id and task.worker_id != auth_id:
        raise PermissionError(f"Forbidden: Worker '{auth_id}' is not assigned to job '{target}'")
    if task is not None:
        task.record_event(event, state.now())
    if event["event_type"] == "progress" and task is not None:
        payload = event["payload"]
        await state.set_progress(task, payload.get("progress", 0.0), payload.get("message", ""))
        log.info("task %s progress: %s %s", task.task_id, task.progress, task.progress_message or "")
    return {"status": "event_accepted"}


def setup_worker_routes(app: web.Application) -> None:
    """Add the /_worker routes to ``app``."""
    app.router.add_post("/_worker/workers/register", register)
    app.router.add_patch("/_worker/workers/{worker_id}", heartbeat)
    app.router.add_get("/_worker/workers/{worker_id}/tasks/next", next_task)
    app.router.add_post("/_worker/tasks/result", task_result)
    app.router.add_post("/_worker/events", worker_event)
