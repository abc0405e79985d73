"""``python -m mock_orchestrator``: configure from the environment (and .env) and serve."""

from __future__ import annotations

import errno
import logging
import socket
import sys

from aiohttp import web

from .address import dashboard_url
from .app import create_app
from .envfile import environment
from .settings import ConfigError, MockSettings, ServerConfig, load_server_config

log = logging.getLogger("mock_orchestrator")


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        stream=sys.stdout,
        format="%(asctime)s mock-orchestrator %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("aiohttp").setLevel(logging.WARNING)


def listen(config: ServerConfig) -> socket.socket:
    """The bound listening socket; a port or address that cannot be used is a ConfigError naming the knob."""
    variable, port = config.port_variable, config.port
    other_port = port + 1 if port < 65535 else port - 1
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            config.host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise ConfigError(
            f"MOCK_HOST={config.host!r} is invalid: {exc.strerror} (e.g. MOCK_HOST=127.0.0.1)"
        ) from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart must not wait for TIME_WAIT
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"port {port} on {config.host} is already in use (is the mock already running, e.g. in "
                f"`docker compose up`?): set {variable} to a free port, e.g. {variable}={other_port}"
            ) from None
        raise ConfigError(
            f"cannot listen on {config.host}:{port} ({exc.strerror}): set {variable} or MOCK_HOST"
        ) from None
    return sock


def _log_start(config: ServerConfig, settings: MockSettings) -> None:
    log.info(
        "listening on http://%s:%d (worker API /_worker, control API /api/v1, poll hold %gs)",
        config.host,
        config.port,
        settings.poll_hold_seconds,
    )
    log.info(
        "dispatch: %s; cancel flags: %s; individual worker tokens: %d",
        "strict (tasks no idle worker can take are quarantined)"
        if settings.strict_dispatch
        else "tasks wait",
        "Redis" if settings.redis_url else "off (REDIS_URL not set)",
        len(settings.worker_tokens),
    )
    limits = settings.rate_limits
    log.info(
        "rate limits: %s",
        f"per worker and {limits.period} s: poll {limits.poll}, heartbeat {limits.heartbeat}, "
        f"other {limits.other}"
        if limits
        else "off (MOCK_RATE_LIMITS)",
    )
    # Like a notebook server's login link: the token rides in the URL fragment, never sent to the server.
    public_url = config.public_url or f"http://{config.host}:{config.port}"
    log.info("dashboard: %s", dashboard_url(public_url, settings.client_token))


def main() -> int:
    """Entry point; returns the process exit code (2 on a configuration error or an unusable port)."""
    try:
        config = load_server_config(environment())
        sock = listen(config)
    except ConfigError as exc:
        print(f"mock_orchestrator: {exc}", file=sys.stderr)
        return 2
    _configure_logging(config.log_level)
    _log_start(config, config.settings)
    web.run_app(create_app(config.settings), sock=sock, print=None, access_log=None, shutdown_timeout=5.0)
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
