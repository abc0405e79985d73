"""The mock's hot-path structures: the task queue (priority, then age) and the replay cache."""

from __future__ import annotations

from mock_orchestrator.records import Task
from mock_orchestrator.replay import ReplayCache
from mock_orchestrator.task_queue import TaskQueue

from mock_support import FakeClock


def make(seq: int, task_type: str = "a", priority: float = 0) -> Task:
    return Task(f"task-{seq}", f"job-{seq}", task_type, {}, priority, 0.0, seq)


def test_best_is_the_highest_priority_then_the_oldest_across_the_asked_types() -> None:
    queue = TaskQueue()
    tasks = [make(1, "a", 0), make(2, "b", 5), make(3, "a", 5), make(4, "c", 9)]
    for task in tasks:
        queue.push(task)
    assert queue.best({"a", "b"}) is tasks[1]  # priority 5 twice: the older one (seq 2)
    assert queue.best({"a"}) is tasks[2]
    assert queue.best({"c"}) is tasks[3]
    assert queue.best({"zzz"}) is None
    assert len(queue) == 4


def test_discarded_tasks_are_never_returned_and_pushing_twice_keeps_one_entry() -> None:
    queue = TaskQueue()
    first, second = make(1), make(2)
    for task in (first, second, first):
        queue.push(task)
    assert len(queue) == 2
    queue.discard(first)
    assert first not in queue
    assert queue.best({"a"}) is second
    queue.discard(second)
    assert queue.best({"a"}) is None and len(queue) == 0


def test_a_requeued_task_comes_back_in_its_original_place() -> None:
    queue = TaskQueue()
    old, new = make(1), make(2)
    queue.push(old)
    queue.push(new)
    queue.discard(old)  # handed out...
    queue.push(old)  # ...then retried: its seq still makes it the oldest
    assert queue.best({"a"}) is old
    queue.discard(old)
    assert queue.best({"a"}) is new


def test_replay_keys_are_refused_for_65_s_then_forgotten_oldest_first() -> None:
    clock = FakeClock()
    cache = ReplayCache(clock)
    assert cache.remember("a") and not cache.remember("a")
    clock.now += 30
    assert cache.remember("b")
    clock.now += 40  # "a" is 70 s old, "b" 40 s
    assert cache.remember("a")
    assert len(cache) == 2  # the first "a" was dropped, "b" kept
    assert not cache.remember("b")
    clock.now += 66
    assert cache.remember("c") and len(cache) == 1
