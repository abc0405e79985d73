"""WorkerConfig: defaults, every variable's error message, booleans, `.env` handling, run()'s exit."""

from __future__ import annotations

import os
import re
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from avtomatika_worker import ConfigError, Worker, WorkerConfig
from avtomatika_worker.config import load_env_file, sanitise_worker_id

REQUIRED = {"ORCHESTRATOR_URL": "http://localhost:8080", "WORKER_TOKEN": "s3cret-token"}
ALL_VARS = (
    "ORCHESTRATOR_URL",
    "WORKER_TOKEN",
    "WORKER_ID",
    "WORKER_ENABLE_WEBSOCKETS",
    "REDIS_URL",
    "WORKER_MAX_CONCURRENT_TASKS",
    "WORKER_HEARTBEAT_INTERVAL",
    "WORKER_POLL_TIMEOUT",
    "LOG_LEVEL",
    "WORKER_SHUTDOWN_TIMEOUT",
    "WORKER_SPOOL_DIR",
    "WORKER_LOG_FORMAT",
    "WORKER_HEALTH_FILE",
    "WORKER_CANCEL_CHECK_INTERVAL",
    "ORCHESTRATOR_SECRET_KEY",
    "WORKER_PORT",
    "WORKER_SKILLS_DIR",
    # The official SDK's names for the same settings.
    "MAX_CONCURRENT_TASKS",
    "HEARTBEAT_INTERVAL",
    "LOG_FORMAT",
    "WORKER_INDIVIDUAL_TOKEN",
    "SECRET_KEY",
    "ORCHESTRATORS_CONFIG",
)


@pytest.fixture
def clean_environ() -> Iterator[None]:
    """Snapshot os.environ, remove the worker's variables, restore everything afterwards."""
    saved = dict(os.environ)
    for name in ALL_VARS:
        os.environ.pop(name, None)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def config_with(**overrides: str) -> WorkerConfig:
    return WorkerConfig.from_env("inventory-checker", dict(REQUIRED, **overrides))


def test_defaults_match_the_documented_contract() -> None:
    config = config_with()
    assert config.orchestrator_url == "http://localhost:8080"
    assert config.worker_token == "s3cret-token"
    assert config.worker_id == sanitise_worker_id(f"inventory-checker-{socket.gethostname()}")
    assert re.fullmatch(r"[a-zA-Z0-9_-]{1,128}", config.worker_id)
    assert config.enable_websockets is False
    assert config.redis_url == "redis://localhost:6379/0"
    assert config.max_concurrent_tasks == 1
    assert config.heartbeat_interval == 15.0
    assert config.poll_timeout == 75.0
    assert config.log_level == "INFO"
    assert config.shutdown_timeout == 30.0
    assert config.spool_path == Path(tempfile.gettempdir()) / "avtomatika-worker" / config.worker_id
    assert config.log_format == "text"
    assert config.health_path == Path(tempfile.gettempdir()) / "avtomatika-worker.health"
    assert config.cancel_check_interval == 0.5
    assert config.orchestrator_secret_key is None


def test_every_variable_is_read() -> None:
    config = config_with(
        ORCHESTRATOR_URL="https://orch.example.com:8443/",
        WORKER_ID="inventory-worker-01",
        WORKER_ENABLE_WEBSOCKETS="yes",
        REDIS_URL="rediss://user:pw@redis.example.com:6380/2",
        WORKER_MAX_CONCURRENT_TASKS="4",
        WORKER_HEARTBEAT_INTERVAL="2.5",
        WORKER_POLL_TIMEOUT="90",
        LOG_LEVEL="debug",
        WORKER_SHUTDOWN_TIMEOUT="0",
        WORKER_SPOOL_DIR="/var/lib/worker/spool",
        WORKER_LOG_FORMAT="JSON",
        WORKER_HEALTH_FILE="/run/worker.health",
        WORKER_CANCEL_CHECK_INTERVAL="0.25",
        ORCHESTRATOR_SECRET_KEY="orch-secret",
    )
    assert config.orchestrator_url == "https://orch.example.com:8443"
    assert config.worker_id == "inventory-worker-01"
    assert config.enable_websockets is True
    assert config.redis_url == "rediss://user:pw@redis.example.com:6380/2"
    assert config.max_concurrent_tasks == 4
    assert config.heartbeat_interval == 2.5
    assert config.poll_timeout == 90.0
    assert config.log_level == "DEBUG"
    assert config.shutdown_timeout == 0.0
    assert config.spool_path == Path("/var/lib/worker/spool")
    assert config.log_format == "json"
    assert config.health_path == Path("/run/worker.health")
    assert config.cancel_check_interval == 0.25
    assert config.orchestrator_secret_key == "orch-secret"


