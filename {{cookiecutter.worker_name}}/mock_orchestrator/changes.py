"""The change feed: a version bumped on every mutation, and waits that end as soon as it moves.

Long polls, ``GET /api/v1/tasks/{id}?wait=S`` and ``GET /api/v1/events?since=N&wait=S`` (the dashboard's
live updates) all park here instead of sleeping, so they answer the moment something happens.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Changes:
    """A version counter with a condition; ``close()`` releases every wait (server shutdown)."""

    def __init__(self) -> None:
        self._condition = asyncio.Condition()
        self.version = 0
        self.closed = False

    async def notify(self) -> None:
        """Record a change and wake every wait so it re-checks what it waits for."""
        async with self._condition:
            self.version += 1
            self._condition.notify_all()

    async def close(self) -> None:
        """End every wait now and from now on."""
        self.closed = True
        await self.notify()

    async def wait_until(self, ready: Callable[[], bool], timeout: float) -> bool:
        """True as soon as ``ready()`` holds (re-checked after each change); False on timeout or close."""
        try:
            async with asyncio.timeout(timeout), self._condition:
                await self._condition.wait_for(lambda: self.closed or ready())
        except TimeoutError:
            return False
        return not self.closed

    async def wait_for_change(self, since: int, timeout: float) -> int:
        """The version once it is greater than ``since``, or after ``timeout`` seconds."""
        await self.wait_until(lambda: self.version > since, timeout)
        return self.version
