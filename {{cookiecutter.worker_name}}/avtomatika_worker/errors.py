"""The SDK's exception tree (transport.py alone maps HTTP/aiohttp errors onto it) and the exceptions
handlers raise to fail a task with a specific error code."""

from __future__ import annotations


class WorkerError(Exception):
    """Base class of every exception raised by the SDK."""


class ConfigError(WorkerError):
    """An environment variable is missing or has an invalid value."""


class TransportError(WorkerError):
    """Talking to the orchestrator failed."""


class OrchestratorUnavailableError(TransportError):
    """A transient failure (connection error, timeout, 5xx, 429): worth retrying."""

    def __init__(self, message: str, status: int | None = None, *, answered: bool = False) -> None:
        super().__init__(message)
        self.status = status
        # True when the orchestrator itself answered (its JSON error body), not a proxy or the network.
        self.answered = answered


class OrchestratorRateLimitedError(OrchestratorUnavailableError):
    """HTTP 429: the orchestrator's per-worker rate limit refused the request."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message, 429, answered=True)
        self.retry_after = retry_after


class OrchestratorRejectedError(TransportError):
    """The orchestrator refused the request (4xx other than 429): retrying the same request will not help."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(f"HTTP {status}: {error}")
        self.status = status
        self.error = error


class ProtocolError(TransportError):
    """The orchestrator answered with something this SDK cannot understand."""


class StartupError(WorkerError):
    """An `on_startup` hook failed: the worker stops before it registers (exit code 3)."""


class RegistrationError(WorkerError):
    """The orchestrator refused to register this worker."""


class TaskFailure(Exception):
    """Raise from a handler to fail the task with `code`; subclasses pick the code."""

    code = "TRANSIENT_ERROR"

    def __init__(self, message: str, *, details: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class TransientError(TaskFailure):
    """A failure worth retrying: the orchestrator re-dispatches the task (up to 3 times)."""

    code = "TRANSIENT_ERROR"


class PermanentError(TaskFailure):
    """A failure a retry cannot fix: the orchestrator quarantines the job."""

    code = "PERMANENT_ERROR"


class InvalidInputError(TaskFailure):
    """The task's params are wrong: the orchestrator fails the job."""

    code = "INVALID_INPUT_ERROR"
