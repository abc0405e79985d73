"""The compose profile "observability": a real Prometheus scrapes every worker replica of the stack."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from e2e.stack import WORKER, Compose, Mock, wait_for

pytestmark = pytest.mark.e2e

PROFILE = ("--profile", "observability")
TASKS_DONE = 'sum(avtomatika_worker_tasks_total{skill="check_inventory",outcome="success"})'


@pytest.fixture
def prometheus(compose: Compose, mock: Mock) -> Iterator[str]:
    """The profile's Prometheus, up beside the running stack; its base URL."""
    compose.run(
        *PROFILE, "up", "--build", "--detach", "--wait", "--wait-timeout", "300", "prometheus", timeout=900
    )
    try:
        yield f"http://127.0.0.1:{compose.env['PROMETHEUS_PORT']}"
    finally:
        compose.run(*PROFILE, "rm", "--stop", "--force", "prometheus", check=False)


def api(base_url: str, path: str, **query: str) -> Any:
    """GET one of Prometheus' HTTP API endpoints; its `data`."""
    url = f"{base_url}/api/v1/{path}?{urllib.parse.urlencode(query)}"
    with urllib.request.urlopen(url, timeout=10) as response:
        reply = json.loads(response.read())
    assert reply["status"] == "success", reply
    return reply["data"]


def test_prometheus_scrapes_each_worker_replica_and_counts_its_tasks(
    compose: Compose, mock: Mock, prometheus: str
) -> None:
    assert mock.wait_done(mock.submit("check_inventory", {"items": ["apple"]}))["status"] == "success"
    replicas = len(compose.running(WORKER))

    def scraped() -> bool:
        targets = api(prometheus, "targets")["activeTargets"]
        up = [t for t in targets if t["labels"]["job"] == "worker" and t["health"] == "up"]
        return len(up) == replicas

    wait_for(scraped, f"Prometheus to scrape {replicas} worker replica(s)")

    def counted() -> bool:
        result = api(prometheus, "query", query=TASKS_DONE)["result"]
        return bool(result) and float(result[0]["value"][1]) >= 1

    wait_for(counted, "Prometheus to count the worker's finished task")
