"""Pacing under the orchestrator's per-worker rate limits, so that a worker never locks itself out.

avtomatika 1.0b30 (`engine.py`, `handle_rxon_message`; `storage/redis.py`, `increment_key_with_ttl`)
counts each worker's requests per message type with INCR + EXPIRE `RATE_LIMIT_PERIOD` on *every*
request, refused ones included: the counter resets only after a full period without a request of that
type. A worker that never pauses is refused for good once it reaches the limit, and one that retries a
429 sooner than the period never gets back in. `RateBudget` mirrors that counter for each message type
and plans a pause of one period before the limit is reached; after a 429 it keeps the type silent for
`Retry-After` or one period, whichever is longer. See docs/orchestrator-behaviours.md.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from . import observe

logger = logging.getLogger(__name__)

POLL = "poll"
HEARTBEAT = "heartbeat"
REGISTER = "register"
RESULT = "result"
EVENT = "event"
WEBSOCKET = "websocket"
KINDS = (POLL, HEARTBEAT, REGISTER, RESULT, EVENT, WEBSOCKET)

# The window resets this long after the last request of a type ends (the orchestrator's key expires one
# period after that request reached it, which is earlier): only clock-rate differences need covering.
MARGIN = 0.5
# Each poll brings at most one result, a few ms later, so the result window would open a few ms after the
# poll window and never reset (it only resets after a period of silence): a poll that opens a new window
# waits for the result window to reset too, when that is at most ALIGN_WAIT away.
FEEDS = {POLL: RESULT}
ALIGN_WAIT = 5.0
# Requests kept back from routine traffic for the ones a stop needs (draining, hand-back results): up to
# this many, and never more than a quarter of the limit.
_RESERVE = {HEARTBEAT: 3, RESULT: 3}

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class RateLimits:
    """The orchestrator's limits per worker: requests per `period` seconds, by message type."""

    poll: int = 60
    heartbeat: int = 120
    other: int = 100  # register, result, event, WebSocket upgrade
    period: float = 60.0
    enabled: bool = True

    def limit(self, kind: str) -> int:
        """The limit for one message type."""
        return {POLL: self.poll, HEARTBEAT: self.heartbeat}.get(kind, self.other)

    def describe(self) -> str:
        """The settings as WORKER_RATE_LIMITS would spell them."""
        if not self.enabled:
            return "off"
        return f"poll={self.poll},heartbeat={self.heartbeat},other={self.other},period={self.period:g}"

    @classmethod
    def parse(cls, text: str) -> RateLimits:
        """`off`, `on`/`defaults`, or `poll=60,heartbeat=120,other=100,period=60` (any subset)."""
        words = text.strip().lower()
        if words in ("off", "false", "no", "0", "none"):
            return cls(enabled=False)
        if words in ("on", "true", "yes", "1", "default", "defaults"):
            return cls()
        values: dict[str, Any] = {}
        for item in filter(None, (part.strip() for part in words.split(","))):
            name, sep, raw = item.partition("=")
            name = name.strip()
            if not sep or name not in ("poll", "heartbeat", "other", "period") or name in values:
                raise ValueError(f"unknown or repeated entry {item!r}")
            number = float(raw)
            if not math.isfinite(number) or number <= 0 or (name != "period" and number != int(number)):
                raise ValueError(f"{name} must be a positive {'number' if name == 'period' else 'integer'}")
            values[name] = number if name == "period" else int(number)
        if not values:
            raise ValueError("empty")
        return replace(cls(), **values)


@dataclass
class _Window:
    """One message type's counter, as the orchestrator keeps it (our best knowledge of it)."""

    kind: str
    limit: int
    count: int = 0
    in_flight: int = 0
    last_end: float = -math.inf  # when the latest request of this type ended
    blocked_until: float = -math.inf  # after a 429: nothing of this type before then
    pausing: bool = False
    pauses: int = 0
    refusals: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)


