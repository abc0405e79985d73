"""SIGTERM/SIGINT: a real worker process against the in-process mock orchestrator."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from sdk_faults import CLIENT_TOKEN, WORKER_TOKEN, ControlClient, start_mock

PROJECT_ROOT = Path(__file__).resolve().parents[1]
EXIT_WITHIN = 30.0  # a bound on a hung process, not a timing assertion

WORKER_SCRIPT = """
import asyncio
import pathlib

from avtomatika_worker import Worker

worker = Worker("inventory-checker")


@worker.task("wait_for_file")
async def wait_for_file(params, task_id):
    print("STARTED", task_id, flush=True)
    path = pathlib.Path(params["path"])
    while not path.exists():
        await asyncio.sleep(0.02)
    return dict(data=dict(released=True))


@worker.task("forever")
async def forever(params, task_id):
    print("STARTED", task_id, flush=True)
    await asyncio.Event().wait()


worker.run()
"""


class WorkerProcess:
    """A worker subprocess whose stdout/stderr lines are collected as they arrive."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._readers = [
            asyncio.create_task(self._read(stream)) for stream in (proc.stdout, proc.stderr) if stream
        ]

    async def _read(self, stream: asyncio.StreamReader) -> None:
        async for raw in stream:
            self.lines.append(raw.decode(errors="replace").rstrip())

    async def wait_for_line(self, fragment: str, within: float = 20.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not any(fragment in line for line in self.lines):
            assert self.proc.returncode is None, "\n".join(self.lines)
            assert loop.time() < deadline, f"no line with {fragment!r}:\n" + "\n".join(self.lines)
            await asyncio.sleep(0.02)

    async def exit_code(self) -> int:
        code = await asyncio.wait_for(self.proc.wait(), EXIT_WITHIN)
        await asyncio.gather(*self._readers)
        return code

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)


@pytest.fixture
async def mock() -> AsyncIterator[tuple[ControlClient, str]]:
    server, url = await start_mock()
    async with aiohttp.ClientSession(base_url=url, headers={"X-Client-Token": CLIENT_TOKEN}) as session:
        yield ControlClient(session), url
    await server.close()


async def spawn_worker(url: str, tmp_path: Path, shutdown_timeout: float, **extra: str) -> WorkerProcess:
    script = tmp_path / "tiny_worker.py"
    script.write_text(WORKER_SCRIPT)
    env = dict(
        os.environ,
        ORCHESTRATOR_URL=url,
        WORKER_TOKEN=WORKER_TOKEN,
        WORKER_ID="shutdown-worker",
        WORKER_SHUTDOWN_TIMEOUT=str(shutdown_timeout),
        WORKER_SPOOL_DIR=str(tmp_path / "spool"),
        WORKER_HEALTH_FILE=str(tmp_path / "health.json"),
        PYTHONPATH=str(PROJECT_ROOT),
        PYTHONUNBUFFERED="1",
        WORKER_RATE_LIMITS="off",
        REDIS_URL="redis://127.0.0.1:9/0",  # nothing listens there, unless a test gives a real one
    )
    env.update(extra)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        cwd=tmp_path,  # no .env here
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    worker = WorkerProcess(proc)
    await worker.wait_for_line("registered as shutdown-worker")
    return worker


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_signal_mid_task_lets_it_finish_reports_it_and_exits_0(
    mock: tuple[ControlClient, str], tmp_path: Path, signum: int
) -> None:
    control, url = mock
    worker = await spawn_worker(url, tmp_path, shutdown_timeout=60)
    release = tmp_path / "release"
    task_id = await control.submit("wait_for_file", {"path": str(release)})
    await worker.wait_for_line("STARTED")
    worker.signal(signum)
    await worker.wait_for_line("stop requested")
    late_id = await control.submit("wait_for_file", {"path": str(release)})  # must not be picked up
    release.touch()
    assert await worker.exit_code() == 0, "\n".join(worker.lines)
    done = await control.show(task_id)
    assert done["status"] == "success", done
    assert done["data"] == {"released": True}
    assert (await control.show(late_id))["status"] == "queued"
    assert not list((tmp_path / "spool").glob("*.result.json"))
    assert not list((tmp_path / "spool").glob("*.task.json"))
    assert not (tmp_path / "health.json").exists()


async def test_task_outliving_the_shutdown_timeout_is_run_again_by_the_next_process(
    mock: tuple[ControlClient, str], tmp_path: Path
) -> None:
    control, url = mock
    release = tmp_path / "release"
    first = await spawn_worker(url, tmp_path, shutdown_timeout=0.2)
    task_id = await control.submit("wait_for_file", {"path": str(release)})
    await first.wait_for_line("STARTED")
    first.signal(signal.SIGTERM)
    assert await first.exit_code() == 0, "\n".join(first.lines)
    assert any("kept for the next process" in line for line in first.lines), "\n".join(first.lines)
    assert (await control.show(task_id))["status"] == "running"  # nothing reported: no retry spent
    assert len(list((tmp_path / "spool").glob("*.task.json"))) == 1

    release.touch()
    second = await spawn_worker(url, tmp_path, shutdown_timeout=5)
    done = await control.finished(task_id)
    second.signal(signal.SIGTERM)
    assert await second.exit_code() == 0, "\n".join(second.lines)
    assert done["status"] == "success", done
    assert [a["task_id"] for a in done["attempts"]] == [task_id]  # the same attempt, finished
    assert not list((tmp_path / "spool").glob("*.task.json"))


async def test_without_the_orchestrators_dispatch_index_the_task_is_reported_for_redispatch(
    mock: tuple[ControlClient, str], tmp_path: Path, redis_url: str
) -> None:
    control, url = mock  # the mock keeps no dispatch index in Redis: it re-queues a reported task itself
    worker = await spawn_worker(url, tmp_path, shutdown_timeout=0.2, REDIS_URL=redis_url)
    task_id = await control.submit("forever", {})
    await worker.wait_for_line("STARTED")
    worker.signal(signal.SIGTERM)
    assert await worker.exit_code() == 0, "\n".join(worker.lines)
    view = await control.show(task_id)
    assert view["attempts"][0]["error"] == {
        "code": "TRANSIENT_ERROR",
        "message": "worker shut down before the task finished",
    }
    assert view["status"] == "queued"  # the orchestrator re-dispatches it (retry 1 of 3)


async def test_second_signal_stops_at_once_and_keeps_the_result_in_the_spool_or_delivers_it(
    mock: tuple[ControlClient, str], tmp_path: Path
) -> None:
    control, url = mock
    worker = await spawn_worker(url, tmp_path, shutdown_timeout=3600)
    task_id = await control.submit("forever", {})
    await worker.wait_for_line("STARTED")
    worker.signal(signal.SIGTERM)
    await worker.wait_for_line("stop requested")
    worker.signal(signal.SIGTERM)
    assert await worker.exit_code() == 0, "\n".join(worker.lines)
    assert any("second stop signal" in line for line in worker.lines)
    spooled = list((tmp_path / "spool").glob("*.task.json"))
    attempts = (await control.show(task_id))["attempts"]
    reported = attempts[0]["error"] is not None
    assert reported or len(spooled) == 1  # nothing is lost either way
