"""What a worker is wired to: its HTTP session, its Redis client, how it sleeps and how it backs off.

The defaults are what production uses; tests inject their own through one object (`Worker(wiring=...)`)
instead of reaching into the worker.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import aiohttp
import redis.asyncio as aioredis

from .retry import Backoff, Sleep


@dataclass(frozen=True)
class Wiring:
    """The worker's connections and timing; every field has the production default."""

    # The HTTP session to the orchestrator (None: the worker opens and closes its own).
    session: aiohttp.ClientSession | None = None
    # The orchestrator's Redis, for cancel flags (None: the worker connects to REDIS_URL).
    redis: aioredis.Redis | None = None
    # How the worker waits (pacing, predecessor's poll, cancel-flag reads).
    sleep: Sleep = asyncio.sleep
    # Backoff after failures (its own `sleep` is what retries wait with).
    backoff: Backoff = field(default_factory=Backoff)
