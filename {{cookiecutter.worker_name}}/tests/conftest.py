"""Shared fixtures: a real Redis and the mock orchestrator on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp.test_utils import TestClient

from mock_support import FakeClock, mock_client
from services import FAILED_KEY, RedisServer


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A throw-away real Redis (redis-server, else the compose stack's image in Docker); never skips."""
    server = RedisServer()
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> None:
    """Remember failures so that the compose fixture can print container logs."""
    if call.excinfo is not None and not call.excinfo.errisinstance(pytest.skip.Exception):
        item.stash[FAILED_KEY] = True


# --- the mock orchestrator on loopback, shared by the test_mock_* modules -------------------


@pytest.fixture
def clock() -> FakeClock:
    """Wall clock under the test's control (MockSettings.clock)."""
    return FakeClock()


@pytest.fixture
async def client(clock: FakeClock) -> AsyncIterator[TestClient]:
    """A mock orchestrator with a short poll hold, and an HTTP client for it."""
    async with mock_client(clock) as running:
        yield running


@pytest.fixture
async def slow_client(clock: FakeClock) -> AsyncIterator[TestClient]:
    """A mock whose long polls hold for 30 s, to prove that they are woken, not timed out."""
    async with mock_client(clock, hold=30.0) as running:
        yield running
