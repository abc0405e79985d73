"""The stop sequence, shaped by how avtomatika 1.0b30 dispatches (docs/orchestrator-behaviours.md).

1. Look at the orchestrator's dispatch index (peers.py): is another idle worker there for our skills?
2. With peers: report `draining` at once (the dispatcher skips draining workers), give a dispatch already
   under way a moment to arrive, then abandon the open poll and leave its end time for the next process.
   Alone: stay `idle`, so that jobs created while this worker restarts queue here instead of being
   quarantined ("No suitable workers"), but never leave an open poll behind while idle: 1.0b30 would hand
   the next task to the dead connection. So wait for the poll to end (what it delivers runs), and only if
   the deadline comes first report `draining` before abandoning it.
3. Running tasks get until WORKER_SHUTDOWN_TIMEOUT; the ones still running are cancelled.
4. Hand them back: to an idle peer at once (a transient failure, which 1.0b30 re-dispatches), or, with no
   peer, to the next process with this worker id, which runs them again and reports their real result.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from .handover import MARGIN, Handover
from .heartbeat import Heartbeater
from .peers import PeerView
from .poller import Poller
from .results import ResultSender
from .runner import Interrupted, TaskRunner

logger = logging.getLogger(__name__)

# After `draining` is acknowledged, a dispatch already under way may still land in the open poll.
POLL_GRACE = 0.5
# After the deadline, hand-backs get this long (the whole stop ends by the timeout + 2 s).
TAIL = 0.7
PEEK_TIMEOUT = 0.5

Peek = Callable[[Iterable[str]], Awaitable[PeerView | None]]


@dataclass
class Stopping:
    """The parts a stop works with; `set_draining` switches the status heartbeats report."""

    worker_id: str
    skills: list[str]
    heartbeater: Heartbeater
    poller: Poller
    poll_loop: asyncio.Task[None] | None
    runner: TaskRunner
    results: ResultSender
    handover: Handover
    peek: Peek
    poll_hold: float
    set_draining: Callable[[bool], None]
    force: asyncio.Event
    reported_draining: bool = False

    async def run(self, deadline: float) -> None:
        """Steps 1-4 (module docstring); `deadline` is loop time."""
        self.poller.stop()
        view = await self._peek(self.skills)
        alone = view is not None and view.indexed and not set(self.skills) <= view.skills
        if alone:
            logger.info(
                "no other idle worker has all these skills: staying idle while stopping, so jobs queue here"
            )
            await self._wait_for_poll(deadline)
        else:
            await self._report_draining()
            await self._wait_for_poll(min(deadline, _now() + POLL_GRACE))
        await self._abandon_poll()
        await self.runner.drain(deadline, self.force)
        interrupted = self.runner.interrupted
        if self.force.is_set():
            self.handover.save_tasks([item.task for item in interrupted])
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(deadline + TAIL):
                await self._hand_back(interrupted)

    async def _peek(self, skills: Iterable[str]) -> PeerView | None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(PEEK_TIMEOUT):
                return await self.peek(skills)
        return None

    async def _report_draining(self) -> None:
        if not self.reported_draining:
            self.reported_draining = True
            self.set_draining(True)
            await self.heartbeater.beat(urgent=True)

    async def _wait_for_poll(self, until: float) -> None:
        """Until the open poll ends (the poll loop stops after it), `until` (loop time) or a forced stop."""
        loop = self.poll_loop
        if loop is None or self.poller.open_since is None:
            return
        forced = asyncio.create_task(self.force.wait())
        try:
            await asyncio.wait(
                {loop, forced}, timeout=max(0.0, until - _now()), return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            forced.cancel()

    async def _abandon_poll(self) -> None:
        opened = self.poller.open_since
        if opened is not None:
            await self._report_draining()  # before the poll dies: the orchestrator must stop choosing us
        if self.poll_loop is not None:
            self.poll_loop.cancel()
            await asyncio.gather(self.poll_loop, return_exceptions=True)
        if opened is not None:
            until = opened + self.poll_hold + MARGIN
            self.handover.leave_poll(until)
            logger.info(
                "abandoned the open task poll; the orchestrator may hold it %.0f s more", until - time.time()
            )

    async def _hand_back(self, interrupted: list[Interrupted]) -> None:
        if not interrupted:
            return
        view = await self._peek({item.task["type"] for item in interrupted})
        if view is not None and not view.indexed:  # not 1.0b30's Redis (e.g. the mock): it re-queues them
            report, keep = interrupted, []
        else:
            peers = view.skills if view is not None else set()
            report = [item for item in interrupted if item.task["type"] in peers]
            keep = [item for item in interrupted if item.task["type"] not in peers]
        if keep and self.handover.save_tasks([item.task for item in keep]) < len(keep):
            report, keep = interrupted, []
        for item in report:
            self.results.submit(item.result, urgent=True)  # 1.0b30 re-dispatches it to an idle worker at once
        if keep:
            logger.warning(
                "%d interrupted task(s) kept for the next process with worker id %s, which runs them again "
                "(no other idle worker can take them now; if no such process starts before their timeout, "
                "the orchestrator re-dispatches them itself)",
                len(keep),
                self.worker_id,
            )


def _now() -> float:
    return asyncio.get_running_loop().time()
