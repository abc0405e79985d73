"""Whether another live idle worker could take a task now: a read-only look at the orchestrator's dispatch
indexes in its Redis, used once, when a stop hands interrupted tasks back.

avtomatika 1.0b30 (`storage/redis.py`, `find_workers_for_skill`) dispatches only to workers that are in
`orchestrator:index:workers:skill:{name}` and whose score in `orchestrator:index:workers:idle` (their
expiry, integer epoch seconds, refreshed by every `idle` heartbeat) has not passed. A transient failure
reported while no such worker exists is answered with HTTP 500 ("No suitable workers") after the retry
has been counted.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from redis.exceptions import RedisError

SKILL_INDEX = "orchestrator:index:workers:skill:"
IDLE_INDEX = "orchestrator:index:workers:idle"


@dataclass(frozen=True)
class PeerView:
    """What the orchestrator's Redis says: `indexed` is False when this worker is in none of its skill
    indexes (that Redis is not a 1.0b30 orchestrator's, e.g. the mock's); `skills` have an idle peer."""

    indexed: bool
    skills: set[str] = field(default_factory=set)


async def idle_peers(
    client: aioredis.Redis, worker_id: str, skills: Iterable[str], now: float | None = None
) -> PeerView | None:
    """Which of `skills` some other live idle worker has; None when Redis cannot be reached."""
    moment = int(time.time() if now is None else now)
    indexed = False
    found: set[str] = set()
    try:
        for skill in sorted(set(skills)):
            members = [
                m.decode() if isinstance(m, bytes) else str(m)
                for m in await client.zrange(SKILL_INDEX + skill, 0, -1)
            ]
            indexed = indexed or worker_id in members
            others = [m for m in members if m != worker_id]
            if others and any(
                s is not None and s >= moment for s in await client.zmscore(IDLE_INDEX, others)
            ):
                found.add(skill)
    except (RedisError, OSError):
        return None
    return PeerView(indexed, found)
