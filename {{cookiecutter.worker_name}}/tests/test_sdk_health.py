"""The liveness file and `python -m avtomatika_worker.health` (the image's HEALTHCHECK)."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from avtomatika_worker.health import check, main
from avtomatika_worker.liveness import LivenessFile

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def status_of(path: Path) -> str:
    return str(orjson.loads(path.read_bytes())["status"])


def test_successful_exchange_writes_ok_with_time_and_worker_id(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "health.json"
    clock = FakeClock()
    LivenessFile(path, "w-1", unreachable_after=30, clock=clock).observe(True)
    assert orjson.loads(path.read_bytes()) == {"status": "ok", "updated": clock.now, "worker_id": "w-1"}


def test_unreachable_once_nothing_succeeded_for_the_grace_period_while_failing(tmp_path: Path) -> None:
    path = tmp_path / "health.json"
    clock = FakeClock()
    liveness = LivenessFile(path, "w-1", unreachable_after=30, clock=clock)
    liveness.observe(True)
    clock.now += 25
    liveness.observe(False)
    clock.now += 4  # nothing has succeeded for 29 s
    liveness.observe(False)
    assert status_of(path) == "ok"
    clock.now += 2  # 31 s > 30 s
    liveness.observe(False)
    assert status_of(path) == "unreachable"
    clock.now += 1
    liveness.observe(True)
    assert status_of(path) == "ok"


def test_silence_without_failures_stays_ok(tmp_path: Path) -> None:
    path = tmp_path / "health.json"
    clock = FakeClock()
    liveness = LivenessFile(path, "w-1", unreachable_after=30, clock=clock)
    liveness.observe(True)
    clock.now += 300  # e.g. pacing under the orchestrator's rate limits: nothing sent, nothing failed
    liveness.observe(True)
    assert status_of(path) == "ok"


async def test_a_stall_turns_unreachable_without_any_further_exchange(tmp_path: Path) -> None:
    path = tmp_path / "health.json"
    liveness = LivenessFile(path, "w-1", unreachable_after=0.05)
    liveness.observe(True)
    liveness.trouble()  # a request is late; no reply (and no failure) ever follows
    assert status_of(path) == "ok"
    deadline = time.monotonic() + 5
    while status_of(path) != "unreachable":
        assert time.monotonic() < deadline, "the liveness file never turned unreachable"
        await asyncio.sleep(0.01)


def test_rewrites_are_throttled_but_status_changes_are_not(tmp_path: Path) -> None:
    path = tmp_path / "health.json"
    clock = FakeClock()
    liveness = LivenessFile(path, "w-1", unreachable_after=0, clock=clock)
    liveness.observe(True)
    first = orjson.loads(path.read_bytes())["updated"]
    clock.now += 0.5
    liveness.observe(True)
    assert orjson.loads(path.read_bytes())["updated"] == first
    clock.now += 0.1
    liveness.observe(False)  # the first failure starts the (zero-length) grace period
    clock.now += 0.1
    liveness.observe(False)
    assert status_of(path) == "unreachable"


def test_an_unwritable_path_is_warned_about_once_and_does_not_break_the_worker(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    liveness = LivenessFile(blocker / "health.json", "w-1", unreachable_after=1)
    with caplog.at_level(logging.WARNING, logger="avtomatika_worker"):
        liveness.observe(True)
        liveness.observe(True)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "cannot write the liveness file" in warnings[0]


def write(path: Path, status: str, updated: float) -> None:
    path.write_bytes(orjson.dumps({"status": status, "updated": updated, "worker_id": "w-1"}))


def test_check_reports_ok_stale_unreachable_missing_and_garbage(tmp_path: Path) -> None:
    path = tmp_path / "health.json"
    now = 1_000_000.0
    assert "no liveness file" in (check(path, 100, now) or "")
    write(path, "ok", now - 10)
    assert check(path, 100, now) is None
    write(path, "ok", now - 101)
    assert "looks stuck" in (check(path, 100, now) or "")
    write(path, "unreachable", now)
    assert "cannot reach the orchestrator" in (check(path, 100, now) or "")
    path.write_text("not json")
    assert "cannot read" in (check(path, 100, now) or "")


def test_main_uses_heartbeat_interval_and_poll_timeout_for_the_age_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "health.json"
    env = {"WORKER_HEALTH_FILE": str(path), "WORKER_HEARTBEAT_INTERVAL": "10", "WORKER_POLL_TIMEOUT": "20"}
    write(path, "ok", time.time() - 45)  # limit is 3 x 10 + 20 = 50 s
    assert main(env) == 0
    write(path, "ok", time.time() - 55)
    assert main(env) == 1
    assert "limit 50 s" in capsys.readouterr().err


def test_main_needs_no_secret_even_when_the_token_comes_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "health.json"
    write(path, "ok", time.time())
    env = {"WORKER_HEALTH_FILE": str(path), "WORKER_TOKEN_FILE": str(tmp_path / "not-mounted-here")}
    assert main(env) == 0


def test_main_with_a_bad_variable_is_unhealthy_with_a_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main({"WORKER_HEARTBEAT_INTERVAL": "soon"}) == 1
    assert "WORKER_HEARTBEAT_INTERVAL='soon' is invalid" in capsys.readouterr().err


@pytest.mark.parametrize(("status", "age", "code"), [("ok", 1, 0), ("ok", 10_000, 1), ("unreachable", 1, 1)])
def test_cli_exit_codes(tmp_path: Path, status: str, age: float, code: int) -> None:
    path = tmp_path / "health.json"
    write(path, status, time.time() - age)
    env = dict(os.environ, WORKER_HEALTH_FILE=str(path), PYTHONPATH=str(PROJECT_ROOT))
    env.pop("WORKER_HEARTBEAT_INTERVAL", None)
    env.pop("WORKER_POLL_TIMEOUT", None)
    done = subprocess.run(
        [sys.executable, "-m", "avtomatika_worker.health"],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    assert "RuntimeWarning" not in done.stderr
    assert (done.stderr == "") is (code == 0)


async def test_the_http_health_endpoint_gives_the_liveness_files_verdict(tmp_path: Path) -> None:
    import aiohttp

    from avtomatika_worker.health_server import HealthServer

    from services import free_port

    path, port = tmp_path / "health.json", free_port()
    server = HealthServer(port, path, max_age=60, host="127.0.0.1")
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/health") as resp:
                assert resp.status == 503
                assert "no liveness file" in (await resp.json())["problem"]
            write(path, "ok", time.time())
            async with session.get(f"http://127.0.0.1:{port}/health") as resp:
                assert (resp.status, await resp.json()) == (200, {"status": "ok"})
            write(path, "unreachable", time.time())
            async with session.get(f"http://127.0.0.1:{port}/health") as resp:
                assert resp.status == 503
    finally:
        await server.stop()


async def test_a_taken_worker_port_stops_the_start_with_a_clear_error(tmp_path: Path) -> None:
    import socket

    from avtomatika_worker import StartupError, Worker, WorkerConfig

    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"ORCHESTRATOR_URL": "http://127.0.0.1:9", "WORKER_TOKEN": "t", "WORKER_PORT": str(port)}
        env["WORKER_SPOOL_DIR"] = str(tmp_path / "spool")
        env["WORKER_HEALTH_FILE"] = str(tmp_path / "health.json")
        worker = Worker("port-test", config=WorkerConfig.from_env("port-test", env))
        with pytest.raises(StartupError, match=f"WORKER_PORT={port}: cannot serve the health endpoint"):
            await worker.start()
        await worker.stop()
