"""Results at the mock: the real acceptance rules, failure codes, retries with new task ids, quarantine."""

from __future__ import annotations

import uuid

import pytest
from aiohttp.test_utils import TestClient

from mock_support import (
    WORKER_ID,
    FakeClock,
    expect_error,
    fail,
    poll,
    post_json,
    register,
    result_reply,
    seal,
    send_result,
    submit,
    take,
    task_view,
    worker_headers,
)

# --- results -------------------------------------------------------------------------------


async def test_success_result_without_status_is_accepted_and_visible(
    client: TestClient, clock: FakeClock
) -> None:
    await register(client, clock)
    await submit(client)
    task = await take(client)
    clock.now += 2
    resp = await send_result(client, clock, task, data={"items_checked": 2, "empty": None})
    assert resp.status == 200
    assert await resp.json() == {"status": "accepted", "transition": "success_transition"}
    view = await task_view(client, task["task_id"])
    assert view["status"] == "success"
    assert view["data"] == {"items_checked": 2}
    assert view["worker_id"] == WORKER_ID
    assert view["finished_at"] == clock.now


async def test_custom_status_is_accepted(client: TestClient, clock: FakeClock) -> None:
    await register(client, clock)
    await submit(client)
    task = await take(client)
    resp = await send_result(client, clock, task, status="out_of_stock", data={"missing_item": "pear"})
    assert await resp.json() == {"status": "accepted", "transition": "success_transition"}
    view = await task_view(client, task["task_id"])
    assert (view["status"], view["data"]) == ("out_of_stock", {"missing_item": "pear"})


async def test_cancelled_result_is_accepted(client: TestClient, clock: FakeClock) -> None:
    await register(client, clock)
    await submit(client)
    task = await take(client)
    resp = await send_result(client, clock, task, status="cancelled")
    assert await resp.json() == {"status": "accepted", "transition": "cancelled_handled"}
    assert (await task_view(client, task["task_id"]))["status"] == "cancelled"


async def test_result_for_unknown_job_is_ignored(client: TestClient, clock: FakeClock) -> None:
    job_id = str(uuid.uuid4())
    resp = await send_result(client, clock, {"job_id": job_id, "task_id": "task-x"})
    assert await resp.json() == {
        "status": "ignored",
        "reason": "job_not_found",
        "message": f"Job {job_id} not found (expired or deleted).",
    }


async def test_result_from_another_worker_is_ignored(client: TestClient, clock: FakeClock) -> None:
    await register(client, clock)
    await register(client, clock, "worker-2")
    await submit(client)
    task = await take(client)
    body = await (await send_result(client, clock, task, worker_id="worker-2")).json()
    assert (body["status"], body["reason"]) == ("ignored", "worker_mismatch")
    assert (await task_view(client, task["task_id"]))["status"] == "running"


async def test_result_with_an_old_task_id_is_stale(client: TestClient, clock: FakeClock) -> None:
    await register(client, clock)
    await submit(client)
    task = await take(client)
    body = await (await send_result(client, clock, dict(task, task_id="task-old"))).json()
    assert body == {
        "status": "ignored",
        "reason": "stale_task",
        "message": f"Result ignored: task_id task-old is no longer active for job {task['job_id']}.",
    }


async def test_second_result_is_ignored_as_already_terminated(client: TestClient, clock: FakeClock) -> None:
    await register(client, clock)
    await submit(client)
    task = await take(client)
    assert (await send_result(client, clock, task)).status == 200
    body = await (await send_result(client, clock, task, status="failure")).json()
    assert (body["status"], body["reason"]) == ("ignored", "job_already_terminated")
    assert (await task_view(client, task["task_id"]))["status"] == "success"


async def test_result_for_another_worker_id_is_forbidden(client: TestClient, clock: FakeClock) -> None:
    await register(client, clock)
    await submit(client)
    task = await take(client)
    body = seal(
        {"job_id": task["job_id"], "task_id": task["task_id"], "worker_id": "worker-2"},
        clock,
        signer=WORKER_ID,
    )
    resp = await post_json(client, "/_worker/tasks/result", body, worker_headers(WORKER_ID))
    await expect_error(
        resp,
        403,
        "Forbidden: Authenticated worker 'worker-1' cannot submit results for another worker 'worker-2'.",
    )


# --- failures: retries, quarantine, failing codes (worker_service.py: _handle_task_failure) --