def test_default_worker_id_is_sanitised() -> None:
    assert sanitise_worker_id("my type-host.example.com") == "my-type-host-example-com"
    assert sanitise_worker_id("x" * 200) == "x" * 128
    assert sanitise_worker_id("...") == "worker"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("yes", True),
        ("on", True),
        ("false", False),
        ("False", False),
        ("0", False),
        ("no", False),
        ("off", False),
    ],
)
def test_websocket_flag_accepts_common_booleans(raw: str, expected: bool) -> None:
    assert config_with(WORKER_ENABLE_WEBSOCKETS=raw).enable_websockets is expected


@pytest.mark.parametrize("name", ["ORCHESTRATOR_URL", "WORKER_TOKEN"])
def test_missing_required_variable_names_it_with_an_example(name: str) -> None:
    env = dict(REQUIRED)
    del env[name]
    with pytest.raises(ConfigError) as info:
        WorkerConfig.from_env("inventory-checker", env)
    message = str(info.value)
    assert message.startswith(f"{name} is not set")
    assert f"(e.g. {name}=" in message


@pytest.mark.parametrize(
    ("name", "value", "rule_fragment"),
    [
        ("ORCHESTRATOR_URL", "localhost:8080", "http:// or https://"),
        ("ORCHESTRATOR_URL", "ftp://host", "http:// or https://"),
        ("WORKER_ID", "bad id!", "^[a-zA-Z0-9_-]"),
        ("WORKER_ID", "x" * 129, "^[a-zA-Z0-9_-]"),
        ("WORKER_ENABLE_WEBSOCKETS", "maybe", "true/false/1/0/yes/no/on/off"),
        ("REDIS_URL", "localhost:6379", "redis://"),
        ("WORKER_MAX_CONCURRENT_TASKS", "abc", "whole number >= 1"),
        ("WORKER_MAX_CONCURRENT_TASKS", "0", "whole number >= 1"),
        ("WORKER_MAX_CONCURRENT_TASKS", "1.5", "whole number >= 1"),
        ("WORKER_HEARTBEAT_INTERVAL", "0", "> 0 and <= 60"),
        ("WORKER_HEARTBEAT_INTERVAL", "120", "> 0 and <= 60"),
        ("WORKER_HEARTBEAT_INTERVAL", "soon", "> 0 and <= 60"),
        ("WORKER_POLL_TIMEOUT", "-1", "> 0"),
        ("WORKER_POLL_TIMEOUT", "nan", "> 0"),
        ("LOG_LEVEL", "LOUD", "DEBUG/INFO/WARNING/ERROR/CRITICAL"),
        ("WORKER_SHUTDOWN_TIMEOUT", "-1", ">= 0"),
        ("WORKER_SHUTDOWN_TIMEOUT", "inf", ">= 0"),
        ("WORKER_SHUTDOWN_TIMEOUT", "a while", ">= 0"),
        ("WORKER_LOG_FORMAT", "xml", "text/json"),
        ("WORKER_CANCEL_CHECK_INTERVAL", "0", "> 0"),
        ("WORKER_CANCEL_CHECK_INTERVAL", "often", "> 0"),
    ],
)
def test_invalid_value_message_names_variable_value_rule_and_example(
    name: str, value: str, rule_fragment: str
) -> None:
    with pytest.raises(ConfigError) as info:
        config_with(**{name: value})
    message = str(info.value)
    assert message.startswith(f"{name}={value!r} is invalid: ")
    assert rule_fragment in message
    assert f"(e.g. {name}=" in message


def test_invalid_token_message_never_shows_the_token() -> None:
    with pytest.raises(ConfigError) as info:
        config_with(WORKER_TOKEN="top secret")
    message = str(info.value)
    assert "top secret" not in message
    assert message.startswith("WORKER_TOKEN=<hidden, 10 characters> is invalid")


def test_invalid_orchestrator_secret_message_never_shows_it() -> None:
    with pytest.raises(ConfigError) as info:
        config_with(ORCHESTRATOR_SECRET_KEY="my secret")
    assert "my secret" not in str(info.value)
    assert str(info.value).startswith("ORCHESTRATOR_SECRET_KEY=<hidden, 9 characters> is invalid")


