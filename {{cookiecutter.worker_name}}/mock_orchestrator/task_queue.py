"""The mock's task queue: one heap per task type, so a poll costs O(skills · log n), not a scan of the queue.

Order matches the real dispatcher as the mock models it: highest priority first, then oldest. Removal is
lazy: a removed (or re-queued) task's old heap entry is skipped when it reaches the top.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable

from .records import Task

_Entry = tuple[float, int, int, Task]  # (-priority, seq, generation, task): generation is unique


class TaskQueue:
    """Queued tasks by type, best first."""

    def __init__(self) -> None:
        self._heaps: dict[str, list[_Entry]] = {}
        self._live: dict[Task, int] = {}  # task -> generation of its valid heap entry
        self._generations = itertools.count()

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, task: object) -> bool:
        return task in self._live

    def push(self, task: Task) -> None:
        """Queue `task` (no-op when it is queued already)."""
        if task in self._live:
            return
        generation = next(self._generations)
        self._live[task] = generation
        heapq.heappush(self._heaps.setdefault(task.type, []), (-task.priority, task.seq, generation, task))

    def discard(self, task: Task) -> None:
        """Take `task` out of the queue if it is there."""
        self._live.pop(task, None)

    def best(self, types: Iterable[str], accepts: Callable[[Task], bool] | None = None) -> Task | None:
        """The best queued task whose type is one of `types` (and that `accepts` takes), left in the queue."""
        best: _Entry | None = None
        for task_type in types:
            heap = self._heaps.get(task_type)
            while heap and self._live.get(heap[0][3]) != heap[0][2]:
                heapq.heappop(heap)  # removed or re-queued since this entry was pushed
            entry = heap[0] if heap else None
            if heap and accepts is not None and not accepts(heap[0][3]):
                # A task pinned to what this worker lacks: scan (rare, and a mock's queues are short).
                live = (e for e in heap if self._live.get(e[3]) == e[2] and accepts(e[3]))
                entry = min(live, key=lambda e: e[:3], default=None)
            if entry is not None and (best is None or entry[:3] < best[:3]):
                best = entry
        return None if best is None else best[3]
