"""The poll loop: one long poll whenever a slot is free, backoff with jitter while the orchestrator is down."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from .errors import OrchestratorRejectedError, OrchestratorUnavailableError, TransportError
from .retry import Backoff
from .transport import OrchestratorClient

logger = logging.getLogger(__name__)

Spawn = Callable[[dict[str, Any]], bool]  # returns False when the task was refused (slot not used)


class Poller:
    """Acquires a slot, long-polls for a task, hands it to `spawn`; a freed slot polls again at once."""

    def __init__(
        self,
        client: OrchestratorClient,
        slots: asyncio.Semaphore,
        spawn: Spawn,
        backoff: Backoff,
        on_recovered: Callable[[], None],
    ) -> None:
        self._client = client
        self._slots = slots
        self._spawn = spawn
        self._backoff = backoff
        self._on_recovered = on_recovered
        self._failures = 0

    async def run(self) -> None:
        """Poll until cancelled."""
        while True:
            await self._slots.acquire()
            try:
                task = await self._poll_once()
            except BaseException:
                self._slots.release()
                raise
            if task is None or not self._spawn(task):
                self._slots.release()

    async def _poll_once(self) -> dict[str, Any] | None:
        try:
            task = await self._client.next_task()
        except OrchestratorUnavailableError as exc:
            await self._back_off(exc)
            return None
        except OrchestratorRejectedError as exc:
            logger.error("task poll rejected: %s", exc)
            await self._back_off(exc)
            return None
        except TransportError as exc:
            # A 200 we cannot read: the orchestrator has already popped that task, so it is lost
            # until the orchestrator's own timeout re-dispatches the job.
            logger.error("task poll failed, a task may have been lost: %s", exc)
            await self._back_off(exc)
            return None
        if self._failures:
            logger.info("the orchestrator is reachable again after %d failed poll(s)", self._failures)
            self._failures = 0
            self._on_recovered()
        return task

    async def _back_off(self, exc: Exception) -> None:
        self._failures += 1
        delay = self._backoff.delay(self._failures)
        log = logger.warning if self._failures == 1 or self._failures % 20 == 0 else logger.info
        log("task poll failed (%s); retry %d in %.2f s", exc, self._failures, delay)
        await self._backoff.sleep(delay)
