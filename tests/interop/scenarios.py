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
JOB_NOT_FOUND = (
    200,
    {
        "status": "ignored",
        "reason": "job_not_found",
        "message": f"Job {UNKNOWN_JOB} not found (expired or deleted).",
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
            JOB_NOT_FOUND,
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

# --- what 1.0b30 does with what a worker publishes beyond skill names (dispatcher.py, worker_service.py) ----

ITEMS_SCHEMA = {
    "type": "object",
    "required": ["items"],
    "properties": {"items": {"type": "array", "items": {"type": "string"}}},
}
VERSION_2 = {"version": "2.0"}
THIS_SKILL = "<this scenario's skill>"  # in a `record`: replaced by the skill name the scenario registers
GPU = {"resources": {"devices": [{"type": "gpu"}]}}
SCENARIOS |= {
    "pinned_skill_version_reaches_the_worker_declaring_it": [
        S("register_declaring", REGISTERED, skill=VERSION_2),
        S("create", params=ITEMS, options={"skill_version": "2.0"}),
        S("poll", "task"),
        S("result", ACCEPTED["success"], data={"items_checked": 2}),
        S("outcome", "success"),
    ],
    "pinned_skill_version_no_worker_declares_is_never_delivered": [
        S("register_declaring", REGISTERED, skill={"version": "1.0"}),
        S("create", params=ITEMS, options={"skill_version": "2.0"}),
        S("outcome", "quarantined"),
        S("poll", (204, None)),
    ],
    "pinned_skill_type_mismatch_is_never_delivered": [
        S("register_declaring", REGISTERED, skill=VERSION_2),
        S("create", params=ITEMS, options={"skill_type": "another-type"}),
        S("outcome", "quarantined"),
        S("poll", (204, None)),
    ],
    "params_breaking_the_input_schema_are_refused_at_dispatch": [
        S("register_declaring", REGISTERED, skill={"input_schema": ITEMS_SCHEMA}),
        S("create", params={"items": [1, 2]}),
        S("outcome", "quarantined"),
        S("poll", (204, None)),
    ],
    "result_metadata_is_merged_into_the_job_and_costs_are_accepted": [
        S("register", REGISTERED),
        S("create", params=ITEMS, options={"metadata": {"source": "contract"}}),
        S("poll", "task"),
        S(
            "result",
            ACCEPTED["success"],
            data={"items_checked": 2},
            metadata={"model": "v2"},
            costs={"cpu_seconds": 1.5},
            picked_up_at=1_800_000_000.5,
        ),
        S("outcome", "success"),
        S("job_field", {"source": "contract", "model": "v2"}, field="metadata"),
    ],
    "result_metadata_for_a_job_created_without_metadata_is_a_server_error": [
        # 1.0b30 merges with job_state.setdefault("metadata", {}), but the API stored metadata=None.
        *WORK,
        S("result", error(500, "'NoneType' object has no attribute 'update'"), metadata={"model": "v2"}),
        S("result", ACCEPTED["success"], data={"items_checked": 2}, costs={"cpu_seconds": 1.5}),
        S("outcome", "success"),
    ],
    "max_cost_at_or_above_the_workers_cost_is_delivered": [
        S("register_declaring", REGISTERED, record={"capabilities": {"cost_per_skill": {THIS_SKILL: 1.5}}}),
        S("create", params=ITEMS, options={"max_cost": 1.5}),
        S("poll", "task"),
        S("result", ACCEPTED["success"], data={"items_checked": 2}),
        S("outcome", "success"),
    ],
    "max_cost_below_the_workers_cost_is_never_delivered": [
        S("register_declaring", REGISTERED, record={"capabilities": {"cost_per_skill": {THIS_SKILL: 5}}}),
        S("create", params=ITEMS, options={"max_cost": 4.99}),
        S("outcome", "quarantined"),
        S("poll", (204, None)),
    ],
    "a_gpu_requirement_reaches_a_worker_declaring_a_gpu": [
        S(
            "register_declaring",
            REGISTERED,
            record={"resources": {"devices": [{"type": "gpu", "model": "A100"}]}},
        ),
        S("create", params=ITEMS, options={"resource_requirements": GPU}),
        S("poll", "task"),
        S("result", ACCEPTED["success"], data={"items_checked": 2}),
        S("outcome", "success"),
    ],
    "a_gpu_requirement_is_never_delivered_to_a_worker_without_one": [
        S("register_declaring", REGISTERED),
        S("create", params=ITEMS, options={"resource_requirements": GPU}),
        S("outcome", "quarantined"),
        S("poll", (204, None)),
    ],
    "success_breaking_the_output_schema_is_a_contract_violation": [
        S(
            "register_declaring",
            REGISTERED,
            skill={"output_schema": {"type": "object", "required": ["in_stock"]}},
        ),
        S("create", params=ITEMS),
        S("poll", "task"),
        S("result", ACCEPTED["failure"], data={"items_checked": 2}),
        S("outcome", "quarantined"),
    ],
}

# --- rate limiting: played against a second pair of targets with small limits ---------------------------

RATE_LIMIT = 3  # for every message type, per worker, within RATE_LIMIT_PERIOD seconds
RATE_LIMIT_PERIOD = 60  # longer than the whole run, so no counter resets half-way
REAL_RATE_LIMIT_ENV = {
    "RATE_LIMITING_ENABLED": "true",
    "RATE_LIMIT_PERIOD": str(RATE_LIMIT_PERIOD),
    "RATE_LIMIT_POLL_LIMIT": str(RATE_LIMIT),
    "RATE_LIMIT_HEARTBEAT_LIMIT": str(RATE_LIMIT),
    "RATE_LIMIT_LIMIT": str(RATE_LIMIT),
}
MOCK_RATE_LIMITS = f"poll={RATE_LIMIT},heartbeat={RATE_LIMIT},other={RATE_LIMIT},period={RATE_LIMIT_PERIOD}"

# `exact` steps compare (status, body text byte for byte, {Content-Type, X-RXON-Version, Retry-After}).
JSON_HEADERS = {
    "Content-Type": "application/json; charset=utf-8",
    "X-RXON-Version": "1.0b17",
    "Retry-After": None,
}
TEXT_HEADERS = {"Content-Type": "text/plain; charset=utf-8", "X-RXON-Version": "1.0b17", "Retry-After": None}
# The engine raises a 429 whose text is JSON with a Retry-After header; rxon's listener re-wraps that text
# in {"error": ...} and drops the header.
TOO_MANY = (429, '{"error":"{\\"error\\": \\"Too Many Requests\\"}"}', JSON_HEADERS)
# Over the websocket_auth limit the listener's generic handler answers a plain-text 500 before the upgrade.
WS_TOO_MANY = (500, "Too Many Requests", TEXT_HEADERS)
# A GET without upgrade headers fails in aiohttp's ws.prepare(), after websocket_auth was counted.
NOT_AN_UPGRADE = (
    400,
    'No WebSocket UPGRADE hdr: None\n Can "Upgrade" only to "WebSocket".',
    {"Content-Type": "text/plain; charset=utf-8", "X-RXON-Version": None, "Retry-After": None},
)
NO_VALID_TOKEN = (
    403,
    '{"error":"Unauthorized: No valid token found"}',
    JSON_HEADERS,
)


def limit_of(step: Step) -> list[Step]:
    """`step` as often as the limit allows."""
    return [step] * RATE_LIMIT


RATE_LIMITED_SCENARIOS: dict[str, list[Step]] = {
    "register_over_the_limit": [
        *limit_of(S("register", REGISTERED)),
        S("exact", TOO_MANY, request="register"),
        S("exact", TOO_MANY, request="register"),
        S("exact", 400, request="register_bad_json"),  # parsing comes before the limiter
        S("exact", NO_VALID_TOKEN, request="register_wrong_token"),  # so does authentication
    ],
    "refused_authentication_and_bad_json_are_not_counted": [
        *[S("exact", NO_VALID_TOKEN, request="register_wrong_token")] * (RATE_LIMIT + 1),
        *[S("exact", 400, request="register_bad_json")] * (RATE_LIMIT + 1),
        *limit_of(S("register", REGISTERED)),
        S("exact", TOO_MANY, request="register"),
    ],
    "heartbeats_over_the_limit_share_one_counter": [
        S("register", REGISTERED),
        S("heartbeat_empty", (200, {"status": "ttl_refreshed"})),
        S("heartbeat", (200, {"status": "ok"}), body={"status": "idle"}),
        S("heartbeat_empty", (200, {"status": "ttl_refreshed"})),
        S("exact", TOO_MANY, request="heartbeat_empty"),
        S("exact", TOO_MANY, request="heartbeat"),
        S("exact", 400, request="heartbeat_bad_json"),
    ],
    "polls_over_the_limit": [
        S("register", REGISTERED),
        S("polls", [(204, None)] * RATE_LIMIT, count=RATE_LIMIT),
        S("exact", TOO_MANY, request="poll"),
    ],
    "results_over_the_limit": [
        S("register", REGISTERED),
        *limit_of(
            S(
                "result",
                JOB_NOT_FOUND,
                job_id=UNKNOWN_JOB,
            )
        ),
        S("exact", TOO_MANY, request="result"),
    ],
    "events_over_the_limit": [
        S("register", REGISTERED),
        *limit_of(S("event", (200, {"status": "event_accepted"}), event_type="progress", payload={})),
        S("exact", TOO_MANY, request="event"),
    ],
    "websocket_upgrades_over_the_limit": [
        *limit_of(S("ws_cycle", "opened")),
        S("exact", WS_TOO_MANY, request="ws_upgrade"),
        S("exact", WS_TOO_MANY, request="ws_plain_get"),
    ],
    "failed_websocket_upgrades_are_counted": [
        *limit_of(S("exact", NOT_AN_UPGRADE, request="ws_plain_get")),
        S("exact", WS_TOO_MANY, request="ws_upgrade"),
    ],
}
