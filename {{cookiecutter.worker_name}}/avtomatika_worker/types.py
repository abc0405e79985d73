"""The official SDK's name for `avtomatika_worker.typing` (error codes, callable types), for code that migrates."""

from __future__ import annotations

from .admission import CapacityChecker
from .errors import InvalidInputError as ParamValidationError
from .executor import Middleware
from .typing import (
    CONTRACT_VIOLATION_ERROR,
    DEPENDENCY_ERROR,
    DEPENDENCY_MISSING_ERROR,
    INTEGRITY_MISMATCH_ERROR,
    INTERNAL_ERROR,
    INVALID_INPUT_ERROR,
    PERMANENT_ERROR,
    RESOURCE_EXHAUSTED_ERROR,
    SECURITY_ERROR,
    TIMEOUT_ERROR,
    TRANSIENT_ERROR,
)

__all__ = [
    "CONTRACT_VIOLATION_ERROR",
    "DEPENDENCY_ERROR",
    "DEPENDENCY_MISSING_ERROR",
    "INTEGRITY_MISMATCH_ERROR",
    "INTERNAL_ERROR",
    "INVALID_INPUT_ERROR",
    "PERMANENT_ERROR",
    "RESOURCE_EXHAUSTED_ERROR",
    "SECURITY_ERROR",
    "TIMEOUT_ERROR",
    "TRANSIENT_ERROR",
    "CapacityChecker",
    "Middleware",
    "ParamValidationError",
]
