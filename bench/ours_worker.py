"""The benchmarked worker on this template's SDK: a no-op skill and a cancellable `hold` skill."""

import asyncio
import os
import time
from typing import Any

from avtomatika_worker import Worker

worker = Worker(worker_type="bench")
MARKS = os.environ.get("BENCH_MARKS_FILE", "")


def mark(event: str, tag: Any) -> None:
    """Append `event tag wall-clock` to the marks file (the shared clock of the cancel benchmark)."""
    with open(MARKS, "a", encoding="utf-8") as out:
        out.write(f"{event} {tag} {time.time()!r}\n")


@worker.task("noop")
async def noop(params: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Do nothing but report when the handler started."""
    return {"status": "success", "data": {"started": time.time()}}


async def hold(params: dict[str, Any], task_id: str, **kwargs: Any) -> dict[str, Any]:
    """Run until cancelled (WebSocket: CancelledError; Redis flag: check_for_cancellation)."""
    mark("start", params["tag"])
    try:
        while not await worker.check_for_cancellation(task_id):
            await asyncio.sleep(0.005)
    except asyncio.CancelledError:
        mark("stop", params["tag"])
        raise
    mark("stop", params["tag"])
    return {"status": "cancelled", "data": {}}


# Only the cancel benchmark registers `hold`: the throughput rows compare workers with the same single
# skill, since the real orchestrator runs a work-stealing script per skill on every poll of an empty queue.
if os.environ.get("BENCH_HOLD_SKILL"):
    worker.task("hold")(hold)

if __name__ == "__main__":
    worker.run()
