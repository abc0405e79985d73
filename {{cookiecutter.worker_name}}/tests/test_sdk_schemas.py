"""Typed handler params: schemas inferred from annotations, input/output checks, result metadata and costs."""

from __future__ import annotations

import enum
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NotRequired, TypedDict

import pytest

from avtomatika_worker.executor import Outcome, TaskTools, execute, normalise_result
from avtomatika_worker.handlers import RegisteredHandler, Skill
from avtomatika_worker.typing import INVALID_INPUT_ERROR, PERMANENT_ERROR

PROJECT = Path(__file__).resolve().parents[1]


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclass
class Box:
    width: int
    height: float = 1.0


@dataclass
class Order:
    item: str
    boxes: list[Box]
    color: Color
    note: str | None
    mode: Literal["fast", "slow"] = "fast"
    tags: dict[str, int] = field(default_factory=dict)


class Summary(TypedDict):
    total: int
    label: NotRequired[str]


class Loose(TypedDict, total=False):
    limit: int


@dataclass
class Counted:
    count: int


class Plain:
    """Not a dataclass, TypedDict or pydantic model."""


@dataclass
class WithSet:
    ids: set[int]


def wrap(func: Any, **skill: Any) -> RegisteredHandler:
    return RegisteredHandler.wrap("check", func, Skill("check", **skill))


def run(handler: RegisteredHandler, params: Any, tools: TaskTools | None = None, **task: Any) -> Any:
    task = {"task_id": "task-1", "job_id": "job-1", "params": params, **task}
    return execute(handler, task, tools or TaskTools())


async def order_handler(params: Order) -> dict[str, Any]:
    return {"data": {"seen": repr(params)}}


def test_dataclass_params_publish_an_inferred_input_schema() -> None:
    schema = wrap(order_handler).skill.published()["input_schema"]  # type: ignore[union-attr]
    assert schema["required"] == ["item", "boxes", "color"]  # defaults and Optional are not required
    assert schema["additionalProperties"] is False
    props = schema["properties"]
    assert props["item"] == {"type": "string"}
    assert props["boxes"]["items"]["properties"] == {
        "width": {"type": "integer"},
        "height": {"type": "number"},
    }
    assert props["boxes"]["items"]["required"] == ["width"]
    assert props["color"] == {"enum": ["red", "blue"], "type": "string"}
    assert props["note"] == {"anyOf": [{"type": "string"}, {"type": "null"}]}
    assert props["mode"] == {"enum": ["fast", "slow"], "type": "string"}
    assert props["tags"] == {"type": "object", "additionalProperties": {"type": "integer"}}


def test_typeddict_params_follow_required_and_not_required_keys() -> None:
    async def summary(params: Summary) -> dict[str, Any]:
        return {}

    async def loose(params: Loose) -> dict[str, Any]:
        return {}

    assert wrap(summary).input_check == {
        "type": "object",
        "properties": {"total": {"type": "integer"}, "label": {"type": "string"}},
        "required": ["total"],
        "additionalProperties": False,
    }
    assert wrap(loose).input_check["required"] == []  # type: ignore[index]


@pytest.mark.parametrize("annotation", [dict, dict[str, Any], Any])
def test_plain_dict_params_publish_no_schema(annotation: Any) -> None:
    async def handler(params: dict[str, Any]) -> dict[str, Any]:
        return {}

    handler.__annotations__["params"] = annotation
    registered = wrap(handler)
    assert registered.input_check is None and "input_schema" not in registered.skill.published()  # type: ignore[union-attr]


def test_explicit_input_schema_wins_over_the_annotation() -> None:
    explicit = {"type": "object", "required": ["item"]}
    assert wrap(order_handler, input_schema=explicit).skill.input_schema == explicit  # type: ignore[union-attr]


def test_input_schema_false_checks_locally_but_publishes_nothing() -> None:
    registered = wrap(order_handler, input_schema=False)
    assert "input_schema" not in registered.skill.published()  # type: ignore[union-attr]
    assert registered.input_check is not None


def test_a_params_class_the_sdk_cannot_describe_fails_at_decoration() -> None:
    async def handler(params: Plain) -> dict[str, Any]:
        return {}

    with pytest.raises(TypeError, match=r"handler .*handler.* parameter 'params' .*Fix: annotate"):
        wrap(handler)


def test_an_unsupported_field_type_fails_at_decoration_naming_the_field() -> None:
    async def handler(params: WithSet) -> dict[str, Any]:
        return {}

    with pytest.raises(TypeError, match=r"'check'.*params\.ids: set\[int\].*Fix: use str"):
        wrap(handler)


