"""Vendored Avtomatika worker SDK: `Worker`, `@worker.task(name)` / `@worker.skill(name)`, `worker.run()`."""

from __future__ import annotations

from .blueprints import SkillBlueprint
from .config import WorkerConfig
from .errors import (
    ConfigError,
    InvalidInputError,
    OrchestratorRejectedError,
    OrchestratorUnavailableError,
    PermanentError,
    ProtocolError,
    RegistrationError,
    StartupError,
    TaskFailure,
    TransientError,
    TransportError,
    WorkerError,
)
from .files import IntegrityMismatchError, TaskFiles
from .retry import Backoff
from .wiring import Wiring
from .worker import Worker

__version__ = "0.2.0"

__all__ = [
    "Backoff",
    "ConfigError",
    "IntegrityMismatchError",
    "InvalidInputError",
    "OrchestratorRejectedError",
    "OrchestratorUnavailableError",
    "PermanentError",
    "ProtocolError",
    "RegistrationError",
    "SkillBlueprint",
    "StartupError",
    "TaskFailure",
    "TaskFiles",
    "TransientError",
    "TransportError",
    "Wiring",
    "Worker",
    "WorkerConfig",
    "WorkerError",
    "__version__",
]