def test_secrets_are_not_in_the_config_repr() -> None:
    text = repr(config_with(ORCHESTRATOR_SECRET_KEY="orch-secret"))
    assert "s3cret-token" not in text
    assert "orch-secret" not in text


def test_empty_optional_variable_falls_back_to_default() -> None:
    assert config_with(WORKER_MAX_CONCURRENT_TASKS="").max_concurrent_tasks == 1


@pytest.mark.usefixtures("clean_environ")
def test_dotenv_is_loaded_but_the_real_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text(
        "ORCHESTRATOR_URL=http://from-dotenv:8080\nWORKER_TOKEN=dotenv-token\nWORKER_ID=from-dotenv\n"
    )
    monkeypatch.chdir(tmp_path)
    os.environ["WORKER_ID"] = "from-real-env"
    assert load_env_file() is True
    config = WorkerConfig.from_env("inventory-checker")
    assert config.orchestrator_url == "http://from-dotenv:8080"
    assert config.worker_token == "dotenv-token"
    assert config.worker_id == "from-real-env"


@pytest.mark.usefixtures("clean_environ")
def test_run_with_bad_config_prints_one_line_and_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    os.environ["ORCHESTRATOR_URL"] = "http://localhost:8080"
    with pytest.raises(SystemExit) as info:
        Worker(worker_type="inventory-checker").run()
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "WORKER_TOKEN is not set" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WORKER_MAX_CONCURRENT_TASKS", "many"),
        ("WORKER_ENABLE_WEBSOCKETS", "perhaps"),
        ("WORKER_SHUTDOWN_TIMEOUT", "-5"),
        ("WORKER_LOG_FORMAT", "yaml"),
        ("ORCHESTRATOR_URL", "orchestrator:8080"),
    ],
)
@pytest.mark.usefixtures("clean_environ")
def test_run_with_a_malformed_value_names_it_and_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str, value: str
) -> None:
    monkeypatch.chdir(tmp_path)
    os.environ.update(REQUIRED)
    os.environ[name] = value
    with pytest.raises(SystemExit) as info:
        Worker(worker_type="inventory-checker").run()
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"configuration error: {name}={value!r} is invalid: ")
    assert "Traceback" not in err


def test_the_official_sdks_names_set_the_same_settings_when_ours_are_unset() -> None:
    config = config_with(MAX_CONCURRENT_TASKS="4", HEARTBEAT_INTERVAL="20", LOG_FORMAT="json")
    assert (config.max_concurrent_tasks, config.heartbeat_interval, config.log_format) == (4, 20.0, "json")
    ours = config_with(MAX_CONCURRENT_TASKS="4", WORKER_MAX_CONCURRENT_TASKS="2")
    assert ours.max_concurrent_tasks == 2


def test_worker_individual_token_wins_over_worker_token_as_in_the_official_sdk() -> None:
    assert config_with(WORKER_INDIVIDUAL_TOKEN="own-token").worker_token == "own-token"


def test_a_bad_value_under_the_official_name_is_reported_under_that_name() -> None:
    with pytest.raises(ConfigError) as info:
        config_with(MAX_CONCURRENT_TASKS="many")
    assert str(info.value).startswith("MAX_CONCURRENT_TASKS='many' is invalid")


def test_the_official_max_concurrent_tasks_keyword_wins_over_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in dict(REQUIRED, WORKER_MAX_CONCURRENT_TASKS="2").items():
        monkeypatch.setenv(name, value)
    assert Worker("inventory-checker", max_concurrent_tasks=6).config.max_concurrent_tasks == 6
    assert Worker("inventory-checker").config.max_concurrent_tasks == 2
    with pytest.raises(ValueError, match="max_concurrent_tasks=0 must be a whole number of at least 1"):
        Worker("inventory-checker", max_concurrent_tasks=0)


def test_the_official_skills_dir_keyword_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in dict(REQUIRED, WORKER_SKILLS_DIR="from-env").items():
        monkeypatch.setenv(name, value)
    assert Worker("inventory-checker", skills_dir="plugins").config.skills_dir == "plugins"
    assert Worker("inventory-checker").config.skills_dir == "from-env"