async def test_valid_params_reach_the_handler_as_nested_dataclasses() -> None:
    seen: list[Order] = []

    async def handler(params: Order) -> dict[str, Any]:
        seen.append(params)
        return {}

    params = {"item": "apple", "boxes": [{"width": 2}], "color": "blue"}
    assert (await run(wrap(handler), params)).status == "success"
    assert seen == [Order("apple", [Box(2, 1.0)], Color.BLUE, None)]


async def test_typeddict_params_reach_a_sync_handler_as_the_dict() -> None:
    def handler(params: Summary) -> dict[str, Any]:
        return {"data": {"twice": params["total"] * 2}}

    assert (await run(wrap(handler), {"total": 4})).data == {"twice": 8}


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"boxes": [], "color": "red"}, "params: missing required field(s) ['item']"),
        (
            {"item": "a", "boxes": [{"width": "2"}], "color": "red"},
            "params.boxes[0].width: '2' must be integer",
        ),
        (
            {"item": "a", "boxes": [], "color": "green"},
            "params.color: 'green' must be one of ['red', 'blue']",
        ),
        ({"item": "a", "boxes": [], "color": "red", "colour": 1}, "unexpected field(s) ['colour']"),
    ],
)
async def test_invalid_params_are_refused_without_running_the_handler(params: Any, fragment: str) -> None:
    ran: list[Any] = []

    async def handler(params: Order) -> dict[str, Any]:
        ran.append(params)
        return {}

    outcome = await run(wrap(handler), params)
    assert outcome.error["code"] == INVALID_INPUT_ERROR
    assert "handler 'check' refused its params" in outcome.error["message"]
    assert fragment in outcome.error["message"]
    assert ran == []


async def test_an_explicit_input_schema_is_checked_before_the_handler_runs() -> None:
    async def handler(params: dict[str, Any]) -> dict[str, Any]:
        raise AssertionError("must not run")

    registered = wrap(handler, input_schema={"type": "object", "properties": {"n": {"type": "integer"}}})
    outcome = await run(registered, {"n": "one"})
    assert outcome.error == {
        "code": INVALID_INPUT_ERROR,
        "message": "handler 'check' refused its params: params.n: 'one' must be integer (schema: {'type': 'integer'})",
    }


async def test_a_return_annotation_record_is_the_output_schema_and_the_data() -> None:
    async def handler(params: dict[str, Any]) -> Counted:
        return Counted(count=3)

    registered = wrap(handler)
    assert registered.skill.published()["output_schema"]["required"] == ["count"]  # type: ignore[union-attr]
    assert await run(registered, {}) == Outcome("success", {"count": 3})


async def test_data_breaking_the_output_schema_is_a_permanent_error_naming_the_field() -> None:
    async def handler(params: dict[str, Any]) -> Summary:
        return {"total": "many"}  # type: ignore[typeddict-item]

    outcome = await run(wrap(handler), {})
    assert outcome.error["code"] == PERMANENT_ERROR
    assert (
        "handler 'check' returned data that breaks its output schema: data.total: 'many'"
        in outcome.error["message"]
    )


async def test_output_schema_applies_to_success_only() -> None:
    async def handler(params: dict[str, Any]) -> dict[str, Any]:
        return {"status": "out_of_stock", "data": {"missing": ["plum"]}}

    registered = wrap(handler, output_schema={"type": "object", "required": ["total"]})
    assert (await run(registered, {})).status == "out_of_stock"


async def test_a_status_missing_from_output_statuses_is_a_permanent_error() -> None:
    async def handler(params: dict[str, Any]) -> dict[str, Any]:
        return {"status": "sold_out"}

    outcome = await run(wrap(handler, output_statuses=("success", "out_of_stock")), {})
    assert outcome.error["code"] == PERMANENT_ERROR
    assert (
        "status 'sold_out', which is not among its output_statuses ['success', 'out_of_stock']"
        in (outcome.error["message"])
    )


async def test_failure_is_always_an_allowed_status() -> None:
    async def handler(params: dict[str, Any]) -> dict[str, Any]:
        return {"status": "failure", "error": {"code": INVALID_INPUT_ERROR, "message": "no"}}

    assert (await run(wrap(handler, output_statuses=("success",)), {})).error["code"] == INVALID_INPUT_ERROR


