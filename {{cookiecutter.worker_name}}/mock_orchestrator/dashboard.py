"""The dashboard page served at `/`: static HTML/JS/CSS that drives the control API from the browser."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_FILES_KEY: web.AppKey[frozenset[str]] = web.AppKey("mock_orchestrator_static_files", frozenset)
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
