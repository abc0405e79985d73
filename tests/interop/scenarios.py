"""The contract scenarios, as data: each a list of steps with the answer avtomatika 1.0b30 gives.

Expectations are the real orchestrator's answers (protocol.md §15, re-observed by these tests): every
target must produce exactly these status codes and JSON bodies. `{worker_id}`, `{job_id}`, `{task_id}`
and `{previous_task_id}` in expectations and heartbeat bodies stand for the scenario's worker and the
tasks it polled. A bare int expectation compares the HTTP status only (control-API texts differ by design).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

UNKNOWN_JOB = "job-that-does-not-exist"


@dataclass(frozen=True)
class Step:
    """One action and what it must answer."""

    do: str
    expect: Any = None
    args: dict[str, Any] = field(default_factory=dict)


def S(do: str, expect: Any = None, **args: Any) -> Step:
    """Shorthand for a Step."""
    return Step(do, expect, args)


def error(status: int, text: str) -> tuple[int, dict[str, str]]:
    """An error answer."""
    return status, {"error": text}


def already_terminal(status: str) -> tuple[int, dict[str, str]]:
    """The answer to a result for a job that already ended with `status`."""
    message = f"Result ignored: the job is already in a terminal state ({status})."
    return 200, {"status": "ignored", "reason": "job_already_terminated", "message": message}


REGISTERED = (200, {"status": "registered", "version": "1.0b17"})
ACCEPTED = {"success": (200, {"status": "accepted", "transition": "success_transition"})}
ACCEPTED["failure"] = (200, {"status": "accepted", "transition": "failure_handled"})
ACCEPTED["cancelled"] = (200, {"status": "accepted", "transition": "cancelled_handled"})
CANCEL_ACCEPTED = (200, {"status": "cancellation_request_accepted"})
BAD_RESULT = "Invalid TaskResult payload: Failed to instantiate TaskResult: "
STALE = (
    200,
    {
        "status": "ignored",
        "reason": "stale_task",
        "message": "Result ignored: task_id {previous_task_id} is no longer active for job {job_id}.",
    },
)
ITEMS = {"items": ["apple", "pear"]}
WORK = [S("register", REGISTERED), S("create", params=ITEMS), S("poll", "task")]

SCENARIOS: dict[str, list[Step]] = {
    "register_ok": [S("register", REGISTERED)],
    "register_unsigned": [
        S("register", error(403, "Missing required timestamp for replay protection"), mode="unsigned")
    ],
    "register_without_security": [
        S("register", error(403, "Missing required security context"), mode="no_security")
    ],
    "register_bad_signature": [
        S("register", error(403, "Invalid cryptographic signature"), mode="bad_signature")
    ],
    "register_expired_timestamp": [
        S("register", error(403, "Message timestamp expired (replay protection)"), mode="expired")
    ],
    "register_replayed": [
        S("register", REGISTERED),
        S("replay", error(403, "Duplicate message detected (replay attack)")),
    ],
    "register_wrong_token": [
        S("register", error(403, "Unauthorized: No valid token found"), token="not-the-token")
    ],
    "register_missing_token": [
        S(
            "register",
            error(403, "Unauthorized: Missing X-Worker-Token header or client certificate."),
            token=None,
        )
    ],
    "register_worker_header_mismatch": [
        S("register", error(403, "Immediate sender ID mismatch"), worker_header="someone-else")
    ],
    "register_float_timestamp": [
        S(
            "register",
            error(
                400,
                "Invalid WorkerRegistration payload: Failed to instantiate WorkerRegistration: "
                "Expected `int | null`, got `float` - at `$.timestamp`",
            ),
            mode="float_timestamp",
        )
    ],
    "heartbeats": [
        S("heartbeat_empty", (200, None), worker="unknown"),
        S("register", REGISTERED),
        S("heartbeat_empty", (200, {"status": "ttl_refreshed"})),
        S("heartbeat", (200, {"status": "ok"}), body={"status": "idle"}),
    ],
    "poll_empty": [S("register", REGISTERED), S("poll", (204, None))],
    "result_malformed": [
        S("register", REGISTERED),
        S("result", error(400, BAD_RESULT + "Expected `object | null`, got `array` - at `$.data`"), data=[1]),
        S(
            "result",
            error(400, BAD_RESULT + "Object missing required field `message` - at `$.error`"),
            status="failure",
            error={"code": "TRANSIENT_ERROR"},
        ),
        S(
            "result",
            error(400, BAD_RESULT + "Expected `object | null`, got `str` - at `$.error`"),
            error="boom",
        ),
    ],
    "result_for_another_worker": [
        S("register", REGISTERED),
        S(
            "result",
            error(
                403,
                "Forbidden: Authenticated worker '{worker_id}' cannot submit results for another worker 'other'.",
            ),
            worker_id="other",
        ),
    ],
    "result_for_unknown_job": [
        S("register", REGISTERED),
        S(
            "result",
            (
                200,
                {
                    "status": "ignored",
                    "reason": "job_not_found",
                    "message": f"Job {UNKNOWN_JOB} not found (expired or deleted).",
                },
            ),
            job_id=UNKNOWN_JOB,
        ),
    ],
    "progress_success_then_late_duplicate": [
        *WORK,
        S(
            "event",
            (200, {"status": "event_accepted"}),
            event_type="progress",
            payload={"progress": 0.5, "message": "half"},
        ),
        S("result", ACCEPTED["success"], data={"items_checked": 2}),
        S("outcome", "success"),
        S("result", already_terminal("finished"), data={"items_checked": 2}),
    ],
    "custom_status_follows_its_transition": [
        *WORK,
        S("result", ACCEPTED["success"], status="out_of_stock", data={"missing_items": ["pear"]}),
        S("outcome", "out_of_stock"),
        S(
            "result", already_terminal("failed"), status="out_of_stock"
        ),  # a non-`finished` end state is `failed`
    ],
    "transient_failure_is_retried_with_a_new_task_id": [
        *WORK,
        S(
            "result",
            ACCEPTED["failure"],
            status="failure",
            error={"code": "TRANSIENT_ERROR", "message": "busy"},
        ),
        S("poll", "retry"),
        S("result", STALE, task="previous"),
        S("result", ACCEPTED["success"], data={"items_checked": 2}),
        S("outcome", "success"),
    ],
    "retryable_failures_quarantine_on_the_fourth_attempt": [
        *WORK,
        S("result", ACCEPTED["failure"], status="failure", error={"code": "TRANSIENT_ERROR", "message": "1"}),
        S("poll", "retry"),
        S("result", ACCEPTED["failure"], status="failure"),  # no error object: treated as transient
        S("poll", "retry"),
        S(
            "result",
            ACCEPTED["failure"],
            status="failure",
            error={"code": "SOME_UNKNOWN_CODE", "message": "3"},
        ),
        S("poll", "retry"),
        S("result", ACCEPTED["failure"], status="failure", error={"code": "TIMEOUT_ERROR", "message": "4"}),
        S("outcome", "quarantined"),
    ],
    "permanent_failure_quarantines": [
        *WORK,
        S(
            "result",
            ACCEPTED["failure"],
            status="failure",
            error={"code": "PERMANENT_ERROR", "message": "no"},
        ),
        S("outcome", "quarantined"),
    ],
    "invalid_input_fails": [
        *WORK,
        S(
            "result",
            ACCEPTED["failure"],
            status="failure",
            error={"code": "INVALID_INPUT_ERROR", "message": "no"},
        ),
        S("outcome", "failed"),
    ],
    "cancel_sets_the_redis_flag_and_a_late_cancelled_result_is_accepted": [
        *WORK,
        S("cancel", CANCEL_ACCEPTED),
        S("cancel", 404),  # already cancelled (control-API texts differ by design: status only)
        S("cancel_flag"),
        S(
            "heartbeat",
            (200, {"status": "ok", "cancel_task_ids": ["{job_id}"]}),
            body={"status": "idle", "current_tasks": ["{job_id}"]},
        ),
        S("result", ACCEPTED["cancelled"], status="cancelled"),
        S("outcome", "cancelled"),
    ],
    "late_success_after_cancel_revives_the_job": [
        # What 1.0b30 does (protocol.md §10): a worker that ignores cancellation shows up as `finished`.
        *WORK,
        S("cancel", CANCEL_ACCEPTED),
        S("result", ACCEPTED["success"], data={"items_checked": 2}),
        S("outcome", "success"),
        S("cancel", 404),
    ],
    "websocket_cancel_only_after_a_capability_heartbeat": [
        S("register", REGISTERED),
        S("ws_connect"),
        S("create", params=ITEMS),
        S("poll", "task"),
        S("cancel", CANCEL_ACCEPTED),  # no websockets capability yet: nothing may be pushed for this one
        S(
            "heartbeat",
            (200, {"status": "ok"}),
            body={"status": "idle", "capabilities": {"websockets": True}},
        ),
        S("create", params=ITEMS),
        S("poll", "task"),
        S("cancel", CANCEL_ACCEPTED),
        S("ws_receive", {"command": "cancel_task", "task_id": "{task_id}", "job_id": "{job_id}"}),
    ],
}