async def test_metadata_and_costs_are_sent_with_the_execution_time() -> None:
    async def handler(params: dict[str, Any]) -> dict[str, Any]:
        return {"data": {}, "metadata": {"model": "v2"}, "costs": {"gpu_seconds": 1.5}}

    outcome = await run(wrap(handler), {}, metadata={"team": "a"})
    message = outcome.to_message(timing=True)
    assert message["metadata"] == {"model": "v2"}
    assert message["costs"]["gpu_seconds"] == 1.5
    assert 0 <= message["costs"]["execution_time_seconds"] < 5
    assert "costs" not in Outcome("success").to_message(timing=True)  # nothing measured, nothing sent


async def test_metadata_is_dropped_for_a_job_without_metadata() -> None:
    async def handler(params: dict[str, Any]) -> dict[str, Any]:
        return {"metadata": {"model": "v2"}}

    assert "metadata" not in (await run(wrap(handler), {})).to_message()


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"metadata": ["a"]}, "returned metadata ['a'], which is not a JSON object"),
        ({"costs": {"gpu": "lots"}}, "costs must map names to numbers"),
        ({"costs": {"gpu": float("nan")}}, "costs must map names to numbers"),
    ],
)
def test_malformed_metadata_or_costs_are_a_permanent_error(extra: dict[str, Any], fragment: str) -> None:
    outcome = normalise_result("check", {"status": "success", **extra})
    assert outcome.error is not None and outcome.error["code"] == PERMANENT_ERROR
    assert fragment in outcome.error["message"]


async def test_hot_skill_tools_reach_the_handlers_that_declare_them() -> None:
    added: list[str] = []

    def handler(
        params: dict[str, Any], add_to_hot_skills: Any, remove_from_hot_skills: Any
    ) -> dict[str, Any]:
        add_to_hot_skills("check")
        remove_from_hot_skills("other")
        return {}

    tools = TaskTools(add_to_hot_skills=added.append, remove_from_hot_skills=lambda s: added.append("-" + s))
    await run(wrap(handler), {}, tools)
    assert added == ["check", "-other"]


def test_the_sdk_never_imports_pydantic_itself() -> None:
    script = (
        "import sys; from tests.test_sdk_schemas import order_handler, wrap; wrap(order_handler); "
        "assert 'pydantic' not in sys.modules, 'pydantic imported'"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr


async def test_pydantic_params_are_validated_by_the_model() -> None:
    import pydantic

    class Item(pydantic.BaseModel):  # type: ignore[name-defined,misc]
        name: str
        qty: int = 1

    async def handler(params: Any) -> Any:
        return params

    handler.__annotations__.update({"params": Item, "return": Item})  # a local class: not resolvable by name
    registered = wrap(handler)
    assert registered.skill.published()["input_schema"]["required"] == ["name"]  # type: ignore[union-attr]
    assert (await run(registered, {"name": "pear"})).data == {"name": "pear", "qty": 1}
    refused = await run(registered, {"name": 5})
    assert refused.error["code"] == INVALID_INPUT_ERROR and "params.name: 5" in refused.error["message"]


def test_an_unresolvable_params_annotation_fails_at_decoration() -> None:
    async def handler(params: dict[str, Any]) -> dict[str, Any]:
        return {}

    handler.__annotations__["params"] = "OnlyImportedUnderTypeChecking"
    with pytest.raises(
        TypeError, match=r"'OnlyImportedUnderTypeChecking' of parameter 'params' cannot be resolved"
    ):
        wrap(handler)


async def test_result_data_may_be_a_dataclass_instance() -> None:
    async def handler(params: dict[str, Any]) -> dict[str, Any]:
        return {"status": "success", "data": Box(width=3)}

    assert (await run(wrap(handler), {})).data == {"width": 3, "height": 1.0}


async def test_a_pydantic_validator_refusal_is_invalid_input_naming_the_field() -> None:
    import pydantic

    class Positive(pydantic.BaseModel):  # type: ignore[name-defined,misc]
        n: int

        @pydantic.field_validator("n")  # type: ignore[misc]
        @classmethod
        def positive(cls, value: int) -> int:
            if value <= 0:
                raise ValueError("must be positive")
            return value

    async def handler(params: Any) -> dict[str, Any]:
        raise AssertionError("must not run")

    handler.__annotations__["params"] = Positive
    outcome = await run(wrap(handler), {"n": -1})
    assert outcome.error["code"] == INVALID_INPUT_ERROR
    assert (
        outcome.error["message"]
        == "handler 'check' refused its params: params.n: -1 Value error, must be positive"
    )
