"""Per-task logging context (task_id/job_id) and the process-wide setup used by `Worker.run()`."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from contextvars import ContextVar

task_id_var: ContextVar[str] = ContextVar("avtomatika_task_id", default="-")
job_id_var: ContextVar[str] = ContextVar("avtomatika_job_id", default="-")

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [job=%(job_id)s task=%(task_id)s] %(message)s"


class TaskContextFilter(logging.Filter):
    """Adds the current task_id and job_id to every record passing through a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Annotate the record; never drops it."""
        record.task_id = task_id_var.get()
        record.job_id = job_id_var.get()
        return True


@contextlib.contextmanager
def task_context(task_id: str, job_id: str) -> Iterator[None]:
    """Bind task_id/job_id to log records emitted inside the block."""
    task_token = task_id_var.set(task_id)
    job_token = job_id_var.set(job_id)
    try:
        yield
    finally:
        task_id_var.reset(task_token)
        job_id_var.reset(job_token)


def configure_logging(level: str) -> None:
    """Send readable, task-annotated log lines to stderr; called by `Worker.run()` only."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(TaskContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp logs every request at INFO on its access logger; keep the worker's output readable.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
