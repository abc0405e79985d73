"""The durable result spool, the delivery loop, the backoff policy and the log formats."""

# ruff: noqa: C408  # dict(...) on purpose: this file is Jinja-rendered (no double braces allowed).

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
    return dict(job_id=f"job-{n}", task_id=f"task-{n}", worker_id="w", status="success", data=dict(n=n))


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


@pytest.mark.parametrize(
    "reply",
    [dict(status="accepted"), dict(status="ignored", reason="stale_task")],
)
async def test_sender_retries_until_accepted_or_ignored_then_forgets(tmp_path: Path, reply: Any) -> None:
    send = ScriptedSend([OrchestratorUnavailableError("down"), OrchestratorRejectedError(403, "x")], reply)
    spool = ResultSpool(tmp_path)
    sender = ResultSender(spool, send, Backoff(sleep=no_sleep))
    sender.submit(result(1))
    assert len(spool.load()) == 1  # on disk before the first send
    sender.start()
    assert await sender.flush(10)
    await sender.stop()
    assert len(send.calls) == 3
    assert spool.load() == []


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
    later = ScriptedSend([], dict(status="accepted"))
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
