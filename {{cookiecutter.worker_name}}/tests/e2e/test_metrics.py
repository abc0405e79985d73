"""The worker's metrics port through the whole stack, scraped and parsed with Prometheus' text parser."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from e2e.stack import WORKER, Compose, Mock, docker

pytestmark = pytest.mark.e2e

SCRAPE = (
    "import sys, urllib.request; "
    "sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:9464/metrics', timeout=10).read().decode())"
)


def scrape(container: str) -> str:
    """GET /metrics from inside one worker container (the port is not published)."""
    result = docker(["docker", "exec", container, "python", "-c", SCRAPE])
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_metrics_port_counts_the_stacks_tasks_without_task_ids(compose: Compose, mock: Mock) -> None:
    task_id = mock.submit("check_inventory", {"items": ["apple"]})
    assert mock.wait_done(task_id)["status"] == "success"
    done = 0.0
    for container in compose.run("ps", "--quiet", WORKER).stdout.split():
        text = scrape(container)
        assert task_id not in text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "avtomatika_worker_tasks_total":
                    assert set(sample.labels) == {"skill", "outcome"}
                    if sample.labels == {"skill": "check_inventory", "outcome": "success"}:
                        done += sample.value
    assert done >= 1
