"""check_for_cancellation reads the orchestrator's Redis flag orchestrator:task_cancel:<task_id>."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from avtomatika_worker import Worker, WorkerConfig


def make_config(redis_url: str) -> WorkerConfig:
    return WorkerConfig(
        worker_type="inventory-checker",
        orchestrator_url="http://127.0.0.1:9",  # never contacted here
        worker_token="unit-test-token",
        worker_id="cancel-test-worker",
        redis_url=redis_url,
    )


def closed_port() -> int:
    """A loopback port with nothing listening on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def worker(redis_url: str) -> AsyncIterator[Worker]:
    worker = Worker(worker_type="inventory-checker", config=make_config(redis_url))
    yield worker
    await worker.stop()


async def test_flag_set_by_the_orchestrator_is_seen(worker: Worker, redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        # Exactly what the orchestrator writes on cancel (protocol.md section 10).
        await client.set("orchestrator:task_cancel:task-abc", "1", ex=3600)
        assert await worker.check_for_cancellation("task-abc") is True
    finally:
        await client.aclose()


async def test_unflagged_task_is_not_cancelled(worker: Worker) -> None:
    assert await worker.check_for_cancellation("task-not-cancelled") is False


async def test_injected_redis_client_is_used_and_not_closed(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        await client.set("orchestrator:task_cancel:task-injected", "1")
        worker = Worker(worker_type="inventory-checker", redis_client=client)
        assert await worker.check_for_cancellation("task-injected") is True
        await worker.stop()
        assert await client.exists("orchestrator:task_cancel:task-injected") == 1
    finally:
        await client.aclose()


async def test_unreachable_redis_means_not_cancelled_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    url = f"redis://:hunter2@127.0.0.1:{closed_port()}/0"
    worker = Worker(worker_type="inventory-checker", config=make_config(url))
    try:
        with caplog.at_level(logging.WARNING, logger="avtomatika_worker"):
            assert await worker.check_for_cancellation("task-1") is False
            assert await worker.check_for_cancellation("task-1") is False
    finally:
        await worker.stop()
    warnings = [r for r in caplog.records if "cannot reach Redis" in r.getMessage()]
    assert len(warnings) == 1
    assert "hunter2" not in caplog.text
