"""Task events: `send_event`, checked against the skill's `events_schema`, then sent over HTTP.

The check runs at the call, before anything is sent: a payload breaking `events_schema[event_type]`, an
event type a declared (non-empty) `events_schema` does not list, or a payload that is not a JSON object
raises ValueError in the handler (a bug a retry cannot fix; the event is not sent). `progress` is always
allowed (send_progress). avtomatika 1.0b30 validates declared types too but only answers an error the
handler never sees, and lets an undeclared type through unchecked; the official SDK drops both with a
log line (services/worker_service.py process_worker_event; official worker.py send_event_wrapper).

Events go over HTTP even when the WebSocket is open: 1.0b30 handles a WebSocket frame like the HTTP event
but sends no reply, so neither a refusal nor the moment the job moved reaches the worker, and the result
(HTTP) may overtake it. An awaited HTTP event has been applied when `send_event` returns.
See docs/orchestrator-behaviours.md, "Events and results".
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import orjson

from .errors import TransportError
from .executor import SendEvent
from .handlers import Skill
from .ratelimit import EVENT
from .schemas import problem
from .transport import OrchestratorClient
from .typing import PROGRESS_EVENT

logger = logging.getLogger(__name__)

EVENT_TIMEOUT = 10.0  # an event is best effort: never hold a handler up for long


def event_problem(skill: Skill | None, event_type: Any, payload: Any) -> str | None:
    """Why `send_event(event_type, payload)` may not be sent for `skill`, or None when it may."""
    call = f"send_event({event_type!r})"
    if not isinstance(event_type, str) or not event_type:
        return f"{call}: event_type must be a non-empty string, e.g. send_event('approved', " + "{...})"
    if payload is not None and not isinstance(payload, dict):
        return f"{call}: payload must be a JSON object (a dict), got {type(payload).__name__}: {payload!r}"
    if payload is not None and (unsendable := _json_problem(payload)) is not None:
        return f"{call}: payload cannot be sent as JSON ({unsendable})"
    if skill is None or not skill.events_schema:
        return None
    declared, where = skill.events_schema, f"events_schema of skill {skill.name!r}"
    schema = declared.get(event_type)
    if schema is None:
        if event_type == PROGRESS_EVENT:
            return None
        listed = ", ".join(map(repr, declared))
        return (
            f"{call}: event type {event_type!r} is not in the {where} (it lists {listed}); "
            f"fix the event type, or add {event_type!r} to events_schema in @worker.task"
        )
    reason = problem(schema, payload or {}, "payload")
    if reason is None:
        return None
    return f"{call}: {reason}; fix the payload, or events_schema[{event_type!r}] of skill {skill.name!r}"


def _json_problem(payload: dict[str, Any]) -> str | None:
    try:
        orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS)
    except TypeError as exc:
        return str(exc)
    return None


def extras_problem(event_type: Any, priority: Any, metadata: Any) -> str | None:
    """Why the official SDK's extra `send_event` keywords cannot be sent, or None."""
    call = f"send_event({event_type!r})"
    if isinstance(priority, bool) or not isinstance(priority, int | float):
        return f"{call}: priority={priority!r} must be a number, e.g. priority=1.0"
    if metadata is not None and (not isinstance(metadata, dict) or _json_problem(metadata) is not None):
        return f"{call}: metadata={metadata!r} must be a JSON object, e.g. metadata=" + "{'source': 'ocr'}"
    return None


class EventSender:
    """Builds each task's `send_event`: checked, signed by the transport, sent best effort."""

    def __init__(self, client: OrchestratorClient, worker_id: str) -> None:
        self._client = client
        self._worker_id = worker_id

    def for_task(
        self, job_id: str, task_id: str, skill: Skill | None, trace_context: dict[str, str] | None = None
    ) -> SendEvent:
        """The `send_event(event_type, payload, *, priority=0.0, metadata=None)` of one task of `skill`."""

        async def send_event(
            event_type: str,
            payload: dict[str, Any] | None = None,
            *,
            priority: float = 0.0,
            metadata: dict[str, Any] | None = None,
        ) -> None:
            """Send an event about this task; raises ValueError if it breaks the skill's events_schema."""
            reason = event_problem(skill, event_type, payload) or extras_problem(
                event_type, priority, metadata
            )
            if reason is not None:
                raise ValueError(f"{reason} (the event was not sent)")
            event = self._event(job_id, task_id, event_type, dict(payload or {}))
            if priority:
                event["priority"] = float(priority)
            if metadata:
                event["metadata"] = metadata
            if trace_context:
                event["trace_context"] = trace_context
            await self._send(event)

        return send_event

    def _event(self, job_id: str, task_id: str, event_type: str, payload: dict[str, Any]) -> dict[str, Any]:
        return {
            "event_id": str(uuid.uuid4()),
            "worker_id": self._worker_id,
            "origin_worker_id": self._worker_id,
            "event_type": event_type,
            "payload": payload,
            "target_job_id": job_id,
            "target_task_id": task_id,
        }

    async def _send(self, event: dict[str, Any]) -> None:
        event_type = event["event_type"]
        if self._client.budget.delay(EVENT) > 0:
            logger.debug("event %s not sent: the event rate-limit window is full", event_type)
            return
        try:
            reply = await self._client.send_event(event, EVENT_TIMEOUT)
        except TransportError as exc:
            logger.warning("event %s not delivered: %s", event_type, exc)
            return
        if isinstance(reply, dict) and reply.get("status") == "error":
            logger.warning("event %s refused: %s", event_type, reply.get("message"))
