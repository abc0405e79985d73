"""Late replies: one warning naming the request and how long it has waited, and a stall signal for liveness.

A stalled orchestrator (replies that take tens of seconds) otherwise looks exactly like an idle worker
in the log. A poll is late once it has been held longer than the orchestrator's hold (learned from empty
polls; 1.0b30's default WORKER_POLL_TIMEOUT_SECONDS is 30) plus a margin; anything else after a few s.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)

DEFAULT_POLL_HOLD = 30.0
POLL_MARGIN = 10.0
REPLY_EXPECTED = 5.0


@dataclass(eq=False)
class Pending:
    """One request in flight."""

    what: str
    started: float
    expected: float
    late: bool = False


class ReplyWatch:
    """Times each request; `on_stall` is told when one is late (the liveness file counts it as trouble)."""

    def __init__(
        self,
        on_stall: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        reply_expected: float = REPLY_EXPECTED,
        poll_margin: float = POLL_MARGIN,
    ) -> None:
        self._on_stall = on_stall
        self._clock = clock
        self._reply_expected = reply_expected
        self._poll_margin = poll_margin
        self._hold: float | None = None
        self._pending: set[Pending] = set()
        # One timer for all requests in flight, due at the earliest deadline (hot path: no timer per request).
        self._timer: asyncio.TimerHandle | None = None
        self._due = math.inf  # loop time the timer fires at
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def poll_hold(self) -> float:
        """The orchestrator's poll hold: the longest empty poll seen, else 1.0b30's default."""
        return self._hold if self._hold is not None else DEFAULT_POLL_HOLD

    def start(self, what: str, *, poll: bool = False) -> Pending:
        """Start timing a request described by `what` (e.g. `POST /_worker/tasks/result`)."""
        expected = self.poll_hold + self._poll_margin if poll else self._reply_expected
        pending = Pending(what, self._clock(), expected)
        self._pending.add(pending)
        loop = asyncio.get_running_loop()
        due = loop.time() + expected
        if due < self._due or self._loop is not loop:
            self._schedule(loop, due)
        return pending

    def finish(self, pending: Pending, *, empty_poll: bool = False) -> float:
        """Stop timing; returns how long the request took (an empty poll also teaches the hold)."""
        self._pending.discard(pending)
        took = self._clock() - pending.started
        if empty_poll:
            self._hold = took if self._hold is None else max(self._hold, took)
        if pending.late:
            logger.info("the orchestrator answered %s after %.1f s", pending.what, took)
        return took

    def _schedule(self, loop: asyncio.AbstractEventLoop, due: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._due, self._loop = loop.call_at(due, self._sweep), due, loop

    def _sweep(self) -> None:
        """Mark the requests past their deadline late; wake again at the next deadline, if any."""
        self._timer, self._due = None, math.inf
        now, next_in = self._clock(), math.inf
        for pending in list(self._pending):
            if pending.late:
                continue
            left = pending.expected - (now - pending.started)
            if left <= 0:
                self._late(pending)
            else:
                next_in = min(next_in, left)
        if next_in < math.inf:
            loop = asyncio.get_running_loop()
            self._schedule(loop, loop.time() + next_in)

    def _late(self, pending: Pending) -> None:
        pending.late = True
        logger.warning(
            "still waiting for the orchestrator's reply to %s after %.0f s (expected within %.0f s): it is "
            "slow or stalled",
            pending.what,
            self._clock() - pending.started,
            pending.expected,
        )
        if self._on_stall is not None:
            self._on_stall()
