"""The mock's control API (X-Client-Token), its configuration from the environment and its entry point."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from mock_orchestrator.envfile import parse_env
from mock_orchestrator.settings import ConfigError, load_server_config

from mock_support import (
    CLIENT_HEADERS,
    SKILL,
    FakeClock,
    expect_error,
    heartbeat,
    mock_client,
    poll,
    post_json,
    register,
    registration,
    seal,
    send_result,
    submit,
    take,
    task_view,
    worker_headers,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent


# --- control API ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "text"),
    [({}, "Missing X-Client-Token header"), ({"X-Client-Token": "wrong"}, "Unauthorized: Invalid token")],
)
async def test_control_api_requires_the_client_token(
    client: TestClient, headers: dict[str, str], text: str
) -> None:
    for resp in (
        await client.get("/api/v1/tasks", headers=headers),
        await client.get("/api/v1/workers", headers=headers),
        await post_json(client, "/api/v1/tasks", {"type": SKILL}, headers),
    ):
        await expect_error(resp, 403, text)


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        ({}, ["field 'type' = null", "non-empty string", "check_inventory"]),
        ({"type": 5}, ["field 'type' = 5 is invalid"]),
        ({"type": SKILL, "params": [1]}, ["field 'params' = [1] is invalid", "JSON object", "items"]),
        ({"type": SKILL, "priority": "high"}, ["field 'priority' = \"high\" is invalid", "number", "e.g."]),
        ({"type": SKILL, "deadline": -1}, ["field 'deadline' = -1 is invalid", "positive number of seconds"]),
        (
            {"type": SKILL, "prio": 1},
            ["unknown field 'prio'", "allowed fields are type, params, priority, deadline"],
        ),
        ([SKILL], ["request body must be a JSON object"]),
    ],
)
async def test_bad_submissions_are_400_naming_field_value_rule_and_example(
    client: TestClient, body: Any, fragments: list[str]
) -> None:
    resp = await post_json(client, "/api/v1/tasks", body, CLIENT_HEADERS)
    assert resp.status == 400
    message = (await resp.json())["error"]
    for fragment in fragments:
        assert fragment in message, message


async def test_submission_that_is_not_json_is_400(client: TestClient) -> None:
    resp = await client.post("/api/v1/tasks", data=b"type=x", headers=CLIENT_HEADERS)
    await expect_error(resp, 400, "request body is not valid JSON")


async def test_submit_returns_the_queued_task_view(client: TestClient, clock: FakeClock) -> None:
    view = await submit(client, params={"items": ["apple"]}, priority=3)
    assert view["status"] == "queued"
    assert view["type"] == SKILL and view["params"] == {"items": ["apple"]} and view["priority"] == 3
    assert view["created_at"] == clock.now
    for key in ("data", "error", "worker_id", "progress", "started_at", "finished_at"):
        assert view[key] is None


async def test_tasks_are_listed_newest_first_and_unknown_task_is_404(client: TestClient) -> None:
    first, second = await submit(client), await submit(client, "other")
    listing = await (await client.get("/api/v1/tasks", headers=CLIENT_HEADERS)).json()
    assert [t["task_id"] for t in listing["tasks"]] == [second["task_id"], first["task_id"]]
    await expect_error(
        await client.get("/api/v1/tasks/task-missing", headers=CLIENT_HEADERS), 404, "not found"
    )


async def test_wait_returns_as_soon_as_the_task_finishes(slow_client: TestClient, clock: FakeClock) -> None:
    await register(slow_client, clock)
    submitted = await submit(slow_client)
    waiter = asyncio.ensure_future(task_view(slow_client, submitted["task_id"], "?wait=30"))
    task = await take(slow_client)
    await send_result(slow_client, clock, task, data={"ok": True})
    view = await asyncio.wait_for(waiter, timeout=5)
    assert (view["status"], view["data"]) == ("success", {"ok": True})


async def test_bad_wait_parameter_is_400(client: TestClient) -> None:
    submitted = await submit(client)
    resp = await client.get(f"/api/v1/tasks/{submitted['task_id']}?wait=soon", headers=CLIENT_HEADERS)
    await expect_error(resp, 400, "query parameter 'wait' = 'soon' is invalid")


# --- configuration and entry point ---------------------------------------------------------


def test_environment_defaults_and_values() -> None:
    config = load_server_config({"WORKER_TOKEN": "w", "CLIENT_TOKEN": "c"})
    assert (config.host, config.port, config.settings.poll_hold_seconds) == ("127.0.0.1", 8080, 30.0)
    assert (config.log_level, config.public_url) == ("INFO", None)
    config = load_server_config(
        {
            "WORKER_TOKEN": "w",
            "CLIENT_TOKEN": "c",
            "MOCK_HOST": "127.0.0.1",
            "MOCK_PORT": "9000",
            "MOCK_POLL_HOLD_SECONDS": "0.5",
            "MOCK_LOG_LEVEL": "warning",
        }
    )
    assert (config.host, config.port, config.settings.poll_hold_seconds) == ("127.0.0.1", 9000, 0.5)
    assert config.log_level == "WARNING"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CLIENT_TOKEN": "c"}, "WORKER_TOKEN is not set: must be"),
        ({"WORKER_TOKEN": "w"}, "CLIENT_TOKEN is not set: must be"),
        (
            {"MOCK_PORT": "http"},
            "MOCK_PORT='http' is invalid: must be an integer from 1 to 65535 (e.g. MOCK_PORT=8080)",
        ),
        ({"MOCK_PORT": "0"}, "MOCK_PORT='0' is invalid"),
        (
            {"MOCK_ORCHESTRATOR_PORT": "80a"},
            "MOCK_ORCHESTRATOR_PORT='80a' is invalid: must be an integer from 1 to 65535",
        ),
        (
            {"MOCK_POLL_HOLD_SECONDS": "-1"},
            "MOCK_POLL_HOLD_SECONDS='-1' is invalid: must be a number of seconds",
        ),
        (
            {"MOCK_LOG_LEVEL": "loud"},
            "MOCK_LOG_LEVEL='loud' is invalid: must be one of DEBUG, INFO, WARNING, ERROR "
            "(e.g. MOCK_LOG_LEVEL=WARNING)",
        ),
    ],
)
def test_bad_environment_names_variable_value_rule_and_example(env: dict[str, str], message: str) -> None:
    full = {"WORKER_TOKEN": "w", "CLIENT_TOKEN": "c"} | env
    if "WORKER_TOKEN" not in env and "CLIENT_TOKEN" in env:
        del full["WORKER_TOKEN"]
    if "CLIENT_TOKEN" not in env and "WORKER_TOKEN" in env:
        del full["CLIENT_TOKEN"]
    with pytest.raises(ConfigError) as caught:
        load_server_config(full)
    assert message in str(caught.value)


def test_the_port_is_mock_orchestrator_port_and_the_older_mock_port_still_wins() -> None:
    tokens = {"WORKER_TOKEN": "w", "CLIENT_TOKEN": "c"}
    config = load_server_config(tokens | {"MOCK_ORCHESTRATOR_PORT": "9001"})
    assert (config.port, config.port_variable) == (9001, "MOCK_ORCHESTRATOR_PORT")
    config = load_server_config(tokens | {"MOCK_ORCHESTRATOR_PORT": "9001", "MOCK_PORT": "9002"})
    assert (config.port, config.port_variable) == (9002, "MOCK_PORT")


def test_run_directly_it_listens_on_loopback_and_its_image_on_every_interface() -> None:
    assert load_server_config({"WORKER_TOKEN": "w", "CLIENT_TOKEN": "c"}).host == "127.0.0.1"
    dockerfile = (PROJECT_ROOT / "mock_orchestrator" / "Dockerfile").read_text()
    assert "MOCK_HOST=0.0.0.0" in dockerfile.split()


def test_orchestrator_secret_key_is_the_task_signing_key() -> None:
    env = {"WORKER_TOKEN": "w", "CLIENT_TOKEN": "c", "ORCHESTRATOR_SECRET_KEY": "shared-secret"}
    assert load_server_config(env).settings.task_secret == "shared-secret"
    random_ones = {
        load_server_config(env | {"ORCHESTRATOR_SECRET_KEY": ""}).settings.task_secret for _ in "ab"
    }
    assert len(random_ones) == 2 and "" not in random_ones


def test_dotenv_lines_are_read_with_quotes_exports_and_comments() -> None:
    text = (
        "# generated\n"
        "CLIENT_TOKEN=abc-123 # inline comment\n"
        "export MOCK_ORCHESTRATOR_PORT=8090\n"
        "QUOTED='a # b'\n"
        'DOUBLE="x\\"y"\n'
        "EMPTY=\n"
        "not a variable line\n"
    )
    assert parse_env(text) == {
        "CLIENT_TOKEN": "abc-123",
        "MOCK_ORCHESTRATOR_PORT": "8090",
        "QUOTED": "a # b",
        "DOUBLE": 'x"y',
        "EMPTY": "",
    }


def run_mock(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m mock_orchestrator` with this project on the path, from a folder without a `.env`."""
    own = ("WORKER_TOKEN", "CLIENT_TOKEN", "MOCK_PORT", "MOCK_ORCHESTRATOR_PORT", "MOCK_HOST")
    full = {k: v for k, v in os.environ.items() if k not in own} | {"PYTHONPATH": str(PROJECT_ROOT)} | env
    return subprocess.run(
        [sys.executable, "-m", "mock_orchestrator"],
        check=False,
        cwd=tmp_path,
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_module_exits_2_with_one_clear_line_when_a_token_is_missing(tmp_path: Path) -> None:
    done = run_mock(tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "WORKER_TOKEN is not set" in lines[0] and "e.g. WORKER_TOKEN=" in lines[0]


@pytest.mark.parametrize("variable", ["MOCK_ORCHESTRATOR_PORT", "MOCK_PORT"])
def test_a_busy_port_exits_2_with_one_line_naming_the_port_and_the_variable(
    tmp_path: Path, variable: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_mock(tmp_path, WORKER_TOKEN="w", CLIENT_TOKEN="c", **{variable: str(port)})
    assert (done.returncode, done.stdout) == (2, "")
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"port {port} on 127.0.0.1 is already in use" in lines[0]
    assert f"set {variable} to a free port, e.g. {variable}=" in lines[0]


# --- demo task (what `docker compose up` shows) --------------------------------------------


def test_demo_task_is_read_from_the_environment() -> None:
    raw = '{"type": "check_inventory", "params": {"items": ["apple"]}}'
    config = load_server_config({"WORKER_TOKEN": "w", "CLIENT_TOKEN": "c", "MOCK_DEMO_TASK": raw})
    assert config.settings.demo_task == {"type": "check_inventory", "params": {"items": ["apple"]}}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [("not json", "must be a task submission as JSON"), ('{"params": {}}', "type")],
)
def test_bad_demo_task_names_the_variable_the_value_and_the_rule(raw: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_server_config({"WORKER_TOKEN": "w", "CLIENT_TOKEN": "c", "MOCK_DEMO_TASK": raw})
    message = str(caught.value)
    assert message.startswith(f"MOCK_DEMO_TASK={raw!r} is invalid: must be a task submission as JSON")
    assert reason in message
    assert "(e.g. MOCK_DEMO_TASK=" in message


async def test_demo_task_is_queued_at_start_and_handed_to_the_first_capable_worker(clock: FakeClock) -> None:
    demo = {"type": SKILL, "params": {"items": ["apple"]}}
    async with mock_client(clock, demo_task=demo) as client:
        await register(client, clock)
        task = await take(client)
        assert (task["type"], task["params"]) == (SKILL, {"items": ["apple"]})


# --- task views: attempts and timings --------------------------------------------------------


async def test_task_view_lists_attempts_and_timings(client: TestClient, clock: FakeClock) -> None:
    await register(client, clock)
    submitted = await submit(client)
    assert submitted["current_task_id"] == submitted["task_id"] and submitted["retries"] == 0
    assert submitted["attempts"] == [
        {
            "task_id": submitted["task_id"],
            "worker_id": None,
            "status": "queued",
            "error": None,
            "started_at": None,
            "finished_at": None,
        }
    ]
    clock.now += 1
    task = await take(client)
    clock.now += 2.5
    await send_result(client, clock, task, status="out_of_stock")
    view = await task_view(client, submitted["task_id"])
    assert view["attempts"] == [
        {
            "task_id": task["task_id"],
            "worker_id": "worker-1",
            "status": "out_of_stock",
            "error": None,
            "started_at": clock.now - 2.5,
            "finished_at": clock.now,
        }
    ]
    assert (view["created_at"], view["started_at"], view["finished_at"]) == (
        clock.now - 3.5,
        clock.now - 2.5,
        clock.now,
    )
    assert view["duration"] == 2.5


# --- change subscription (GET /api/v1/events) ------------------------------------------------


async def test_events_answer_at_once_when_the_caller_is_behind(client: TestClient) -> None:
    await submit(client)
    resp = await client.get("/api/v1/events?since=0", headers=CLIENT_HEADERS)
    assert resp.status == 200 and (await resp.json())["version"] > 0


async def test_events_long_poll_wakes_on_the_next_change(client: TestClient, clock: FakeClock) -> None:
    now = (await (await client.get("/api/v1/events?since=0&wait=0", headers=CLIENT_HEADERS)).json())[
        "version"
    ]
    waiter = asyncio.ensure_future(client.get(f"/api/v1/events?since={now}&wait=60", headers=CLIENT_HEADERS))
    await register(client, clock)
    resp = await asyncio.wait_for(waiter, timeout=5)
    assert (await resp.json())["version"] > now


async def test_events_with_a_bad_since_is_400(client: TestClient) -> None:
    resp = await client.get("/api/v1/events?since=-1", headers=CLIENT_HEADERS)
    await expect_error(resp, 400, "query parameter 'since' = '-1' is invalid")


# --- dispatch: lenient by default, strict on request ------------------------------------------


async def test_by_default_a_task_waits_for_a_capable_worker(client: TestClient, clock: FakeClock) -> None:
    submitted = await submit(client)
    assert (await task_view(client, submitted["task_id"]))["status"] == "queued"
    await register(client, clock)
    assert (await take(client))["task_id"] == submitted["task_id"]


async def test_strict_dispatch_quarantines_a_task_no_idle_worker_can_take(clock: FakeClock) -> None:
    async with mock_client(clock, strict_dispatch=True) as client:
        submitted = await submit(client)
        assert submitted["status"] == "quarantined"
        assert submitted["error_message"] == f"No suitable workers for task type '{SKILL}'"
        await register(client, clock)
        assert (await poll(client)).status == 204
        busy = seal({"worker_id": "worker-1", "status": "busy"}, clock)
        assert (await heartbeat(client, "worker-1", busy)).status == 200
        assert (await submit(client))["status"] == "quarantined"


async def test_strict_dispatch_queues_for_an_idle_capable_worker(clock: FakeClock) -> None:
    async with mock_client(clock, strict_dispatch=True) as client:
        await register(client, clock)
        submitted = await submit(client)
        assert submitted["status"] == "queued"
        assert (await take(client))["task_id"] == submitted["task_id"]


async def test_strict_dispatch_retry_without_an_idle_worker_is_a_500_like_the_real_one(
    clock: FakeClock,
) -> None:
    async with mock_client(clock, strict_dispatch=True) as client:
        await register(client, clock)
        submitted = await submit(client)
        task = await take(client)
        busy = seal({"worker_id": "worker-1", "status": "busy"}, clock)
        assert (await heartbeat(client, "worker-1", busy)).status == 200
        error = {"code": "TRANSIENT_ERROR", "message": "flaky"}
        resp = await send_result(client, clock, task, status="failure", error=error)
        await expect_error(resp, 500, f"No suitable workers for task type '{SKILL}'")
        idle = seal({"worker_id": "worker-1", "status": "idle"}, clock)
        assert (await heartbeat(client, "worker-1", idle)).status == 200
        resp = await send_result(client, clock, task, status="failure", error=error)
        assert (await resp.json())["transition"] == "failure_handled"
        view = await task_view(client, submitted["task_id"])
        assert (view["status"], view["retries"], len(view["attempts"])) == ("queued", 2, 2)


# --- individual worker tokens (MOCK_WORKERS_TOML) ---------------------------------------------


async def test_an_individual_token_is_required_and_is_the_signing_key(clock: FakeClock) -> None:
    async with mock_client(clock, worker_tokens={"worker-1": "own-token"}) as client:
        message = seal(registration(), clock, key="own-token")
        resp = await post_json(client, "/_worker/workers/register", message, worker_headers())
        await expect_error(resp, 403, "Unauthorized: Invalid individual worker token")
        signed_with_global = seal(registration(), clock)
        headers = worker_headers(token="own-token")
        resp = await post_json(client, "/_worker/workers/register", signed_with_global, headers)
        await expect_error(resp, 403, "Invalid cryptographic signature")
        resp = await post_json(client, "/_worker/workers/register", message, headers)
        assert resp.status == 200, await resp.text()
        other = seal(registration("worker-2"), clock)
        resp = await post_json(client, "/_worker/workers/register", other, worker_headers("worker-2"))
        assert resp.status == 200, await resp.text()


def test_workers_toml_is_read_like_the_real_loader(tmp_path: Path) -> None:
    path = tmp_path / "workers.toml"
    path.write_text('[worker-1]\ntoken = "one"\n\n[worker-2]\ndescription = "no token: skipped"\n')
    env = {"WORKER_TOKEN": "w", "CLIENT_TOKEN": "c", "MOCK_WORKERS_TOML": str(path)}
    assert load_server_config(env).settings.worker_tokens == {"worker-1": "one"}


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "must name a readable file"),
        ("[worker-1\n", "must be valid TOML"),
        ('w = "x"\n', "must be a table"),
    ],
)
def test_bad_workers_toml_names_the_variable_and_the_rule(
    tmp_path: Path, content: str | None, reason: str
) -> None:
    path = tmp_path / "workers.toml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as caught:
        load_server_config({"WORKER_TOKEN": "w", "CLIENT_TOKEN": "c", "MOCK_WORKERS_TOML": str(path)})
    assert str(caught.value).startswith(f"MOCK_WORKERS_TOML={str(path)!r} is invalid: ")
    assert reason in str(caught.value)


# --- new environment variables ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "strict"), [("", False), ("false", False), ("0", False), ("true", True), ("YES", True)]
)
def test_strict_dispatch_is_read_from_the_environment(raw: str, strict: bool) -> None:
    env = {"WORKER_TOKEN": "w", "CLIENT_TOKEN": "c", "MOCK_STRICT_DISPATCH": raw}
    assert load_server_config(env).settings.strict_dispatch is strict


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"MOCK_STRICT_DISPATCH": "maybe"},
            "MOCK_STRICT_DISPATCH='maybe' is invalid: must be one of 1, true",
        ),
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL='localhost:6379' is invalid: must be a redis://"),
    ],
)
def test_bad_new_variables_name_variable_value_and_rule(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_server_config({"WORKER_TOKEN": "w", "CLIENT_TOKEN": "c"} | env)
    assert message in str(caught.value)


def test_redis_url_is_optional() -> None:
    assert load_server_config({"WORKER_TOKEN": "w", "CLIENT_TOKEN": "c"}).settings.redis_url is None
    env = {"WORKER_TOKEN": "w", "CLIENT_TOKEN": "c", "REDIS_URL": "redis://redis:6379/0"}
    assert load_server_config(env).settings.redis_url == "redis://redis:6379/0"
