"""The benchmarked worker on the official SDK (avtomatika-worker 1.0b20), cookbook style."""

import time
from typing import Any

from avtomatika_worker import Worker

worker = Worker(worker_type="bench")


@worker.skill("noop")
async def noop(params: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Do nothing but report when the handler started."""
    return {"status": "success", "data": {"started": time.time()}}


if __name__ == "__main__":
    worker.run()
