"""deploy/swarm/stack.yml on a live swarm: three replicas, 300 tasks, a rolling update in the middle of them."""

from __future__ import annotations

import os
import secrets
from collections import Counter
from collections.abc import Iterator

import pytest
from dotenv import dotenv_values

from e2e.stack import WORKER, Compose, wait_for
from e2e.swarm import Swarm, SwarmMock, SwarmStack, run
from services import PROJECT_ROOT

pytestmark = pytest.mark.e2e

STACK_FILE = PROJECT_ROOT / "deploy" / "swarm" / "stack.yml"
MOCK_SERVICES = PROJECT_ROOT / "tests" / "e2e" / "swarm.e2e.yml"
MOCK = "mock-orchestrator"
REPLICAS = 3
TASKS = 300
# One second a task, one task at a time per replica: the 300 take about 100 s on three replicas, longer
# than an update of all three (about 18 s each), so old and new replicas both serve them.
TASK_PARAMS = {"steps": 4, "step_seconds": 0.25}
DONE_BEFORE_UPDATE = 15
START_SECONDS = 180  # image start, registration, first health check
FINISH_SECONDS = 600  # a bound for a loaded machine; the run takes about 110 s


@pytest.fixture(scope="module")
def swarm_stack(compose: Compose) -> Iterator[SwarmStack]:
    """The stack file plus a mock orchestrator and Redis, deployed on a swarm; removed afterwards."""
    compose.run("build", WORKER, MOCK, timeout=900)
    images = compose.config()["services"]
    settings = dotenv_values(PROJECT_ROOT / ".env")
    name = f"swarm-e2e-{os.getpid()}-{secrets.token_hex(3)}"
    env = {
        "IMAGE": images[WORKER]["image"],
        "MOCK_IMAGE": images[MOCK]["image"],
        "ORCHESTRATOR_URL": f"http://{MOCK}:8080",
        "REPLICAS": str(REPLICAS),
        "WORKER_TOKEN": settings.get("WORKER_TOKEN") or "",
        "CLIENT_TOKEN": settings.get("CLIENT_TOKEN") or "",
        "WORKER_TOKEN_SECRET": f"{name}_worker_token",
    }
    swarm = Swarm.join()
    stack = SwarmStack(name, [STACK_FILE, MOCK_SERVICES], env)
    try:
        # As the README tells users: the token is a Docker secret, read by the worker from a file.
        run(["docker", "secret", "create", env["WORKER_TOKEN_SECRET"], "-"], input=env["WORKER_TOKEN"])
        stack.deploy()
        yield stack
    finally:
        stack.remove()
        run(["docker", "secret", "rm", env["WORKER_TOKEN_SECRET"]])
        swarm.leave()


@pytest.fixture(scope="module")
def swarm_mock(swarm_stack: SwarmStack) -> SwarmMock:
    """The stack's mock orchestrator once every replica has registered with it."""
    mock = SwarmMock(swarm_stack)
    wait_for(mock.answers, "the stack's mock orchestrator", timeout=START_SECONDS)
    wait_for(lambda: len(mock.workers()) == REPLICAS, f"{REPLICAS} replicas to register", START_SECONDS)
    return mock


def finished(tasks: list[dict[str, object]]) -> int:
    return sum(task["status"] not in ("queued", "running") for task in tasks)


@pytest.mark.timeout(FINISH_SECONDS + 2 * START_SECONDS)
def test_a_rolling_update_mid_run_ends_each_of_300_tasks_exactly_once(
    swarm_stack: SwarmStack, swarm_mock: SwarmMock
) -> None:
    replicas_before = swarm_mock.workers()
    task_ids = set(swarm_mock.submit(TASKS, "long_running_task", TASK_PARAMS))
    wait_for(lambda: finished(swarm_mock.tasks()) >= DONE_BEFORE_UPDATE, "the first tasks to finish")

    seconds = swarm_stack.update(WORKER)
    print(f"rolling update of {REPLICAS} replicas (start-first, one at a time): {seconds:.1f} s")

    # A replica's worker id ends with its hostname, the first 12 characters of its container id.
    hosts = {cid[:12] for cid in swarm_stack.containers(WORKER)}
    new_replicas = {w for w in swarm_mock.workers() if w.rsplit("-", 1)[-1] in hosts}
    assert len(new_replicas) == REPLICAS and not new_replicas & replicas_before, new_replicas
    wait_for(lambda: finished(swarm_mock.tasks()) == TASKS, f"all {TASKS} tasks to finish", FINISH_SECONDS)
    tasks = {task["task_id"]: task for task in swarm_mock.tasks()}
    assert set(tasks) == task_ids
    assert Counter(task["status"] for task in tasks.values()) == {"success": TASKS}
    # Exactly once: one successful attempt per task, none still open (a task handed back by a stopping
    # replica would show as an earlier attempt that did not succeed, and still count once).
    successes = [[a for a in task["attempts"] if a["status"] == "success"] for task in tasks.values()]
    assert [len(s) for s in successes] == [1] * TASKS
    assert all(a["finished_at"] is not None for task in tasks.values() for a in task["attempts"])
    ran_on = Counter(s[0]["worker_id"] for s in successes)
    # Mid-run: replicas of both generations did part of the work.
    assert set(ran_on) & replicas_before and set(ran_on) & new_replicas, ran_on
    retried = sum(len(task["attempts"]) > 1 for task in tasks.values())
    print(f"tasks by replica: {dict(ran_on)}; tasks handed to a second replica: {retried}")
