"""Result delivery: a durable on-disk spool plus a sender that retries until the orchestrator answers.

Every result is written to the spool (one JSON file, written to a temporary name, fsynced, renamed)
before the first send, and deleted once the orchestrator has answered `accepted` or `ignored`. At start
the spool is replayed, so a result survives a crash or a restart of the worker. Each send is sealed
afresh (new timestamp and nonce): the orchestrator rejects a repeated body as a replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from ._logging import task_context
from .errors import OrchestratorRejectedError, OrchestratorUnavailableError, TransportError
from .liveness import sync_directory, write_atomically
from .retry import Backoff
from .typing import RESULT_ACCEPTED, RESULT_IGNORED

logger = logging.getLogger(__name__)

SendResult = Callable[[dict[str, Any]], Any]  # async (message) -> reply
_SUFFIX = ".result.json"
_sequence = itertools.count()


@dataclass(frozen=True)
class PendingResult:
    """A result message waiting for delivery, and its spool file (None when it could not be written)."""

    message: dict[str, Any]
    path: Path | None

    @property
    def task_id(self) -> str:
        """The task the result is for."""
        return str(self.message.get("task_id", "?"))

    @property
    def job_id(self) -> str:
        """The job the result is for."""
        return str(self.message.get("job_id", "?"))


class ResultSpool:
    """A directory of undelivered results, one file per result, oldest first."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def save(self, message: dict[str, Any]) -> Path | None:
        """Persist `message`; returns its file, or None (logged) when the disk refuses."""
        # time_ns + a process-wide counter keep files in creation order and names unique.
        name = f"{time.time_ns():020d}-{next(_sequence):06d}-{os.getpid()}{_SUFFIX}"
        path = self.directory / name
        try:
            write_atomically(path, orjson.dumps(message), durable=True)
        except (OSError, TypeError) as exc:
            logger.error("cannot spool the result to %s (%s); it is kept in memory only", path, exc)
            return None
        return path

    def load(self) -> list[PendingResult]:
        """Every spooled result, oldest first; unreadable files are moved aside and logged."""
        if not self.directory.is_dir():
            return []
        pending: list[PendingResult] = []
        for path in sorted(self.directory.glob(f"*{_SUFFIX}")):
            try:
                message = orjson.loads(path.read_bytes())
                if not isinstance(message, dict) or "task_id" not in message:
                    raise ValueError("not a result message")
            except (OSError, ValueError) as exc:
                logger.error("spooled result %s is unreadable (%s); renamed to *.bad", path, exc)
                with contextlib.suppress(OSError):
                    path.rename(path.with_suffix(".bad"))
                continue
            pending.append(PendingResult(message, path))
        return pending

    def delete(self, path: Path | None) -> None:
        """Forget a delivered result."""
        if path is None:
            return
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        sync_directory(self.directory)


class ResultSender:
    """Queues results and delivers them in order, retrying transient failures forever."""

    def __init__(self, spool: ResultSpool, send: SendResult, backoff: Backoff) -> None:
        self._spool = spool
        self._send = send
        self._backoff = backoff
        self._queue: asyncio.Queue[PendingResult] = asyncio.Queue()
        self._loop_task: asyncio.Task[None] | None = None
        self._sending = False

    @property
    def pending(self) -> int:
        """Results not delivered yet (queued or being sent)."""
        return self._queue.qsize() + (1 if self._sending else 0)

    def submit(self, message: dict[str, Any]) -> None:
        """Spool and queue a result message (job_id, task_id, worker_id, status, data/error)."""
        self._queue.put_nowait(PendingResult(message, self._spool.save(message)))

    def replay(self) -> int:
        """Queue every result left in the spool by an earlier run; returns how many."""
        pending = self._spool.load()
        for item in pending:
            self._queue.put_nowait(item)
        if pending:
            logger.info("replaying %d undelivered result(s) from %s", len(pending), self._spool.directory)
        return len(pending)

    def start(self) -> None:
        """Start the delivery loop."""
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._deliver_forever(), name="avtomatika-results")

    async def flush(self, timeout: float) -> bool:
        """Wait until every queued result is delivered (True) or `timeout` passes (False)."""
        try:
            async with asyncio.timeout(timeout):  # not wait_for: see heartbeat.py
                await self._queue.join()
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        """Stop delivering; undelivered results stay in the spool for the next start."""
        task, self._loop_task = self._loop_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        left = self._queue.qsize()
        if left:
            logger.warning("%d result(s) not delivered yet; kept in %s", left, self._spool.directory)

    async def _deliver_forever(self) -> None:
        while True:
            item = await self._queue.get()
            self._sending = True
            try:
                with task_context(item.task_id, item.job_id):
                    await self._deliver(item)
            finally:
                self._sending = False
                self._queue.task_done()

    async def _deliver(self, item: PendingResult) -> None:
        attempt = 0
        while True:
            try:
                reply = await self._send(item.message)
            except OrchestratorRejectedError as exc:
                if exc.status == 400:  # the message itself is invalid: resending cannot help
                    logger.error("the orchestrator rejected the result (dropped): %s", exc)
                    self._spool.delete(item.path)
                    return
                error: TransportError = exc
            except (OrchestratorUnavailableError, TransportError) as exc:
                error = exc
            else:
                self._log_reply(item, reply)
                self._spool.delete(item.path)
                return
            attempt += 1
            delay = self._backoff.delay(attempt)
            log = logger.warning if attempt == 1 or attempt % 20 == 0 else logger.info
            log("sending the result failed (%s); retry %d in %.2f s", error, attempt, delay)
            await self._backoff.sleep(delay)

    @staticmethod
    def _log_reply(item: PendingResult, reply: Any) -> None:
        status = item.message.get("status")
        if isinstance(reply, dict) and reply.get("status") == RESULT_ACCEPTED:
            logger.info("result %s accepted (%s)", status, reply.get("transition", "no transition"))
        elif isinstance(reply, dict) and reply.get("status") == RESULT_IGNORED:
            logger.warning(
                "result %s ignored by the orchestrator: %s (%s)",
                status,
                reply.get("reason"),
                reply.get("message", ""),
            )
        else:
            logger.warning("unexpected reply to the result %s: %.300r", status, reply)
