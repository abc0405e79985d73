"""Capped exponential backoff with full jitter for transient orchestrator errors.

Delay before retry n (1-based) is `uniform(0, min(cap, base * 2**(n-1)))` ("full jitter"): many workers
coming back after an outage spread their retries instead of hammering the orchestrator in lock-step.
The default cap (5 s) bounds how long a worker waits once the orchestrator is reachable again.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from .errors import OrchestratorUnavailableError

logger = logging.getLogger(__name__)

R = TypeVar("R")

Sleep = Callable[[float], Awaitable[None]]
Uniform = Callable[[float, float], float]

DEFAULT_BASE = 0.5
DEFAULT_CAP = 5.0
# A long outage must not flood the log: the 1st failure in a row and every LOUD_EVERY-th are warnings.
LOUD_EVERY = 20


@dataclass(frozen=True)
class Backoff:
    """A backoff policy; `uniform` and `sleep` are seams for tests."""

    base: float = DEFAULT_BASE
    cap: float = DEFAULT_CAP
    uniform: Uniform = field(default=random.uniform)
    sleep: Sleep = field(default=asyncio.sleep)

    def ceiling(self, attempt: int) -> float:
        """The upper bound of the delay before retry number `attempt` (1-based)."""
        exponent = min(max(attempt, 1) - 1, 32)  # 2**32 * base is far above any cap; avoid huge floats
        return min(self.cap, self.base * 2.0**exponent)

    def delay(self, attempt: int) -> float:
        """A random delay in [0, ceiling(attempt)]."""
        return self.uniform(0.0, self.ceiling(attempt))


def level_for(failures: int) -> int:
    """The log level of failure number `failures` in a row: WARNING for the 1st and every LOUD_EVERY-th."""
    return logging.WARNING if failures == 1 or failures % LOUD_EVERY == 0 else logging.DEBUG


@dataclass
class Streak:
    """Consecutive failures of one activity, and the log level each deserves."""

    count: int = 0

    def fail(self) -> int:
        """Count a failure; WARNING for the first in a row and every LOUD_EVERY-th, else DEBUG."""
        self.count += 1
        return level_for(self.count)

    def recover(self) -> int:
        """The streak ended: return its length and start over."""
        count, self.count = self.count, 0
        return count


async def retrying(
    op: Callable[[], Awaitable[R]], what: str, backoff: Backoff, attempts: int | None = None
) -> R:
    """Await `op()`, retrying on OrchestratorUnavailableError up to `attempts` times (None: forever)."""
    streak = Streak()
    while True:
        try:
            return await op()
        except OrchestratorUnavailableError as exc:
            level = streak.fail()
            if attempts is not None and streak.count >= attempts:
                raise
            delay = backoff.delay(streak.count)
            logger.log(level, "%s failed (%s); retry %d in %.2f s", what, exc, streak.count, delay)
            await backoff.sleep(delay)
