"""Hot skills: skills whose model or cache is loaded, which avtomatika 1.0b30's dispatcher prefers.

Callable from any thread (sync handlers run in threads); each change calls the listener, which the
runtime turns into a heartbeat nudge on its event loop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping

# 1.0b30 reads an empty or missing `hot_skills` as "unchanged" (RedisStorage.update_worker_status), so
# the last hot skill can only be withdrawn by sending a name no task type uses.
NONE_HOT = "-"


class HotSkills:
    """A thread-safe set of hot skill names with a change listener."""

    def __init__(self, dependencies: Mapping[str, Iterable[str]] | None = None) -> None:
        # The official SDK's skill_dependencies: a skill is hot when every item it needs is.
        self._dependencies = {skill: frozenset(items) for skill, items in (dependencies or {}).items()}
        self._lock = threading.Lock()
        self._names: set[str] = set()
        self._published = False
        self._listener: Callable[[], None] | None = None

    def add(self, name: str) -> None:
        """Mark `name` as hot (its model or cache is loaded); published with the next heartbeat."""
        self._change(name, add=True)

    def remove(self, name: str) -> None:
        """Mark `name` as no longer hot."""
        self._change(name, add=False)

    def _change(self, name: str, *, add: bool) -> None:
        if not isinstance(name, str) or not name or name == NONE_HOT:
            raise ValueError(f"hot skill name {name!r} is invalid: must be a skill name such as 'resize'")
        with self._lock:
            before = len(self._names)
            (self._names.add if add else self._names.discard)(name)
            changed = len(self._names) != before
            listener = self._listener
        if changed and listener is not None:
            listener()

    def names(self) -> set[str]:
        """A copy of the current hot names."""
        with self._lock:
            return set(self._names)

    def listen(self, listener: Callable[[], None] | None) -> None:
        """Call `listener()` after each change (None stops it)."""
        with self._lock:
            self._listener = listener

    def published(self, skills: Iterable[str]) -> list[str] | None:
        """The heartbeat's `hot_skills`: hot names among `skills`; None while nothing was ever hot."""
        with self._lock:
            hot = sorted(skill for skill in skills if self._is_hot(skill))
            if hot:
                self._published = True
                return hot
            return [NONE_HOT] if self._published else None

    def _is_hot(self, skill: str) -> bool:
        needs = self._dependencies.get(skill)
        return needs <= self._names if needs else skill in self._names
