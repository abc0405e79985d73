"""Worker configuration read from the environment (and `.env`), validated with actionable messages."""

from __future__ import annotations

import os
import re
import socket
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from dotenv import load_dotenv

from .endpoints import Endpoint, parse_orchestrators, parse_url
from .errors import ConfigError
from .ratelimit import RateLimits
from .resources import ResourceSettings
from .s3 import FileSettings
from .tls import TlsSettings

WORKER_ID_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("text", "json")
# The orchestrator forgets a worker 120 s after its last heartbeat; stay well inside that.
_MAX_HEARTBEAT_INTERVAL = 60.0

T = TypeVar("T")


def load_env_file(path: str | os.PathLike[str] | None = None) -> bool:
    """Load `.env` from the current directory (or `path`) into os.environ; real variables win."""
    env_path = Path(path) if path is not None else Path.cwd() / ".env"
    return load_dotenv(env_path, override=False)


def sanitise_worker_id(raw: str) -> str:
    """Turn any string (e.g. `{worker_type}-{hostname}`) into a valid worker id."""
    cleaned = re.sub(r"[^a-zA-Z0-9_-]+", "-", raw).strip("-")[:128]
    return cleaned or "worker"


def _invalid(name: str, value: str, rule: str, example: str, *, secret: bool = False) -> ConfigError:
    shown = f"<hidden, {len(value)} characters>" if secret else repr(value)
    return ConfigError(f"{name}={shown} is invalid: {rule} (e.g. {name}={example})")


def _missing(name: str, rule: str, example: str) -> ConfigError:
    also = f" (nor {name}_FILE)" if name in SECRET_VARIABLES else ""
    return ConfigError(f"{name} is not set{also}: {rule} (e.g. {name}={example})")


def _parse_urls(value: str) -> str:
    return ",".join(parse_url(url) for url in value.split(","))


def _parse_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(value)


def _parse_positive_int(value: str) -> int:
    number = int(value.strip())
    if number < 1:
        raise ValueError(value)
    return number


def _parse_heartbeat(value: str) -> float:
    number = float(value.strip())
    if not 0 < number <= _MAX_HEARTBEAT_INTERVAL:
        raise ValueError(value)
    return number


def _parse_positive_float(value: str) -> float:
    number = float(value.strip())
    if not number > 0 or number == float("inf"):
        raise ValueError(value)
    return number


def _parse_non_negative_float(value: str) -> float:
    number = float(value.strip())
    if not 0 <= number < float("inf"):
        raise ValueError(value)
    return number


def _parse_path(value: str) -> str:
    if "\x00" in value:
        raise ValueError(value)
    return str(Path(value.strip()).expanduser())


def _parse_log_format(value: str) -> str:
    fmt = value.strip().lower()
    if fmt not in LOG_FORMATS:
        raise ValueError(value)
    return fmt


def _parse_redis_url(value: str) -> str:
    if urlsplit(value).scheme not in ("redis", "rediss", "unix"):
        raise ValueError(value)
    return value


def _parse_log_level(value: str) -> str:
    level = value.strip().upper()
    if level not in _LOG_LEVELS:
        raise ValueError(value)
    return level


def _parse_worker_id(value: str) -> str:
    if not WORKER_ID_PATTERN.fullmatch(value):
        raise ValueError(value)
    return value


@dataclass(frozen=True)
class _Rule:
    rule: str
    example: str


