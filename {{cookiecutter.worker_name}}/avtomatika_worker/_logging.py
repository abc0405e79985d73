"""Per-task logging context (task_id/job_id) and the process-wide setup used by `Worker.run()`."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import Any

import orjson

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


class RedactingFilter(logging.Filter):
    """Replaces secrets (the worker token, the orchestrator secret) in the final message with `***`."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the formatted message (and the exception text); never drops the record."""
        message = record.getMessage()
        redacted = self._redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._redact(record.exc_text)
        return True

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, job_id, task_id (and exception)."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the record as compact JSON."""
        entry: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "job_id": getattr(record, "job_id", job_id_var.get()),
            "task_id": getattr(record, "task_id", task_id_var.get()),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return orjson.dumps(entry, default=str).decode()


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


def configure_logging(level: str, fmt: str = "text", secrets: Iterable[str] = ()) -> None:
    """Send task-annotated log lines (text or JSON) to stderr; called by `Worker.run()` only."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(LOG_FORMAT))
    handler.addFilter(TaskContextFilter())
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp logs every request at INFO on its access logger; keep the worker's output readable.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
