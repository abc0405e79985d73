"""Test-only blueprint: a job step that a worker event can move on (`event_transitions`), interop tests."""

from avtomatika import Blueprint

# avtomatika 1.0b30 (services/worker_service.py, process_worker_event): an event whose type is mapped in
# the running step's `event_transitions` merges its payload into state_history and moves the job to the
# mapped state while the task still runs; the task's own result then arrives stale and is ignored.
# Its integrity check (blueprint.py, _get_all_transitions) reads only `transitions`, `go_to` and
# `aggregate_into`: a state that only an event leads to is "unreachable" and the blueprint is not loaded,
# so `approved` is also listed in `transitions` (under a status the handler never returns).

approvals = Blueprint("interop_events", api_endpoint="/jobs/interop_events", api_version="v1")


@approvals.handler(is_start=True)
async def start(initial_data, actions):
    actions.dispatch_task(
        task_type=initial_data.get("skill", "approve"),
        params=dict(initial_data.get("params") or {}),
        transitions={"success": "finished", "approved": "approved"},
        event_transitions={"approved": "approved"},
        result_timeout_seconds=600,
    )


@approvals.handler(is_end=True)
async def finished():
    pass


@approvals.handler(is_end=True)
async def approved():
    pass
