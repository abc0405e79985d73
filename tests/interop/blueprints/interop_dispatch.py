"""Test-only blueprint: one task whose dispatch requirements (resources, max_cost, strategy) come from initial_data."""

from avtomatika import Blueprint

dispatch = Blueprint("dispatch", api_endpoint="/jobs/dispatch", api_version="v1")


@dispatch.handler(is_start=True)
async def start(initial_data, actions):
    actions.dispatch_task(
        task_type=initial_data["skill"],
        params=dict(initial_data.get("params") or {}),
        transitions={"success": "finished"},
        resource_requirements=initial_data.get("resource_requirements"),
        max_cost=initial_data.get("max_cost"),
        dispatch_strategy=initial_data.get("dispatch_strategy") or "default",
    )


@dispatch.handler(is_end=True)
async def finished():
    pass
