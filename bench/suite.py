"""The benchmark plan: which worker runs against which orchestrator, how often, and with how many tasks."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
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
    """Sizes of one benchmark invocation."""

    runs: int
    tasks: int  # per throughput run against the mock
    real_tasks: int  # per throughput run against the real orchestrator (the same for every worker)
    pickups: int  # sequential tasks per pickup-latency run
    cancels: int  # per cancel channel


SHORT = Plan(runs=1, tasks=20, real_tasks=10, pickups=5, cancels=2)
FULL = Plan(runs=int(os.environ.get("BENCH_RUNS", "5")), tasks=2000, real_tasks=60, pickups=50, cancels=10)

OpenTarget = Callable[[Path], AbstractContextManager[Target]]


def measure_worker(
    spec: WorkerSpec,
    open_target: OpenTarget,
    concurrency: int,
    plan: Plan,
    tmp: Path,
    cwd: Path,
    tasks: int,
    label: str,
) -> dict[str, Any]:
    """Throughput, pickup p50/p99, CPU per task and idle RSS of one worker, each run on a fresh
    orchestrator and a fresh worker process (the real orchestrator slows down as jobs accumulate, and a
    worker that lost jobs in one run must not spoil the next)."""
    rates: list[float] = []
    cpus: list[float] = []
    p50s: list[float] = []
    p99s: list[float] = []
    rss: list[float] = []
    lost_total = 0
    target_kind = ""
    for run in range(plan.runs):
        workdir = tmp / f"{label}-{spec.name}-c{concurrency}-run{run}"
        workdir.mkdir(parents=True, exist_ok=True)
        with open_target(workdir) as target, running_worker(spec, target, concurrency, workdir, cwd) as proc:
            target_kind = target.kind
            rss.append(idle_rss(proc))
            rate, cpu, lost = throughput(target, proc, tasks)
            lat = pickup_latencies(target, plan.pickups)
        lost_total += lost + plan.pickups - len(lat)
        rates.append(rate)
        cpus.append(cpu * 1000)
        p50s.append(percentile(lat, 50) if lat else math.nan)
        p99s.append(percentile(lat, 99) if lat else math.nan)
    return {
        "worker": spec.name,
        "orchestrator": target_kind,
        "concurrency": concurrency,
        "tasks_per_s": spread(rates),
        "pickup_p50_ms": spread(p50s),
        "pickup_p99_ms": spread(p99s),
        "cpu_ms_per_task": spread(cpus),
        "idle_rss_mb": spread(rss),
        "runs": {"tasks_per_s": rates, "idle_rss_mb": rss},
        "tasks_per_run": tasks,
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


def ratios(ours: dict[str, Any], other: dict[str, Any]) -> dict[str, float]:
    """Ours/other throughput per run (same run index of this invocation), summarised; a run in which
    the other worker finished nothing has no ratio."""
    pairs = zip(ours["runs"]["tasks_per_s"], other["runs"]["tasks_per_s"], strict=True)
    return spread([a / b if b else math.nan for a, b in pairs])
