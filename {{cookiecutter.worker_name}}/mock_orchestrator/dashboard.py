"""The dashboard page served at `/`: static HTML/JS/CSS that drives the control API from the browser."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from aiohttp import web

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_FILES_KEY: web.AppKey[frozenset[str]] = web.AppKey("mock_orchestrator_static_files", frozenset)
BIND_ALL_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]"})
# The page runs only its own files and talks only to this server; nothing is loaded from elsewhere.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


def dashboard_url(host_port_url: str, client_token: str) -> str:
    """The dashboard address carrying ``client_token`` in the fragment, which browsers never send."""
    parts = urlsplit(host_port_url if "://" in host_port_url else f"http://{host_port_url}")
    netloc = parts.netloc
    if parts.hostname is None or parts.hostname in BIND_ALL_HOSTS:
        netloc = "localhost" if parts.port is None else f"localhost:{parts.port}"
    path = parts.path.rstrip("/") + "/"
    return urlunsplit((parts.scheme, netloc, path, "", f"token={quote(client_token, safe='')}"))


async def index(request: web.Request) -> web.StreamResponse:
    """GET /: the dashboard page."""
    return web.FileResponse(STATIC_DIR / "index.html", headers=PAGE_HEADERS)


async def static_file(request: web.Request) -> web.StreamResponse:
    """GET /static/{name}: one of the dashboard's own files (a fixed list, so no path tricks)."""
    name = request.match_info["name"]
    if name not in request.app[STATIC_FILES_KEY]:
        raise web.HTTPNotFound(reason=f"No dashboard file {name!r}")
    return web.FileResponse(STATIC_DIR / name, headers=PAGE_HEADERS)


def setup_dashboard_routes(app: web.Application) -> None:
    """Register the dashboard routes on `app`."""
    app[STATIC_FILES_KEY] = frozenset(p.name for p in STATIC_DIR.iterdir() if p.is_file())
    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static_file)
