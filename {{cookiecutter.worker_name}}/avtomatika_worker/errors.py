"""The SDK's exception tree; transport.py is the only place that maps HTTP/aiohttp errors onto it."""

from __future__ import annotations


class WorkerError(Exception):
    """Base class of every exception raised by the SDK."""


class ConfigError(WorkerError):
    """An environment variable is missing or has an invalid value."""


class TransportError(WorkerError):
    """Talking to the orchestrator failed."""


class OrchestratorUnavailableError(TransportError):
    """A transient failure (connection error, timeout, 5xx, 429): worth retrying."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class OrchestratorRejectedError(TransportError):
    """The orchestrator refused the request (4xx other than 429): retrying the same request will not help."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(f"HTTP {status}: {error}")
        self.status = status
        self.error = error


class ProtocolError(TransportError):
    """The orchestrator answered with something this SDK cannot understand."""


class RegistrationError(WorkerError):
    """The orchestrator refused to register this worker."""
