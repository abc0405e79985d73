"""``GET /_worker/ws/{worker_id}``: the WebSocket command channel, as avtomatika 1.0b30 serves it.

Authentication happens before the upgrade (a failure is a plain-text 403), then the ``websocket_auth``
rate limit (over it: a plain-text 500); the ``websocket`` limit is counted after the upgrade (see
rate_limits.py). HTTP errors of this route are left to aiohttp, as in rxon's listener.

Orchestrator -> worker frames are commands (``{"command": "cancel_task", "task_id", "job_id"}``, sent by a
cancel only when the worker record has a truthy top-level ``capabilities.websockets``); worker ->
orchestrator text frames are handled like ``POST /_worker/events`` bodies, and their failures are only
logged.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from .rate_limits import LIMITER_KEY, RateLimited
from .security import TOKEN_HEADER
from .state import STATE_KEY, MockState
from .worker_api import admit, process_event

log = logging.getLogger("mock_orchestrator")
WEBSOCKET_ROUTE = "worker-websocket"


async def _handle_frame(state: MockState, worker_id: Any, data: str) -> None:
    try:
        reply = await process_event(state, worker_id, orjson.loads(data))
    except (ValueError, TypeError, PermissionError) as exc:  # like 1.0b30: logged, the channel stays open
        log.warning("error processing WebSocket message from %s: %s", worker_id, exc)
        return
    if reply.get("status") != "event_accepted":
        log.warning("WebSocket message from %s not accepted: %s", worker_id, reply.get("message"))


async def command_channel(request: web.Request) -> web.StreamResponse:
    """Upgrade to the worker's command channel; a newer connection closes this one with 1008."""
    state = request.app[STATE_KEY]
    try:
        worker_id = admit(request, None, "websocket_auth", request.match_info["worker_id"])
    except PermissionError as exc:
        log.warning("rejected WebSocket for %s: 403 %s", request.match_info["worker_id"], exc)
        return web.Response(status=403, text=str(exc))
    except RateLimited as exc:  # rxon's listener answers any other pre-upgrade error like this
        return web.Response(status=500, text=str(exc))
    ws = web.WebSocketResponse()
    await ws.prepare(request)  # a failed upgrade is aiohttp's plain-text 400, already counted above
    try:
        request.app[LIMITER_KEY].hit(request.headers.get(TOKEN_HEADER), worker_id, "websocket")
    except RateLimited as exc:
        raise exc.after_upgrade() from None
    await state.channels.register(worker_id, ws)
    await state.notify()
    try:
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                await _handle_frame(state, worker_id, message.data)
            elif message.type == WSMsgType.ERROR:
                break
    finally:
        state.channels.unregister(worker_id, ws)
        await state.notify()
    return ws


def setup_websocket_route(app: web.Application) -> None:
    """Add the WebSocket route to ``app``."""
    app.router.add_get("/_worker/ws/{worker_id}", command_channel, name=WEBSOCKET_ROUTE)
