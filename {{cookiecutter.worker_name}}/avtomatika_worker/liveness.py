"""The liveness file: written by the running worker, read by `python -m avtomatika_worker.health`.

Format: JSON `{"status": "ok" | "unreachable", "updated": <epoch float>, "worker_id": ...}`. The worker
rewrites it after successful orchestrator exchanges (at most once per `MIN_REWRITE_SECONDS`) and marks
it `unreachable` once nothing has succeeded for two heartbeat intervals while requests fail or stall. A
worker whose event loop is stuck stops rewriting it, so the file goes stale.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from .config import WorkerConfig

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
    """Tracks whether the orchestrator is reachable and mirrors it into the liveness file.

    `unreachable` means: nothing has succeeded for `unreachable_after` seconds *and* something went
    wrong meanwhile (a failed request, or one stalled past its expected reply time). A worker that is
    silent on purpose (pacing under rate limits) stays `ok`.
    """

    def __init__(
        self, path: Path, worker_id: str, unreachable_after: float, clock: Clock = time.time
    ) -> None:
        self._path = path
        self._worker_id = worker_id
        self._unreachable_after = unreachable_after
        self._clock = clock
        self._last_ok: float | None = None
        self._trouble_since: float | None = None
        self._written: tuple[str, float] | None = None
        self._write_failed = False
        self._timer: asyncio.TimerHandle | None = None
        # More fields for the file (e.g. the orchestrator's poll hold, for a successor: handover.py).
        self.details: Callable[[], dict[str, Any]] | None = None

    def observe(self, reachable: bool) -> None:
        """Record the outcome of one orchestrator exchange (the transport's observer)."""
        now = self._clock()
        if reachable:
            self._trouble_since = None
            self._last_ok = now
            self._cancel_timer()
            self._write(OK, now)
            return
        self.trouble()

    def trouble(self) -> None:
        """A request failed or stalled: unreachable once nothing has succeeded for the grace period."""
        now = self._clock()
        if self._trouble_since is None:
            self._trouble_since = now
        self._evaluate()
        reported = self._written is not None and self._written[0] == UNREACHABLE
        if self._timer is None and not reported:
            with contextlib.suppress(RuntimeError):  # no running loop: evaluated on the next call only
                due = self._reference() + self._unreachable_after - now
                self._timer = asyncio.get_running_loop().call_later(max(0.0, due) + 0.01, self._due)

    def _reference(self) -> float:
        since = self._trouble_since if self._trouble_since is not None else self._clock()
        return self._last_ok if self._last_ok is not None else since

    def _due(self) -> None:
        self._timer = None
        self._evaluate()

    def _evaluate(self) -> None:
        now = self._clock()
        if self._trouble_since is not None and now - self._reference() > self._unreachable_after:
            self._write(UNREACHABLE, now)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _write(self, status: str, now: float) -> None:
        if self._written is not None:
            last_status, last_time = self._written
            if last_status == status and now - last_time < MIN_REWRITE_SECONDS:
                return
        content = {"status": status, "updated": now, "worker_id": self._worker_id}
        if self.details is not None:
            content.update(self.details())
        body = orjson.dumps(content)
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
        self._cancel_timer()
        with contextlib.suppress(OSError):
            self._path.unlink()
        self._written = None


def read_liveness(path: Path) -> dict[str, Any]:
    """Parse the liveness file; raises OSError or ValueError with a readable message."""
    data = orjson.loads(path.read_bytes())
    if not isinstance(data, dict) or not isinstance(data.get("updated"), int | float):
        raise ValueError(f"{path} is not a liveness file (expected JSON with 'status' and 'updated')")  # noqa: TRY004
    return data


def max_age(config: WorkerConfig) -> float:
    """How old the file may be before the worker counts as stuck."""
    return 3 * config.heartbeat_interval + config.poll_timeout


def check(path: Path, oldest: float, now: float) -> str | None:
    """Return why the worker is unhealthy, or None when it is healthy."""
    try:
        data = read_liveness(path)
    except FileNotFoundError:
        return f"no liveness file at {path} (the worker has not reached the orchestrator yet, or stopped)"
    except (OSError, ValueError) as exc:
        return f"cannot read the liveness file {path}: {exc}"
    age = now - float(data["updated"])
    if data.get("status") != OK:
        return f"the worker reports {data.get('status')!r}: it cannot reach the orchestrator"
    if age > oldest:
        return f"the liveness file is {age:.0f} s old (limit {oldest:.0f} s): the worker looks stuck"
    return None
