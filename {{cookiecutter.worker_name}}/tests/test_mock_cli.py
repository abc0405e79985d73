"""`python -m mock_orchestrator.cli` run as a subprocess against a real mock orchestrator (and worker)."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mock_orchestrator.address import dashboard_url
from mock_orchestrator.cli_format import human_duration

from mock_support import seal
from services import free_port, wait_until

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CLIENT_TOKEN = "cli-test-client-token"
WORKER_TOKEN = "cli-test-worker-token"
WORKER_ID = "cli-test-worker"
STARTUP_TIMEOUT = 30.0
OWN_VARIABLES = (
    "CLIENT_TOKEN",
    "MOCK_ORCHESTRATOR_URL",
    "MOCK_ORCHESTRATOR_PORT",
    "MOCK_PORT",
    "WORKER_TOKEN",
    "REDIS_URL",
)


def base_env(**extra: str) -> dict[str, str]:
    """This interpreter's environment without pytest's and this project's variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_") and k not in OWN_VARIABLES}
    env.update(PYTHONPATH=str(PROJECT_ROOT), PYTHONDONTWRITEBYTECODE="1", **extra)
    return env


def get_json(url: str, token: str = CLIENT_TOKEN) -> Any:
    """GET a control-API URL directly (not through the CLI under test)."""
    request = urllib.request.Request(url, headers={"X-Client-Token": token})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@dataclass
class ProtocolWorker:
    """A worker speaking the protocol by hand, to report exactly the result a test needs."""

    url: str
    worker_id: str = "hand-made-worker"

    def send(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(seal(body, time.time, key=WORKER_TOKEN)).encode()
        headers = {"X-Worker-Token": WORKER_TOKEN, "X-Worker-ID": self.worker_id}
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method, headers=headers)
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def register(self, skill: str) -> None:
        skills = [{"name": skill}]
        self.send(
            "POST", "/_worker/workers/register", {"worker_id": self.worker_id, "supported_skills": skills}
        )

    def take(self) -> dict[str, Any]:
        task: dict[str, Any] = self.send("GET", f"/_worker/workers/{self.worker_id}/tasks/next")
        return task

    def report(self, task: dict[str, Any], **fields: Any) -> Any:
        body = dict(job_id=task["job_id"], task_id=task["task_id"], worker_id=self.worker_id, **fields)
        return self.send("POST", "/_worker/tasks/result", body)


def answers(url: str) -> bool:
    try:
        get_json(url)
        return True
    except OSError:
        return False


