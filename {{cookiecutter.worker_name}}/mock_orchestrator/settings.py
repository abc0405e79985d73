"""Configuration of the mock orchestrator: the app settings and the environment loader.

Environment (``python -m mock_orchestrator``; ``.env`` is read, the real environment wins):

| Variable | Default | Meaning |
|---|---|---|
| ``WORKER_TOKEN`` | required | the global worker token (``X-Worker-Token``) and HMAC key |
| ``CLIENT_TOKEN`` | required | control-API token (``X-Client-Token``) |
| ``MOCK_ORCHESTRATOR_PORT`` | ``8080`` | the port to listen on (``MOCK_PORT``, its older name, wins when set) |
| ``MOCK_HOST`` | ``127.0.0.1`` | the address to listen on (its image sets ``0.0.0.0``) |
| ``MOCK_PUBLIC_URL`` | ``http://<host>:<port>`` | the dashboard link logged at start-up |
| ``MOCK_POLL_HOLD_SECONDS`` | ``30`` | how long an empty long poll is held before the 204 |
| ``MOCK_STRICT_DISPATCH`` | ``false`` | ``true``: like avtomatika 1.0b30, a task that finds no live idle worker |
| | | with its skill is quarantined at once ("No suitable workers for task type '...'"); |
| | | ``false``: it waits in the queue until a capable worker polls |
| ``REDIS_URL`` | unset | when set, a cancel writes ``orchestrator:task_cancel:{task_id}`` = ``"1"`` EX 3600 |
| ``ORCHESTRATOR_SECRET_KEY`` | random | the key of each task's ``sig`` (as avtomatika's dispatcher signs it) |
| ``MOCK_DEMO_TASK`` | unset | a ``POST /api/v1/tasks`` body queued at start-up |
| ``MOCK_WORKERS_TOML`` | unset | path of a workers.toml (``[worker_id]`` tables with ``token = "..."``): that |
| | | worker must use its individual token, which is also its HMAC key |
| ``MOCK_LOG_LEVEL`` | ``INFO`` | ``DEBUG``/``INFO``/``WARNING``/``ERROR``; ``INFO`` logs every task hand-out and result |
| ``S3_ENDPOINT_URL``, ``S3_ACCESS_KEY``, | unset | files through S3 (all three or none; the orchestrator's names): uploads |
| ``S3_SECRET_KEY`` | | (``POST /api/v1/files``), ``params_metadata`` and download links of output files |
| ``S3_DEFAULT_BUCKET``, ``S3_REGION`` | ``avtomatika-payloads``, ``us-east-1`` | the bucket (created at start-up) and region |
| ``MOCK_RATE_LIMITS`` | ``off`` | avtomatika's per-worker limiter (429 when over): ``on`` = its defaults |
| | | ``poll=60,heartbeat=120,other=100,period=60``, or any subset of that list, e.g. ``poll=10,period=5`` |
| | | (requests of one type per worker within ``period`` s; every request, refused ones too, restarts it) |
"""

from __future__ import annotations

import math
import re
import secrets
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from .address import parse_port, port_setting
from .s3 import S3Settings, s3_settings
from .submissions import InvalidRequest, parse_submission


@dataclass(frozen=True)
class RateLimits:
    """avtomatika's RATE_LIMIT_* per worker and message type: at most ``limit`` requests per ``period`` s."""

    poll: int = 60  # RATE_LIMIT_POLL_LIMIT
    heartbeat: int = 120  # RATE_LIMIT_HEARTBEAT_LIMIT
    other: int = 100  # RATE_LIMIT_LIMIT: register, result, event, websocket_auth, websocket
    period: int = 60  # RATE_LIMIT_PERIOD, seconds

    def limit_for(self, message_type: str) -> int:
        """The limit of one message type (``poll``, ``heartbeat``, anything else)."""
        if message_type == "poll":
            return self.poll
        if message_type == "heartbeat":
            return self.heartbeat
        return self.other


