"""The Redis cancel flag the real orchestrator writes on cancel: ``orchestrator:task_cancel:{task_id}``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger("mock_orchestrator")

FLAG_TTL_SECONDS = 3600
CONNECT_TIMEOUT_SECONDS = 2.0


def flag_key(task_id: str) -> str:
    """The Redis key of a task's cancel flag (keyed by protocol task id, never by job id)."""
    return f"orchestrator:task_cancel:{task_id}"


class FlagStore(Protocol):
    """The slice of ``redis.asyncio.Redis`` the mock uses (a seam for tests)."""

    def set(self, name: str, value: str, ex: int | None = None) -> Awaitable[Any]:
        """SET name value [EX ex]."""

    async def aclose(self) -> None:
        """Close the connection pool."""


class CancelFlags:
    """Writes cancel flags when a Redis client is configured; a Redis failure is logged, never raised."""

    def __init__(self, client: FlagStore | None = None) -> None:
        self.client = client

    @classmethod
    def from_url(cls, url: str | None) -> CancelFlags:
        """A writer for ``url`` (``REDIS_URL``), or one that writes nothing when the URL is None."""
        if url is None:
            return cls()
        client = aioredis.from_url(
            url, socket_connect_timeout=CONNECT_TIMEOUT_SECONDS, socket_timeout=CONNECT_TIMEOUT_SECONDS
        )
        return cls(client)

    async def set(self, task_id: str) -> bool:
        """Set the flag (value "1", TTL 3600 s); False when there is no Redis or it failed."""
        if self.client is None:
            return False
        try:
            await self.client.set(flag_key(task_id), "1", ex=FLAG_TTL_SECONDS)
        except (RedisError, OSError) as exc:  # Redis down must not break cancelling (WS/heartbeat still work)
            log.warning("could not write cancel flag %s to Redis (%s); carrying on", flag_key(task_id), exc)
            return False
        return True

    async def close(self) -> None:
        """Release the Redis connection pool."""
        if self.client is not None:
            await self.client.aclose()
