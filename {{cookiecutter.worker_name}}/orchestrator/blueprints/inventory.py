"""Sample blueprints for the skeleton's tasks: one job step per skill of the generated worker."""

from avtomatika import Blueprint

# Pitfalls of avtomatika 1.0b30 (blueprint.py, watcher.py): no annotations on handlers (they become input/output
# schemas), transitions written as literal dicts, and only an end state named `finished` gives job
# status `finished`. A worker's `cancelled` result leaves the job `cancelled` as long as there is no
# `cancelled` transition, so none is declared.
#
# Every step has a wall-clock `result_timeout_seconds`: without one, 1.0b30's watcher compares a
# monotonic deadline with wall-clock time and re-dispatches any task still running after ~20 s
# (watcher.py: run). The task then also carries a float `deadline`.

RESULT_TIMEOUT_SECONDS = 600

inventory = Blueprint("inventory", api_endpoint="/jobs/inventory", api_version="v1")


@inventory.handler(is_start=True)
async def start(initial_data, actions):
    actions.dispatch_task(
        task_type="check_inventory",
        params=dict(initial_data),
        transitions={"success": "finished", "out_of_stock": "out_of_stock"},
        result_timeout_seconds=RESULT_TIMEOUT_SECONDS,
    )


@inventory.handler(is_end=True)
async def finished():
    pass


@inventory.handler(is_end=True)
async def out_of_stock():
    pass


long_task = Blueprint("long_task", api_endpoint="/jobs/long_task", api_version="v1")


@long_task.handler(is_start=True)
async def begin(initial_data, actions):
    actions.dispatch_task(
        task_type="long_running_task",
        params=dict(initial_data),
        transitions={"success": "finished"},
        result_timeout_seconds=RESULT_TIMEOUT_SECONDS,
    )


@long_task.handler("finished", is_end=True)
async def long_task_finished():
    pass
