"""``python -m mock_orchestrator``: configure from the environment (and .env) and serve."""

from __future__ import annotations

import logging
import os
import sys

from aiohttp import web

from .app import create_app
from .dashboard import dashboard_url
from .settings import ConfigError, ServerConfig, load_server_config


def _load_dotenv() -> None:
    try:
        from dotenv import find_dotenv, load_dotenv
    except ImportError:  # python-dotenv is optional here; the real environment is enough
        return
    load_dotenv(find_dotenv(usecwd=True), override=False)


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        stream=sys.stdout,
        format="%(asctime)s mock-orchestrator %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("aiohttp").setLevel(logging.WARNING)


def main() -> int:
    """Entry point; returns the process exit code (2 on a configuration error)."""
    _load_dotenv()
    try:
        config: ServerConfig = load_server_config(os.environ)
    except ConfigError as exc:
        print(f"mock_orchestrator: {exc}", file=sys.stderr)
        return 2
    _configure_logging(config.log_level)
    log = logging.getLogger("mock_orchestrator")
    settings = config.settings
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
    public_url = os.environ.get("MOCK_PUBLIC_URL") or f"http://{config.host}:{config.port}"
    log.info("dashboard: %s", dashboard_url(public_url, settings.client_token))
    web.run_app(
        create_app(config.settings),
        host=config.host,
        port=config.port,
        print=None,
        access_log=None,
        shutdown_timeout=5.0,
    )
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
