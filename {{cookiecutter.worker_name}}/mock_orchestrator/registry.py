"""The registered workers, each alive for 120 s after its last sign of life.

avtomatika 1.0b30 keeps a worker record for ``2 x WORKER_HEALTH_CHECK_INTERVAL_SECONDS`` (120 s) after its
last heartbeat (``services/worker_service.py: update_worker_heartbeat``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .records import Worker

WORKER_TTL_SECONDS = 120.0


class WorkerRegistry:
    """Worker records by id on the given wall clock; expired ones are forgotten when looked at."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._workers: dict[str, Worker] = {}

    def get(self, worker_id: Any) -> Worker | None:
        """The worker's record, or None when unknown or expired."""
        worker = self._workers.get(worker_id) if isinstance(worker_id, str) else None
        if worker is not None and self._clock() - worker.last_seen > WORKER_TTL_SECONDS:
            del self._workers[worker_id]
            return None
        return worker

    def live(self) -> list[Worker]:
        """All unexpired workers, most recently registered first."""
        alive = [w for w in list(self._workers.values()) if self.get(w.worker_id) is not None]
        return sorted(alive, key=lambda w: w.registered_at, reverse=True)

    def register(self, worker_id: str, record: dict[str, Any]) -> Worker:
        """Store (or replace) a worker's record, as a registration does."""
        now = self._clock()
        worker = Worker(worker_id=worker_id, record=record, registered_at=now, last_seen=now)
        self._workers[worker_id] = worker
        return worker

    def refresh(self, worker_id: str) -> Worker | None:
        """Extend a live worker's lifetime (an empty heartbeat); None when unknown or expired."""
        worker = self.get(worker_id)
        if worker is not None:
            worker.last_seen = worker.last_heartbeat = self._clock()
        return worker

    def merge_heartbeat(self, worker_id: str, update: dict[str, Any]) -> Worker | None:
        """Merge a heartbeat body into a live record (top-level update); None if the worker is unknown."""
        worker = self.refresh(worker_id)
        if worker is not None:
            if update.get("hot_skills") == []:  # 1.0b30 reads an empty list as "unchanged"
                update = {k: v for k, v in update.items() if k != "hot_skills"}
            worker.record.update(update)
        return worker

    def can_take(self, task_type: str) -> bool:
        """Whether a live worker reporting ``idle`` has the skill (the real dispatcher's first filter)."""
        return any(w.status() == "idle" and task_type in w.skills() for w in self.live())
