"""Per-worker rate limiting (``MOCK_RATE_LIMITS``), counted exactly like avtomatika 1.0b30's engine.

The real orchestrator keeps ``ratelimit:worker:{sha256(token)}:{worker_id}:{message_type}`` in Redis
and runs INCR then EXPIRE period on every authenticated request: refused requests count too and push
the expiry out again, so a counter only resets after a whole period without a request of that type.
Only authenticated requests are counted (a 403 is not), and only after the body parsed (a 400 is not).

What the worker sees when ``count > limit`` (observed on 1.0b30 / rxon 1.0b17):

* every HTTP endpoint: 429 ``{"error":"{\\"error\\": \\"Too Many Requests\\"}"}`` (the engine's JSON text,
  wrapped again by rxon's listener), ``application/json``, ``X-RXON-Version``, no ``Retry-After``;
* ``websocket_auth`` (before the upgrade): plain-text 500 ``Too Many Requests``, with ``X-RXON-Version``;
* ``websocket`` (counted after the upgrade): the 101, then aiohttp writes the engine's raw 429 response
  (with ``Retry-After``) into the upgraded stream, which a WebSocket client reads as a broken frame.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .settings import RateLimits

log = logging.getLogger("mock_orchestrator")

REFUSAL_REASON = "Too Many Requests"
# The engine's 429 text is web.json_response's (json.dumps, hence the space); rxon nests it in "error".
ENGINE_TEXT = '{"error": "Too Many Requests"}'
SWEEP_EVERY = 4096  # forget expired counters once this many have piled up


class RateLimited(Exception):
    """A request over its worker's limit; ``retry_after`` is the engine's Retry-After value."""

    def __init__(self, retry_after: str) -> None:
        super().__init__(REFUSAL_REASON)
        self.retry_after = retry_after

    def after_upgrade(self) -> web.HTTPTooManyRequests:
        """The engine's own 429, as raised after a WebSocket upgrade (the listener does not catch it)."""
        return web.HTTPTooManyRequests(
            text=ENGINE_TEXT, content_type="application/json", headers={"Retry-After": self.retry_after}
        )


@dataclass
class _Counter:
    count: int
    expires_at: float


class RateLimiter:
    """Counters per (credential, worker id, message type) on the mock's clock; off when ``limits`` is None."""

    def __init__(self, limits: RateLimits | None, clock: Callable[[], float]) -> None:
        self.limits = limits
        self._clock = clock
        self._counters: dict[tuple[str, str, str], _Counter] = {}
        self._sweep_at = SWEEP_EVERY

    def hit(self, token: str | None, worker_id: Any, message_type: str) -> None:
        """Count one request; raise RateLimited when it is over the limit of its type."""
        if self.limits is None:
            return
        now = self._clock()
        # The credential is part of the real key; with one accepted token per worker id it never splits.
        key = (hashlib.sha256((token or "").encode()).hexdigest(), str(worker_id), message_type)
        counter = self._counters.get(key)
        if counter is None or now > counter.expires_at:  # Redis drops a key once its expiry has passed
            counter = self._counters[key] = _Counter(0, now)
        counter.count += 1
        counter.expires_at = now + self.limits.period
        self._sweep(now)
        limit = self.limits.limit_for(message_type)
        if counter.count <= limit:
            return
        if counter.count == limit + 1:
            log.warning(
                "rate limit: refusing %s requests of worker %s (more than %d within %d s); "
                "accepted again after %d s without one",
                message_type,
                worker_id,
                limit,
                self.limits.period,
                self.limits.period,
            )
        raise RateLimited(str(max(1, int(counter.expires_at - now + 0.5))))  # Redis TTL rounds to seconds

    def _sweep(self, now: float) -> None:
        if len(self._counters) < self._sweep_at:
            return
        self._counters = {k: c for k, c in self._counters.items() if c.expires_at >= now}
        self._sweep_at = max(SWEEP_EVERY, 2 * len(self._counters))


LIMITER_KEY = web.AppKey("rate_limiter", RateLimiter)