@dataclass(frozen=True)
class MockSettings:
    """Settings of one mock orchestrator app; ``clock`` (wall-clock seconds) is a test seam."""

    worker_token: str
    client_token: str
    poll_hold_seconds: float = 30.0
    clock: Callable[[], float] = field(default=time.time)
    demo_task: Mapping[str, Any] | None = None  # a POST /api/v1/tasks body queued at start-up
    strict_dispatch: bool = False  # quarantine tasks no idle worker can take, like the real orchestrator
    redis_url: str | None = None  # where cancel flags are written; None writes none
    worker_tokens: Mapping[str, str] = field(default_factory=dict)  # individual tokens (workers.toml)
    rate_limits: RateLimits | None = None  # None: no rate limiting (MOCK_RATE_LIMITS unset or off)
    task_secret: str = field(default_factory=lambda: secrets.token_hex(32))  # signs each task's sig
    s3: S3Settings | None = None  # files through S3 (S3_*); None: file routes answer 501

    def key_for(self, worker_id: Any) -> str:
        """The token a worker must present and sign with: its individual token, else the global one."""
        individual = self.worker_tokens.get(worker_id) if isinstance(worker_id, str) else None
        return individual or self.worker_token


@dataclass(frozen=True)
class ServerConfig:
    """Everything ``python -m mock_orchestrator`` needs: app settings plus the listen address."""

    settings: MockSettings
    host: str = "127.0.0.1"
    port: int = 8080
    port_variable: str = "MOCK_ORCHESTRATOR_PORT"  # where the port came from, for messages about it
    log_level: str = "INFO"
    public_url: str | None = None  # MOCK_PUBLIC_URL


class ConfigError(ValueError):
    """An environment variable is missing or invalid; the message is one line for the user."""


def _problem(name: str, value: str | None, rule: str, example: str) -> ConfigError:
    shown = f"{name} is not set" if value is None else f"{name}={value!r} is invalid"
    return ConfigError(f"{shown}: {rule} (e.g. {name}={example})")


def _required_text(env: Mapping[str, str], name: str, rule: str, example: str) -> str:
    value = env.get(name)
    if value is None or not value.strip():
        raise _problem(name, value, rule, example)
    return value


def _port(env: Mapping[str, str]) -> tuple[int, str]:
    name, raw = port_setting(env)
    port = parse_port(raw)
    if port is None:
        raise _problem(name, raw, "must be an integer from 1 to 65535", "8080")
    return port, name


def _hold(env: Mapping[str, str]) -> float:
    raw = env.get("MOCK_POLL_HOLD_SECONDS", "30")
    rule = "must be a number of seconds greater than 0 and at most 300"
    try:
        hold = float(raw)
    except ValueError:
        raise _problem("MOCK_POLL_HOLD_SECONDS", raw, rule, "30") from None
    if not math.isfinite(hold) or not 0 < hold <= 300:
        raise _problem("MOCK_POLL_HOLD_SECONDS", raw, rule, "30")
    return hold


def _demo_task(env: Mapping[str, str]) -> dict[str, Any] | None:
    raw = env.get("MOCK_DEMO_TASK", "").strip()
    if not raw:
        return None
    example = '{"type": "check_inventory", "params": {"items": ["apple"]} }'
    try:
        body = orjson.loads(raw)
        parse_submission(body)
    except (orjson.JSONDecodeError, InvalidRequest) as exc:
        raise _problem("MOCK_DEMO_TASK", raw, f"must be a task submission as JSON ({exc})", example) from None
    return dict(body)


TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("", "0", "false", "no", "off")


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "")
    if raw.strip().lower() in TRUE_WORDS:
        return True
    if raw.strip().lower() in FALSE_WORDS:
        return False
    raise _problem(name, raw, f"must be one of {', '.join(TRUE_WORDS + FALSE_WORDS[1:])}", "true")


def _redis_url(env: Mapping[str, str]) -> str | None:
    raw = env.get("REDIS_URL", "").strip()
    if not raw:
        return None
    if not raw.startswith(("redis://", "rediss://", "unix://")):
        raise _problem(
            "REDIS_URL", raw, "must be a redis://, rediss:// or unix:// URL", "redis://redis:6379/0"
        )
    return raw


RATE_LIMIT_NAMES = ("poll", "heartbeat", "other", "period")
RATE_LIMITS_EXAMPLE = "poll=10,heartbeat=10,other=20,period=5"
WHOLE_NUMBER = re.compile(r"[0-9]+")


