"""When a delivered task may start: its skill type's limit and the user's capacity checker.

The official SDK turns both into availability (a skill over its limit, or refused by `capacity_checker`,
drops out of `available_skills`, and the worker reports `busy` when none is left). avtomatika 1.0b30
dispatches only to `idle` workers and quarantines a job that finds none, so here a task that may not start
yet waits in the worker for its turn while the worker keeps reporting `idle`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager, suppress

logger = logging.getLogger(__name__)

CapacityChecker = Callable[[str], bool]
"""`(skill_name) -> bool`: whether a task of that skill may start now (the official SDK's signature)."""

# A checker reads state the worker cannot watch (free GPU memory, a licence server): ask again this often,
# and whenever a task ends.
RECHECK_INTERVAL = 1.0


def checked_limits(limits: Mapping[str, int] | None) -> dict[str, int]:
    """`skill_type_limits` as given; ValueError naming the type when a limit is not a whole number >= 1."""
    for kind, limit in (limits or {}).items():
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(
                f"skill_type_limits[{kind!r}]={limit!r} must be a whole number of at least 1, "
                'e.g. skill_type_limits={"gpu": 1}'
            )
    return dict(limits or {})


def checked_capacity_checker(checker: CapacityChecker | None) -> CapacityChecker | None:
    """`capacity_checker` as given; TypeError when it is not a plain callable."""
    if checker is not None and (not callable(checker) or asyncio.iscoroutinefunction(checker)):
        raise TypeError(
            f"capacity_checker={checker!r} must be a plain function `(skill_name: str) -> bool` "
            "(called on the event loop: keep it quick), e.g. capacity_checker=lambda skill: gpu_free() > 2"
        )
    return checker


class Admission:
    """Holds a task until its skill type has a free slot and the capacity checker lets it start."""

    def __init__(
        self,
        type_limits: Mapping[str, int] | None = None,
        capacity_checker: CapacityChecker | None = None,
        recheck_interval: float = RECHECK_INTERVAL,
    ) -> None:
        self._type_slots = {kind: asyncio.Semaphore(n) for kind, n in (type_limits or {}).items()}
        self._checker = capacity_checker
        self._recheck_interval = recheck_interval
        self._task_ended = asyncio.Event()

    @asynccontextmanager
    async def admit(self, skill: str, skill_type: str) -> AsyncIterator[None]:
        """Wait for the skill type's slot and the checker's yes; hold the slot until the block ends."""
        slot = self._type_slots.get(skill_type)
        if slot is not None:
            await slot.acquire()
        try:
            await self._capacity(skill)
            yield
        finally:
            if slot is not None:
                slot.release()
            self._wake()

    def _wake(self) -> None:
        self._task_ended.set()
        self._task_ended = asyncio.Event()

    async def _capacity(self, skill: str) -> None:
        if self._checker is None:
            return
        waited = False
        while not self._allows(skill):
            if not waited:
                logger.info(
                    "capacity_checker refuses %r for now: the task waits here (the worker stays idle, "
                    "asked again when a task ends or after %.1f s)",
                    skill,
                    self._recheck_interval,
                )
                waited = True
            ended = self._task_ended
            with suppress(TimeoutError):
                await asyncio.wait_for(ended.wait(), self._recheck_interval)
        if waited:
            logger.info("capacity_checker lets %r start", skill)

    def _allows(self, skill: str) -> bool:
        assert self._checker is not None
        try:
            return bool(self._checker(skill))
        except Exception:  # a broken checker must not hold a job forever
            logger.exception("capacity_checker failed for %r: starting the task anyway", skill)
            return True
