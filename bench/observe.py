"""Metrics and tracing off vs on: the same worker against the mock, with WORKER_METRICS_PORT and an OTLP
endpoint (a loopback sink answering 200) set for the "on" row; the difference is the cost per task."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .measure import WorkerSpec
from .procs import free_port
from .suite import Plan, Row, measure_rows
from .targets import Target, mock_orchestrator


class _Sink(BaseHTTPRequestHandler):
    """An OTLP/HTTP endpoint that takes every export (the exporter's own cost is what is measured)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@contextmanager
def otlp_sink() -> Iterator[str]:
    """A loopback OTLP/HTTP endpoint until exit."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join()


def measure_observe(specs: dict[str, WorkerSpec], plan: Plan, tmp: Path, project: Path) -> dict[str, Any]:
    """Throughput and CPU per task at concurrency 1 with metrics and tracing off, then on."""

    def fresh_mock(workdir: Path) -> AbstractContextManager[Target]:
        return mock_orchestrator(project, workdir, sys.executable)

    off = specs["ours"]
    with otlp_sink() as endpoint:
        extra = {
            "WORKER_METRICS_PORT": str(free_port()),
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "1000",
        }
        on = replace(off, name="ours-observe", env={**off.env, **extra})
        rows = [Row("ours", 1, plan.tasks), Row("ours-observe", 1, plan.tasks)]
        found = measure_rows(
            rows, {"ours": off, "ours-observe": on}, fresh_mock, plan, tmp, project, "observe"
        )
    cpu_off, cpu_on = (s["cpu_ms_per_task"]["median"] for s in found)
    return {"off": found[0], "on": found[1], "added_cpu_ms_per_task": cpu_on - cpu_off}
