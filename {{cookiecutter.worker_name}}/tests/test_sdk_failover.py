"""Several instances of one orchestrator: ORCHESTRATORS_CONFIG / a URL list, preference and failover."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from avtomatika_worker import ConfigError, WorkerConfig
from avtomatika_worker.endpoints import COOL_DOWN, Endpoint, Endpoints
from avtomatika_worker.signing import sign
from avtomatika_worker.transport import OrchestratorClient

from sdk_faults import CLIENT_TOKEN, ControlClient, FaultProxy, make_worker, start_mock, worker_config
from services import eventually

TOKEN = {"WORKER_TOKEN": "fleet-token"}


def config_from(**env: str) -> WorkerConfig:
    return WorkerConfig.from_env("inventory-checker", {**TOKEN, **env})


def test_orchestrators_config_is_read_as_the_official_sdk_writes_it() -> None:
    config = config_from(
        ORCHESTRATORS_CONFIG='[{"url": "http://b:8080", "priority": 2, "weight": 3, "token": "tb"},'
        ' {"url": "http://a:8080/", "priority": 1}]',
        ORCHESTRATOR_URL="http://ignored:8080",
    )
    assert [(e.url, e.priority, e.weight) for e in config.orchestrators] == [
        ("http://b:8080", 2, 3.0),
        ("http://a:8080", 1, 1.0),
    ]
    assert config.orchestrators[0].token == "tb"
    assert config.orchestrator_url == "http://b:8080"


def test_orchestrator_url_may_list_several_instances() -> None:
    config = config_from(ORCHESTRATOR_URL="http://a:8080, http://b:8080")
    assert [e.url for e in config.endpoints] == ["http://a:8080", "http://b:8080"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("not json", "ORCHESTRATORS_CONFIG is not valid JSON"),
        ("[]", "ORCHESTRATORS_CONFIG must be a non-empty JSON list"),
        ('[{"url": "ftp://a"}]', "ORCHESTRATORS_CONFIG[0].url='ftp://a' must be an http:// or https:// URL"),
        ('[{"url": "http://a", "priority": "high"}]', "ORCHESTRATORS_CONFIG[0].priority='high' must be"),
        ('[{"url": "http://a"}, {"url": "http://b", "weight": 0}]', "ORCHESTRATORS_CONFIG[1].weight=0 must"),
        ('[{"url": "http://a", "token": "a b"}]', "ORCHESTRATORS_CONFIG[0].token must be a non-empty token"),
        ('[{"url": "http://a", "prio": 1}]', "ORCHESTRATORS_CONFIG[0] has unknown field(s) ['prio']"),
    ],
)
def test_a_bad_orchestrators_config_names_the_entry_and_the_field(raw: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from(ORCHESTRATORS_CONFIG=raw)
    assert str(caught.value).startswith(message)
    assert "a b" not in str(caught.value)


def test_a_bad_url_in_the_list_is_a_config_error_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="ORCHESTRATOR_URL='http://a:8080,nope' is invalid"):
        config_from(ORCHESTRATOR_URL="http://a:8080,nope")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_preferred_instance_is_skipped_while_it_cools_down_and_taken_back_after() -> None:
    clock = Clock()
    a, b = Endpoint("http://a", priority=1), Endpoint("http://b", priority=2)
    endpoints = Endpoints([b, a], "w-1", clock)
    assert endpoints.current() is a
    endpoints.failed(a, "refused")
    assert endpoints.current() is b
    clock.now = COOL_DOWN
    assert endpoints.current() is a
    endpoints.failed(a, "refused again")  # keeps failing: twice as long now
    clock.now += COOL_DOWN
    assert endpoints.current() is b
    clock.now += COOL_DOWN
    assert endpoints.current() is a
    endpoints.succeeded(a)
    endpoints.failed(a, "once more")  # healthy in between: the cool-down starts over
    clock.now += COOL_DOWN
    assert endpoints.current() is a


def test_when_every_instance_is_down_the_one_that_recovers_first_is_tried() -> None:
    clock = Clock()
    a, b = Endpoint("http://a", priority=1), Endpoint("http://b", priority=2)
    endpoints = Endpoints([a, b], "w-1", clock)
    endpoints.failed(a, "refused")
    clock.now = 1.0
    endpoints.failed(b, "refused")
    assert endpoints.current() is a


def test_a_fleet_spreads_over_equal_priority_instances_by_weight() -> None:
    light, heavy = Endpoint("http://light", weight=1), Endpoint("http://heavy", weight=3)
    firsts = [Endpoints([light, heavy], f"worker-{n}").current() for n in range(2000)]
    share = firsts.count(heavy) / len(firsts)
    assert 0.70 < share < 0.80  # 3 / (1 + 3)


async def test_each_instance_gets_its_own_token_in_the_header_and_the_signature(tmp_path: Path) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    async def register(request: web.Request) -> web.Response:
        seen.append((request.headers["X-Worker-Token"], await request.json()))
        return web.json_response({"status": "registered"})

    app = web.Application()
    app.router.add_post("/_worker/workers/register", register)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    url = str(server.make_url("")).rstrip("/")
    endpoints = (Endpoint("http://127.0.0.1:9", priority=1), Endpoint(url, priority=2, token="b-token"))
    client = OrchestratorClient(worker_config(url, tmp_path, orchestrators=endpoints))
    try:
        with pytest.raises(Exception, match="failed"):
            await client.register({"worker_id": "w"})  # the first instance refuses the connection
        await client.register({"worker_id": "w"})  # the next request goes to the second one
    finally:
        await client.close()
        await server.close()
    ((token, body),) = seen
    assert token == "b-token"
    unsigned = {k: v for k, v in body.items() if k != "security"}
    assert body["security"]["signature"] == sign(unsigned, "b-token")


@pytest.fixture
async def two_instances() -> AsyncIterator[
    tuple[ControlClient, list[TestServer], list[FaultProxy], list[str]]
]:
    """Two 'instances' sharing one state, as avtomatika instances share one Redis: proxies to one mock."""
    server, mock_url = await start_mock(poll_hold=0.3)
    proxies = [FaultProxy(mock_url), FaultProxy(mock_url)]
    started = [await proxy.start() for proxy in proxies]
    async with aiohttp.ClientSession(base_url=mock_url, headers={"X-Client-Token": CLIENT_TOKEN}) as session:
        yield ControlClient(session), [s for s, _ in started], proxies, [u for _, u in started]
    for proxy_server, _ in started:
        await proxy_server.close()
    await server.close()


async def test_the_worker_fails_over_to_the_next_instance_and_keeps_serving(
    two_instances: tuple[ControlClient, list[TestServer], list[FaultProxy], list[str]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    control, servers, proxies, urls = two_instances
    endpoints = (Endpoint(urls[0], priority=1), Endpoint(urls[1], priority=2))
    worker = make_worker(urls[0], tmp_path, orchestrators=endpoints, heartbeat_interval=0.2)
    caplog.set_level(logging.WARNING, "avtomatika_worker")
    async with worker:
        first = await control.submit("check_inventory", {"items": [1]})
        assert (await control.finished(first))["status"] == "success"
        assert proxies[0].bodies("POST", "/tasks/result") and not proxies[1].bodies("POST", "/tasks/result")
        await servers[0].close()  # the preferred instance goes away, its open poll with it
        second = await control.submit("check_inventory", {"items": [1, 2]})
        assert (await control.finished(second))["status"] == "success"
        await eventually(lambda: len(proxies[1].bodies("PATCH", "")) > 0, what="a heartbeat to the second")
    assert len(proxies[1].bodies("POST", "/tasks/result")) == 1
    assert f"orchestrator {urls[0]} failed" in caplog.text
    assert f"talking to orchestrator {urls[1]} now" in caplog.text
