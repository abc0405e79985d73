"""Several instances of one orchestrator (avtomatika's INSTANCE_ID, one Redis): which one to talk to.

Instances that share a Redis share everything a worker touches: its registration, its task queue, job
state, rate-limit counters and cancel flags. So every message may go to any live instance, and the
worker uses one at a time: the best by priority (lower first, as the official SDK's
ORCHESTRATORS_CONFIG sorts them), then by a weighted hash of its worker id, so that a fleet spreads over
equal instances in proportion to their weights. An instance that fails at the transport level (refused,
reset, timed out, 502/503/504) is skipped for a cool-down that doubles while it keeps failing, and the
next request goes to the next one: failover costs one failed request and the caller's backoff.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import orjson

from .errors import ConfigError

logger = logging.getLogger(__name__)

COOL_DOWN = 15.0  # seconds an instance that failed is skipped before it is tried again
MAX_COOL_DOWN = 300.0


@dataclass(frozen=True)
class Endpoint:
    """One orchestrator instance: its URL, priority (lower first), weight and its own token, if any."""

    url: str
    priority: int = 10
    weight: float = 1.0
    token: str | None = field(default=None, repr=False)


def _score(worker_id: str, endpoint: Endpoint) -> float:
    """Weighted rendezvous hashing: each worker ranks equal instances its own way, by weight."""
    digest = hashlib.sha256(f"{worker_id}|{endpoint.url}".encode()).digest()
    unit = (int.from_bytes(digest[:8], "big") + 1) / (2**64 + 2)  # in (0, 1)
    return -endpoint.weight / math.log(unit)


@dataclass
class _Health:
    down_until: float = 0.0
    failures: int = 0


class Endpoints:
    """The instances in order of preference, and which one requests go to now."""

    def __init__(
        self, endpoints: Sequence[Endpoint], worker_id: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not endpoints:
            raise ValueError("at least one orchestrator endpoint is needed")
        self.ordered = sorted(endpoints, key=lambda e: (e.priority, -_score(worker_id, e)))
        self._health = {e.url: _Health() for e in self.ordered}
        self._clock = clock
        self._in_use = self.ordered[0]

    @property
    def several(self) -> bool:
        """Whether there is anywhere to fail over to."""
        return len(self.ordered) > 1

    def current(self) -> Endpoint:
        """The preferred instance not cooling down (all cooling down: the one that recovers first)."""
        now = self._clock()
        choice = next((e for e in self.ordered if self._health[e.url].down_until <= now), None)
        if choice is None:
            choice = min(self.ordered, key=lambda e: self._health[e.url].down_until)
        if choice is not self._in_use:
            logger.warning("talking to orchestrator %s now (was %s)", choice.url, self._in_use.url)
            self._in_use = choice
        return choice

    def failed(self, endpoint: Endpoint, reason: str) -> None:
        """`endpoint` failed at the transport level: skip it for a while when there is another."""
        if not self.several:
            return
        health = self._health[endpoint.url]
        cool_down = min(MAX_COOL_DOWN, COOL_DOWN * 2**health.failures)
        health.failures += 1
        first = health.down_until <= self._clock()
        health.down_until = self._clock() + cool_down
        if first:
            logger.warning(
                "orchestrator %s failed (%s): using the next instance, trying it again in %.0f s",
                endpoint.url,
                reason,
                cool_down,
            )

    def succeeded(self, endpoint: Endpoint) -> None:
        """`endpoint` answered: it is healthy again."""
        health = self._health[endpoint.url]
        if health.failures:
            health.failures = 0
            health.down_until = 0.0


def parse_url(value: str) -> str:
    """An http(s) URL with a host, without its trailing slash; ValueError otherwise."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(value)
    return value.strip().rstrip("/")


def parse_orchestrators(raw: str, variable: str = "ORCHESTRATORS_CONFIG") -> tuple[Endpoint, ...]:
    """The official SDK's ORCHESTRATORS_CONFIG: a JSON list of {url, priority?, weight?, token?}."""
    try:
        items = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{variable} is not valid JSON ({exc}); e.g. {variable}={_EXAMPLE}") from None
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{variable} must be a non-empty JSON list of objects; e.g. {variable}={_EXAMPLE}")
    return tuple(_endpoint(item, f"{variable}[{n}]") for n, item in enumerate(items))


_EXAMPLE = '[{"url": "http://orch-a:8080", "priority": 1}, {"url": "http://orch-b:8080", "priority": 2}]'
_FIELDS = frozenset({"url", "priority", "weight", "token"})


def _endpoint(item: object, where: str) -> Endpoint:
    if not isinstance(item, dict):
        raise ConfigError(f"{where}={item!r} must be an object with a url; e.g. {_EXAMPLE}")
    if unknown := sorted(set(item) - _FIELDS):
        raise ConfigError(f"{where} has unknown field(s) {unknown}: allowed are url, priority, weight, token")
    url, priority, weight, token = (item.get(k) for k in ("url", "priority", "weight", "token"))
    try:
        checked_url = parse_url(url) if isinstance(url, str) else ""
    except ValueError:
        checked_url = ""
    if not checked_url:
        raise ConfigError(f"{where}.url={url!r} must be an http:// or https:// URL; e.g. http://orch-a:8080")
    if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int)):
        raise ConfigError(
            f"{where}.priority={priority!r} must be a whole number (lower is preferred); e.g. 1"
        )
    if weight is not None and (
        isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 < weight < math.inf
    ):
        raise ConfigError(f"{where}.weight={weight!r} must be a number > 0; e.g. 2")
    if token is not None and (not isinstance(token, str) or not token or any(c.isspace() for c in token)):
        raise ConfigError(f"{where}.token must be a non-empty token without whitespace (value hidden)")
    return Endpoint(
        checked_url, 10 if priority is None else priority, 1.0 if weight is None else float(weight), token
    )