class RateBudget:
    """Admits each request only when the orchestrator will accept it; `clock` and `sleep` are test seams."""

    def __init__(
        self,
        limits: RateLimits,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        margin: float = MARGIN,
    ) -> None:
        self.limits = limits
        self._clock = clock
        self._sleep = sleep
        self._margin = margin
        self._windows = {kind: _Window(kind, limits.limit(kind)) for kind in KINDS}
        for window in self._windows.values():
            window.idle.set()

    def stats(self) -> dict[str, dict[str, int]]:
        """Per message type: requests counted in the current window, planned pauses, 429s received."""
        return {
            w.kind: {"count": w.count, "pauses": w.pauses, "refusals": w.refusals}
            for w in self._windows.values()
        }

    def delay(self, kind: str, *, urgent: bool = False) -> float:
        """Seconds before a request of `kind` may go out (0: now; inf: once requests in flight end)."""
        window = self._windows[kind]
        now = self._clock()
        self._expire(window, now)
        if self._admits(window, now, urgent):
            return 0.0
        return math.inf if window.in_flight else max(0.0, self._reset_at(window) - now)

    async def acquire(self, kind: str, *, urgent: bool = False) -> None:
        """Wait until a request of `kind` may go out and count it; pair with `release`."""
        window = self._windows[kind]
        await self._room(window, urgent)
        self._take(window)

    async def ready(self, kind: str) -> None:
        """Wait until a routine request of `kind` could go out (nothing is counted)."""
        await self._room(self._windows[kind], urgent=False)

    async def _room(self, window: _Window, urgent: bool) -> None:
        while True:
            now = self._clock()
            self._expire(window, now)
            if self._admits(window, now, urgent):
                align = self._align_wait(window, now)
                if align <= 0:
                    return
                await self._sleep(align)
                continue
            if window.in_flight:
                await window.idle.wait()
                continue
            wait = self._reset_at(window) - now
            self._log_pause(window, wait)
            await self._sleep(wait)

    def try_acquire(self, kind: str) -> bool:
        """Count a request of `kind` if it may go out now (for best-effort messages such as progress)."""
        window = self._windows[kind]
        now = self._clock()
        self._expire(window, now)
        if not self._admits(window, now, urgent=False):
            return False
        self._take(window)
        return True

    def release(self, kind: str) -> None:
        """A request of `kind` has ended (answered, failed or abandoned)."""
        window = self._windows[kind]
        window.in_flight = max(0, window.in_flight - 1)
        window.last_end = self._clock()
        if not window.in_flight:
            window.idle.set()

    def refused(self, kind: str, retry_after: float | None) -> None:
        """The orchestrator answered 429: its counter is over the limit; stay silent until it expires."""
        window = self._windows[kind]
        now = self._clock()
        window.refusals += 1
        window.count = max(window.count, window.limit)
        silence = max(retry_after or 0.0, self.limits.period) + self._margin
        first = window.blocked_until < now
        window.blocked_until = max(window.blocked_until, now + silence)
        if first:
            log = logger.warning if window.refusals == 1 else logger.info
            log(
                "the orchestrator refused a %s request with 429 (rate limit); sending no %s requests for "
                "%.0f s so that its counter resets (WORKER_RATE_LIMITS=%s should match the orchestrator's "
                "RATE_LIMIT_* settings)",
                kind,
                kind,
                silence,
                self.limits.describe(),
            )

    def snapshot(self, wall: float) -> dict[str, Any]:
        """The windows as wall-clock times, for a restarted process with the same worker id."""
        now = self._clock()
        saved = {}
        for w in self._windows.values():
            count = w.count if self.limits.enabled else 0
            if count or w.blocked_until > now:
                saved[w.kind] = {
                    "count": count,
                    "last_end": wall - (now - w.last_end) if math.isfinite(w.last_end) else None,
                    "blocked_until": wall + (w.blocked_until - now) if w.blocked_until > now else None,
                }
        return saved

    def restore(self, saved: Mapping[str, Any], wall: float) -> None:
        """Adopt a predecessor's windows (see `snapshot`); stale or malformed entries are ignored."""
        now = self._clock()
        for kind, entry in saved.items():
            window = self._windows.get(kind)
            if window is None or not isinstance(entry, dict):
                continue
            count, last_end, blocked = entry.get("count"), entry.get("last_end"), entry.get("blocked_until")
            if isinstance(count, int) and isinstance(last_end, int | float):
                window.count = count
                window.last_end = now - (wall - last_end)
            if isinstance(blocked, int | float):
                window.blocked_until = now + (blocked - wall)
            self._expire(window, now)

    # ---- internals -------------------------------------------------------------------------------

    def _budget(self, window: _Window, urgent: bool) -> int:
        reserve = 0 if urgent else min(_RESERVE.get(window.kind, 0), window.limit // 4)
        return window.limit - reserve

    def _align_wait(self, window: _Window, now: float) -> float:
        """How long a request opening a new window waits for the window it feeds to reset (0: not at all)."""
        fed = self._windows.get(FEEDS.get(window.kind, ""))
        if fed is None or window.count or window.in_flight or not self.limits.enabled:
            return 0.0
        self._expire(fed, now)
        if not fed.count or fed.in_flight:
            return 0.0
        wait = self._reset_at(fed) - now
        return wait if 0 < wait <= ALIGN_WAIT else 0.0

    def _admits(self, window: _Window, now: float, urgent: bool) -> bool:
        if now < window.blocked_until:
            return False
        return not self.limits.enabled or window.count < self._budget(window, urgent)

    def _reset_at(self, window: _Window) -> float:
        quiet = window.last_end + self.limits.period + self._margin
        return max(window.blocked_until, quiet if self.limits.enabled else window.blocked_until)

    def _expire(self, window: _Window, now: float) -> None:
        if not window.in_flight and now >= window.last_end + self.limits.period + self._margin:
            window.count = 0
        if window.pausing and self._admits(window, now, urgent=True):
            window.pausing = False

    def _take(self, window: _Window) -> None:
        window.count += 1
        window.in_flight += 1
        window.idle.clear()

    def _log_pause(self, window: _Window, wait: float) -> None:
        if window.pausing or self._clock() < window.blocked_until:
            return  # one line per pause; a 429 pause was announced by refused()
        window.pausing = True
        window.pauses += 1
        observe.get().on_rate_limit_pause(window.kind)
        if window.pauses == 1:
            logger.warning(
                "pacing %s requests: %d sent in the orchestrator's current %g s rate-limit window (its "
                "limit is %d per worker, WORKER_RATE_LIMITS=%s); pausing them for %.1f s so that the window "
                "resets instead of locking this worker out",
                window.kind,
                window.count,
                self.limits.period,
                window.limit,
                self.limits.describe(),
                wait,
            )
        else:
            logger.info("pacing %s requests: pausing %.1f s (rate-limit window full)", window.kind, wait)