@dataclass
class Mock:
    """A running mock orchestrator, and the CLI pointed at it from a folder without a `.env`."""

    url: str
    cwd: Path
    logs: list[Path] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        return base_env(**dict({"MOCK_ORCHESTRATOR_URL": self.url, "CLIENT_TOKEN": CLIENT_TOKEN}, **extra))

    def cli(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "mock_orchestrator.cli", *args]
        return subprocess.run(
            command,
            cwd=self.cwd,
            env=env or self.env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def cli_json(self, *args: str) -> Any:
        result = self.cli(*args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def submit(self, task_type: str = "nobody_handles_this", params: str = "{}") -> str:
        return str(self.cli_json("submit", task_type, params)["task_id"])

    def start_cli(self, *args: str) -> subprocess.Popen[str]:
        command = [sys.executable, "-m", "mock_orchestrator.cli", *args]
        return subprocess.Popen(command, cwd=self.cwd, env=self.env(), stdout=subprocess.PIPE, text=True)


class Lines:
    """The stdout lines of a running process, read on a thread so that a test can wait with a deadline."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def next_with(self, *needles: str, timeout: float = STARTUP_TIMEOUT) -> str:
        """The next line containing every needle (earlier lines are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no output line with {needles} within {timeout:.0f} s")
            if line is None:
                pytest.fail(f"the process ended before printing a line with {needles}")
            if all(needle in line for needle in needles):
                return line


def _start(args: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def mock(tmp_path: Path, redis_url: str) -> Iterator[Mock]:
    """`python -m mock_orchestrator` on a free loopback port."""
    port = free_port()
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    server = Mock(url=f"http://127.0.0.1:{port}", cwd=cwd, logs=[tmp_path / "mock.log"])
    env = base_env(
        WORKER_TOKEN=WORKER_TOKEN,
        CLIENT_TOKEN=CLIENT_TOKEN,
        MOCK_HOST="127.0.0.1",
        MOCK_PORT=str(port),
        MOCK_POLL_HOLD_SECONDS="5",
        REDIS_URL=redis_url,
    )
    proc = _start([sys.executable, "-m", "mock_orchestrator"], env, cwd, server.logs[0])
    try:
        wait_until(lambda: proc.poll() is not None or answers(f"{server.url}/_public/status"), "the mock")
        assert proc.poll() is None, server.logs[0].read_text()
        yield server
    finally:
        _stop(proc)
        for log in server.logs:
            print(f"===== {log.name} =====\n{log.read_text(errors='replace')}")


@pytest.fixture
def start_worker(mock: Mock, redis_url: str, tmp_path: Path) -> Iterator[Callable[[], None]]:
    """``start_worker()`` runs `python my_worker.py` against the mock and returns once it is registered."""
    procs: list[subprocess.Popen[bytes]] = []

    def _start_worker() -> None:
        env = base_env(
            ORCHESTRATOR_URL=mock.url, WORKER_TOKEN=WORKER_TOKEN, REDIS_URL=redis_url, WORKER_ID=WORKER_ID
        )
        # Private spool and liveness file: a process with the same worker id in an earlier test must
        # not hand anything over to this one (handover.py).
        env.update(WORKER_SPOOL_DIR=str(tmp_path / "spool"), WORKER_HEALTH_FILE=str(tmp_path / "health"))
        mock.logs.append(tmp_path / "worker.log")
        procs.append(
            _start([sys.executable, str(PROJECT_ROOT / "my_worker.py")], env, mock.cwd, mock.logs[-1])
        )
        workers = lambda: get_json(f"{mock.url}/api/v1/workers")["workers"]  # noqa: E731
        wait_until(lambda: procs[-1].poll() is not None or bool(workers()), "the worker to register")
        assert procs[-1].poll() is None, mock.logs[-1].read_text()

    yield _start_worker
    for proc in procs:
        _stop(proc)


def field_line(output: str, name: str) -> str:
    """The value of one ``name   value`` line of `show`-style output."""
    match = re.search(rf"^{name}\s+(.*)$", output, re.MULTILINE)
    assert match, f"no {name!r} line in:\n{output}"
    return match.group(1)


# --- against a worker ------------------------------------------------------------------------------


def test_submit_wait_prints_the_result_from_a_real_worker(
    mock: Mock, start_worker: Callable[[], None]
) -> None:
    start_worker()
    result = mock.cli("submit", "check_inventory", '{"items": ["apple"]}', "--wait")
    assert result.returncode == 0, result.stderr
    assert field_line(result.stdout, "status") == "success"
    assert field_line(result.stdout, "worker") == WORKER_ID
    assert json.loads(field_line(result.stdout, "data")) == {"items_checked": 1, "in_stock": {"apple": 12}}


def test_submit_wait_exits_1_when_the_task_fails(mock: Mock, start_worker: Callable[[], None]) -> None:
    start_worker()
    result = mock.cli("submit", "check_inventory", '{"items": []}', "--wait")
    assert result.returncode == 1
    assert field_line(result.stdout, "status") == "failure"
    assert field_line(result.stdout, "error").startswith(
        "INVALID_INPUT_ERROR: params.items must name at least one item"
    )


def test_watch_follows_a_task_until_a_worker_finishes_it(
    mock: Mock, start_worker: Callable[[], None]
) -> None:
    task_id = mock.submit("check_inventory", '{"items": ["pear"]}')
    watch = mock.start_cli("watch", task_id)
    lines = Lines(watch)
    lines.next_with(task_id, "check_inventory", "queued")
    start_worker()
    lines.next_with(task_id, f"success on {WORKER_ID}", '"in_stock": {"pear": 5}')
    assert watch.wait(timeout=30) == 0


# --- against the mock alone ------------------------------------------------------------------------


def test_submit_prints_the_task_id_and_list_shows_the_task_queued(mock: Mock) -> None:
    result = mock.cli("submit", "nobody_handles_this", '{"n": 1}', "--priority", "5")
    assert result.returncode == 0, result.stderr
    match = re.fullmatch(r"queued (task-[0-9a-f-]+) \(nobody_handles_this, priority 5\)\n", result.stdout)
    assert match, result.stdout
    listing = mock.cli("list")
    assert listing.returncode == 0, listing.stderr
    header, row = listing.stdout.splitlines()
    assert header.split() == ["TASK", "TYPE", "STATUS", "WORKER", "SUBMITTED", "DURATION", "RESULT"]
    assert row.split()[:4] == [match.group(1), "nobody_handles_this", "queued", "-"]


def test_list_puts_the_newest_task_first(mock: Mock) -> None:
    first, second = mock.submit(params='{"n": 1}'), mock.submit(params='{"n": 2}')
    assert [t["task_id"] for t in mock.cli_json("list")["tasks"]] == [second, first]
    rows = mock.cli("list").stdout.splitlines()[1:]
    assert [row.split()[0] for row in rows] == [second, first]


def test_show_finds_a_task_by_a_unique_start_of_its_id(mock: Mock) -> None:
    task_id = mock.submit(params='{"items": ["apple"]}')
    result = mock.cli("show", task_id[len("task-") : len("task-") + 8])
    assert result.returncode == 0, result.stderr
    assert field_line(result.stdout, "task") == task_id
    assert field_line(result.stdout, "status") == "queued"
    assert json.loads(field_line(result.stdout, "params")) == {"items": ["apple"]}


def test_show_names_an_unknown_or_ambiguous_task(mock: Mock) -> None:
    mock.submit()
    mock.submit()
    unknown = mock.cli("show", "task-nothing-like-it")
    assert (unknown.returncode, unknown.stdout) == (1, "")
    assert "no task 'task-nothing-like-it'" in unknown.stderr
    ambiguous = mock.cli("show", "task-")
    assert ambiguous.returncode == 2
    assert "matches 2 tasks" in ambiguous.stderr


def test_cancel_cancels_a_queued_task_and_refuses_a_finished_one(mock: Mock) -> None:
    task_id = mock.submit()
    result = mock.cli("cancel", task_id)
    assert (result.returncode, result.stdout) == (0, f"cancellation of {task_id} requested\n")
    assert mock.cli_json("show", task_id)["status"] == "cancelled"
    again = mock.cli("cancel", task_id)
    assert again.returncode == 1
    assert f"{task_id} is already cancelled" in again.stderr


def test_watch_of_a_task_that_gets_cancelled_exits_1(mock: Mock) -> None:
    task_id = mock.submit()
    watch = mock.start_cli("watch", task_id)
    lines = Lines(watch)
    lines.next_with(task_id, "queued")
    assert mock.cli("cancel", task_id).returncode == 0
    lines.next_with(task_id, "cancelled")
    assert watch.wait(timeout=30) == 1


def test_watch_of_all_tasks_prints_each_change_until_ctrl_c(mock: Mock) -> None:
    watch = mock.start_cli("watch", "--json")
    lines = Lines(watch)
    task_id = mock.submit()
    queued = json.loads(lines.next_with(task_id))
    assert queued["status"] == "queued"
    assert mock.cli("cancel", task_id).returncode == 0
    assert json.loads(lines.next_with(task_id, "cancelled"))["status"] == "cancelled"
    watch.send_signal(signal.SIGINT)
    assert watch.wait(timeout=30) == 0


def test_json_output_is_one_json_document_per_command(mock: Mock) -> None:
    created = mock.cli_json("submit", "nobody_handles_this", '{"n": 1}', "--deadline", "60")
    assert created["status"] == "queued"
    assert created["deadline"] > created["created_at"]
    assert mock.cli_json("show", created["task_id"])["task_id"] == created["task_id"]
    assert [t["task_id"] for t in mock.cli_json("list")["tasks"]] == [created["task_id"]]
    assert mock.cli_json("workers") == {"workers": []}


# --- errors and configuration ----------------------------------------------------------------------


def test_an_unreachable_mock_is_named_with_a_hint_to_start_it(mock: Mock) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = mock.cli("list", env=mock.env(MOCK_ORCHESTRATOR_URL=url))
    assert (result.returncode, result.stdout) == (1, "")
    assert f"cannot reach the mock orchestrator at {url}" in result.stderr
    assert "docker compose up" in result.stderr


def test_a_wrong_client_token_is_reported_as_a_client_token_problem(mock: Mock) -> None:
    result = mock.cli("list", env=mock.env(CLIENT_TOKEN="not-the-token"))
    assert result.returncode == 1
    assert "refused the client token" in result.stderr
    assert "set CLIENT_TOKEN" in result.stderr


def test_a_missing_client_token_is_a_usage_error(mock: Mock) -> None:
    env = mock.env()
    del env["CLIENT_TOKEN"]
    result = mock.cli("list", env=env)
    assert result.returncode == 2
    assert "CLIENT_TOKEN is not set" in result.stderr


def test_params_that_are_not_json_are_reported_with_the_parse_error(mock: Mock) -> None:
    result = mock.cli("submit", "check_inventory", '{"items": [}')
    assert result.returncode == 2
    assert (
        "PARAMS_JSON '{\"items\": [}' is not valid JSON (Expecting value: line 1 column 12" in result.stderr
    )
    assert mock.cli_json("list") == {"tasks": []}


def test_params_must_be_a_json_object(mock: Mock) -> None:
    result = mock.cli("submit", "check_inventory", '["apple"]')
    assert result.returncode == 2
    assert "PARAMS_JSON must be a JSON object, got an array" in result.stderr


def test_a_submission_the_mock_rejects_shows_its_reason(mock: Mock) -> None:
    result = mock.cli("submit", "check_inventory", "--deadline", "-5")
    assert result.returncode == 2
    assert "rejected the request: field 'deadline'" in result.stderr


def test_dotenv_supplies_url_and_token_and_the_environment_wins(mock: Mock) -> None:
    port = mock.url.rsplit(":", 1)[1]
    (mock.cwd / ".env").write_text(f"MOCK_ORCHESTRATOR_PORT={port}\nCLIENT_TOKEN={CLIENT_TOKEN}\n")
    from_file = mock.cli("list", env=base_env())
    assert from_file.returncode == 0, from_file.stderr
    overridden = mock.cli("list", env=base_env(CLIENT_TOKEN="not-the-token"))
    assert overridden.returncode == 1
    assert "refused the client token" in overridden.stderr


def test_dashboard_prints_a_link_with_the_token_in_the_fragment(mock: Mock) -> None:
    result = mock.cli("dashboard")
    assert (result.returncode, result.stdout) == (0, f"{mock.url}/#token={CLIENT_TOKEN}\n")
    with urllib.request.urlopen(f"{mock.url}/", timeout=10) as page:
        assert "<title>Mock orchestrator</title>" in page.read().decode()
        assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    with urllib.request.urlopen(f"{mock.url}/static/app.js", timeout=10) as script:
        assert "javascript" in script.headers["Content-Type"]
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{mock.url}/static/..%2fcli.py", timeout=10)
    assert missing.value.code == 404


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("http://0.0.0.0:8080", "http://localhost:8080/#token=t%2Fk%20n"),
        ("http://[::]:9000/", "http://localhost:9000/#token=t%2Fk%20n"),
        ("127.0.0.1:8080", "http://127.0.0.1:8080/#token=t%2Fk%20n"),
        ("https://mock.example/base", "https://mock.example/base/#token=t%2Fk%20n"),
    ],
)
def test_dashboard_url_is_openable_and_escapes_the_token(listen: str, expected: str) -> None:
    assert dashboard_url(listen, "t/k n") == expected


# --- what a newcomer meets first -----------------------------------------------------------------


def test_the_cli_runs_on_a_bare_python_without_aiohttp(mock: Mock) -> None:
    bare = [sys.executable, "-S"]  # -S: no site-packages, like a system python3 outside any venv
    no_aiohttp = subprocess.run([*bare, "-c", "import aiohttp"], capture_output=True, check=False)
    assert no_aiohttp.returncode != 0, "this interpreter sees aiohttp even with -S: the test proves nothing"
    for args in (["dashboard"], ["list"]):
        result = subprocess.run(
            [*bare, "-m", "mock_orchestrator.cli", *args],
            cwd=mock.cwd,
            env=mock.env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert (result.returncode, result.stderr) == (0, ""), args


def test_waiting_for_a_type_no_worker_has_names_the_skills_and_gives_up_at_the_timeout(
    mock: Mock, start_worker: Callable[[], None]
) -> None:
    start_worker()
    result = mock.cli("submit", "check_inventry", "{}", "--wait", "--timeout", "1")
    assert result.returncode == 1
    assert "no registered worker has skill 'check_inventry'" in result.stderr
    assert re.search(
        r"the registered skills are check_inventory, (count_lines, )?long_running_task", result.stderr
    )
    assert "is still queued after 1 s" in result.stderr
    alone = Mock(url=mock.url, cwd=mock.cwd).cli("submit", "anything", "{}")
    assert "no registered worker has skill 'anything'" in alone.stderr


def test_a_cancelled_task_shows_the_data_its_handler_returned(mock: Mock) -> None:
    worker = ProtocolWorker(mock.url)
    worker.register("partial_work")
    task_id = mock.submit("partial_work")
    task = worker.take()
    assert mock.cli("cancel", task_id).returncode == 0
    worker.report(task, status="cancelled", data={"completed_steps": 3})
    shown = mock.cli_json("show", task_id)
    assert (shown["status"], shown["data"]) == ("cancelled", {"completed_steps": 3})


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0.0004, "0 ms"),
        (0.9996, "1.0 s"),
        (9.96, "10 s"),
        (59.6, "1 min 0 s"),
        (299.6, "5 min 0 s"),
        (3599.6, "1 h 0 min"),
        (7170, "2 h 0 min"),
        (7199.6, "2 h 0 min"),
        (90061, "25 h 1 min"),
    ],
)
def test_durations_carry_into_the_next_unit_instead_of_showing_60(seconds: float, shown: str) -> None:
    assert human_duration(seconds) == shown
