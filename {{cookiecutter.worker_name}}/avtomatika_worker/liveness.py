"""The liveness file: written by the running worker, read by `python -m avtomatika_worker.health`.

Format: JSON `{"status": "ok" | "unreachable", "updated": <epoch float>, "worker_id": ...}`. The worker
rewrites it after successful orchestrator exchanges (at most once per `MIN_REWRITE_SECONDS`) and marks
it `unreachable` once every exchange has failed for longer than two heartbeat intervals. A worker whose
event loop is stuck stops rewriting it, so the file goes stale.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

logger = logging.getLogger(__name__)

OK = "ok"
UNREACHABLE = "unreachable"
MIN_REWRITE_SECONDS = 1.0

Clock = Callable[[], float]


def write_atomically(path: Path, data: bytes, *, durable: bool = False) -> None:
    """Write `data` to a temporary sibling and rename it over `path` (readers never see half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        if durable:
            handle.flush()
            os.fsync(handle.fileno())
    os.replace(tmp, path)
    if durable:
        sync_directory(path.parent)


def sync_directory(directory: Path) -> None:
    """fsync a directory so that a rename or unlink inside it survives a crash (no-op where unsupported)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class LivenessFile:
    """Tracks whether the orchestrator is reachable and mirrors it into the liveness file."""

    def __init__(
        self, path: Path, worker_id: str, unreachable_after: float, clock: Clock = time.time
    ) -> None:
        self._path = path
        self._worker_id = worker_id
        self._unreachable_after = unreachable_after
        self._clock = clock
        self._last_ok: float | None = None
        self._failing_since: float | None = None
        self._written: tuple[str, float] | None = None
        self._write_failed = False

    def observe(self, reachable: bool) -> None:
        """Record the outcome of one orchestrator exchange (the transport's observer)."""
        now = self._clock()
        if reachable:
            self._failing_since = None
            self._last_ok = now
            self._write(OK, now)
            return
        if self._failing_since is None:
            self._failing_since = now
        if now - self._failing_since > self._unreachable_after:
            self._write(UNREACHABLE, now)

    def _write(self, status: str, now: float) -> None:
        if self._written is not None:
            last_status, last_time = self._written
            if last_status == status and now - last_time < MIN_REWRITE_SECONDS:
                return
        body = orjson.dumps({"status": status, "updated": now, "worker_id": self._worker_id})
        try:
            write_atomically(self._path, body)
        except OSError as exc:
            if not self._write_failed:  # once: the worker itself is fine, only its health signal is not
                logger.warning("cannot write the liveness file %s: %s", self._path, exc)
                self._write_failed = True
            return
        self._write_failed = False
        self._written = (status, now)

    def remove(self) -> None:
        """Delete the file (on a clean stop) so that a stopped worker never looks healthy."""
        with contextlib.suppress(OSError):
            self._path.unlink()
        self._written = None


def read_liveness(path: Path) -> dict[str, Any]:
    """Parse the liveness file; raises OSError or ValueError with a readable message."""
    data = orjson.loads(path.read_bytes())
    if not isinstance(data, dict) or not isinstance(data.get("updated"), int | float):
        raise ValueError(f"{path} is not a liveness file (expected JSON with 'status' and 'updated')")  # noqa: TRY004
    return data
