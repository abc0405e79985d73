"""A bare worker loop (no SDK): register, long-poll, post a signed no-op result. Bounds what any SDK gets."""

import asyncio
import hashlib
import hmac
import os
import secrets
import time
from typing import Any

import aiohttp
import orjson

URL, TOKEN, WORKER_ID = os.environ["ORCHESTRATOR_URL"], os.environ["WORKER_TOKEN"], os.environ["WORKER_ID"]
HEADERS = {"X-Worker-Token": TOKEN, "X-Worker-ID": WORKER_ID, "Content-Type": "application/json"}


def signed(body: dict[str, Any]) -> bytes:
    """The body with timestamp, nonce and HMAC (protocol.md section 3; no nulls in our bodies)."""
    body = {**body, "timestamp": int(time.time()), "nonce": secrets.token_hex(8)}
    digest = hmac.new(TOKEN.encode(), orjson.dumps(body, option=orjson.OPT_SORT_KEYS), hashlib.sha256)
    return orjson.dumps({**body, "security": {"signature": digest.hexdigest(), "signer_id": WORKER_ID}})


async def main() -> None:
    """Register, then run WORKER_MAX_CONCURRENT_TASKS poll-and-answer loops forever."""
    async with aiohttp.ClientSession(headers=HEADERS, timeout=aiohttp.ClientTimeout(total=120)) as http:
        reg = {"worker_id": WORKER_ID, "worker_type": "bare", "supported_skills": [{"name": "noop"}]}
        async with http.post(f"{URL}/_worker/workers/register", data=signed(reg)) as resp:
            resp.raise_for_status()
        loops = int(os.environ.get("WORKER_MAX_CONCURRENT_TASKS", "1"))
        await asyncio.gather(*(serve(http) for _ in range(loops)))


async def serve(http: aiohttp.ClientSession) -> None:
    """Poll, answer with a signed no-op result, repeat."""
    while True:
        async with http.get(f"{URL}/_worker/workers/{WORKER_ID}/tasks/next") as resp:
            if resp.status != 200:
                continue
            task = orjson.loads(await resp.read())
        result = {
            "job_id": task["job_id"],
            "task_id": task["task_id"],
            "worker_id": WORKER_ID,
            "status": "success",
            "data": {"started": time.time()},
        }
        async with http.post(f"{URL}/_worker/tasks/result", data=signed(result)) as resp:
            await resp.read()


if __name__ == "__main__":
    asyncio.run(main())
