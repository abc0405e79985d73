"""The baked worker plus scenario handlers for the interop suite.

Run with cwd = the baked project and PYTHONPATH including it: it imports the project's `my_worker`
(and so its vendored SDK), adds the handlers below to the same `worker`, and runs it. Handler state
lives in files named by the task params, because the orchestrator's retries arrive with new task ids.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

from avtomatika_worker.typing import TRANSIENT_ERROR
from my_worker import worker

CANCEL_WAIT_SECONDS = 120.0


def _record(path: str, event: str, **fields: Any) -> int:
    """Append one JSON line to the scenario's state file; return how many lines it has now."""
    file = Path(path)
    with file.open("a", encoding="utf-8") as out:
        out.write(json.dumps({"event": event, **fields}) + "\n")
    return len(file.read_text(encoding="utf-8").splitlines())


@worker.task("flaky_exception")
async def flaky_exception(params: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Raise for the first `fail_times` attempts, then succeed."""
    attempt = _record(params["state_file"], "attempt", task_id=kwargs.get("task_id"))
    if attempt <= int(params["fail_times"]):
        raise RuntimeError(f"simulated crash on attempt {attempt}")
    return {"status": "success", "data": {"attempts": attempt}}


@worker.task("flaky_transient")
async def flaky_transient(params: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Report TRANSIENT_ERROR for the first `fail_times` attempts, then succeed."""
    attempt = _record(params["state_file"], "attempt", task_id=kwargs.get("task_id"))
    if attempt <= int(params["fail_times"]):
        return {
            "status": "failure",
            "error": {"code": TRANSIENT_ERROR, "message": f"busy, attempt {attempt}"},
        }
    return {"status": "success", "data": {"attempts": attempt}}


@worker.task("report_deadline")
async def report_deadline(params: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Return the task's deadline as the handler saw it."""
    deadline = kwargs.get("deadline")
    return {
        "status": "success",
        "data": {"deadline_seen": deadline, "deadline_type": type(deadline).__name__},
    }


@worker.task("wait_for_cancel")
async def wait_for_cancel(params: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Run until cancelled, recording which channel told the handler (CancelledError or the Redis flag)."""
    task_id = kwargs["task_id"]
    state_file = params["state_file"]
    _record(state_file, "started", task_id=task_id, deadline=kwargs.get("deadline"), at=time.time())
    loop = asyncio.get_running_loop()
    give_up = loop.time() + CANCEL_WAIT_SECONDS
    try:
        while loop.time() < give_up:
            if params.get("check_redis") and await worker.check_for_cancellation(task_id):
                _record(state_file, "redis_flag", task_id=task_id)
                return {"status": "cancelled", "data": {}}
            await asyncio.sleep(0.1)
    except asyncio.CancelledError:
        _record(state_file, "cancelled_error", task_id=task_id, at=time.time())
        raise
    _record(state_file, "not_cancelled", task_id=task_id)
    return {"status": "success", "data": {"cancelled": False}}


@worker.task("sleep_for")
async def sleep_for(params: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Take `seconds`, then say which worker (process) did it."""
    await asyncio.sleep(float(params.get("seconds", 0)))
    return {"status": "success", "data": {"done_by": os.environ["WORKER_ID"], "pid": os.getpid()}}


@worker.task("timed_sleep")
async def timed_sleep(params: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Record when the handler started, then take `seconds`."""
    _record(params["state_file"], "started", job_id=kwargs.get("job_id"), at=time.time())
    await asyncio.sleep(float(params.get("seconds", 0)))
    return {"status": "success", "data": {}}


@worker.task("hold_until_released")
async def hold_until_released(params: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Record the attempt, then run until the file `release` exists (a task a stop interrupts)."""
    _record(params["state_file"], "started", task_id=kwargs.get("task_id"), pid=os.getpid())
    release = Path(params["release"])
    while not release.exists():
        await asyncio.sleep(0.05)
    return {"status": "success", "data": {"done_by": os.environ["WORKER_ID"], "pid": os.getpid()}}


@worker.task("versioned", version="2.0.0", type="echo")
async def versioned(params: dict[str, Any], skill_version: str | None) -> dict[str, Any]:
    """Echo the skill version the orchestrator asked for (a skill published with a version and a type)."""
    return {"status": "success", "data": {"asked_version": skill_version, "ran_on": os.environ["WORKER_ID"]}}


@worker.task("echo_context")
async def echo_context(params: dict[str, Any], security: Any, metadata: Any) -> dict[str, Any]:
    """Return the job's security context and metadata as the task delivered them."""
    return {"status": "success", "data": {"seen": {"security": security, "metadata": metadata}}}


if __name__ == "__main__":
    worker.run()
