"""The skeleton's retry policy for transient orchestrator errors (a bounded linear delay).

Kept in one place on purpose: the resilience issue replaces `retry_delay` with capped jitter.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from .errors import OrchestratorUnavailableError

logger = logging.getLogger(__name__)

R = TypeVar("R")

MAX_RETRY_DELAY = 5.0

Sleep = Callable[[float], Awaitable[None]]


def retry_delay(attempt: int) -> float:
    """Seconds to wait before retry number `attempt` (1-based): 1, 2, 3, 4, 5, 5, ..."""
    return min(float(max(attempt, 1)), MAX_RETRY_DELAY)


async def retrying(op: Callable[[], Awaitable[R]], what: str, sleep: Sleep, attempts: int | None = None) -> R:
    """Await `op()`, retrying on OrchestratorUnavailableError up to `attempts` times (None: forever)."""
    attempt = 0
    while True:
        try:
            return await op()
        except OrchestratorUnavailableError as exc:
            attempt += 1
            if attempts is not None and attempt >= attempts:
                raise
            delay = retry_delay(attempt)
            logger.warning("%s failed (%s); retrying in %.1f s", what, exc, delay)
            await sleep(delay)
