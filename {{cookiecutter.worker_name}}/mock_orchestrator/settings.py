"""Configuration of the mock orchestrator: the app settings and the environment loader."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass(frozen=True)
class MockSettings:
    """Settings of one mock orchestrator app; ``clock`` (wall-clock seconds) is a test seam."""

    worker_token: str
    client_token: str
    poll_hold_seconds: float = 30.0
    clock: Callable[[], float] = field(default=time.time)
    demo_task: Mapping[str, Any] | None = None  # a POST /api/v1/tasks body queued at start-up


@dataclass(frozen=True)
class ServerConfig:
    """Everything ``python -m mock_orchestrator`` needs: app settings plus the listen address."""

    settings: MockSettings
    host: str = "0.0.0.0"
    port: int = 8080


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


def _port(env: Mapping[str, str]) -> int:
    raw = env.get("MOCK_PORT", "8080")
    rule = "must be an integer from 1 to 65535"
    try:
        port = int(raw)
    except ValueError:
        raise _problem("MOCK_PORT", raw, rule, "8080") from None
    if not 1 <= port <= 65535:
        raise _problem("MOCK_PORT", raw, rule, "8080")
    return port


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
    from .control_api import InvalidRequest, parse_submission  # the same rules as the control API

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
    host = env.get("MOCK_HOST", "0.0.0.0")
    if not host.strip():
        raise _problem("MOCK_HOST", host, "must be a host name or IP address to listen on", "0.0.0.0")
    settings = MockSettings(
        worker_token=worker_token,
        client_token=client_token,
        poll_hold_seconds=_hold(env),
        demo_task=_demo_task(env),
    )
    return ServerConfig(settings=settings, host=host, port=_port(env))
