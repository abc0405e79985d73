"""The baked worker plus one handler, named by DISPATCH_SKILL, for the dispatch interop tests.

It answers with the worker id that ran it; with params `{"hot": true}` it marks its skill hot (from a
thread, as a sync handler would) before answering, and with `{"hot": false}` it withdraws it.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from my_worker import worker

SKILL = os.environ["DISPATCH_SKILL"]


@worker.task(SKILL)
async def probe(params: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Report which worker ran the task; switch the hot mark when asked."""
    if params.get("hot") is True:
        await asyncio.to_thread(worker.add_to_hot_skills, SKILL)
    elif params.get("hot") is False:
        worker.remove_from_hot_skills(SKILL)
    return {"status": "success", "data": {"ran_on": worker.config.worker_id}}


if __name__ == "__main__":
    worker.run()
