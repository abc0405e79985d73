"""The poll loop: one long poll whenever a slot is free; backoff with jitter after any failure or bad reply.

Under load, more: a poll that brings a task while other slots are free starts another poll at once (a
burst poll), which keeps polling while polls bring tasks and ends at its first empty poll or when no slot
is free. So an idle worker holds exactly one long poll (what the rate limits are planned for), and a busy
one fetches tasks for all its slots in parallel instead of one round trip at a time.

A reply that is not a runnable task (not JSON, not an object, fields missing or of the wrong type, a bad
signature) is handled exactly like an unreachable orchestrator: backoff, one log line per burst. When it
carries a job id and a task id, it is also reported as a failure naming the problem (tasks.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from .errors import OrchestratorRejectedError, OrchestratorUnavailableError, ProtocolError
from .retry import Backoff, Streak
from .tasks import Refusal, refusal
from .transport import OrchestratorClient

logger = logging.getLogger(__name__)

Spawn = Callable[[dict[str, Any]], bool]  # returns False when the task was refused (slot not used)
Refuse = Callable[[Refusal], None]  # reports a refused task that has ids


class Poller:
    """Acquires a slot, long-polls for a task, hands it to `spawn`; a freed slot polls again at once."""

    def __init__(
        self,
        client: OrchestratorClient,
        slots: asyncio.Semaphore,
        spawn: Spawn,
        backoff: Backoff,
        on_recovered: Callable[[], None],
        *,
        secret: str | None = None,
        refuse: Refuse | None = None,
        on_task: Callable[[], None] | None = None,
        max_polls: int = 1,
    ) -> None:
        self._client = client
        self._slots = slots
        self._spawn = spawn
        self._backoff = backoff
        self._on_recovered = on_recovered
        self._secret = secret
        self._refuse = refuse
        self._on_task = on_task
        self._streak = Streak()
        self._bad_replies = 0
        self._stopping = False
        self._bursts: set[asyncio.Task[None]] = set()
        self._max_bursts = max_polls - 1  # the main loop's poll is the first
        self._open: dict[int, float] = {}  # poll id -> wall-clock start, for the polls in flight
        self._next_id = 0

    @property
    def open_since(self) -> float | None:
        """Wall-clock start of the newest poll in flight (the one the orchestrator may hold longest)."""
        return max(self._open.values(), default=None)

    def stop(self) -> None:
        """Send no new poll (the one in flight, if any, still delivers its task)."""
        self._stopping = True

    async def run(self) -> None:
        """Poll until stopped (returns after the polls in flight) or cancelled."""
        try:
            while not self._stopping:
                await self._slots.acquire()
                await self._poll_with_slot()
            if self._bursts:
                await asyncio.wait(self._bursts)
        finally:
            for burst in self._bursts:
                burst.cancel()

    async def _burst(self) -> None:
        while not self._stopping and not self._slots.locked():
            await self._slots.acquire()  # free: returns at once
            if not await self._poll_with_slot():
                return

    async def _poll_with_slot(self) -> bool:
        """One poll holding an acquired slot; True when it brought a task (which keeps the slot)."""
        if self._stopping:
            self._slots.release()
            return False
        try:
            task = await self._poll_once()
        except BaseException:
            self._slots.release()
            raise
        if task is None or not self._spawn(task):
            self._slots.release()
            return False
        if self._on_task is not None:
            self._on_task()
        if not self._slots.locked() and len(self._bursts) < self._max_bursts and not self._stopping:
            burst = asyncio.create_task(self._burst(), name="avtomatika-poll-burst")
            self._bursts.add(burst)
            burst.add_done_callback(self._bursts.discard)
        return True

    async def _poll_once(self) -> dict[str, Any] | None:
        poll_id, self._next_id = self._next_id, self._next_id + 1
        self._open[poll_id] = time.time()
        try:
            reply = await self._client.next_task()
        except OrchestratorUnavailableError as exc:
            await self._back_off(f"task poll failed ({exc})")
            return None
        except OrchestratorRejectedError as exc:
            await self._back_off(f"task poll rejected ({exc})")
            return None
        except ProtocolError as exc:
            await self._bad_reply(Refusal("", f"the poll reply is unreadable: {exc}", None, None))
            return None
        finally:
            del self._open[poll_id]
        problem = refusal(reply, self._secret) if reply is not None else None
        if problem is not None:
            await self._bad_reply(problem)
            return None
        self._recovered()
        task: dict[str, Any] | None = reply
        return task

    def _recovered(self) -> None:
        failures = self._streak.recover()
        if not failures:
            return
        if self._bad_replies:
            logger.info("the orchestrator's replies are valid again after %d bad one(s)", self._bad_replies)
        else:
            logger.info("the orchestrator is reachable again after %d failed poll(s)", failures)
        self._bad_replies = 0
        self._on_recovered()

    async def _bad_reply(self, problem: Refusal) -> None:
        self._bad_replies += 1
        if problem.reportable and self._refuse is not None:
            self._refuse(problem)
        reported = " (reported as a failure of its job)" if problem.reportable else ""
        await self._back_off(f"bad task reply {self._bad_replies} in a row: {problem.message}{reported}")

    async def _back_off(self, what: str) -> None:
        level = self._streak.fail()
        delay = self._backoff.delay(self._streak.count)
        logger.log(level, "%s; retry %d in %.2f s", what, self._streak.count, delay)
        await self._backoff.sleep(delay)
