"""Application factory: wiring, the X-RXON-Version/compression middleware and the health route."""

from __future__ import annotations

import gzip
import logging
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from .cancel_flags import CancelFlags, FlagStore
from .control_api import setup_control_routes
from .dashboard import setup_dashboard_routes
from .files import setup_file_routes
from .rate_limits import LIMITER_KEY, RateLimiter
from .responses import error_reply, json_reply
from .settings import MockSettings
from .state import STATE_KEY, MockState
from .submissions import parse_metadata, parse_requirements, parse_submission
from .worker_api import PROTOCOL_VERSION, VERSION_HEADER, setup_worker_routes
from .ws_channel import WEBSOCKET_ROUTE, setup_websocket_route

COMPRESS_MIN_BYTES = 500  # the orchestrator compresses replies of 500 bytes or more

log = logging.getLogger("mock_orchestrator")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _maybe_gzip(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    """Gzip like the orchestrator does, so a worker that cannot decode it fails here too."""
    if not isinstance(response, web.Response) or "Content-Encoding" in response.headers:
        return response
    body = response.body
    if not isinstance(body, bytes) or len(body) < COMPRESS_MIN_BYTES:
        return response
    if "gzip" not in request.headers.get("Accept-Encoding", "").lower():
        return response
    compressed = web.Response(
        body=gzip.compress(body), status=response.status, headers={"Content-Encoding": "gzip"}
    )
    compressed.content_type = response.content_type
    return compressed


@web.middleware
async def protocol_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every reply is JSON on error and carries ``X-RXON-Version``, like the real orchestrator's."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if request.match_info.route.name == WEBSOCKET_ROUTE:
            raise  # rxon's WebSocket handler lets aiohttp render these: plain text, no version header
        response = error_reply(exc.status, exc.reason)
    except Exception as exc:  # rxon's listener answers 500 with the exception's text; so does the mock
        log.exception("unexpected error in %s %s", request.method, request.path)
        response = error_reply(500, str(exc))
    if response.prepared:  # an upgraded WebSocket: its headers are already sent
        return response
    response = _maybe_gzip(request, response)
    response.headers[VERSION_HEADER] = PROTOCOL_VERSION
    return response


async def public_status(request: web.Request) -> web.StreamResponse:
    """GET /_public/status: unauthenticated health check."""
    return json_reply({"status": "ok"})


async def _queue_demo_task(app: web.Application) -> None:
    """Queue the configured demo task, so that `docker compose up` shows a task being processed."""
    state = app[STATE_KEY]
    if state.settings.demo_task is None:
        return
    task_type, params, priority, deadline = parse_submission(state.settings.demo_task)
    requirements = parse_requirements(state.settings.demo_task)
    metadata = parse_metadata(state.settings.demo_task)
    task = await state.submit(task_type, params, priority, deadline, requirements, metadata)
    log.info(
        "demo task %s (%s) queued with params %s", task.task_id, task_type, orjson.dumps(params).decode()
    )


async def _release_long_polls(app: web.Application) -> None:
    await app[STATE_KEY].close()


def create_app(settings: MockSettings, *, redis_client: FlagStore | None = None) -> web.Application:
    """Build the mock orchestrator application; ``redis_client`` overrides ``settings.redis_url``."""
    app = web.Application(middlewares=[protocol_middleware])
    flags = (
        CancelFlags(redis_client) if redis_client is not None else CancelFlags.from_url(settings.redis_url)
    )
    app[STATE_KEY] = MockState(settings, cancel_flags=flags)
    app[LIMITER_KEY] = RateLimiter(settings.rate_limits, settings.clock)
    app.router.add_get("/_public/status", public_status)
    setup_worker_routes(app)
    setup_websocket_route(app)
    setup_control_routes(app)
    setup_dashboard_routes(app)
    setup_file_routes(app, settings.s3)
    app.on_startup.append(_queue_demo_task)
    app.on_shutdown.append(_release_long_polls)
    return app
