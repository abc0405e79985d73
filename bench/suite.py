"""The benchmark plan: which worker runs against which orchestrator, how often, and with how many tasks."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .measure import (
    WorkerSpec,
    cancel_latency,
    idle_rss,
    percentile,
    pickup_latencies,
    running_worker,
    spread,
    throughput,
)
from .targets import Target


@dataclass(frozen=True)
class Plan:
    """Sizes of one benchmark run."""

    runs: int
    tasks: int  # per throughput run
    pickups: int  # sequential tasks per pickup-latency run
    cancels: int  # per cancel channel


SHORT = Plan(runs=1, tasks=20, pickups=5, cancels=2)
FULL = Plan(runs=int(os.environ.get("BENCH_RUNS", "5")), tasks=500, pickups=50, cancels=10)


def measure_worker(
    spec: WorkerSpec,
    target: Target,
    concurrency: int,
    plan: Plan,
    tmp: Path,
    cwd: Path,
    tasks: int | None = None,
) -> dict[str, Any]:
    """Throughput, pickup p50/p99, CPU per task (each per run) and idle RSS of one worker."""
    rates: list[float] = []
    cpus: list[float] = []
    p50s: list[float] = []
    p99s: list[float] = []
    lost_total = 0
    with running_worker(spec, target, concurrency, tmp, cwd) as proc:
        rss = idle_rss(proc)
        for _ in range(plan.runs):
            rate, cpu, lost = throughput(target, proc, tasks or plan.tasks)
            lost_total += lost
            rates.append(rate)
            cpus.append(cpu * 1000)
            lat = pickup_latencies(target, plan.pickups)
            p50s.append(percentile(lat, 50))
            p99s.append(percentile(lat, 99))
    return {
        "worker": spec.name,
        "orchestrator": target.kind,
        "concurrency": concurrency,
        "tasks_per_s": spread(rates),
        "pickup_p50_ms": spread(p50s),
        "pickup_p99_ms": spread(p99s),
        "cpu_ms_per_task": spread(cpus),
        "idle_rss_mb": rss,
        "runs": {"tasks_per_s": rates},
        "unfinished_tasks": lost_total,
        "load": os.getloadavg(),
    }


def measure_cancel(
    spec: WorkerSpec, target: Target, websocket: bool, plan: Plan, tmp: Path, cwd: Path
) -> dict[str, Any]:
    """Cancel request -> handler stopped, over the WebSocket or through the Redis flag only."""
    extra = {"WORKER_ENABLE_WEBSOCKETS": "true" if websocket else "false"}
    channel = "websocket" if websocket else "redis_flag"
    (tmp / channel).mkdir(parents=True, exist_ok=True)
    with running_worker(spec, target, 1, tmp / channel, cwd, extra) as _proc:
        values = [cancel_latency(target, tmp / channel / "marks") for _ in range(plan.cancels * plan.runs)]
    return {
        "worker": spec.name,
        "orchestrator": target.kind,
        "channel": channel,
        "cancel_ms": spread(values),
        "load": os.getloadavg(),
    }


def ratios(ours: dict[str, Any], official: dict[str, Any]) -> dict[str, float]:
    """Ours/official throughput per run (same run index of this invocation), summarised."""
    pairs = zip(ours["runs"]["tasks_per_s"], official["runs"]["tasks_per_s"], strict=True)
    return spread([a / b for a, b in pairs])
