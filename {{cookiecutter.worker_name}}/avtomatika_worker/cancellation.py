"""The Redis "pull" cancellation check: the orchestrator sets orchestrator:task_cancel:{task_id}."""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

CANCEL_KEY_PREFIX = "orchestrator:task_cancel:"
REDIS_TIMEOUT = 2.0


def redact_url(url: str) -> str:
    """Hide credentials in a URL before logging it."""
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    port = f":{parts.port}" if parts.port is not None else ""
    return parts._replace(netloc=f"***@{parts.hostname}{port}").geturl()


class CancellationFlags:
    """Reads cancellation flags from Redis; an unreachable Redis reads as "not cancelled"."""

    def __init__(self, redis_url: Callable[[], str], client: aioredis.Redis | None = None) -> None:
        self._redis_url = redis_url  # resolved lazily: the config may not be loaded yet
        self._client = client
        self._owns_client = client is None
        self._outage_logged = False

    async def is_cancelled(self, task_id: str) -> bool:
        """`EXISTS orchestrator:task_cancel:{task_id}`; False (and one warning per outage) on errors."""
        try:
            found = await self._get_client().exists(CANCEL_KEY_PREFIX + task_id)
        except (RedisError, OSError) as exc:
            if not self._outage_logged:
                # Warn once per outage: handlers may call this every second.
                logger.warning(
                    "cannot reach Redis at %s to check for cancellation (%s); assuming not cancelled",
                    redact_url(self._redis_url()),
                    exc,
                )
                self._outage_logged = True
            return False
        self._outage_logged = False
        return bool(found)

    def _get_client(self) -> aioredis.Redis:
        if self._client is None:
            self._client = aioredis.Redis.from_url(
                self._redis_url(),
                socket_connect_timeout=REDIS_TIMEOUT,
                socket_timeout=REDIS_TIMEOUT,
                # One attempt per call: the handler's own loop is the retry.
                retry=Retry(NoBackoff(), 0),
            )
        return self._client

    async def close(self) -> None:
        """Close the Redis connection pool if this object created it."""
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None