_RULES: dict[str, _Rule] = {
    "ORCHESTRATOR_URL": _Rule(
        "must be an http:// or https:// URL with a host (instances of one orchestrator: comma-separated)",
        "http://localhost:8080",
    ),
    "WORKER_TOKEN": _Rule("must be a non-empty token without whitespace", "your-secret-worker-token"),
    "WORKER_ID": _Rule("must match ^[a-zA-Z0-9_-]{1,128}$", "inventory-worker-01"),
    "WORKER_ENABLE_WEBSOCKETS": _Rule("must be one of true/false/1/0/yes/no/on/off", "true"),
    "REDIS_URL": _Rule("must be a redis://, rediss:// or unix:// URL", "redis://localhost:6379/0"),
    "WORKER_MAX_CONCURRENT_TASKS": _Rule("must be a whole number >= 1", "4"),
    "WORKER_HEARTBEAT_INTERVAL": _Rule(
        "must be a number of seconds > 0 and <= 60 (the orchestrator forgets a worker after 120 s)", "15"
    ),
    "WORKER_POLL_TIMEOUT": _Rule(
        "must be a number of seconds > 0, above the orchestrator's poll hold (30-59 s)", "75"
    ),
    "LOG_LEVEL": _Rule("must be one of " + "/".join(_LOG_LEVELS), "INFO"),
    "WORKER_SHUTDOWN_TIMEOUT": _Rule("must be a number of seconds >= 0", "30"),
    "WORKER_SPOOL_DIR": _Rule("must be a directory path", "/var/lib/worker/spool"),
    "WORKER_LOG_FORMAT": _Rule("must be one of " + "/".join(LOG_FORMATS), "json"),
    "WORKER_HEALTH_FILE": _Rule("must be a file path", "/tmp/avtomatika-worker.health"),
    "WORKER_PORT": _Rule("must be a TCP port from 1 to 65535", "8083"),
    "WORKER_METRICS_PORT": _Rule("must be a TCP port from 1 to 65535", "9464"),
    "WORKER_SKILLS_DIR": _Rule("must be a directory path", "skills"),
    "WORKER_CANCEL_CHECK_INTERVAL": _Rule("must be a number of seconds > 0", "0.5"),
    "ORCHESTRATOR_SECRET_KEY": _Rule(
        "must be the orchestrator's ORCHESTRATOR_SECRET_KEY, without whitespace", "your-orchestrator-secret"
    ),
    "WORKER_RATE_LIMITS": _Rule(
        "must be off, on (avtomatika 1.0b30's defaults) or any of poll=N,heartbeat=N,other=N,period=SECONDS "
        "matching the orchestrator's RATE_LIMIT_POLL_LIMIT, RATE_LIMIT_HEARTBEAT_LIMIT, RATE_LIMIT_LIMIT "
        "and RATE_LIMIT_PERIOD",
        "poll=60,heartbeat=120,other=100,period=60",
    ),
}


def default_spool_dir(worker_id: str) -> str:
    """`<tempdir>/avtomatika-worker/<worker_id>`: where undelivered results wait by default."""
    return str(Path(tempfile.gettempdir()) / "avtomatika-worker" / worker_id)


def default_health_file() -> str:
    """`<tempdir>/avtomatika-worker.health`: the liveness file read by `python -m avtomatika_worker.health`."""
    return str(Path(tempfile.gettempdir()) / "avtomatika-worker.health")


_SECRETS = frozenset({"WORKER_TOKEN", "ORCHESTRATOR_SECRET_KEY"})


# The official SDK's names for the same settings (same meaning), read when ours is not set; an error
# names the variable that was set. Its WORKER_INDIVIDUAL_TOKEN wins over WORKER_TOKEN, as there.
_OFFICIAL_NAMES = {
    "WORKER_MAX_CONCURRENT_TASKS": "MAX_CONCURRENT_TASKS",
    "WORKER_HEARTBEAT_INTERVAL": "HEARTBEAT_INTERVAL",
    "WORKER_LOG_FORMAT": "LOG_FORMAT",
    "ORCHESTRATOR_SECRET_KEY": "SECRET_KEY",
}
_OVERRIDING_NAMES = {"WORKER_TOKEN": "WORKER_INDIVIDUAL_TOKEN"}
# Secrets may come from files (`WORKER_TOKEN_FILE=/run/secrets/worker_token`), as Docker and Kubernetes mount them.
SECRET_VARIABLES = _SECRETS | frozenset(_OVERRIDING_NAMES.values()) | {"SECRET_KEY", "S3_SECRET_KEY"}


def _set(raw: str | None) -> bool:
    return raw is not None and raw.strip() != ""


