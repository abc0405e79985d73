"""An optional HTTP health endpoint for HTTP probes: `GET /health` on WORKER_PORT (the official SDK's name).

Off unless WORKER_PORT is set: the image's HEALTHCHECK reads the liveness file and needs no port. The
answer is the same verdict as `python -m avtomatika_worker.health` (health.py): 200 `{"status": "ok"}`,
or 503 with the reason.
"""

from __future__ import annotations

import time
from pathlib import Path

from aiohttp import web

from .liveness import check
from .metrics import CONTENT_TYPE, Metrics


class HealthServer:
    """Serves `GET /health` from the liveness file until `stop()`."""

    def __init__(
        self,
        port: int,
        liveness_path: Path,
        max_age: float,
        host: str = "0.0.0.0",
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics  # WORKER_METRICS_PORT: also `GET /metrics` and `GET /healthz`
        self._port = port
        self._host = host
        self._path = liveness_path
        self._max_age = max_age
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Bind and serve; raises OSError when the port is taken."""
        app = web.Application()
        app.router.add_get("/health", self._health)
        if self._metrics is not None:
            app.router.add_get("/healthz", self._health)
            app.router.add_get("/metrics", self._exposition)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._port).start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _exposition(self, request: web.Request) -> web.Response:
        assert self._metrics is not None
        return web.Response(body=self._metrics.render().encode(), headers={"Content-Type": CONTENT_TYPE})

    async def _health(self, request: web.Request) -> web.Response:
        problem = check(self._path, self._max_age, time.time())
        if problem is None:
            return web.json_response({"status": "ok"})
        return web.json_response({"status": "unhealthy", "problem": problem}, status=503)
