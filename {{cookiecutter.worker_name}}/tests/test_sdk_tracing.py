"""OpenTelemetry: a span per task continuing the task's W3C `tracing_context`, child spans for requests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from avtomatika_worker import tracing

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.reset(provider.get_tracer("test"))
    yield exporter
    tracing.reset()


def task(**extra: object) -> dict[str, object]:
    context = {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"}
    return {"job_id": "job-1", "task_id": "task-1", "type": "resize", "tracing_context": context, **extra}


def test_the_task_span_is_a_child_of_the_tasks_trace_context(exported: InMemorySpanExporter) -> None:
    with tracing.task_span(task()) as set_outcome:
        set_outcome("success")
    (span,) = exported.get_finished_spans()
    assert span.context is not None and span.parent is not None
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert format(span.parent.span_id, "016x") == PARENT_ID
    assert span.name == "task resize"
    assert dict(span.attributes or {}) == {
        "job.id": "job-1",
        "task.id": "task-1",
        "task.skill": "resize",
        "task.outcome": "success",
    }


def test_a_failed_task_marks_its_span_as_an_error(exported: InMemorySpanExporter) -> None:
    with tracing.task_span(task()) as set_outcome:
        set_outcome("failure")
    (span,) = exported.get_finished_spans()
    assert span.status.status_code.name == "ERROR"


def test_requests_inside_a_task_are_child_spans_and_outside_none(exported: InMemorySpanExporter) -> None:
    assert tracing.request_span("poll", "GET", "/_worker/workers/w/tasks/next") is None
    with tracing.task_span(task()) as set_outcome:
        span = tracing.request_span("event", "POST", "/_worker/events")
        tracing.end_request_span(span, 200)
        set_outcome("success")
    request, task_span = exported.get_finished_spans()
    assert request.parent is not None and task_span.context is not None
    assert request.parent.span_id == task_span.context.span_id
    assert request.attributes is not None and request.attributes["http.response.status_code"] == 200


def test_a_task_without_tracing_context_starts_a_new_trace(exported: InMemorySpanExporter) -> None:
    with tracing.task_span(task(tracing_context={})) as set_outcome:
        set_outcome("success")
    (span,) = exported.get_finished_spans()
    assert span.parent is None


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, False),
    ],
)
def test_otel_variables_decide_whether_tracing_is_on(env: dict[str, str], expected: bool) -> None:
    assert tracing.wanted(env) is expected


def test_without_otel_variables_tracing_costs_one_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    tracing.reset()
    try:
        assert tracing.tracer() is None
        with tracing.task_span(task()) as set_outcome:
            set_outcome("success")
        assert tracing.request_span("result", "POST", "/x") is None
    finally:
        tracing.reset()
