"""`python -m avtomatika_worker run --app ...`, the official SDK's command line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from avtomatika_worker import Worker
from avtomatika_worker.__main__ import load_app, main

from services import PROJECT_ROOT, wait_until


def test_run_loads_the_worker_named_by_app_and_runs_it_with_the_health_endpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ran: list[str] = []
    monkeypatch.setattr(Worker, "run_with_health_check", lambda self: ran.append("health"))
    monkeypatch.setattr(Worker, "run", lambda self: ran.append("plain"))
    assert main(["run", "--app", "my_worker:worker"]) == 0
    assert main(["run", "--app", "my_worker:worker", "--no-health-check"]) == 0
    assert ran == ["health", "plain"]


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("my_worker", "must be module:attribute"),
        ("no_such_module:worker", "cannot import 'no_such_module'"),
        ("my_worker:STOCK_NOT_THERE", "is nothing, not an avtomatika_worker.Worker"),
        ("my_worker:check_inventory", "is function, not an avtomatika_worker.Worker"),
    ],
)
def test_a_bad_app_is_a_clear_error(target: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_app(target)


def test_reload_without_watchfiles_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "watchfiles", None)  # as if it were not installed
    assert main(["run", "--app", "my_worker:worker", "--reload"]) == 2
    assert "--reload needs the watchfiles package" in capsys.readouterr().err


def test_reload_restarts_the_worker_when_a_python_file_changes(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(RELOADING_APP)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")]),
        "ORCHESTRATOR_URL": "http://127.0.0.1:9",  # nothing listens: the worker retries, the hook has run
        "WORKER_TOKEN": "reload-test",
        "WORKER_HEALTH_FILE": str(tmp_path / "health"),
    }
    command = [sys.executable, "-m", "avtomatika_worker", "run", "--app", "app:worker"]
    with subprocess.Popen(
        [*command, "--reload", "--no-health-check"], cwd=tmp_path, env=env, start_new_session=True
    ) as parent:
        try:
            starts = tmp_path / "starts"
            wait_until(lambda: len(started_pids(starts)) == 1, "the first start")
            (tmp_path / "app.py").write_text(RELOADING_APP + "# changed\n")
            wait_until(lambda: len(started_pids(starts)) == 2, "a restart after the change")
            first, second = started_pids(starts)
            assert first != second
            assert not pid_alive(first)  # the old worker was stopped, not left running beside the new one
        finally:
            os.killpg(parent.pid, signal.SIGINT)
            parent.wait(timeout=30)


RELOADING_APP = """
import os

from avtomatika_worker import Worker

worker = Worker("reload-test")


@worker.on_startup
async def record_start() -> None:
    with open("starts", "a") as starts:
        starts.write(f"{os.getpid()}\\n")


@worker.task("noop")
async def noop(params: dict) -> dict:
    return {}
"""


def started_pids(path: Path) -> list[int]:
    """The worker processes that have run their start-up hook, in order."""
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def pid_alive(pid: int) -> bool:
    """Whether process `pid` still exists (reaped or not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()
