"""Result delivery: a first send at once, then a durable on-disk spool and in-order retries until answered.

A result is sent as soon as its task ends, with nothing written to disk: that keeps the common case at
one HTTP round trip. First sends go one at a time (RESULTS_IN_FLIGHT), as the official SDK's do:
avtomatika 1.0b30 updates the worker's record with an optimistic lock (WATCH, retried until it wins) for
every success result, so results of one worker sent side by side mostly retry each other's update. At
concurrency 8 one in flight drained 120 jobs at 133 tasks/s (median of 4), two at 84, eight at 63; the
mock was faster with one too (docs/orchestrator-behaviours.md). If that first send fails, or while
earlier results are still being retried, the result is written to the spool (one JSON file, written to a
temporary name, fsynced, renamed) and retried in order with backoff until the orchestrator answers
`accepted` or `ignored`. At stop, every result not delivered yet (including first sends still in flight)
is spooled; at start the spool is replayed, so a result survives a restart and an orchestrator outage.
Only a result whose first send is in flight when the process is killed outright (SIGKILL, OOM) is
lost; the orchestrator's execution timeout then re-dispatches the task. Each send is sealed afresh (new
timestamp and nonce): the orchestrator rejects a repeated body as a replay. A result that would have to
wait for the rate-limit window goes straight to the spool and waits there, in order.

A failure result answered with HTTP 500 by the orchestrator itself is not sent again: 1.0b30 counts the
retry and saves the job before it tries to re-dispatch, so its "No suitable workers" 500 comes after it
has acted, and every re-send would burn another of the job's retries (engine.py, handle_task_failure).
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

from . import observe
from ._logging import task_context
from .errors import OrchestratorRejectedError, OrchestratorUnavailableError, TransportError
from .liveness import sync_directory, write_atomically
from .retry import Backoff, level_for
from .typing import FAILURE, RESULT_ACCEPTED, RESULT_IGNORED

logger = logging.getLogger(__name__)

SendResult = Callable[..., Any]  # async (message, *, urgent=False) -> reply
CanSend = Callable[[], bool]  # whether a result may go out now (the rate-limit window has room)
_SUFFIX = ".result.json"
STEAL_RACE = (
    "; this worker took the task from another worker's queue just before the orchestrator recorded that"
    " worker as its owner (avtomatika 1.0b30), so the job is retried when its deadline passes"
)
_sequence = itertools.count()
RESULTS_IN_FLIGHT = 1


@dataclass(frozen=True)
class PendingResult:
    """A result message waiting for delivery, its spool file (None: not spooled) and failed sends so far."""

    message: dict[str, Any]
    path: Path | None
    failures: int = 0

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
        observe.get().on_spool(1)
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
            observe.get().on_spool(-1)
        sync_directory(self.directory)


class ResultSender:
    """Sends each result at once; spools and retries (in order, with backoff) the ones that fail."""

    def __init__(
        self,
        spool: ResultSpool,
        send: SendResult,
        backoff: Backoff,
        can_send: CanSend = lambda: True,
        in_flight: int = RESULTS_IN_FLIGHT,
    ) -> None:
        self._spool = spool
        self._in_flight = asyncio.Semaphore(in_flight)
        self._send = send
        self._backoff = backoff
        self._can_send = can_send
        self._retries: asyncio.Queue[PendingResult] = asyncio.Queue()
        self._first_sends: set[asyncio.Task[Any]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._retrying = False

    def submit(self, message: dict[str, Any], *, urgent: bool = False) -> None:
        """Send a result message (job_id, task_id, worker_id, status, data/error) until it is answered."""
        if self._must_queue(message, urgent):
            return
        item = PendingResult(message, None)
        send = asyncio.create_task(self._send_first(item, urgent), name=f"avtomatika-result-{item.task_id}")
        self._first_sends.add(send)
        send.add_done_callback(self._first_sends.discard)

    async def deliver(self, message: dict[str, Any]) -> None:
        """Like `submit`, but the first send runs in the calling task (no task of its own per result);
        `flush` waits for it and `stop` cancels it (the result is then spooled) like any first send."""
        if self._must_queue(message, urgent=False):
            return
        current = asyncio.current_task()
        assert current is not None
        self._first_sends.add(current)
        try:
            await self._send_first(PendingResult(message, None), urgent=False)
        finally:
            self._first_sends.discard(current)

    def _must_queue(self, message: dict[str, Any], urgent: bool) -> bool:
        """Queue the result for in-order retries (True) instead of sending it at once."""
        if self._retrying or not self._retries.empty() or not (urgent or self._can_send()):
            # The orchestrator is failing or the rate-limit window is full: keep the result safe, in order.
            self._queue_retry(PendingResult(message, None))
            return True
        return False

    def replay(self) -> int:
        """Queue every result left in the spool by an earlier run; returns how many."""
        pending = self._spool.load()
        observe.get().on_spool(sum(1 for item in pending if item.path is not None))
        for item in pending:
            self._retries.put_nowait(item)
        if pending:
            logger.info("replaying %d undelivered result(s) from %s", len(pending), self._spool.directory)
        return len(pending)

    def start(self) -> None:
        """Start the retry loop."""
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._retry_forever(), name="avtomatika-results")

    async def flush(self, timeout: float) -> bool:
        """Wait until every result is delivered (True) or `timeout` passes (False)."""
        try:
            async with asyncio.timeout(timeout):  # not wait_for: see heartbeat.py
                while self._first_sends or self._retrying or not self._retries.empty():
                    if self._first_sends:
                        await asyncio.wait(set(self._first_sends))
                    await self._retries.join()
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        """Stop delivering; undelivered results (first sends in flight included) stay in the spool."""
        tasks = [*self._first_sends, *([self._loop_task] if self._loop_task else [])]
        self._loop_task = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        left = self._retries.qsize()
        if left:
            logger.warning("%d result(s) not delivered yet; kept in %s", left, self._spool.directory)

    def _queue_retry(self, item: PendingResult) -> None:
        if item.path is None:
            item = PendingResult(item.message, self._spool.save(item.message), item.failures)
        self._retries.put_nowait(item)

    async def _send_first(self, item: PendingResult, urgent: bool) -> None:
        with task_context(item.task_id, item.job_id):
            try:
                if urgent:  # the stop sequence: no waiting behind other results
                    error = await self._attempt(item, urgent)
                else:
                    async with self._in_flight:
                        error = await self._attempt(item)
            except asyncio.CancelledError:
                self._queue_retry(item)  # stop() while in flight: whether it arrived is unknown
                raise
            if error is not None:
                logger.warning("sending the result failed (%s); spooled, retrying", error)
                self._queue_retry(PendingResult(item.message, None, 1))

    async def _retry_forever(self) -> None:
        while True:
            item = await self._retries.get()
            self._retrying = True
            try:
                with task_context(item.task_id, item.job_id):
                    await self._retry(item)
            finally:
                self._retrying = False
                self._retries.task_done()

    async def _retry(self, item: PendingResult) -> None:
        failures = item.failures
        if failures:  # its first send failed just now: back off before the next
            await self._backoff.sleep(self._backoff.delay(failures))
        while (error := await self._attempt(item)) is not None:
            failures += 1
            delay = self._backoff.delay(failures)
            logger.log(
                level_for(failures),
                "sending the result failed (%s); retry %d in %.2f s",
                error,
                failures,
                delay,
            )
            await self._backoff.sleep(delay)
        self._spool.delete(item.path)

    async def _attempt(self, item: PendingResult, urgent: bool = False) -> TransportError | None:
        """One send: None when the orchestrator answered (or refused it for good), else the error."""
        try:
            reply = await (self._send(item.message, urgent=True) if urgent else self._send(item.message))
        except OrchestratorRejectedError as exc:
            if exc.status == 400:  # the message itself is invalid: resending cannot help
                logger.error("the orchestrator rejected the result (dropped): %s", exc)
                return None
            return exc
        except OrchestratorUnavailableError as exc:
            if exc.status == 500 and exc.answered and item.message.get("status") == FAILURE:
                logger.warning(
                    "the orchestrator failed after taking the failure result (%s); not sending it again, "
                    "since each send counts one of the job's retries: the orchestrator's watcher re-dispatches it",
                    exc,
                )
                return None
            return exc
        except TransportError as exc:
            return exc
        self._log_reply(item, reply)
        return None

    @staticmethod
    def _log_reply(item: PendingResult, reply: Any) -> None:
        status = item.message.get("status")
        if isinstance(reply, dict) and reply.get("status") == RESULT_ACCEPTED:
            logger.info("result %s accepted (%s)", status, reply.get("transition", "no transition"))
        elif isinstance(reply, dict) and reply.get("status") == RESULT_IGNORED:
            # 1.0b30 records the dispatcher's choice after queueing the task: a worker that stole it in
            # between is refused, and the job waits for its deadline (docs/orchestrator-behaviours.md).
            why = STEAL_RACE if reply.get("reason") == "worker_mismatch" else ""
            logger.warning(
                "result %s ignored by the orchestrator: %s (%s)%s",
                status,
                reply.get("reason"),
                reply.get("message", ""),
                why,
            )
        else:
            logger.warning("unexpected reply to the result %s: %.300r", status, reply)
