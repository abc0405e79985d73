"""What a stopping process leaves, in its spool directory, for the next process with the same worker id.

- `poll-open-until.json`: a long poll this process abandoned is still held by the orchestrator until
  then. 1.0b30 keeps serving a poll whose client has gone (aiohttp does not cancel the handler) and
  hands it the next task queued for this worker id, which is then lost until the job times out. The
  next process keeps the worker id out of dispatch until that time has passed.
- `*.task.json`: tasks the stop interrupted that no other worker could take at once: the next process
  runs them again and reports their real result (the orchestrator still has them assigned to this
  worker id), so a restart costs the job none of its retries.
- `rate-limits.json`: the rate-limit windows, since the orchestrator's counters outlive the process.
An unclean exit (SIGKILL, OOM) leaves the liveness file behind instead: its last update bounds when the
dead process last polled. See docs/orchestrator-behaviours.md.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from .liveness import read_liveness, sync_directory, write_atomically

logger = logging.getLogger(__name__)

POLL_MARKER = "poll-open-until.json"
RATE_LIMITS = "rate-limits.json"
_TASK_SUFFIX = ".task.json"
# A dead process's last poll began at most one heartbeat interval after its last liveness update (an idle
# worker heartbeats every interval); the orchestrator holds it for its poll hold after that, plus this.
MARGIN = 1.0


class Handover:
    """Reads and writes the hand-over files of one worker id (`clock`: wall-clock seconds)."""

    def __init__(self, directory: Path, worker_id: str, clock: Callable[[], float] = time.time) -> None:
        self.directory = directory
        self._worker_id = worker_id
        self._clock = clock

    def leave_poll(self, until: float) -> None:
        """Record that an abandoned poll may be held by the orchestrator until `until` (wall clock)."""
        self._write(POLL_MARKER, {"worker_id": self._worker_id, "until": until})

    def predecessor_poll(
        self, liveness_file: Path, heartbeat_interval: float, poll_hold: float
    ) -> float | None:
        """Until when (wall clock) a previous process's poll may still be open, or None if it cannot be."""
        marker = self._take(POLL_MARKER)
        mine = isinstance(marker, dict) and marker.get("worker_id") == self._worker_id
        until = marker.get("until") if mine else None
        candidates = [float(until)] if isinstance(until, int | float) else []
        with contextlib.suppress(OSError, ValueError):
            left = read_liveness(liveness_file)  # a clean stop removes it: this one outlived its process
            if left.get("worker_id") == self._worker_id:
                hold = left.get("poll_hold")
                hold = float(hold) if isinstance(hold, int | float) and hold > 0 else poll_hold
                candidates.append(float(left["updated"]) + heartbeat_interval + hold + MARGIN)
        latest = max(candidates, default=None)
        return latest if latest is not None and latest > self._clock() else None

    def save_tasks(self, tasks: list[dict[str, Any]]) -> int:
        """Keep interrupted tasks for the next process; returns how many were written."""
        written = 0
        for task in tasks:
            name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}{_TASK_SUFFIX}"
            with contextlib.suppress(OSError, TypeError):
                write_atomically(self.directory / name, orjson.dumps(task), durable=True)
                written += 1
        return written

    def take_tasks(self) -> list[dict[str, Any]]:
        """The tasks a previous process left to run again (oldest first); their files are removed."""
        if not self.directory.is_dir():
            return []
        tasks = []
        for path in sorted(self.directory.glob(f"*{_TASK_SUFFIX}")):
            try:
                task = orjson.loads(path.read_bytes())
            except (OSError, orjson.JSONDecodeError) as exc:
                logger.error("cannot read the interrupted task %s (%s); skipped", path, exc)
                task = None
            with contextlib.suppress(OSError):
                path.unlink()
            if isinstance(task, dict):
                tasks.append(task)
        sync_directory(self.directory)
        return tasks

    def save_rate_limits(self, snapshot: dict[str, Any]) -> None:
        """Keep the rate-limit windows (wall-clock times) for the next process."""
        if snapshot:
            self._write(RATE_LIMITS, {"worker_id": self._worker_id, "windows": snapshot})

    def take_rate_limits(self) -> dict[str, Any]:
        """A previous process's rate-limit windows, if it left any for this worker id."""
        saved = self._take(RATE_LIMITS)
        if isinstance(saved, dict) and saved.get("worker_id") == self._worker_id:
            windows = saved.get("windows")
            return windows if isinstance(windows, dict) else {}
        return {}

    def _write(self, name: str, content: dict[str, Any]) -> None:
        try:
            write_atomically(self.directory / name, orjson.dumps(content), durable=True)
        except OSError as exc:
            logger.warning("cannot write %s for the next process (%s)", self.directory / name, exc)

    def _take(self, name: str) -> Any:
        path = self.directory / name
        try:
            content = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return None
        with contextlib.suppress(OSError):
            path.unlink()
        return content
