"""The dashboard page served at `/` (placeholder until the dashboard lands)."""

from __future__ import annotations

from aiohttp import web


def setup_dashboard_routes(app: web.Application) -> None:
    """Register the dashboard routes on `app`."""
