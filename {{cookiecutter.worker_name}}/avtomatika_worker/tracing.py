"""OpenTelemetry spans, optional: a span per task continuing the task's `tracing_context` (W3C trace
context), and a span per SDK request made inside a task. Exported over OTLP when the standard `OTEL_*`
variables ask for it; OpenTelemetry is imported only then, and is not in the default image.

Enabled when OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set (and
OTEL_TRACES_EXPORTER is not `none`, OTEL_SDK_DISABLED not `true`). The exporter reads the other `OTEL_*`
variables itself (headers, protocol, service name through OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

logger = logging.getLogger(__name__)

SetOutcome = Callable[[str], None]
_UNSET: Any = object()
_tracer: Any = _UNSET


def wanted(env: Mapping[str, str] = os.environ) -> bool:
    """True when the `OTEL_*` variables ask for traces."""
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true" or env.get("OTEL_TRACES_EXPORTER") == "none":
        return False
    return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def tracer() -> Any:
    """The SDK's tracer, or None when tracing is off (decided once per process)."""
    global _tracer
    if _tracer is _UNSET:
        _tracer = _setup() if wanted() else None
    return _tracer


def reset(new_tracer: Any = _UNSET) -> None:
    """Forget the tracer (tests): the next call decides again, or uses `new_tracer`."""
    global _tracer
    _tracer = new_tracer


def _setup() -> Any:
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        logger.warning(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed (%s): tracing is off; "
            "install opentelemetry-sdk and opentelemetry-exporter-otlp-proto-http to turn it on",
            exc,
        )
        return None
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # the application may have set up its own
        resource = Resource.create()  # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
        if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
            resource = resource.merge(Resource({"service.name": "avtomatika-worker"}))
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
    return provider.get_tracer("avtomatika_worker")


def shutdown() -> None:
    """Flush the spans still buffered (at the worker's stop)."""
    if tracer() is None:
        return
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    flush = getattr(provider, "force_flush", None)
    if flush is not None:
        flush()


def _ignore(outcome: str) -> None:
    """Tracing off: nothing to record."""


@contextlib.contextmanager
def task_span(task: Mapping[str, Any]) -> Iterator[SetOutcome]:
    """A span around one task, child of its `tracing_context`; yields a setter for the outcome."""
    otel = tracer()
    if otel is None:
        yield _ignore
        return
    from opentelemetry.trace import SpanKind, Status, StatusCode
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier = task.get("tracing_context")
    parent = TraceContextTextMapPropagator().extract(carrier if isinstance(carrier, dict) else {})
    attributes = {
        "job.id": str(task.get("job_id")),
        "task.id": str(task.get("task_id")),
        "task.skill": str(task.get("type")),
    }
    name = f"task {task.get('type')}"
    with otel.start_as_current_span(
        name, context=parent, kind=SpanKind.CONSUMER, attributes=attributes
    ) as span:

        def set_outcome(outcome: str) -> None:
            span.set_attribute("task.outcome", outcome)
            if outcome not in ("success", "cancelled"):
                span.set_status(Status(StatusCode.ERROR, outcome))

        yield set_outcome


def request_span(kind: str, method: str, path: str) -> Any:
    """A started client span for an SDK request made inside a task span (None otherwise: polls and
    heartbeats outside tasks would only add a root span each)."""
    otel = tracer()
    if otel is None:
        return None
    from opentelemetry import trace

    if not trace.get_current_span().get_span_context().is_valid:
        return None
    attributes = {"http.request.method": method, "url.path": path, "avtomatika.request": kind}
    return otel.start_span(f"{method} {kind}", kind=trace.SpanKind.CLIENT, attributes=attributes)


def end_request_span(span: Any, status: int) -> None:
    """End a span from `request_span` with the HTTP status (0: no reply)."""
    if span is None:
        return
    span.set_attribute("http.response.status_code", status)
    if not 200 <= status < 300:
        from opentelemetry.trace import Status, StatusCode

        span.set_status(Status(StatusCode.ERROR, f"HTTP {status}" if status else "no reply"))
    span.end()
