"""A mock Avtomatika orchestrator for local development, speaking the 1.0b30 worker protocol."""

from .app import create_app
from .settings import MockSettings

__all__ = ["MockSettings", "create_app"]
