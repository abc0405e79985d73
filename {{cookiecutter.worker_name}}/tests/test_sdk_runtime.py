"""The runtime against the mock orchestrator over real loopback HTTP, with injected faults: outages,
503/429 bursts, connection resets, failing result POSTs, progress events, the skill alias."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from avtomatika_worker import Backoff, InvalidInputError, PermanentError, Wiring, Worker, health
from avtomatika_worker.ratelimit import RateLimits
from avtomatika_worker.transport import in_container, unresolved_host_hint

from sdk_faults import (
    CLIENT_TOKEN,
    WORKER_ID,
    ControlClient,
    Fault,
    FaultProxy,
    make_worker,
    start_mock,
    worker_config,
)
from services import eventually, free_port

Stack = tuple[ControlClient, FaultProxy, str]  # control client, proxy, URL the worker uses


@pytest.fixture
async def mock_url() -> AsyncIterator[str]:
    # A short hold: a restarted worker waits out its predecessor's abandoned poll (handover.py).
    server, url = await start_mock(poll_hold=0.3)
    yield url
    await server.close()


@pytest.fixture
async def control(mock_url: str) -> AsyncIterator[ControlClient]:
    async with aiohttp.ClientSession(base_url=mock_url, headers={"X-Client-Token": CLIENT_TOKEN}) as session:
        yield ControlClient(session)


@pytest.fixture
async def stack(mock_url: str, control: ControlClient) -> AsyncIterator[Stack]:
    proxy = FaultProxy(mock_url)
    server, proxy_url = await proxy.start()
    yield control, proxy, proxy_url
    await server.close()


async def test_worker_started_before_the_orchestrator_registers_once_it_comes_up(tmp_path: Path) -> None:
    port = free_port()
    failures = asyncio.Event()
    attempts = 0

    async def counting_sleep(seconds: float) -> None:
        nonlocal attempts
        attempts += 1
        if attempts >= 3:
            failures.set()
        await asyncio.sleep(seconds)

    wiring = Wiring(backoff=Backoff(base=0.01, cap=0.05, sleep=counting_sleep))
    worker = make_worker(f"http://127.0.0.1:{port}", tmp_path, wiring=wiring)
    starting = asyncio.create_task(worker.start())
    try:
        await asyncio.wait_for(failures.wait(), 10)  # it has tried and failed to register 3 times
        assert not starting.done()
        server, url = await start_mock(port=port)
        try:
            await asyncio.wait_for(starting, 10)
            async with aiohttp.ClientSession(
                base_url=url, headers={"X-Client-Token": CLIENT_TOKEN}
            ) as session:
                control = ControlClient(session)
                done = await control.finished(await control.submit("check_inventory", {"items": ["a"]}))
            assert done["status"] == "success"
        finally:
            await worker.stop()
            await server.close()
    finally:
        starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)


async def test_an_orchestrator_host_that_does_not_resolve_is_named_with_a_hint(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tried = asyncio.Event()

    async def note_retry(seconds: float) -> None:
        tried.set()
        await asyncio.sleep(seconds)

    wiring = Wiring(backoff=Backoff(base=0.01, cap=0.05, sleep=note_retry))
    # A compose service name (.invalid: never resolves anywhere), as a worker run outside Docker sees it.
    worker = make_worker("http://mock-orchestrator.invalid:8080", tmp_path, wiring=wiring)
    with caplog.at_level(logging.WARNING, logger="avtomatika_worker"):
        starting = asyncio.create_task(worker.start())
        try:
            await asyncio.wait_for(tried.wait(), 30)
        finally:
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
            await worker.stop()
    assert (
        "the host name 'mock-orchestrator.invalid' of ORCHESTRATOR_URL does not resolve here" in caplog.text
    )
    assert unresolved_host_hint("mock-orchestrator.invalid", in_container()) in caplog.text


def test_an_unresolved_host_hint_suits_where_the_worker_runs() -> None:
    outside = unresolved_host_hint("mock-orchestrator", containerised=False)
    assert "outside Docker, point ORCHESTRATOR_URL at a published port, e.g. http://localhost:8080" in outside
    inside = unresolved_host_hint("mock-orchestrator", containerised=True)
    assert "is that service running, and on this container's network?" in inside
    assert "localhost" not in inside


async def test_a_busy_worker_polls_for_its_free_slots_in_parallel_and_an_idle_one_holds_one_poll(
    tmp_path: Path,
) -> None:
    server, mock_url = await start_mock(poll_hold=0.5)
    proxy = FaultProxy(mock_url)
    proxy_server, url = await proxy.start()
    session = aiohttp.ClientSession(base_url=mock_url, headers={"X-Client-Token": CLIENT_TOKEN})
    worker = make_worker(url, tmp_path, max_concurrent_tasks=4)
    release, running = asyncio.Event(), []

    @worker.task("hold")
    async def hold(params: dict[str, Any]) -> dict[str, Any]:
        running.append(params)
        await release.wait()
        return {}

    control = ControlClient(session)
    try:
        task_ids = [await control.submit("hold", {"n": n}) for n in range(8)]
        await worker.start()
        await eventually(lambda: len(running) == 4, what="all four slots busy")
        assert proxy.peak_polls >= 2  # one poll at a time would leave slots waiting a round trip each
        release.set()
        for task_id in task_ids:
            assert (await control.finished(task_id))["status"] == "success"
        # Once the queue is empty the extra polls end at their first empty reply: one long poll remains.
        await eventually(lambda: proxy.open_polls == 1, what="a single open poll")
    finally:
        await worker.stop()
        await session.close()
        await proxy_server.close()
        await server.close()


async def test_503_and_429_bursts_are_retried_and_the_task_completes(stack: Stack, tmp_path: Path) -> None:
    control, proxy, url = stack
    proxy.faults += [
        Fault("POST", "/workers/register", 2, 503),
        Fault("GET", "/tasks/next", 3, 503),
        Fault("GET", "/tasks/next", 2, 429),
        Fault("POST", "/tasks/result", 2, 429),
    ]
    task_id = await control.submit("check_inventory", {"items": ["a", "b"]})
    # Each 429 silences its message type for one rate-limit period: make that short.
    async with make_worker(url, tmp_path, rate_limits=RateLimits(enabled=False, period=0.05)):
        done = await control.finished(task_id)
    assert done["status"] == "success"
    assert done["data"] == {"items_checked": 2}
    assert proxy.statuses("POST", "/workers/register") == [503, 503, 200]
    assert proxy.statuses("GET", "/tasks/next")[:6] == [503, 503, 503, 429, 429, 200]
    assert all(f.count == 0 for f in proxy.faults)


async def test_connection_reset_mid_poll_is_survived(stack: Stack, tmp_path: Path) -> None:
    control, proxy, url = stack
    proxy.faults.append(Fault("GET", "/tasks/next", 2, status=0))
    task_id = await control.submit("check_inventory", {"items": ["a"]})
    async with make_worker(url, tmp_path):
        done = await control.finished(task_id)
    assert done["status"] == "success"
    assert proxy.statuses("GET", "/tasks/next")[:2] == [0, 0]


async def test_result_post_failing_n_times_is_resent_resealed_until_accepted(
    stack: Stack, tmp_path: Path
) -> None:
    control, proxy, url = stack
    proxy.faults += [Fault("POST", "/tasks/result", 3, 503), Fault("POST", "/tasks/result", 1, 0)]
    task_id = await control.submit("check_inventory", {"items": ["a"]})
    async with make_worker(url, tmp_path):
        done = await control.finished(task_id)
        await eventually(lambda: not list((tmp_path / "spool").glob("*.result.json")), what="spool emptied")
    assert done["status"] == "success"
    sent = proxy.bodies("POST", "/tasks/result")
    assert proxy.statuses("POST", "/tasks/result") == [503, 503, 503, 0, 200]
    assert len({body["nonce"] for body in sent}) == 5  # re-sealed: a new nonce every time
    assert all(body["task_id"] == task_id for body in sent)


async def test_results_left_in_the_spool_are_delivered_after_a_restart(stack: Stack, tmp_path: Path) -> None:
    control, proxy, url = stack
    proxy.faults.append(Fault("POST", "/tasks/result", 1000, 503))  # results cannot get through
    task_id = await control.submit("check_inventory", {"items": ["a", "b", "c"]})
    async with make_worker(url, tmp_path, shutdown_timeout=0.2):
        await eventually(lambda: len(proxy.bodies("POST", "/tasks/result")) >= 2, what="result retried")
        await eventually(
            lambda: 204 in proxy.statuses("GET", "/tasks/next"), what="an empty poll (learns the hold)"
        )
    spooled = list((tmp_path / "spool").glob("*.result.json"))
    assert len(spooled) == 1
    assert (await control.show(task_id))["status"] == "running"

    proxy.faults.clear()  # the orchestrator takes results again; a new worker process starts
    async with make_worker(url, tmp_path):
        done = await control.finished(task_id)
        await eventually(lambda: not list((tmp_path / "spool").glob("*.result.json")), what="spool emptied")
    assert done["status"] == "success"
    assert done["data"] == {"items_checked": 3}


async def test_orchestrator_outage_mid_run_then_work_resumes(stack: Stack, tmp_path: Path) -> None:
    control, proxy, url = stack
    async with make_worker(url, tmp_path, heartbeat_interval=0.2):
        proxy.broken = True
        await eventually(lambda: proxy.statuses("GET", "/tasks/next").count(503) >= 3, what="polls failing")
        proxy.broken = False
        done = await control.finished(await control.submit("check_inventory", {"items": ["a"]}))
    assert done["status"] == "success"


async def test_progress_events_reach_the_orchestrator(stack: Stack, tmp_path: Path) -> None:
    control, _, url = stack
    release = asyncio.Event()
    worker = make_worker(url, tmp_path)

    @worker.skill("resize")
    async def resize(params: dict[str, Any], send_progress: Callable[..., Awaitable[None]]) -> dict[str, Any]:
        await send_progress(0.5, "half way")
        await release.wait()
        return {"data": {"done": True}}

    async with worker:
        task_id = await control.submit("resize", {})
        views: list[dict[str, Any]] = []

        async def progress_seen() -> bool:
            views.append(await control.show(task_id))
            return views[-1].get("progress") == 0.5

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while not await progress_seen():
            assert loop.time() < deadline, views[-1]
        assert views[-1]["progress_message"] == "half way"
        release.set()
        done = await control.finished(task_id)
    assert done["status"] == "success"
    assert "resize" in worker.skills


async def test_send_progress_rejects_a_fraction_outside_0_to_1(stack: Stack, tmp_path: Path) -> None:
    control, _, url = stack
    worker = make_worker(url, tmp_path)

    @worker.skill("resize")
    async def resize(params: dict[str, Any], send_progress: Callable[..., Awaitable[None]]) -> dict[str, Any]:
        await send_progress(40)
        return {}

    async with worker:
        done = await control.finished(await control.submit("resize", {}))
    assert done["attempts"][0]["error"]["message"] == (
        "send_progress(fraction=40): fraction must be a number from 0 to 1, e.g. 0.4"
    )


async def test_a_handler_still_running_at_the_task_deadline_is_cancelled_and_reported_as_a_timeout(
    stack: Stack, tmp_path: Path
) -> None:
    control, _, url = stack
    worker = make_worker(url, tmp_path)
    seen: list[dict[str, float]] = []

    @worker.task("slow")
    async def slow(params: dict[str, Any], deadline: float) -> dict[str, Any]:
        seen.append({"deadline": deadline, "started": time.time()})
        if len(seen) > 1:  # the retry, past the deadline: it runs all the same
            return {"data": {"attempt": len(seen)}}
        try:
            await asyncio.Event().wait()  # never set: only the deadline ends this attempt
        except asyncio.CancelledError:
            seen[0]["cancelled"] = time.time()
            raise
        return {}

    async with worker:
        done = await control.finished(await control.submit("slow", {}, deadline=0.3))
    first, retry = done["attempts"]
    assert first["error"]["code"] == "TIMEOUT_ERROR", first
    assert "deadline passed while its handler ran" in first["error"]["message"]
    assert seen[0]["cancelled"] >= seen[0]["deadline"]
    # The orchestrator retries with the job's first deadline (1.0b30 does too): the retry runs anyway.
    assert seen[1]["started"] > seen[1]["deadline"]
    assert (done["status"], retry["status"]) == ("success", "success"), done


async def test_permanent_and_invalid_input_exceptions_decide_the_job_fate(
    stack: Stack, tmp_path: Path
) -> None:
    control, _, url = stack
    worker = make_worker(url, tmp_path)

    @worker.task("strict")
    async def strict(params: dict[str, Any]) -> dict[str, Any]:
        if params.get("kind") == "permanent":
            raise PermanentError("warehouse closed for good")
        raise InvalidInputError("items must be a list")

    async with worker:
        permanent = await control.finished(await control.submit("strict", {"kind": "permanent"}))
        invalid = await control.finished(await control.submit("strict", {"kind": "invalid"}))
        still_ok = await control.finished(await control.submit("check_inventory", {"items": ["a"]}))
    assert permanent["status"] == "quarantined"
    assert permanent["attempts"][0]["error"] == {
        "code": "PERMANENT_ERROR",
        "message": "warehouse closed for good",
    }
    assert invalid["status"] == "failure"
    assert invalid["attempts"][0]["error"] == {
        "code": "INVALID_INPUT_ERROR",
        "message": "items must be a list",
    }
    assert still_ok["status"] == "success"


async def test_liveness_file_says_ok_while_connected_and_is_removed_on_stop(
    mock_url: str, tmp_path: Path
) -> None:
    health = tmp_path / "health.json"
    async with make_worker(mock_url, tmp_path):
        await eventually(health.exists, what="liveness file written")
        data = orjson.loads(health.read_bytes())
        assert data["status"] == "ok"
        assert data["worker_id"] == WORKER_ID
    assert not health.exists()


async def test_liveness_turns_unreachable_when_the_orchestrator_fails(stack: Stack, tmp_path: Path) -> None:
    _, proxy, url = stack
    env = {"WORKER_HEALTH_FILE": str(tmp_path / "health.json"), "WORKER_HEARTBEAT_INTERVAL": "0.1"}
    async with make_worker(url, tmp_path, heartbeat_interval=0.1):
        await eventually(lambda: health.main(env) == 0, what="healthy")
        proxy.broken = True
        await eventually(lambda: health.main(env) == 1, what="unhealthy")
        assert '"unreachable"' in (tmp_path / "health.json").read_text()
        proxy.broken = False
        await eventually(lambda: health.main(env) == 0, what="healthy again")


def test_worker_config_used_by_the_tests_is_isolated(tmp_path: Path) -> None:
    config = worker_config("http://x", tmp_path)
    assert config.spool_path == tmp_path / "spool"
    assert config.health_path == tmp_path / "health.json"


async def test_worker_stop_before_start_is_harmless(caplog: pytest.LogCaptureFixture) -> None:
    worker = Worker("inventory-checker")
    with caplog.at_level(logging.DEBUG, logger="avtomatika_worker"):
        await worker.stop()
        await worker.stop()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