def _source(env: Mapping[str, str], name: str) -> tuple[str, str | None]:
    """The variable that sets `name` (ours, the official SDK's name, or a `*_FILE` form) and its value."""
    overriding = _OVERRIDING_NAMES.get(name)
    if overriding is not None:
        source, raw = _value(env, overriding)
        if _set(raw):
            return source, raw
    source, raw = _value(env, name)
    official = _OFFICIAL_NAMES.get(name)
    if not _set(raw) and official is not None and _set(env.get(official)):
        return official, env[official]
    return source, raw


def _value(env: Mapping[str, str], name: str) -> tuple[str, str | None]:
    file_name = f"{name}_FILE"
    if name in SECRET_VARIABLES and _set(env.get(file_name)):
        return file_name, env_secret(env, name)
    return name, env.get(name)


def read_secret_file(variable: str, path: str) -> str:
    """The secret in the file `variable` names (Docker/Kubernetes secret mounts), surrounding whitespace removed."""
    shown = path.strip()
    fix = (
        f"mount the secret there or point {variable} at the mounted file (e.g. {variable}=/run/secrets/token)"
    )
    try:
        content = Path(shown).expanduser().read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ConfigError(f"{variable}={shown!r} is invalid: the file does not exist ({fix})") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigError(
            f"{variable}={shown!r} is invalid: the file cannot be read as UTF-8 text ({reason}; {fix})"
        ) from None
    if not content:
        raise ConfigError(f"{variable}={shown!r} is invalid: the file is empty (write the secret into it)")
    return content


def env_secret(env: Mapping[str, str], name: str) -> str | None:
    """The secret `name` from the environment, or from the file `<name>_FILE` names; None when neither is set."""
    file_name = f"{name}_FILE"
    if _set(env.get(file_name)):
        if _set(env.get(name)):
            raise ConfigError(
                f"{name} and {file_name} are both set: set only one "
                f"(keep {file_name} for a mounted secret file and unset {name})"
            )
        return read_secret_file(file_name, env[file_name])
    raw = env.get(name)
    return raw if _set(raw) else None


