"""Contract: one list of scenarios, played against the generated project's mock and the REAL orchestrator.

Both must give the same status codes and the same JSON (error texts, reply status/reason/transition),
the real orchestrator's answers being the reference. A mock that differs fails here: that is the point.
"""

from __future__ import annotations

from collections.abc import Iterator

import aiohttp
import pytest

from conftest import bake_in, make_sandbox
from interop.contract import play
from interop.real import real_orchestrator
from interop.scenarios import SCENARIOS
from interop.targets import MockTarget, RealTarget, Target, mock_orchestrator
from processes import redis_server

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def real_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealTarget]:
    # A 1 s poll hold keeps the empty-poll scenario fast (the mock gets MOCK_POLL_HOLD_SECONDS=1).
    env = {"WORKER_POLL_TIMEOUT_SECONDS": "1"}
    with real_orchestrator(tmp_path_factory.mktemp("contract-real"), env=env) as orchestrator:
        yield RealTarget(orchestrator)


@pytest.fixture(scope="module")
def mock_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MockTarget]:
    root = tmp_path_factory.mktemp("contract-mock")
    project = bake_in(make_sandbox(root / "sandbox"), root / "out")
    with redis_server() as redis_url, mock_orchestrator(project, redis_url, root / "mock.log") as target:
        yield target


@pytest.fixture(params=["mock", "real"])
def target(request: pytest.FixtureRequest) -> Target:
    fixture: Target = request.getfixturevalue(f"{request.param}_target")
    return fixture


@pytest.mark.asyncio
@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_orchestrator_answers_the_scenario_like_avtomatika(target: Target, scenario: str) -> None:
    async with aiohttp.ClientSession() as http:
        await play(target, http, scenario)
