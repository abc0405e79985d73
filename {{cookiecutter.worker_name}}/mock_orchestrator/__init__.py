"""A mock Avtomatika orchestrator for local development, speaking the 1.0b30 worker protocol."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_app
    from .settings import MockSettings

__all__ = ["MockSettings", "create_app"]


def __getattr__(name: str) -> Any:
    # Lazy, so that `python -m mock_orchestrator.cli` needs only the standard library.
    if name == "create_app":
        from .app import create_app

        return create_app
    if name == "MockSettings":
        from .settings import MockSettings

        return MockSettings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