async def test_transient_failure_is_requeued_with_a_new_task_id_under_the_same_control_id(
    client: TestClient, clock: FakeClock
) -> None:
    await register(client, clock)
    submitted = await submit(client)
    first = await take(client)
    assert await fail(client, clock, first, "TRANSIENT_ERROR") == {
        "status": "accepted",
        "transition": "failure_handled",
    }
    view = await task_view(client, submitted["task_id"])
    assert (view["status"], view["retries"]) == ("queued", 1)
    second = await take(client)
    assert second["job_id"] == first["job_id"] and second["task_id"] != first["task_id"]
    assert second["task_id"].startswith("task-") and second["params"] == first["params"]
    view = await task_view(client, submitted["task_id"])
    assert view["task_id"] == submitted["task_id"] and view["current_task_id"] == second["task_id"]
    assert [(a["task_id"], a["status"]) for a in view["attempts"]] == [
        (first["task_id"], "failure"),
        (second["task_id"], "running"),
    ]
    assert view["attempts"][0]["error"] == {"code": "TRANSIENT_ERROR", "message": "boom"}


async def test_result_for_the_failed_attempt_is_stale_after_the_retry(
    client: TestClient, clock: FakeClock
) -> None:
    await register(client, clock)
    await submit(client)
    first = await take(client)
    await fail(client, clock, first, "TRANSIENT_ERROR")
    second = await take(client)
    assert await result_reply(client, clock, first) == {
        "status": "ignored",
        "reason": "stale_task",
        "message": f"Result ignored: task_id {first['task_id']} is no longer active for job {first['job_id']}.",
    }
    assert (await result_reply(client, clock, second))["transition"] == "success_transition"
    assert (await task_view(client, first["task_id"]))["status"] == "success"


async def test_fourth_retryable_failure_quarantines_the_task(client: TestClient, clock: FakeClock) -> None:
    await register(client, clock)
    submitted = await submit(client)
    seen = []
    for _ in range(4):
        task = await take(client)
        seen.append(task["task_id"])
        assert (await fail(client, clock, task, "TIMEOUT_ERROR", "slow disk"))["status"] == "accepted"
    assert len(set(seen)) == 4
    view = await task_view(client, submitted["task_id"])
    assert (view["status"], view["retries"], len(view["attempts"])) == ("quarantined", 3, 4)
    assert view["error_message"] == f"Task {seen[-1]} failed after 4 attempts: slow disk"
    assert (await poll(client)).status == 204


@pytest.mark.parametrize("error", [None, {"code": "SOMETHING_NEW", "message": "m"}])
async def test_failure_without_error_or_with_unknown_code_is_retried(
    client: TestClient, clock: FakeClock, error: dict[str, str] | None
) -> None:
    await register(client, clock)
    submitted = await submit(client)
    task = await take(client)
    assert (await result_reply(client, clock, task, status="failure", error=error))["status"] == "accepted"
    assert (await task_view(client, submitted["task_id"]))["status"] == "queued"


@pytest.mark.parametrize(
    "code", ["PERMANENT_ERROR", "SECURITY_ERROR", "DEPENDENCY_ERROR", "CONTRACT_VIOLATION_ERROR"]
)
async def test_permanent_codes_quarantine_at_once(client: TestClient, clock: FakeClock, code: str) -> None:
    await register(client, clock)
    submitted = await submit(client)
    task = await take(client)
    assert await fail(client, clock, task, code, "no such warehouse") == {
        "status": "accepted",
        "transition": "failure_handled",
    }
    view = await task_view(client, submitted["task_id"])
    assert (view["status"], view["retries"]) == ("quarantined", 0)
    assert view["error_message"] == f"Task failed with permanent error ({code}): no such warehouse"
    assert view["error"] == {"code": code, "message": "no such warehouse"}
    assert (await poll(client)).status == 204


@pytest.mark.parametrize(
    ("code", "explanation"),
    [
        ("INVALID_INPUT_ERROR", "Task failed due to invalid input: bad"),
        ("INTEGRITY_MISMATCH_ERROR", "Task failed due to data integrity mismatch: bad"),
    ],
)
async def test_invalid_input_and_integrity_codes_fail_without_retry(
    client: TestClient, clock: FakeClock, code: str, explanation: str
) -> None:
    await register(client, clock)
    submitted = await submit(client)
    task = await take(client)
    await fail(client, clock, task, code, "bad")
    view = await task_view(client, submitted["task_id"])
    assert (view["status"], view["error_message"], view["retries"]) == ("failure", explanation, 0)


async def test_result_after_quarantine_is_ignored_as_terminated(client: TestClient, clock: FakeClock) -> None:
    await register(client, clock)
    await submit(client)
    task = await take(client)
    await fail(client, clock, task, "PERMANENT_ERROR")
    assert await result_reply(client, clock, task) == {
        "status": "ignored",
        "reason": "job_already_terminated",
        "message": "Result ignored: the job is already in a terminal state (quarantined).",
    }


async def test_result_after_a_quarantine_whose_message_mentions_timeout_is_deadline_exceeded(
    client: TestClient, clock: FakeClock
) -> None:
    await register(client, clock)
    await submit(client)
    task = await take(client)
    await fail(client, clock, task, "PERMANENT_ERROR", "upstream Timeout")
    assert (await result_reply(client, clock, task))["reason"] == "deadline_exceeded"
