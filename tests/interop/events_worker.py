"""The baked worker plus a handler that sends a custom event, for tests/test_interop_events.py.

Run with cwd = the baked project and PYTHONPATH including it (like scenario_worker.py). The handler
records what happened in the JSON-lines file named by its params.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from my_worker import worker

HOLD_SECONDS = 120.0
APPROVAL = {
    "type": "object",
    "properties": {"approved_by": {"type": "string"}},
    "required": ["approved_by"],
}


def _record(path: str, event: str, **fields: Any) -> None:
    with Path(path).open("a", encoding="utf-8") as out:
        out.write(json.dumps({"event": event, **fields}) + "\n")


@worker.task("approve", events_schema={"approved": APPROVAL})
async def approve(params: dict[str, Any], send_event: Callable[..., Awaitable[None]]) -> dict[str, Any]:
    """Send `approved` with the params' approver, then hold until the file `release` exists."""
    state_file = params["state_file"]
    try:
        await send_event("approved", {"approved_by": params["approved_by"]})
    except ValueError as exc:
        _record(state_file, "refused", message=str(exc))
        return {"status": "success", "data": {"refused": str(exc)}}
    _record(state_file, "sent")
    release = Path(params["release"])
    loop = asyncio.get_running_loop()
    give_up = loop.time() + HOLD_SECONDS
    while not release.exists() and loop.time() < give_up:
        await asyncio.sleep(0.05)
    _record(state_file, "returned")
    return {"status": "success", "data": {"via": "result"}}


if __name__ == "__main__":
    worker.run()
