"""Open WebSocket command channels, one per worker id (like avtomatika's WebSocketManager)."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

log = logging.getLogger("mock_orchestrator")

REPLACED_CODE = 1008  # what the real orchestrator closes a superseded connection with
SHUTDOWN_CODE = 1001


class CommandChannels:
    """The live connections of this process; a new connection for a worker id closes the old one."""

    def __init__(self) -> None:
        self._connections: dict[str, web.WebSocketResponse] = {}

    def connected(self, worker_id: str) -> bool:
        """True while the worker has an open command channel."""
        connection = self._connections.get(worker_id)
        return connection is not None and not connection.closed

    async def register(self, worker_id: str, ws: web.WebSocketResponse) -> None:
        """Make ``ws`` the worker's channel, closing the previous one with 1008."""
        previous = self._connections.get(worker_id)
        self._connections[worker_id] = ws
        if previous is not None and previous is not ws:
            await previous.close(code=REPLACED_CODE, message=b"New connection established")
        log.info("worker %s opened its WebSocket command channel", worker_id)

    def unregister(self, worker_id: str, ws: web.WebSocketResponse) -> None:
        """Forget ``ws`` if it is still the worker's channel (a replaced one must not drop its successor)."""
        if self._connections.get(worker_id) is ws:
            del self._connections[worker_id]
            log.info("worker %s closed its WebSocket command channel", worker_id)

    async def send(self, worker_id: str, command: dict[str, Any]) -> bool:
        """Send a JSON command; False (and a warning) when the worker has no open channel or it failed."""
        connection = self._connections.get(worker_id)
        if connection is None or connection.closed:
            log.warning("cannot send %s: worker %s has no open WebSocket", command.get("command"), worker_id)
            return False
        try:
            await connection.send_json(command)
        except (ConnectionError, RuntimeError) as exc:
            log.warning("could not send %s to worker %s: %s", command.get("command"), worker_id, exc)
            return False
        log.info("sent %s to worker %s over WebSocket", command.get("command"), worker_id)
        return True

    async def close_all(self) -> None:
        """Close every connection (server shutdown)."""
        connections, self._connections = list(self._connections.values()), {}
        for connection in connections:
            await connection.close(code=SHUTDOWN_CODE, message=b"Server shutdown")