def test_run_with_health_check_serves_health_on_worker_port_or_the_official_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    ports: list[int | None] = []
    monkeypatch.setattr(Worker, "run", lambda self: ports.append(self.config.health_port))
    Worker("inventory-checker").run_with_health_check()
    monkeypatch.setenv("WORKER_PORT", "9000")
    Worker("inventory-checker").run_with_health_check()
    Worker("inventory-checker").run()
    assert ports == [8083, 9000, 9000]


def test_token_is_read_from_the_file_worker_token_file_names(tmp_path: Path) -> None:
    secret = tmp_path / "worker_token"
    secret.write_text("from-a-mounted-secret\n")
    env = {"ORCHESTRATOR_URL": "http://localhost:8080", "WORKER_TOKEN_FILE": str(secret)}
    assert WorkerConfig.from_env("inventory-checker", env).worker_token == "from-a-mounted-secret"


def test_individual_token_file_wins_over_the_token_as_the_official_sdk_does(tmp_path: Path) -> None:
    secret = tmp_path / "individual"
    secret.write_text("individual-token")
    config = config_with(WORKER_INDIVIDUAL_TOKEN_FILE=str(secret))
    assert config.worker_token == "individual-token"


def test_the_official_secret_key_name_is_read_and_hidden_in_errors() -> None:
    assert config_with(SECRET_KEY="orch-key").orchestrator_secret_key == "orch-key"
    assert config_with(SECRET_KEY="x", ORCHESTRATOR_SECRET_KEY="ours").orchestrator_secret_key == "ours"
    with pytest.raises(ConfigError) as info:
        config_with(SECRET_KEY="has space")
    assert str(info.value).startswith("SECRET_KEY=<hidden, 9 characters> is invalid")


def test_orchestrator_secret_key_is_read_from_its_file(tmp_path: Path) -> None:
    secret = tmp_path / "key"
    secret.write_text("orch-key\n")
    assert config_with(ORCHESTRATOR_SECRET_KEY_FILE=str(secret)).orchestrator_secret_key == "orch-key"


@pytest.mark.parametrize(
    ("content", "rule"),
    [(None, "the file does not exist"), ("", "the file is empty"), ("  \n", "the file is empty")],
)
def test_missing_or_empty_secret_file_names_the_variable_and_the_path(
    tmp_path: Path, content: str | None, rule: str
) -> None:
    secret = tmp_path / "worker_token"
    if content is not None:
        secret.write_text(content)
    env = {"ORCHESTRATOR_URL": "http://localhost:8080", "WORKER_TOKEN_FILE": str(secret)}
    with pytest.raises(ConfigError) as info:
        WorkerConfig.from_env("inventory-checker", env)
    assert str(info.value).startswith(f"WORKER_TOKEN_FILE={str(secret)!r} is invalid: {rule}")


def test_secret_file_that_is_a_directory_is_a_clear_error(tmp_path: Path) -> None:
    env = {"ORCHESTRATOR_URL": "http://localhost:8080", "WORKER_TOKEN_FILE": str(tmp_path)}
    with pytest.raises(ConfigError, match=r"WORKER_TOKEN_FILE=.* cannot be read as UTF-8 text"):
        WorkerConfig.from_env("inventory-checker", env)


def test_token_set_both_ways_is_refused_naming_both(tmp_path: Path) -> None:
    secret = tmp_path / "worker_token"
    secret.write_text("file-token")
    with pytest.raises(ConfigError) as info:
        config_with(WORKER_TOKEN_FILE=str(secret))
    assert str(info.value).startswith("WORKER_TOKEN and WORKER_TOKEN_FILE are both set")
    assert "file-token" not in str(info.value)


def test_secret_read_from_a_file_is_never_shown_in_an_error(tmp_path: Path) -> None:
    secret = tmp_path / "worker_token"
    secret.write_text("has a space")
    env = {"ORCHESTRATOR_URL": "http://localhost:8080", "WORKER_TOKEN_FILE": str(secret)}
    with pytest.raises(ConfigError) as info:
        WorkerConfig.from_env("inventory-checker", env)
    assert "has a space" not in str(info.value)
    assert "WORKER_TOKEN_FILE=<hidden" in str(info.value)


def test_missing_token_names_the_file_form_too() -> None:
    with pytest.raises(ConfigError, match=r"WORKER_TOKEN is not set \(nor WORKER_TOKEN_FILE\)"):
        WorkerConfig.from_env("inventory-checker", {"ORCHESTRATOR_URL": "http://localhost:8080"})
