"""Test-only blueprint: one job step running the skill named in initial_data (interop and contract tests)."""

from avtomatika import Blueprint

# avtomatika 1.0b30 pitfalls (protocol.md §14): no annotations on handlers, literal transition dicts,
# and only an end state named `finished` gives job status `finished`. No `cancelled` transition: a
# worker's `cancelled` result then leaves the job `cancelled`.

scenario = Blueprint("scenario", api_endpoint="/jobs/scenario", api_version="v1")


@scenario.handler(is_start=True)
async def start(initial_data, actions):
    actions.dispatch_task(
        task_type=initial_data["skill"],
        params=dict(initial_data.get("params") or {}),
        transitions={"success": "finished", "out_of_stock": "out_of_stock"},
        skill_version=initial_data.get("skill_version"),
        skill_type=initial_data.get("skill_type"),
        max_cost=initial_data.get("max_cost"),
        resource_requirements=initial_data.get("resource_requirements"),
    )


@scenario.handler(is_end=True)
async def finished():
    pass


@scenario.handler(is_end=True)
async def out_of_stock():
    pass
