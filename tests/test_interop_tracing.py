"""Interop: one trace from the REAL orchestrator (its own OpenTelemetry on) through our worker.

Both processes export real OTLP payloads to receivers in this test: 1.0b30 exports over gRPC (telemetry.py
hard-codes the gRPC exporter), our worker over OTLP/HTTP (protobuf). The receivers decode them with
`opentelemetry-proto`, the messages' own definitions, so the test checks what a collector would receive.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from interop.real import RealOrchestrator, baked_worker, real_orchestrator
from processes import free_port, orchestrator_python, wait_for

pytestmark = pytest.mark.interop

OTEL_PACKAGES = ("opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-grpc")
FAST_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "200"}  # export spans every 0.2 s instead of 5 s


class Received:
    """Spans from every export, with the service that sent them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.spans: list[tuple[str, Span]] = []

    def add(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        with self.lock:
            for resource_spans in request.resource_spans:
                names = [
                    a.value.string_value
                    for a in resource_spans.resource.attributes
                    if a.key == "service.name"
                ]
                for scope in resource_spans.scope_spans:
                    self.spans += [(names[0] if names else "", span) for span in scope.spans]

    def summary(self) -> list[tuple[str, str, str, str]]:
        """(service, span name, span id, parent id) of every span received, for failure messages."""
        with self.lock:
            return [
                (name, s.name, s.span_id.hex(), s.parent_span_id.hex())
                for name, s in self.spans
                if not s.name.startswith("HTTP:GET")  # the test's own reads
            ]

    def of(self, service: str) -> list[Span]:
        with self.lock:
            return [span for name, span in self.spans if name == service]


class _GrpcReceiver(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
    def __init__(self, received: Received) -> None:
        self.received = received

    def Export(self, request: Any, context: Any) -> Any:
        self.received.add(request)
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture(scope="module")
def received() -> Received:
    return Received()


@pytest.fixture(scope="module")
def grpc_endpoint(received: Received) -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_GrpcReceiver(received), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop(grace=None)


@pytest.fixture(scope="module")
def http_endpoint(received: Received) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.add(trace_service_pb2.ExportTraceServiceRequest.FromString(body))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.end_headers()
            self.wfile.write(trace_service_pb2.ExportTraceServiceResponse().SerializeToString())

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()


@pytest.fixture(scope="module")
def orchestrator(tmp_path_factory: pytest.TempPathFactory, grpc_endpoint: str) -> Iterator[RealOrchestrator]:
    python = orchestrator_python("-otel", OTEL_PACKAGES)
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": grpc_endpoint, **FAST_EXPORT}
    with real_orchestrator(tmp_path_factory.mktemp("orchestrator-tracing"), env=env, python=python) as orch:
        yield orch


def test_the_orchestrators_task_context_is_empty_so_our_span_joins_by_job_id(
    orchestrator: RealOrchestrator, project: Path, http_endpoint: str, received: Received
) -> None:
    """1.0b30 drops the trace context it means to send (docs/orchestrator-behaviours.md, Tracing): the
    worker's task span starts its own trace and carries the orchestrator's own `job.id` attribute."""
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": http_endpoint, "OTEL_SERVICE_NAME": "interop-worker", **FAST_EXPORT}
    with baked_worker(orchestrator, project, f"interop-tracing-{os.getpid()}", env=env):
        job = orchestrator.run_job("inventory", {"items": ["apple"]})
        assert job["status"] == "finished", job
        wait_for(
            lambda: any(s.name.startswith("task ") for s in received.of("interop-worker")), 30, "our span"
        )
    (task_span,) = [s for s in received.of("interop-worker") if s.name.startswith("task ")]
    attributes = {a.key: a.value.string_value for a in task_span.attributes}
    assert attributes["job.id"] == job["id"]
    assert attributes["task.skill"] == "check_inventory" and attributes["task.outcome"] == "success"
    assert attributes["task.id"]
    # The orchestrator traced the same job under the same attribute.
    wait_for(
        lambda: any(job["id"] in _values(s, "job.id") for s in received.of("avtomatika")),
        30,
        f"the orchestrator's JobExecutor span for {job['id']}; received {received.summary()}",
    )
    orchestrator_traces = {s.trace_id for s in received.of("avtomatika") if job["id"] in _values(s, "job.id")}
    # Pinned: when a release sends a real `traceparent`, our span becomes its child (test_sdk_tracing.py
    # checks that path) and this assertion must become `task_span.trace_id in orchestrator_traces`.
    assert task_span.parent_span_id == b"", (
        "the orchestrator now sends a trace context: assert the parent link"
    )
    assert task_span.trace_id not in orchestrator_traces


def _values(span: Span, key: str) -> list[str]:
    return [a.value.string_value for a in span.attributes if a.key == key]
