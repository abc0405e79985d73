"""Interop: a worker with an individual token from workers.toml (WORKERS_CONFIG_PATH) against the REAL orchestrator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from interop.real import WORKER_TOKEN, RealOrchestrator, RunningWorker, baked_worker, real_orchestrator
from interop.wire import WireClient

pytestmark = pytest.mark.interop

WORKER_ID = "interop-individual"
INDIVIDUAL_TOKEN = "individual-token-for-interop"


@pytest.fixture(scope="module")
def orchestrator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealOrchestrator]:
    workers_toml = f'[{WORKER_ID}]\ntoken = "{INDIVIDUAL_TOKEN}"\n'
    with real_orchestrator(tmp_path_factory.mktemp("orchestrator-tokens"), workers_toml=workers_toml) as orch:
        yield orch


@pytest.fixture(scope="module")
def worker(orchestrator: RealOrchestrator, project: Path) -> Iterator[RunningWorker]:
    with baked_worker(orchestrator, project, WORKER_ID, env={"WORKER_TOKEN": INDIVIDUAL_TOKEN}) as running:
        yield running


def test_worker_with_an_individual_token_completes_jobs(
    orchestrator: RealOrchestrator, worker: RunningWorker
) -> None:
    job = orchestrator.run_job("inventory", {"items": ["apple"]})
    assert job["status"] == "finished", (job, worker.tail())
    assert job["assigned_worker_id"] == WORKER_ID
    assert job["state_history"]["in_stock"] == {"apple": 12}


@pytest.mark.asyncio
async def test_the_global_token_is_refused_for_a_worker_with_an_individual_token(
    orchestrator: RealOrchestrator, worker: RunningWorker
) -> None:
    # The control: the individual entry is really in force, so the test above proves the SDK used it.
    async with aiohttp.ClientSession() as session:
        reply = await WireClient(session, orchestrator.base_url, WORKER_ID, WORKER_TOKEN).register(
            ["check_inventory"]
        )
    assert reply.pair() == (403, {"error": "Unauthorized: Invalid individual worker token"})
