"""Contract: one list of scenarios, played against the generated project's mock and the REAL orchestrator.

Both must give the same status codes and the same JSON (error texts, reply status/reason/transition),
the real orchestrator's answers being the reference. A mock that differs fails here: that is the point.
The rate-limit scenarios run against a second pair with small limits (RATE_LIMIT_* / MOCK_RATE_LIMITS)
and also compare the refusals byte for byte with their protocol headers.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from baking import bake_in, make_sandbox
from interop.contract import play
from interop.real import real_orchestrator
from interop.scenarios import (
    MOCK_RATE_LIMITS,
    RATE_LIMITED_SCENARIOS,
    REAL_RATE_LIMIT_ENV,
    SCENARIOS,
)
from interop.targets import MockTarget, RealTarget, Target, mock_orchestrator
from processes import redis_server

pytestmark = pytest.mark.interop

# A 1 s poll hold keeps the empty-poll scenarios fast (the mock gets MOCK_POLL_HOLD_SECONDS=1).
REAL_ENV = {"WORKER_POLL_TIMEOUT_SECONDS": "1"}


@contextmanager
def stopped_together(*managers: AbstractContextManager[Any]) -> Iterator[list[Any]]:
    """Enter `managers` in turn, exit them concurrently."""
    # The real orchestrator does not exit on SIGTERM, so each stop waits out logged_process's 15 s
    # grace period before the kill; one after the other, a second real orchestrator would cost 15 s more.
    entered: list[tuple[AbstractContextManager[Any], Any]] = []
    try:
        for manager in managers:
            entered.append((manager, manager.__enter__()))
        yield [value for _, value in entered]
    finally:
        with ThreadPoolExecutor(max_workers=max(1, len(entered))) as pool:
            list(pool.map(lambda pair: pair[0].__exit__(None, None, None), entered))


@pytest.fixture(scope="module")
def real_orchestrators(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RealTarget]]:
    """Two real orchestrators: rate limiting off, and on with the small limits."""
    root = tmp_path_factory.mktemp("contract-real")
    plain = real_orchestrator(root / "plain", env=REAL_ENV)
    limited = real_orchestrator(root / "limited", env=REAL_ENV | REAL_RATE_LIMIT_ENV)
    with stopped_together(plain, limited) as orchestrators:
        yield [RealTarget(orchestrator) for orchestrator in orchestrators]


@pytest.fixture(scope="module")
def real_target(real_orchestrators: list[RealTarget]) -> RealTarget:
    return real_orchestrators[0]


@pytest.fixture(scope="module")
def real_limited_target(real_orchestrators: list[RealTarget]) -> RealTarget:
    return real_orchestrators[1]


@pytest.fixture(scope="module")
def mock_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("contract-mock")
    return bake_in(make_sandbox(root / "sandbox"), root / "out")


@pytest.fixture(scope="module")
def mock_redis_url() -> Iterator[str]:
    with redis_server() as redis_url:
        yield redis_url


@pytest.fixture(scope="module")
def mock_target(mock_project: Path, mock_redis_url: str) -> Iterator[MockTarget]:
    with mock_orchestrator(mock_project, mock_redis_url, mock_project.parent / "mock.log") as target:
        yield target


@pytest.fixture(scope="module")
def mock_limited_target(mock_project: Path, mock_redis_url: str) -> Iterator[MockTarget]:
    log = mock_project.parent / "mock-limited.log"
    with mock_orchestrator(
        mock_project, mock_redis_url, log, {"MOCK_RATE_LIMITS": MOCK_RATE_LIMITS}
    ) as target:
        yield target


@pytest.fixture(params=["mock", "real"])
def target(request: pytest.FixtureRequest) -> Target:
    fixture: Target = request.getfixturevalue(f"{request.param}_target")
    return fixture


@pytest.fixture(params=["mock", "real"])
def limited_target(request: pytest.FixtureRequest) -> Target:
    fixture: Target = request.getfixturevalue(f"{request.param}_limited_target")
    return fixture


@pytest.mark.asyncio
@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_orchestrator_answers_the_scenario_like_avtomatika(target: Target, scenario: str) -> None:
    async with aiohttp.ClientSession() as http:
        await play(target, http, scenario)


@pytest.mark.asyncio
@pytest.mark.parametrize("scenario", list(RATE_LIMITED_SCENARIOS))
async def test_orchestrator_refuses_over_its_rate_limits_like_avtomatika(
    limited_target: Target, scenario: str
) -> None:
    async with aiohttp.ClientSession() as http:
        await play(limited_target, http, scenario, RATE_LIMITED_SCENARIOS)
