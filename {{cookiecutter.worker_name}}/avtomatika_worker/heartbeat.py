"""Heartbeats: one signed request per interval keeps the worker's record alive; re-register when forgotten.

The status reported is `idle` while the worker runs, even with every slot taken, and `draining` while it
stops. avtomatika 1.0b30's dispatcher only considers workers in its idle index and quarantines a job for
which it finds none ("No suitable workers"), whereas a job dispatched to an idle worker waits in that
worker's queue until a slot frees or another worker steals it (storage/redis.py, dequeue_task_for_worker).
So `busy` would lose jobs and `idle` queues them.

The dispatcher picks the idle worker whose last heartbeat is oldest (its index is scored with the expiry),
and a worker blocked in a long poll on its own empty queue steals nothing until the poll ends. So a worker
that receives a task is `nudge`d into a heartbeat (at most one per MIN_NUDGE_GAP): it moves to the back of
the line and the next dispatches wake the other workers, which then share the backlog by stealing.

Whether the orchestrator still knows this worker shows only in the reply to an *empty* heartbeat (JSON
null when forgotten; a signed one is answered "ok" either way), so a heartbeat is preceded by such a probe
once every PROBE_INTERVAL seconds. Both count against the heartbeat rate limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from .errors import OrchestratorUnavailableError, RegistrationError, TransportError
from .ratelimit import HEARTBEAT
from .transport import URGENT_REQUEST_TIMEOUT, OrchestratorClient

logger = logging.getLogger(__name__)

PROBE_INTERVAL = 60.0
MIN_NUDGE_GAP = 1.0


class Heartbeater:
    """Sends a heartbeat every interval; `beat(urgent=True)` reports a status change at once."""

    def __init__(
        self,
        client: OrchestratorClient,
        message: Callable[[], dict[str, Any]],
        register: Callable[[], Awaitable[None]],
        on_cancel: Callable[[Iterable[str]], None],
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._message = message
        self._register = register
        self._on_cancel = on_cancel
        self._interval = interval
        self._clock = clock
        self._wake = asyncio.Event()
        self._sending = asyncio.Lock()
        self._last_probe = clock()  # the worker has just registered: no probe needed yet
        self._last_sent = -float("inf")
        self._probe_next = False
        self._nudged = False

    def wake(self) -> None:
        """Ask for a heartbeat (with a probe) now, e.g. because the orchestrator just came back."""
        self._probe_next = True
        self._wake.set()

    def nudge(self) -> None:
        """Ask for a heartbeat soon (a task arrived): this worker goes to the back of the dispatch line."""
        self._nudged = True
        self._wake.set()

    async def beat(self, *, urgent: bool = False) -> bool:
        """One heartbeat (after a probe when due); True when the orchestrator acknowledged it."""
        try:
            if urgent:
                return await self._send_urgent()
            # Wait for the rate-limit window outside the lock, so that an urgent beat never queues behind it.
            await self._client.budget.ready(HEARTBEAT)
            async with self._sending:  # one at a time: a routine `idle` must never overtake a `draining`
                return await self._send(urgent=False)
        except OrchestratorUnavailableError as exc:
            logger.warning("heartbeat failed: %s", exc)
        except TransportError as exc:
            logger.error("heartbeat rejected: %s", exc)
        return False

    async def _send_urgent(self) -> bool:
        try:
            async with asyncio.timeout(URGENT_REQUEST_TIMEOUT):
                await self._sending.acquire()
        except TimeoutError:  # a routine heartbeat is stuck in flight: its order no longer matters
            return await self._send(urgent=True)
        try:
            return await self._send(urgent=True)
        finally:
            self._sending.release()

    async def _send(self, urgent: bool) -> bool:
        probe = not urgent and (self._probe_next or self._clock() - self._last_probe >= PROBE_INTERVAL)
        if probe:
            self._probe_next = False
            self._last_probe = self._clock()
            if await self._client.heartbeat(None) is None:
                logger.warning("the orchestrator no longer knows this worker; registering again")
                await self._register()
        # The message is built when the request goes out, so its status is never stale.
        self._last_sent = self._clock()
        reply = await self._client.heartbeat(self._message, urgent=urgent)
        if reply is None:
            logger.warning("the orchestrator answered the heartbeat with null; registering again")
            await self._register()
        elif isinstance(reply, dict):
            self._handle_reply(reply)
        return True

    def _handle_reply(self, reply: dict[str, Any]) -> None:
        cancel_ids = reply.get("cancel_task_ids")
        if isinstance(cancel_ids, list) and cancel_ids:
            # 1.0b30 echoes *job* ids of terminal/cancelled jobs listed in current_tasks.
            logger.info("the orchestrator says these jobs are over: %s", ", ".join(map(str, cancel_ids)))
            self._on_cancel([str(job_id) for job_id in cancel_ids])

    async def run(self) -> None:
        """Heartbeat until cancelled."""
        while True:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that races
            # with its timeout, and then stop() would wait for this loop forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
                if self._nudged and not self._probe_next:  # debounce: short tasks must not flood
                    await asyncio.sleep(max(0.0, self._last_sent + MIN_NUDGE_GAP - self._clock()))
            self._wake.clear()
            self._nudged = False
            try:
                await self.beat()
            except RegistrationError as exc:
                logger.error("%s", exc)