def _read(env: Mapping[str, str], name: str, parse: Callable[[str], T], default: T) -> T:
    source, raw = _source(env, name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return parse(raw)
    except ValueError:
        rule = _RULES[name]
        raise _invalid(source, raw, rule.rule, rule.example, secret=name in _SECRETS) from None


def _read_required(env: Mapping[str, str], name: str, parse: Callable[[str], str]) -> str:
    rule = _RULES[name]
    source, raw = _source(env, name)
    if raw is None or raw.strip() == "":
        raise _missing(name, rule.rule, rule.example)
    try:
        return parse(raw)
    except ValueError:
        raise _invalid(source, raw, rule.rule, rule.example, secret=name in _SECRETS) from None


def _parse_port(value: str) -> int:
    port = int(value.strip())
    if not 1 <= port <= 65535:
        raise ValueError(value)
    return port


def _orchestrators(env: Mapping[str, str]) -> tuple[Endpoint, ...]:
    """ORCHESTRATORS_CONFIG (the official SDK's JSON list, which wins), else ORCHESTRATOR_URL's URLs."""
    raw = env.get("ORCHESTRATORS_CONFIG")
    if raw is not None and raw.strip():
        return parse_orchestrators(raw)
    urls = _read_required(env, "ORCHESTRATOR_URL", _parse_urls)
    return tuple(Endpoint(url, priority=1) for url in urls.split(","))


def _parse_token(value: str) -> str:
    if any(ch.isspace() for ch in value):
        raise ValueError("token contains whitespace")
    return value


@dataclass(frozen=True)
class WorkerConfig:
    """Everything the worker needs to talk to the orchestrator and Redis."""

    worker_type: str
    orchestrator_url: str  # the first of `orchestrators`
    worker_token: str = field(repr=False)
    worker_id: str
    enable_websockets: bool = False
    redis_url: str = "redis://localhost:6379/0"
    max_concurrent_tasks: int = 1
    heartbeat_interval: float = 15.0
    poll_timeout: float = 75.0
    log_level: str = "INFO"
    shutdown_timeout: float = 30.0
    # Empty means the documented default under the system temp dir (see `spool_path`/`health_path`).
    spool_dir: str = ""
    log_format: str = "text"
    health_file: str = ""
    health_port: int | None = None  # WORKER_PORT: serve GET /health over HTTP (off when unset)
    metrics_port: int | None = None  # WORKER_METRICS_PORT: GET /metrics, /healthz (off when unset)
    skills_dir: str = "skills"  # WORKER_SKILLS_DIR: SkillBlueprint modules loaded at start, when it exists
    cancel_check_interval: float = 0.5
    orchestrator_secret_key: str | None = field(default=None, repr=False)
    rate_limits: RateLimits = field(default_factory=RateLimits)
    # ORCHESTRATORS_CONFIG, or the URLs of ORCHESTRATOR_URL (endpoints.py); empty: just orchestrator_url.
    orchestrators: tuple[Endpoint, ...] = ()
    resources: ResourceSettings = field(default_factory=ResourceSettings)
    tls: TlsSettings = field(default_factory=TlsSettings)  # WORKER_TLS_*: CA bundle, mTLS cert (tls.py)
    files: FileSettings = field(default_factory=FileSettings)  # S3_*, TASK_FILES_DIR: task files (s3.py)

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        """Where the orchestrator answers: `orchestrators`, or just `orchestrator_url`."""
        return self.orchestrators or (Endpoint(self.orchestrator_url, priority=1),)

    @property
    def spool_path(self) -> Path:
        """The directory of the durable result spool."""
        return Path(self.spool_dir or default_spool_dir(self.worker_id))

    @property
    def skills_path(self) -> Path:
        """The skills directory (relative to the working directory unless absolute)."""
        return Path(self.skills_dir)

    @property
    def health_path(self) -> Path:
        """The liveness file."""
        return Path(self.health_file or default_health_file())

    @classmethod
    def from_env(cls, worker_type: str, environ: Mapping[str, str] | None = None) -> WorkerConfig:
        """Build the config from `environ` (default: os.environ); raises ConfigError naming the variable."""
        env = os.environ if environ is None else environ
        default_id = sanitise_worker_id(f"{worker_type}-{socket.gethostname()}")
        endpoints = _orchestrators(env)
        return cls(
            worker_type=worker_type,
            orchestrator_url=endpoints[0].url,
            orchestrators=endpoints,
            worker_token=_read_required(env, "WORKER_TOKEN", _parse_token),
            worker_id=_read(env, "WORKER_ID", _parse_worker_id, default_id),
            enable_websockets=_read(env, "WORKER_ENABLE_WEBSOCKETS", _parse_bool, False),
            redis_url=_read(env, "REDIS_URL", _parse_redis_url, "redis://localhost:6379/0"),
            max_concurrent_tasks=_read(env, "WORKER_MAX_CONCURRENT_TASKS", _parse_positive_int, 1),
            heartbeat_interval=_read(env, "WORKER_HEARTBEAT_INTERVAL", _parse_heartbeat, 15.0),
            poll_timeout=_read(env, "WORKER_POLL_TIMEOUT", _parse_positive_float, 75.0),
            log_level=_read(env, "LOG_LEVEL", _parse_log_level, "INFO"),
            shutdown_timeout=_read(env, "WORKER_SHUTDOWN_TIMEOUT", _parse_non_negative_float, 30.0),
            spool_dir=_read(env, "WORKER_SPOOL_DIR", _parse_path, ""),
            log_format=_read(env, "WORKER_LOG_FORMAT", _parse_log_format, "text"),
            health_file=_read(env, "WORKER_HEALTH_FILE", _parse_path, ""),
            health_port=_read(env, "WORKER_PORT", _parse_port, None),
            metrics_port=_read(env, "WORKER_METRICS_PORT", _parse_port, None),
            skills_dir=_read(env, "WORKER_SKILLS_DIR", _parse_path, "skills"),
            cancel_check_interval=_read(env, "WORKER_CANCEL_CHECK_INTERVAL", _parse_positive_float, 0.5),
            orchestrator_secret_key=_read(env, "ORCHESTRATOR_SECRET_KEY", _parse_token, None),
            rate_limits=_read(env, "WORKER_RATE_LIMITS", RateLimits.parse, RateLimits()),
            resources=ResourceSettings.from_env(env),
            tls=TlsSettings.from_env(env),
            files=FileSettings.from_env(env),
        )
