"""Shared fixtures: a real Redis server and the mock orchestrator on loopback."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from mock_support import FakeClock, mock_client

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """Return a TCP port that is free on the loopback interface right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def skip_or_fail(reason: str) -> None:
    """Skip for a developer without the tool; fail in CI, where every test must run."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this test may not skip)")
    pytest.skip(reason)


@pytest.fixture
def redis_url() -> Iterator[str]:
    """Start a throw-away redis-server on a free loopback port and yield its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        skip_or_fail("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen(
        [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # wait on the server's own readiness line, not on a timer
            if "Ready to accept connections" in line:
                break
        else:
            pytest.fail(f"redis-server exited with code {proc.wait()}")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


FAILED_KEY = pytest.StashKey[bool]()


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
