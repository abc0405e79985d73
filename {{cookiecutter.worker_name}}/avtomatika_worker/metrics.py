"""Worker metrics in the Prometheus text format (0.0.4), served on WORKER_METRICS_PORT (health_server.py).

Hand-written on purpose: a few counters and histograms need no client library in the image. Labels are
bounded (skill, outcome, request kind, cancel channel); task and job ids never become labels.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict

from .observe import CHANNELS, Observer

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
Labels = tuple[tuple[str, str], ...]


class _Histogram:
    """Cumulative-bucket histogram per label set."""

    def __init__(self) -> None:
        self.counts: dict[Labels, list[int]] = {}
        self.sums: dict[Labels, float] = defaultdict(float)

    def observe(self, labels: Labels, value: float) -> None:
        counts = self.counts.get(labels)
        if counts is None:
            counts = self.counts[labels] = [0] * (len(BUCKETS) + 1)
        counts[bisect.bisect_left(BUCKETS, value)] += 1
        self.sums[labels] += value

    def lines(self, name: str) -> list[str]:
        out: list[str] = []
        for labels, counts in sorted(self.counts.items()):
            running = 0
            for bound, count in zip((*BUCKETS, math.inf), counts, strict=True):
                running += count
                le = "+Inf" if bound == math.inf else repr(bound)
                out.append(f"{name}_bucket{_labels((*labels, ('le', le)))} {running}")
            out.append(f"{name}_sum{_labels(labels)} {self.sums[labels]!r}")
            out.append(f"{name}_count{_labels(labels)} {running}")
        return out


class Metrics(Observer):
    """The metrics observer and its text exposition."""

    def __init__(self) -> None:
        self.tasks: dict[Labels, int] = defaultdict(int)
        self.in_flight: dict[Labels, int] = defaultdict(int)
        self.task_seconds = _Histogram()
        self.request_seconds = _Histogram()
        self.request_failures: dict[Labels, int] = defaultdict(int)
        self.pauses: dict[Labels, int] = defaultdict(int)
        self.cancels: dict[Labels, int] = defaultdict(int)
        self.spool_depth = 0

    def on_task_start(self, skill: str) -> None:
        """Count a running task."""
        self.in_flight[(("skill", skill),)] += 1

    def on_task_end(self, skill: str, outcome: str, seconds: float) -> None:
        """Count an ended task and its duration."""
        self.in_flight[(("skill", skill),)] -= 1
        labels = (("skill", skill), ("outcome", outcome))
        self.tasks[labels] += 1
        self.task_seconds.observe(labels, seconds)

    def on_request(self, kind: str, seconds: float, ok: bool) -> None:
        """Time a request; count it when it failed."""
        labels = (("kind", kind),)
        self.request_seconds.observe(labels, seconds)
        if not ok:
            self.request_failures[labels] += 1

    def on_rate_limit_pause(self, kind: str) -> None:
        """Count a rate-limit pause."""
        self.pauses[(("kind", kind),)] += 1

    def on_spool(self, delta: int) -> None:
        """Track the spool's depth."""
        self.spool_depth = max(0, self.spool_depth + delta)

    def on_cancel(self, source: str) -> None:
        """Count a cancellation by its channel."""
        self.cancels[(("channel", CHANNELS.get(source, "other")),)] += 1

    def render(self) -> str:
        """The exposition text."""
        out: list[str] = []
        _family(out, "avtomatika_worker_tasks_total", "counter", "Tasks ended, by skill and outcome.")
        out += _samples("avtomatika_worker_tasks_total", self.tasks)
        _family(out, "avtomatika_worker_task_duration_seconds", "histogram", "Task run time.")
        out += self.task_seconds.lines("avtomatika_worker_task_duration_seconds")
        _family(out, "avtomatika_worker_tasks_in_flight", "gauge", "Tasks running now, by skill.")
        out += _samples("avtomatika_worker_tasks_in_flight", self.in_flight)
        name = "avtomatika_worker_request_duration_seconds"
        _family(out, name, "histogram", "Orchestrator request latency by kind (poll, heartbeat, result...).")
        out += self.request_seconds.lines(name)
        name = "avtomatika_worker_request_failures_total"
        _family(out, name, "counter", "Orchestrator requests that failed (no reply, 429, 5xx...).")
        out += _samples(name, self.request_failures)
        name = "avtomatika_worker_rate_limit_pauses_total"
        _family(out, name, "counter", "Pauses for the orchestrator's rate-limit window, by kind.")
        out += _samples(name, self.pauses)
        _family(out, "avtomatika_worker_spool_depth", "gauge", "Results waiting in the on-disk spool.")
        out.append(f"avtomatika_worker_spool_depth {self.spool_depth}")
        name = "avtomatika_worker_cancellations_total"
        _family(out, name, "counter", "Running tasks cancelled, by channel.")
        out += _samples(name, self.cancels)
        return "\n".join(out) + "\n"


def _family(out: list[str], name: str, kind: str, help_text: str) -> None:
    out.append(f"# HELP {name} {help_text}")
    out.append(f"# TYPE {name} {kind}")


def _samples(name: str, values: dict[Labels, int]) -> list[str]:
    return [f"{name}{_labels(labels)} {value}" for labels, value in sorted(values.items())]


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{key}="{_escape(value)}"' for key, value in labels)
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
