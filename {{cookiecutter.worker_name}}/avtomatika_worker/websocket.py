"""The WebSocket command channel: keeps `/_worker/ws/{worker_id}` open and hands over each command."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson

from .errors import OrchestratorRejectedError, OrchestratorUnavailableError
from .retry import Backoff
from .transport import WsConnect

logger = logging.getLogger(__name__)

OnCommand = Callable[[dict[str, Any]], None]

MAX_DELAY = 30.0
# A connection that stayed up this long resets the back-off; a flapping server does not.
STABLE_AFTER = 10.0
# The orchestrator closes the older of two connections for one worker id with this code (policy violation).
REPLACED_CLOSE_CODE = 1008
_AUTH_STATUSES = frozenset({401, 403})


class CommandChannel:
    """Reconnects forever with capped, jittered back-off; `run()` only ends by being cancelled."""

    def __init__(
        self,
        connect: WsConnect,
        on_command: OnCommand,
        backoff: Backoff,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._connect = connect
        self._on_command = on_command
        self._backoff = backoff
        self._clock = clock
        self._failures = 0
        self._refused_logged = False
        self._unreachable = False

    async def run(self) -> None:
        """Connect, read commands until the connection ends, wait, repeat."""
        while True:
            delay = await self._session()
            await self._backoff.sleep(delay)

    async def _session(self) -> float:
        """One connection attempt (and its lifetime); returns how long to wait before the next one."""
        try:
            ws = await self._connect()  # transport.py maps every aiohttp error onto these two
        except OrchestratorRejectedError as exc:
            return self._refused(exc.status, exc.error)
        except OrchestratorUnavailableError as exc:
            return self._failed(exc)
        if self._refused_logged or self._unreachable:
            logger.info("the orchestrator accepted the WebSocket again")
        self._refused_logged = self._unreachable = False
        opened = self._clock()
        logger.info("WebSocket command channel connected")
        try:
            close_code = await self._read(ws)
        finally:
            await ws.close()
        if self._clock() - opened >= STABLE_AFTER:
            self._failures = 0
        if close_code == REPLACED_CLOSE_CODE:
            # Another process with the same WORKER_ID took over; reconnecting at once would just fight it.
            logger.warning(
                "the orchestrator closed this WebSocket because another connection opened for the same "
                "worker id (is WORKER_ID shared by two workers?); reconnecting in %.1f s",
                self._backoff.cap,
            )
            return self._backoff.cap
        delay = self._next_delay()
        logger.info("WebSocket command channel closed (code %s); reconnecting in %.1f s", close_code, delay)
        return delay

    def _failed(self, exc: Exception) -> float:
        delay = self._next_delay()
        log = logger.info if self._unreachable else logger.warning  # one warning per outage
        self._unreachable = True
        log(
            "cannot open the orchestrator WebSocket (%s); retrying in %.1f s",
            exc or type(exc).__name__,
            delay,
        )
        return delay

    def _refused(self, status: int, reason: str) -> float:
        """A 4xx on the upgrade: retrying soon cannot help, so retry at the cap."""
        if not self._refused_logged:
            hint = (
                "WORKER_TOKEN is not accepted for this WORKER_ID; fix the token"
                if status in _AUTH_STATUSES
                else "check ORCHESTRATOR_URL"
            )
            logger.error(
                "the orchestrator refused the WebSocket with HTTP %s (%s): %s; retrying every %.0f s",
                status,
                reason,
                hint,
                self._backoff.cap,
            )
            self._refused_logged = True
        return self._backoff.cap

    def _next_delay(self) -> float:
        self._failures += 1
        return self._backoff.delay(self._failures)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> int | None:
        """Handle frames until the connection ends; returns the close code the orchestrator sent."""
        while True:
            message = await ws.receive()
            if message.type == aiohttp.WSMsgType.TEXT:
                self._dispatch(message.data)
            elif message.type == aiohttp.WSMsgType.CLOSE:
                return int(message.data)  # the peer's code: ws.close_code can read 1006 after auto-close
            elif message.type in (aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                return ws.close_code
            elif message.type == aiohttp.WSMsgType.ERROR:
                logger.warning("WebSocket error: %s", ws.exception())
                return ws.close_code
            else:
                logger.debug("ignoring a WebSocket %s frame", message.type.name)

    def _dispatch(self, text: str) -> None:
        try:
            command = orjson.loads(text)
        except orjson.JSONDecodeError:
            logger.warning("ignoring a WebSocket frame that is not JSON: %.200r", text)
            return
        if not isinstance(command, dict):
            logger.warning("ignoring a WebSocket frame that is not a JSON object: %.200r", text)
            return
        try:
            self._on_command(command)
        except Exception:  # a bad command must not take the channel down
            logger.exception("failed to handle WebSocket command %.200r", text)
