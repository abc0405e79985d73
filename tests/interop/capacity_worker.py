"""A worker whose `capacity_checker` lets its skill start only while the file CAPACITY_FLAG exists."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from avtomatika_worker import Worker

SKILL = os.environ["DISPATCH_SKILL"]
FLAG = Path(os.environ["CAPACITY_FLAG"])

worker = Worker("capacity-checker", capacity_checker=lambda skill: FLAG.exists())


@worker.task(SKILL)
async def probe(params: dict[str, Any]) -> dict[str, Any]:
    """Answer with the worker id, once the checker has let the task start."""
    return {"status": "success", "data": {"ran_on": worker.config.worker_id}}


if __name__ == "__main__":
    worker.run()
