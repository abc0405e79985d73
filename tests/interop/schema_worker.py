"""The baked worker plus typed-params skills, for the schema interop tests (tests/test_interop_schemas.py).

Run like scenario_worker.py: cwd = the baked project, PYTHONPATH including it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from my_worker import worker


@dataclass
class Line:
    sku: str
    qty: int = 1


@dataclass
class Order:
    customer: str
    lines: list[Line]
    speed: Literal["standard", "express"] = "standard"


@dataclass
class Priced:
    total: int


@worker.task("typed_order")
async def typed_order(params: Order) -> dict[str, Any]:
    """Report what the handler received: the typed object, built from the params."""
    return {
        "status": "success",
        "data": {
            "received_type": type(params).__name__,
            "line_types": [type(line).__name__ for line in params.lines],
            "units": sum(line.qty for line in params.lines),
            "speed": params.speed,
        },
    }


@worker.task("unpublished_order", input_schema=False)
async def unpublished_order(params: Order) -> dict[str, Any]:
    """The same contract, checked by the worker only: the orchestrator sees no input_schema."""
    return {"status": "success", "data": {"units": sum(line.qty for line in params.lines)}}


@worker.task("broken_output")
async def broken_output(params: dict[str, Any]) -> Priced:
    """Break its own output schema: `total` must be an integer."""
    return Priced(total=params.get("total", "a lot"))


@worker.task("with_metadata", schema_dialect="json-schema", properties={"model": "v7", "max_mb": 64})
async def with_metadata(params: dict[str, Any]) -> dict[str, Any]:
    """Return metadata and costs beside the data."""
    return {
        "status": "success",
        "data": {"done": True},
        "metadata": {"model_version": "v7"},
        "costs": {"gpu_seconds": 2.5},
    }


if __name__ == "__main__":
    worker.run()
