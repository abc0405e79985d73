"""The durable result spool, the delivery loop, the backoff policy and the log formats."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from avtomatika_worker import Backoff, OrchestratorRejectedError, OrchestratorUnavailableError
from avtomatika_worker._logging import configure_logging, task_context
from avtomatika_worker.results import ResultSender, ResultSpool


def result(n: int) -> dict[str, Any]:
    return {
        "job_id": f"job-{n}",
        "task_id": f"task-{n}",
        "worker_id": "w",
        "status": "success",
        "data": {"n": n},
    }


def test_spool_saves_one_file_per_result_and_loads_them_oldest_first(tmp_path: Path) -> None:
    spool = ResultSpool(tmp_path / "spool")
    paths = [spool.save(result(n)) for n in range(3)]
    assert all(p is not None and p.exists() for p in paths)
    assert [p.message["task_id"] for p in spool.load()] == ["task-0", "task-1", "task-2"]
    assert not list((tmp_path / "spool").glob(".*"))  # no temporary files left behind
    spool.delete(paths[1])
    assert [p.message["task_id"] for p in spool.load()] == ["task-0", "task-2"]


def test_unreadable_spool_file_is_set_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = ResultSpool(tmp_path)
    spool.save(result(1))
    (tmp_path / "00000000000000000000-000000-1.result.json").write_text("{half")
    assert [p.task_id for p in spool.load()] == ["task-1"]
    assert list(tmp_path.glob("*.bad"))
    assert "unreadable" in caplog.text


def test_missing_spool_dir_means_nothing_to_replay(tmp_path: Path) -> None:
    assert ResultSpool(tmp_path / "absent").load() == []


class ScriptedSend:
    """Raises the scripted errors in turn, then answers `reply`."""

    def __init__(self, errors: list[Exception], reply: Any) -> None:
        self.errors = errors
        self.reply = reply
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, message: dict[str, Any]) -> Any:
        self.calls.append(message)
        if self.errors:
            raise self.errors.pop(0)
        return self.reply


async def no_sleep(seconds: float) -> None:
    await asyncio.sleep(0)


class SpoolWatchingSend(ScriptedSend):
    """A ScriptedSend that also records how many results were in the spool at each call."""

    def __init__(self, spool: ResultSpool, errors: list[Exception], reply: Any) -> None:
        super().__init__(errors, reply)
        self.spooled_at_call: list[int] = []
        self.spool = spool

    async def __call__(self, message: dict[str, Any]) -> Any:
        self.spooled_at_call.append(len(self.spool.load()))
        return await super().__call__(message)


@pytest.mark.parametrize(
    "reply",
    [{"status": "accepted"}, {"status": "ignored", "reason": "stale_task"}],
)
async def test_a_result_whose_first_send_fails_is_spooled_and_retried_until_answered(
    tmp_path: Path, reply: Any
) -> None:
    spool = ResultSpool(tmp_path)
    errors: list[Exception] = [OrchestratorUnavailableError("down"), OrchestratorRejectedError(403, "x")]
    send = SpoolWatchingSend(spool, errors, reply)
    sender = ResultSender(spool, send, Backoff(sleep=no_sleep))
    sender.start()
    sender.submit(result(1))
    assert await sender.flush(10)
    await sender.stop()
    assert send.spooled_at_call == [0, 1, 1]  # nothing on disk for the first send; kept while retried
    assert spool.load() == []


async def test_results_are_sent_at_once_one_at_a_time_without_touching_the_disk(tmp_path: Path) -> None:
    in_flight: set[str] = set()
    most_in_flight = 0

    async def send(message: dict[str, Any]) -> Any:
        nonlocal most_in_flight
        in_flight.add(message["task_id"])
        most_in_flight = max(most_in_flight, len(in_flight))
        await asyncio.sleep(0)  # let the other submitted results try to start meanwhile
        in_flight.discard(message["task_id"])
        return {"status": "accepted"}

    sent: list[str] = []

    async def recording(message: dict[str, Any]) -> Any:
        sent.append(message["task_id"])
        return await send(message)

    sender = ResultSender(ResultSpool(tmp_path / "spool"), recording, Backoff(sleep=no_sleep))
    sender.start()
    for n in range(3):
        sender.submit(result(n))
    assert await sender.flush(10)
    await sender.stop()
    assert sorted(sent) == ["task-0", "task-1", "task-2"]
    assert most_in_flight == 1  # 1.0b30 makes concurrent results of one worker retry each other
    assert not (tmp_path / "spool").exists()


async def test_while_results_are_being_retried_new_ones_are_spooled_and_queued_behind_them(
    tmp_path: Path,
) -> None:
    spool = ResultSpool(tmp_path)
    send = SpoolWatchingSend(spool, [OrchestratorUnavailableError("down")] * 3, {"status": "accepted"})
    sender = ResultSender(spool, send, Backoff(sleep=no_sleep))
    sender.submit(result(1))
    await asyncio.sleep(0)  # the first send of task-1 fails; it goes to the retry queue
    await asyncio.sleep(0)
    sender.submit(result(2))  # the orchestrator is failing: straight to the spool, behind task-1
    assert [p.task_id for p in spool.load()] == ["task-1", "task-2"]
    sender.start()
    assert await sender.flush(10)
    await sender.stop()
    assert [c["task_id"] for c in send.calls] == ["task-1", "task-1", "task-1", "task-1", "task-2"]
    assert spool.load() == []


async def test_stopping_spools_a_result_whose_first_send_is_still_in_flight(tmp_path: Path) -> None:
    async def hangs(message: dict[str, Any]) -> Any:
        await asyncio.Event().wait()

    sender = ResultSender(ResultSpool(tmp_path), hangs, Backoff(sleep=no_sleep))
    sender.start()
    sender.submit(result(1))
    assert not await sender.flush(0.05)
    await sender.stop()
    assert [p.task_id for p in ResultSpool(tmp_path).load()] == ["task-1"]


async def test_sender_drops_a_result_the_orchestrator_calls_malformed(tmp_path: Path) -> None:
    send = ScriptedSend([OrchestratorRejectedError(400, "Invalid TaskResult payload")], None)
    sender = ResultSender(ResultSpool(tmp_path), send, Backoff(sleep=no_sleep))
    sender.submit(result(1))
    sender.start()
    assert await sender.flush(10)
    await sender.stop()
    assert len(send.calls) == 1
    assert ResultSpool(tmp_path).load() == []


async def test_stopping_with_undelivered_results_keeps_them_for_replay(tmp_path: Path) -> None:
    async def never(message: dict[str, Any]) -> Any:
        raise OrchestratorUnavailableError("down")

    sender = ResultSender(ResultSpool(tmp_path), never, Backoff(sleep=no_sleep))
    sender.submit(result(1))
    sender.start()
    assert not await sender.flush(0.05)
    await sender.stop()
    later = ScriptedSend([], {"status": "accepted"})
    replaying = ResultSender(ResultSpool(tmp_path), later, Backoff(sleep=no_sleep))
    assert replaying.replay() == 1
    replaying.start()
    assert await replaying.flush(10)
    await replaying.stop()
    assert [c["task_id"] for c in later.calls] == ["task-1"]
    assert ResultSpool(tmp_path).load() == []


def test_backoff_is_full_jitter_below_a_capped_exponential() -> None:
    bounds: list[float] = []
    backoff = Backoff(base=0.5, cap=5.0, uniform=lambda low, high: bounds.append(high) or low)
    assert [backoff.delay(n) for n in range(1, 8)] == [0.0] * 7
    assert bounds == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    assert Backoff().ceiling(10_000) == 5.0


@pytest.fixture
def root_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    yield
    root.handlers[:], _ = saved[0], root.setLevel(saved[1])


@pytest.mark.usefixtures("root_logging")
def test_json_log_lines_carry_task_and_job_ids(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json", secrets=["tok-123"])
    with task_context("task-9", "job-9"):
        logging.getLogger("avtomatika_worker.test").info("hello %s", "tok-123")
    logging.getLogger("avtomatika_worker.test").warning("outside")
    lines = [orjson.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert lines[0]["message"] == "hello ***"
    assert (lines[0]["task_id"], lines[0]["job_id"], lines[0]["level"]) == ("task-9", "job-9", "INFO")
    assert (lines[1]["task_id"], lines[1]["job_id"]) == ("-", "-")
    assert lines[0]["logger"] == "avtomatika_worker.test"


@pytest.mark.usefixtures("root_logging")
def test_text_logs_redact_secrets_in_messages_and_tracebacks(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "text", secrets=["tok-123"])
    try:
        raise RuntimeError("token tok-123 leaked")
    except RuntimeError:
        logging.getLogger("avtomatika_worker.test").exception("failed with tok-123")
    err = capsys.readouterr().err
    assert "tok-123" not in err
    assert "failed with ***" in err
    assert "token *** leaked" in err
