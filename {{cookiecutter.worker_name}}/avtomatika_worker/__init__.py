"""Vendored Avtomatika worker SDK: `Worker`, `@worker.task(name)`, `worker.run()`."""

from __future__ import annotations

from .config import WorkerConfig
from .errors import (
    ConfigError,
    OrchestratorRejectedError,
    OrchestratorUnavailableError,
    ProtocolError,
    RegistrationError,
    TransportError,
    WorkerError,
)
from .worker import Worker

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "OrchestratorRejectedError",
    "OrchestratorUnavailableError",
    "ProtocolError",
    "RegistrationError",
    "TransportError",
    "Worker",
    "WorkerConfig",
    "WorkerError",
    "__version__",
]
