"""{{ cookiecutter.worker_name }}: the task handlers of this worker. Edit them; the SDK does the rest."""
{% raw %}
import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
{%- endraw %}{% if cookiecutter.s3_files %}
from pathlib import Path
{%- endif %}{% raw %}
from types import SimpleNamespace
from typing import Any

from avtomatika_worker import InvalidInputError, {% endraw %}{% if cookiecutter.s3_files %}TaskFiles, {% endif %}{% raw %}Worker
{% endraw %}
worker = Worker(worker_type={{ cookiecutter.worker_type | tojson }})
{% raw %}

@worker.on_startup
async def open_stock() -> None:
    """Open what every handler shares, once (a database pool, an HTTP client, a model): here demo stock."""
    worker.state.stock = {"apple": 12, "pear": 5, "plum": 0}


@dataclass
class InventoryCheck:
    """The params of check_inventory: the handler gets them checked and typed."""

    items: list[str]


@worker.task("check_inventory", output_statuses=["success", "out_of_stock"])
async def check_inventory(params: InventoryCheck, state: SimpleNamespace) -> dict[str, Any]:
    """Check that every item in ``params.items`` is in stock."""
    if not params.items:
        # Bad input fails the job at once (INVALID_INPUT_ERROR): a retry would fail the same way.
        raise InvalidInputError('params.items must name at least one item, like ["apple", "pear"]')
    missing = [item for item in params.items if state.stock.get(item, 0) <= 0]
    if missing:
        # A custom status: the blueprint decides where the job goes next.
        return {"status": "out_of_stock", "data": {"missing_items": missing}}
    in_stock = {item: state.stock[item] for item in params.items}
    return {"status": "success", "data": {"items_checked": len(params.items), "in_stock": in_stock}}


@worker.task("long_running_task")
async def long_running_task(
    params: dict[str, Any], task_id: str, send_progress: Callable[..., Awaitable[None]]
) -> dict[str, Any]:
    """Work through ``steps`` slow steps, reporting progress and stopping early when cancelled."""
    steps = params.get("steps", 10)
    step_seconds = params.get("step_seconds", 1.0)
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise InvalidInputError(f"params.steps must be a whole number of at least 1, like 10, got {steps!r}")
    if not isinstance(step_seconds, int | float) or isinstance(step_seconds, bool) or step_seconds < 0:
        raise InvalidInputError(
            f"params.step_seconds must be a number of seconds of at least 0, like 0.5, got {step_seconds!r}"
        )
    for done in range(steps):
        # The Redis flag; a WebSocket cancel interrupts the sleep below instead (asyncio.CancelledError).
        if await worker.check_for_cancellation(task_id):
            return {"status": "cancelled", "data": {"completed_steps": done}}
        await send_progress(done / steps, f"step {done + 1} of {steps}")
        await asyncio.sleep(step_seconds)  # stands in for one unit of real work
    return {"status": "success", "data": {"completed_steps": steps}}
{%- endraw %}{% if cookiecutter.s3_files %}{% raw %}


def _count_lines(path: Path) -> int:
    with path.open("rb") as handle:  # 1 MiB at a time: a file of any size takes little memory
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))


@worker.task("count_lines")
async def count_lines(params: dict[str, Any], files: TaskFiles) -> dict[str, Any]:
    """Count the lines of the file ``params.input_file`` (an ``s3://`` URI) and return a report file.

    ``files`` is this task's own folder: ``download`` streams the param's object into it (checked against
    the size and ETag the orchestrator sent), and a path inside it in the result is uploaded, the
    orchestrator getting its ``s3://`` URI. The folder is removed when the task ends, whatever the outcome.
    """
    source = await files.download("input_file")  # a missing or non-s3:// param fails as INVALID_INPUT_ERROR
    lines = await asyncio.to_thread(_count_lines, source)  # file I/O off the event loop
    report = files.path("report.txt")
    report.write_text(f"{lines} lines in {source.name}\n", encoding="utf-8")
    return {"status": "success", "data": {"lines": lines, "report": str(report)}}
{%- endraw %}{% endif %}{% raw %}


if __name__ == "__main__":
    worker.run()
{% endraw %}