def _rate_limit_item(raw: str, item: str, seen: Mapping[str, int]) -> tuple[str, int]:
    name, equals, number = (part.strip() for part in item.partition("="))
    problem = ""
    if not equals or name not in RATE_LIMIT_NAMES:
        problem = f"{item.strip()!r} is not one of {'=N, '.join(RATE_LIMIT_NAMES)}=N"
    elif name in seen:
        problem = f"{name} is given twice"
    elif not WHOLE_NUMBER.fullmatch(number) or (name == "period" and int(number) == 0):
        problem = f"{name}={number!r} is not a whole number" + (" >= 1" if name == "period" else "")
    if problem:
        rule = (
            f"{problem}; it must be off, on (avtomatika's defaults poll=60,heartbeat=120,other=100,"
            "period=60) or a comma-separated subset of them"
        )
        raise _problem("MOCK_RATE_LIMITS", raw, rule, RATE_LIMITS_EXAMPLE)
    return name, int(number)


def _rate_limits(env: Mapping[str, str]) -> RateLimits | None:
    raw = env.get("MOCK_RATE_LIMITS", "")
    word = raw.strip().lower()
    if word in FALSE_WORDS:
        return None
    if word in TRUE_WORDS or word == "defaults":
        return RateLimits()
    values: dict[str, int] = {}
    for item in word.split(","):
        name, number = _rate_limit_item(raw, item, values)
        values[name] = number
    return RateLimits(**values)


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _log_level(env: Mapping[str, str]) -> str:
    raw = env.get("MOCK_LOG_LEVEL", "").strip()
    if not raw:
        return "INFO"
    if raw.upper() not in LOG_LEVELS:
        raise _problem("MOCK_LOG_LEVEL", raw, f"must be one of {', '.join(LOG_LEVELS)}", "WARNING")
    return raw.upper()


def _s3(env: Mapping[str, str]) -> S3Settings | None:
    try:
        return s3_settings(env)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def load_worker_tokens(path: str) -> dict[str, str]:
    """Read individual tokens from a workers.toml (``[worker_id]`` tables with ``token``), as avtomatika does."""
    example = "/app/workers.toml"
    try:
        with open(path, "rb") as handle:
            tables = tomllib.load(handle)
    except OSError as exc:
        raise _problem(
            "MOCK_WORKERS_TOML", path, f"must name a readable file ({exc.strerror})", example
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise _problem("MOCK_WORKERS_TOML", path, f"must be valid TOML ({exc})", example) from None
    tokens: dict[str, str] = {}
    for worker_id, table in tables.items():
        if not isinstance(table, dict):
            rule = f'[{worker_id}] must be a table like [{worker_id}] token = "..."'
            raise _problem("MOCK_WORKERS_TOML", path, rule, example)
        token = table.get("token")
        if isinstance(token, str) and token:
            tokens[worker_id] = token  # entries without a token are skipped, like the real loader does
    return tokens


def load_server_config(env: Mapping[str, str]) -> ServerConfig:
    """Read and validate the mock's environment variables; raise ConfigError on the first problem."""
    worker_token = _required_text(
        env,
        "WORKER_TOKEN",
        "must be the non-empty token your worker sends as X-Worker-Token",
        "dev-worker-token",
    )
    client_token = _required_text(
        env, "CLIENT_TOKEN", "must be the non-empty token for X-Client-Token on /api/v1", "dev-client-token"
    )
    host = env.get("MOCK_HOST", "127.0.0.1")
    if not host.strip():
        raise _problem("MOCK_HOST", host, "must be a host name or IP address to listen on", "127.0.0.1")
    settings = MockSettings(
        worker_token=worker_token,
        client_token=client_token,
        poll_hold_seconds=_hold(env),
        demo_task=_demo_task(env),
        strict_dispatch=_flag(env, "MOCK_STRICT_DISPATCH"),
        redis_url=_redis_url(env),
        worker_tokens=load_worker_tokens(env["MOCK_WORKERS_TOML"]) if env.get("MOCK_WORKERS_TOML") else {},
        rate_limits=_rate_limits(env),
        task_secret=env.get("ORCHESTRATOR_SECRET_KEY", "") or secrets.token_hex(32),
        s3=_s3(env),
    )
    port, port_variable = _port(env)
    return ServerConfig(
        settings=settings,
        host=host,
        port=port,
        port_variable=port_variable,
        log_level=_log_level(env),
        public_url=env.get("MOCK_PUBLIC_URL", "").strip() or None,
    )
