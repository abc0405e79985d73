"""Where the mock listens and how people reach it: the port variables and the dashboard link.

Standard library only: the CLI imports this on a bare ``python3``.

One port story: ``MOCK_ORCHESTRATOR_PORT`` (``.env``, default 8080) is the port the mock is reached on from
this machine. ``python -m mock_orchestrator`` listens on it, ``docker compose`` publishes the container's
8080 on it, and the CLI sends its requests to it. ``MOCK_PORT``, the older server-only name, still works
and wins when set.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote, urlsplit, urlunsplit

DEFAULT_PORT = "8080"
PORT_VARIABLE = "MOCK_ORCHESTRATOR_PORT"
LEGACY_PORT_VARIABLE = "MOCK_PORT"
BIND_ALL_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]"})


def port_setting(env: Mapping[str, str]) -> tuple[str, str]:
    """(variable, raw value) of the configured port: MOCK_PORT if set, else MOCK_ORCHESTRATOR_PORT, else 8080."""
    for name in (LEGACY_PORT_VARIABLE, PORT_VARIABLE):
        raw = env.get(name, "").strip()
        if raw:
            return name, raw
    return PORT_VARIABLE, DEFAULT_PORT


def parse_port(raw: str) -> int | None:
    """The port number in ``raw``, or None when it is not an integer from 1 to 65535."""
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        return None
    return int(raw)


def dashboard_url(host_port_url: str, client_token: str) -> str:
    """The dashboard address carrying ``client_token`` in the fragment, which browsers never send."""
    parts = urlsplit(host_port_url if "://" in host_port_url else f"http://{host_port_url}")
    netloc = parts.netloc
    if parts.hostname is None or parts.hostname in BIND_ALL_HOSTS:
        netloc = "localhost" if parts.port is None else f"localhost:{parts.port}"
    path = parts.path.rstrip("/") + "/"
    return urlunsplit((parts.scheme, netloc, path, "", f"token={quote(client_token, safe='')}"))
