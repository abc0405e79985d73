"""The one seam for metrics and tracing: call sites report to `get()`, a no-op unless a port or OTel is set.

Call sites stay one line each (`observe.get().on_...`); `metrics.Metrics` is the real observer when
WORKER_METRICS_PORT is set. Labels are bounded: skills, outcomes, request kinds and cancel channels, never
task or job ids.
"""

from __future__ import annotations

# Cancel sources (cancellation.py) folded into a bounded `channel` label.
CHANNELS = {
    "Redis flag": "redis",
    "WebSocket command": "websocket",
    "heartbeat reply": "heartbeat",
    "before it started": "early",
}


class Observer:
    """What the worker reports about itself; this base observes nothing (one no-op call per event)."""

    def on_task_start(self, skill: str) -> None:
        """A task of `skill` started running."""

    def on_task_end(self, skill: str, outcome: str, seconds: float) -> None:
        """A task of `skill` ended with `outcome` (a result status, or `interrupted`) after `seconds`."""

    def on_request(self, kind: str, seconds: float, ok: bool) -> None:
        """A request of message type `kind` (poll, heartbeat, result, ...) ended after `seconds`."""

    def on_rate_limit_pause(self, kind: str) -> None:
        """Requests of `kind` paused for the orchestrator's rate-limit window."""

    def on_spool(self, delta: int) -> None:
        """The result spool grew (+) or shrank (-) by `delta` files."""

    def on_cancel(self, source: str) -> None:
        """A running task was cancelled through `source` (a cancellation.py source text)."""


NO_OBSERVER = Observer()

_current: Observer = NO_OBSERVER


def get() -> Observer:
    """The observer events go to."""
    return _current


def install(observer: Observer | None) -> None:
    """Send events to `observer` (None: back to the no-op default)."""
    global _current
    _current = observer if observer is not None else NO_OBSERVER
