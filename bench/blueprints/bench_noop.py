"""Benchmark blueprint for the real orchestrator: one no-op task step, then `finished`."""

from avtomatika import Blueprint

# No annotations on handlers (see the sample blueprints). No result_timeout_seconds: it puts a float
# `deadline` in the task, on which the official SDK 1.0b20 chokes and loses the task (protocol.md sec. 0);
# no-op tasks end long before the watcher's wall-clock/monotonic mix-up could re-dispatch them.
bench_noop = Blueprint("bench_noop", api_endpoint="/jobs/bench_noop", api_version="v1")


@bench_noop.handler(is_start=True)
async def start(initial_data, actions):
    actions.dispatch_task(task_type="noop", params=dict(initial_data), transitions={"success": "finished"})


@bench_noop.handler("finished", is_end=True)
async def finished():
    pass
