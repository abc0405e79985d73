"""The replay guard's memory: each nonce is refused for 65 s after its first use.

avtomatika 1.0b30 keeps ``orchestrator:nonce:{worker_id}:{nonce}`` with ``SET NX`` and a 65 s TTL
(``services/worker_service.py: _verify_zero_trust``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

REPLAY_WINDOW_SECONDS = 65.0


class ReplayCache:
    """Keys seen within the window, oldest first, on the given wall clock."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._expiries: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._expiries)

    def remember(self, key: str) -> bool:
        """Record ``key``; False when it was already recorded within the window."""
        now = self._clock()
        # Every key gets the same window, so keys expire in insertion order: drop from the oldest end.
        while self._expiries and next(iter(self._expiries.values())) <= now:
            self._expiries.popitem(last=False)
        if key in self._expiries:
            return False
        self._expiries[key] = now + REPLAY_WINDOW_SECONDS
        return True
