"""Metrics on WORKER_METRICS_PORT: scraped from a real worker and parsed with Prometheus' own parser."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families

from avtomatika_worker import Worker, observe
from avtomatika_worker.metrics import Metrics
from mock_orchestrator import MockSettings, create_app

from sdk_faults import worker_config
from services import free_port

WORKER_TOKEN = "metrics-worker-token"
CLIENT_TOKEN = "metrics-client-token"


@pytest.fixture
async def orchestrator_url() -> AsyncIterator[str]:
    settings = MockSettings(worker_token=WORKER_TOKEN, client_token=CLIENT_TOKEN, poll_hold_seconds=30.0)
    server = TestServer(create_app(settings), host="127.0.0.1", port=0)
    await server.start_server()
    yield str(server.make_url("")).rstrip("/")
    await server.close()


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample by name, through the Prometheus text-format parser (a malformed line raises)."""
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return found


def test_the_exposition_parses_and_counts_by_skill_outcome_kind_and_channel() -> None:
    metrics = Metrics()
    metrics.on_task_start("resize")
    metrics.on_task_end("resize", "success", 0.2)
    metrics.on_task_start("resize")
    metrics.on_request("poll", 0.01, True)
    metrics.on_request("result", 0.5, False)
    metrics.on_rate_limit_pause("poll")
    metrics.on_spool(2)
    metrics.on_spool(-1)
    metrics.on_cancel("WebSocket command")
    metrics.on_cancel("TaskRun.cancel()")
    found = samples(metrics.render())
    assert found["avtomatika_worker_tasks_total"] == [({"skill": "resize", "outcome": "success"}, 1.0)]
    assert found["avtomatika_worker_tasks_in_flight"] == [({"skill": "resize"}, 1.0)]
    assert ({"skill": "resize", "outcome": "success"}, 1.0) in found[
        "avtomatika_worker_task_duration_seconds_count"
    ]
    assert found["avtomatika_worker_request_failures_total"] == [({"kind": "result"}, 1.0)]
    assert found["avtomatika_worker_rate_limit_pauses_total"] == [({"kind": "poll"}, 1.0)]
    assert found["avtomatika_worker_spool_depth"] == [({}, 1.0)]
    channels = {labels["channel"] for labels, _ in found["avtomatika_worker_cancellations_total"]}
    assert channels == {"websocket", "other"}


def test_histogram_buckets_are_cumulative_and_end_at_inf() -> None:
    metrics = Metrics()
    for seconds in (0.001, 0.3, 1000.0):
        metrics.on_request("heartbeat", seconds, True)
    buckets = samples(metrics.render())["avtomatika_worker_request_duration_seconds_bucket"]
    values = [value for _, value in buckets]
    assert values == sorted(values)
    assert buckets[-1] == ({"kind": "heartbeat", "le": "+Inf"}, 3.0)


def test_label_values_are_escaped() -> None:
    metrics = Metrics()
    metrics.on_task_end('odd"skill\\name\n', "success", 0.1)
    found = samples(metrics.render())
    assert found["avtomatika_worker_tasks_total"][0][0]["skill"] == 'odd"skill\\name\n'


async def test_a_worker_serves_metrics_and_healthz_without_task_ids_in_labels(
    orchestrator_url: str, tmp_path: Path
) -> None:
    port = free_port()
    config = worker_config(orchestrator_url, tmp_path, worker_token=WORKER_TOKEN, worker_id="metrics-01")
    worker = Worker(worker_type="metrics", config=replace(config, metrics_port=port))

    @worker.task("double")
    async def double(params: dict[str, Any]) -> dict[str, Any]:
        return {"status": "success", "data": {"value": 2 * params["value"]}}

    headers = {"X-Client-Token": CLIENT_TOKEN}
    async with worker, aiohttp.ClientSession(base_url=orchestrator_url, headers=headers) as client:
        task_ids = []
        for value in range(3):
            async with client.post("/api/v1/tasks", json={"type": "double", "params": {"value": value}}) as r:
                task_ids.append((await r.json())["task_id"])
        for task_id in task_ids:
            async with client.get(f"/api/v1/tasks/{task_id}", params={"wait": "10"}) as r:
                assert (await r.json())["status"] == "success"
        async with aiohttp.ClientSession() as scraper:
            async with scraper.get(f"http://127.0.0.1:{port}/healthz") as response:
                assert response.status == 200
            async with scraper.get(f"http://127.0.0.1:{port}/metrics") as response:
                assert response.status == 200
                assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                text = await response.text()
    found = samples(text)
    assert ({"skill": "double", "outcome": "success"}, 3.0) in found["avtomatika_worker_tasks_total"]
    kinds = {labels["kind"] for labels, _ in found["avtomatika_worker_request_duration_seconds_count"]}
    assert {"poll", "result"} <= kinds
    assert all(task_id not in text for task_id in task_ids)
    assert observe.get() is observe.NO_OBSERVER  # the stop puts the no-op observer back
