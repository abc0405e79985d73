"""Heartbeats: keep the worker's record alive, report idle/busy promptly, re-register when forgotten."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from .errors import OrchestratorUnavailableError, RegistrationError, TransportError
from .transport import OrchestratorClient
from .typing import BUSY, IDLE

logger = logging.getLogger(__name__)

# Status changes trigger an extra heartbeat, at most one per this many seconds (the orchestrator
# rate-limits heartbeats to 120/min).
MIN_TRIGGERED_GAP = 1.0
# Every slot must stay taken this long before the worker reports `busy`. A `busy` sampled while a short
# task runs is stale when it arrives, and the real orchestrator quarantines a job for which it finds no
# idle worker ("No suitable workers"), so back-to-back short tasks must keep the worker `idle`.
BUSY_AFTER = 1.0


class Heartbeater:
    """Sends a heartbeat every interval, and at once (debounced) when the idle/busy status changes."""

    def __init__(
        self,
        client: OrchestratorClient,
        message: Callable[[], dict[str, Any]],
        register: Callable[[], Awaitable[None]],
        on_cancel: Callable[[Iterable[str]], None],
        interval: float,
    ) -> None:
        self._client = client
        self._message = message
        self._register = register
        self._on_cancel = on_cancel
        self._interval = interval
        self._wake = asyncio.Event()
        self._last_status: str | None = None
        self._last_sent = float("-inf")

    def status_changed(self, status: str) -> None:
        """Ask for a heartbeat soon if `status` differs from what the orchestrator last heard."""
        if status != self._last_status:
            self._wake.set()

    def wake(self) -> None:
        """Ask for a heartbeat now (e.g. the orchestrator just came back)."""
        self._wake.set()

    async def beat(self) -> None:
        """One heartbeat: an empty probe (re-register if forgotten), then the signed status report."""
        loop = asyncio.get_running_loop()
        try:
            # Only an empty-body heartbeat reveals whether the orchestrator still knows this worker
            # (JSON null if not): a signed one for an unknown worker is answered "ok" and dropped.
            if await self._client.refresh_ttl() is None:
                logger.warning("the orchestrator no longer knows this worker; registering again")
                await self._register()
            message = self._message()
            reply = await self._client.heartbeat(message)
        except OrchestratorUnavailableError as exc:
            logger.warning("heartbeat failed: %s", exc)
            return
        except TransportError as exc:
            logger.error("heartbeat rejected: %s", exc)
            return
        self._last_status = message.get("status")
        self._last_sent = loop.time()
        if reply is None:
            logger.warning("the orchestrator answered the heartbeat with null; registering again")
            await self._register()
        elif isinstance(reply, dict):
            self._handle_reply(reply)

    def _handle_reply(self, reply: dict[str, Any]) -> None:
        cancel_ids = reply.get("cancel_task_ids")
        if isinstance(cancel_ids, list) and cancel_ids:
            # 1.0b30 echoes *job* ids of terminal/cancelled jobs listed in current_tasks.
            logger.info("the orchestrator says these jobs are over: %s", ", ".join(map(str, cancel_ids)))
            self._on_cancel([str(job_id) for job_id in cancel_ids])

    async def run(self) -> None:
        """Heartbeat until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that
                # races with its timeout, and then stop() would wait for this loop forever.
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
                # Woken by a status change: debounce so that short tasks cannot flood the orchestrator.
                gap = self._last_sent + MIN_TRIGGERED_GAP - loop.time()
                if gap > 0:
                    await asyncio.sleep(gap)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.beat()
            except RegistrationError as exc:
                logger.error("%s", exc)


class StatusPolicy:
    """The status to report: `busy` while draining or once every slot has been taken for `busy_after` s."""

    def __init__(self, capacity: int, busy_after: float, on_change: Callable[[], None]) -> None:
        self._capacity = capacity
        self._busy_after = busy_after
        self._on_change = on_change
        self._saturated_since: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.draining = False

    def update(self, running: int) -> None:
        """Record how many tasks run now; on a change of saturation tells `on_change` at once, and again
        when `busy` becomes due."""
        saturated = running >= self._capacity
        if saturated == (self._saturated_since is not None):
            return  # called for every task start and end: stay cheap when nothing changes
        if saturated:
            loop = asyncio.get_running_loop()
            self._saturated_since = loop.time()
            self._timer = loop.call_later(self._busy_after, self._on_change)
        else:
            self._saturated_since = None
            self._cancel_timer()
        self._on_change()

    def status(self) -> str:
        """`idle` or `busy`, as the orchestrator should see the worker now."""
        if self.draining:
            return BUSY
        since = self._saturated_since
        saturated_long = since is not None and asyncio.get_running_loop().time() - since >= self._busy_after
        return BUSY if saturated_long else IDLE

    def close(self) -> None:
        """Drop the pending `busy` timer."""
        self._cancel_timer()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
