"""Calling handlers and normalising their results into protocol-valid outcomes."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from avtomatika_worker import InvalidInputError, PermanentError, TransientError
from avtomatika_worker.executor import Outcome, TaskTools, execute, normalise_result
from avtomatika_worker.handlers import RegisteredHandler
from avtomatika_worker.typing import PERMANENT_ERROR, TRANSIENT_ERROR

TASK = {
    "job_id": "job-1",
    "task_id": "task-1",
    "type": "check",
    "params": {"items": ["apple"]},
    "priority": 3,
}


async def run_handler(func: Any, task: dict[str, Any] | None = None) -> Outcome:
    return await execute(RegisteredHandler.wrap("check", func), task or TASK)


async def test_success_result_keeps_status_and_data() -> None:
    async def handler(params: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return {"status": "success", "data": {"count": len(params["items"])}}

    outcome = await run_handler(handler)
    assert outcome == Outcome(status="success", data={"count": 1})
    assert outcome.to_message() == {"status": "success", "data": {"count": 1}}


async def test_missing_status_means_success_and_missing_data_is_omitted() -> None:
    async def handler(params: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return {}

    outcome = await run_handler(handler)
    assert outcome.to_message() == {"status": "success"}


async def test_custom_status_is_passed_through() -> None:
    async def handler(params: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return {"status": "out_of_stock", "data": {"missing_item": "pear"}}

    assert (await run_handler(handler)).to_message() == {
        "status": "out_of_stock",
        "data": {"missing_item": "pear"},
    }


async def test_failure_result_carries_code_and_message() -> None:
    async def handler(params: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return {"status": "failure", "error": {"code": PERMANENT_ERROR, "message": "no such warehouse"}}

    outcome = await run_handler(handler)
    assert outcome.error == {"code": PERMANENT_ERROR, "message": "no such warehouse"}


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (None, {"code": TRANSIENT_ERROR, "message": "handler reported failure without an error"}),
        ("disk full", {"code": TRANSIENT_ERROR, "message": "disk full"}),
        ({"message": "oops"}, {"code": TRANSIENT_ERROR, "message": "oops"}),
        ({"code": "TIMEOUT_ERROR"}, {"code": "TIMEOUT_ERROR", "message": "handler reported TIMEOUT_ERROR"}),
        ({"code": 42, "message": 7}, {"code": "42", "message": "7"}),
    ],
)
def test_incomplete_failure_errors_are_completed(error: Any, expected: dict[str, str]) -> None:
    outcome = normalise_result("check", {"status": "failure", "error": error})
    assert outcome.status == "failure"
    assert outcome.error == expected


def test_cancelled_result_drops_unknown_members() -> None:
    outcome = normalise_result("check", {"status": "cancelled", "message": "Task was cancelled by user."})
    assert outcome.to_message() == {"status": "cancelled"}


async def test_exception_becomes_transient_failure_with_its_message(caplog: pytest.LogCaptureFixture) -> None:
    async def handler(params: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        raise RuntimeError("warehouse API timed out")

    with caplog.at_level(logging.ERROR):
        outcome = await run_handler(handler)
    assert outcome.to_message() == {
        "status": "failure",
        "error": {"code": TRANSIENT_ERROR, "message": "warehouse API timed out"},
    }
    assert "Traceback" in caplog.text


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (None, "returned NoneType"),
        (["a"], "returned list"),
        ({"data": [1, 2]}, "data of type list, not a JSON object"),
        ({"data": "text"}, "data of type str"),
        ({"status": ""}, "not a non-empty string"),
        ({"status": 3}, "not a non-empty string"),
        ({"data": {"tags": {"a"}}}, "cannot be sent as JSON"),
    ],
)
def test_malformed_return_value_becomes_clear_permanent_failure(value: Any, fragment: str) -> None:
    outcome = normalise_result("check", value)
    assert outcome.status == "failure"
    assert outcome.error is not None
    assert outcome.error["code"] == PERMANENT_ERROR
    assert "handler 'check'" in outcome.error["message"]
    assert fragment in outcome.error["message"]


async def test_handler_with_var_kwargs_receives_every_task_kwarg() -> None:
    seen: dict[str, Any] = {}

    async def handler(params: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        seen.update(kwargs, params=params)
        return {}

    task = {**TASK, "metadata": {"team": "a"}, "security": {"tenant": "t"}, "skill_version": "2.0.0"}
    task["tracing_context"] = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    await execute(RegisteredHandler.wrap("check", handler), task, TaskTools(state="shared"))
    assert callable(seen.pop("send_progress")) and callable(seen.pop("send_event"))
    assert callable(seen.pop("add_to_hot_skills")) and callable(seen.pop("remove_from_hot_skills"))
    assert seen == {
        "task_id": "task-1",
        "job_id": "job-1",
        "priority": 3,
        "deadline": None,
        "tracing_context": task["tracing_context"],
        "metadata": {"team": "a"},
        "security": {"tenant": "t"},
        "skill_version": "2.0.0",
        "state": "shared",
        "params": {"items": ["apple"]},
    }


async def test_params_go_to_the_parameter_named_params_wherever_it_stands() -> None:
    seen: list[Any] = []

    async def handler(task_id: str, params: dict[str, Any]) -> dict[str, Any]:
        seen.append((task_id, params))
        return {}

    async def no_params(job_id: str) -> dict[str, Any]:
        seen.append(job_id)
        return {}

    await run_handler(handler)
    await run_handler(no_params)
    assert seen == [("task-1", {"items": ["apple"]}), "job-1"]


def test_a_required_parameter_the_worker_cannot_pass_fails_at_decoration_naming_it() -> None:
    async def handler(params: dict[str, Any], database: Any) -> dict[str, Any]:
        return {}

    with pytest.raises(TypeError) as caught:
        RegisteredHandler.wrap("check", handler)
    message = str(caught.value)
    assert (
        "handler 'test_a_required_parameter_the_worker_cannot_pass_fails_at_decoration_naming_it.<locals>.handler'"
        in message
    )
    assert "for task 'check': parameter 'database' is required" in message
    assert "state" in message  # the fix names where shared objects live


async def test_a_sync_handler_runs_off_the_event_loop_and_can_send_progress() -> None:
    seen: dict[str, Any] = {}
    progress: list[tuple[float, str]] = []

    async def send_progress(fraction: float, message: str = "") -> None:
        progress.append((fraction, message))

    def handler(params: dict[str, Any], send_progress: Any) -> dict[str, Any]:
        seen["thread"] = threading.current_thread().name
        send_progress(0.5, "half")  # blocks this thread until the event loop has sent it
        return {"data": {"n": len(params["items"])}}

    outcome = await execute(RegisteredHandler.wrap("check", handler), TASK, TaskTools(send_progress))
    assert outcome == Outcome(status="success", data={"n": 1})
    assert seen["thread"] != threading.main_thread().name
    assert progress == [(0.5, "half")]


async def test_float_deadline_is_passed_as_an_epoch_float() -> None:
    seen: list[Any] = []

    async def handler(params: dict[str, Any], deadline: float | None) -> dict[str, Any]:
        seen.append(deadline)
        return {}

    await run_handler(handler, dict(TASK, deadline=1795871651.679986))
    await run_handler(handler, dict(TASK, deadline=1795871651))
    assert seen == [1795871651.679986, 1795871651.0]
    assert isinstance(seen[1], float)


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (PermanentError("no such warehouse"), "PERMANENT_ERROR"),
        (InvalidInputError("items must be a list"), "INVALID_INPUT_ERROR"),
        (TransientError("warehouse busy"), "TRANSIENT_ERROR"),
    ],
)
async def test_task_failure_exceptions_map_to_their_error_codes(exc: Exception, code: str) -> None:
    async def handler(params: dict[str, Any]) -> dict[str, Any]:
        raise exc

    outcome = await run_handler(handler)
    assert outcome.to_message() == {"status": "failure", "error": {"code": code, "message": str(exc)}}


async def test_task_failure_details_are_sent_when_json() -> None:
    async def handler(params: dict[str, Any]) -> dict[str, Any]:
        raise PermanentError("bad sku", details={"sku": "X-1"})

    outcome = await run_handler(handler)
    assert outcome.error == {"code": "PERMANENT_ERROR", "message": "bad sku", "details": {"sku": "X-1"}}


async def test_handler_gets_only_the_keyword_arguments_it_declares() -> None:
    seen: list[str] = []

    async def handler(params: dict[str, Any], task_id: str) -> dict[str, Any]:
        seen.append(task_id)
        return {}

    assert (await run_handler(handler)).status == "success"
    assert seen == ["task-1"]


async def test_missing_params_and_priority_default_to_empty_and_zero() -> None:
    seen: dict[str, Any] = {}

    async def handler(params: dict[str, Any], priority: float) -> dict[str, Any]:
        seen.update(params=params, priority=priority)
        return {}

    await run_handler(
        handler, {"job_id": "j", "task_id": "t", "type": "check", "deadline": 1795871651.679986}
    )
    assert seen == {"params": {}, "priority": 0}


async def test_non_object_params_are_an_invalid_input_failure() -> None:
    async def handler(params: dict[str, Any]) -> dict[str, Any]:
        return {}

    outcome = await run_handler(handler, {"job_id": "j", "task_id": "t", "type": "check", "params": [1]})
    assert outcome.error is not None
    assert outcome.error["code"] == "INVALID_INPUT_ERROR"


def test_a_handler_that_is_not_callable_is_rejected_at_registration() -> None:
    with pytest.raises(TypeError, match="must be a function, got dict"):
        RegisteredHandler.wrap("check", {})  # type: ignore[arg-type]


async def test_middlewares_wrap_every_handler_outermost_first_and_may_change_its_input() -> None:
    from avtomatika_worker import Worker
    from avtomatika_worker.testing import TaskRun

    mw_worker = Worker("middleware-test")
    calls: list[str] = []

    @mw_worker.add_middleware
    async def timing(context: dict[str, Any], call_next: Any) -> Any:
        calls.append(f"outer {context['skill_name']} {context['job_id']}")
        result = await call_next()
        calls.append("outer done")
        return result

    @mw_worker.add_middleware
    async def tenant(context: dict[str, Any], call_next: Any) -> Any:
        calls.append("inner")
        context["params"] = {**context["params"], "tenant": "acme"}
        return await call_next()

    @mw_worker.task("echo")
    def echo(params: dict[str, Any]) -> dict[str, Any]:  # a sync handler, in a thread
        calls.append("handler")
        return {"status": "success", "data": dict(params)}

    result = await TaskRun(mw_worker, "echo", job_id="job-9")({"n": 1})
    assert result["data"] == {"n": 1, "tenant": "acme"}
    assert calls == ["outer echo job-9", "inner", "handler", "outer done"]


def test_a_middleware_must_be_an_async_function() -> None:
    from avtomatika_worker import Worker

    with pytest.raises(TypeError, match="must be an `async def middleware"):
        Worker("middleware-test").add_middleware(lambda context, call_next: call_next())  # type: ignore[arg-type,return-value]
