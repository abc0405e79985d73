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


@dataclass(frozen=True)
class Row:
    """One table row: a worker at a concurrency against one kind of orchestrator."""

    worker: str
    concurrency: int
    tasks: int  # per throughput run


def measure_rows(
    rows: list[Row],
    specs: dict[str, WorkerSpec],
    open_target: OpenTarget,
    plan: Plan,
    tmp: Path,
    cwd: Path,
    label: str,
) -> list[dict[str, Any]]:
    """Every row, run after run with the rows interleaved (run 1 of each row, then run 2, ...), so that
    a slow spell of the machine hits every row and ratios of the same run stay fair. Each run has a fresh
    orchestrator and worker process: the real orchestrator slows down as jobs accumulate, and a worker
    that lost jobs in one run must not spoil the next."""
    runs: dict[Row, list[dict[str, Any]]] = {row: [] for row in rows}
    for run in range(plan.runs):
        for row in rows:
            workdir = tmp / f"{label}-{row.worker}-c{row.concurrency}-run{run}"
            runs[row].append(_one_run(specs[row.worker], open_target, row, plan, workdir, cwd))
    return [_summary(row, label, runs[row]) for row in rows]


def _one_run(
    spec: WorkerSpec, open_target: OpenTarget, row: Row, plan: Plan, workdir: Path, cwd: Path
) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    with open_target(workdir) as target, running_worker(spec, target, row.concurrency, workdir, cwd) as proc:
        rss = idle_rss(proc)
        rate, cpu, lost = throughput(target, proc, row.tasks)
        lat = pickup_latencies(target, plan.pickups)
    return {
        "rate": rate,
        "cpu_ms": cpu * 1000,
        "p50": percentile(lat, 50) if lat else math.nan,
        "p99": percentile(lat, 99) if lat else math.nan,
        "rss": rss,
        "lost": lost + plan.pickups - len(lat),
    }


def _summary(row: Row, label: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    rates = [r["rate"] for r in runs]
    return {
        "worker": row.worker,
        "orchestrator": label,
        "concurrency": row.concurrency,
        "tasks_per_s": spread(rates),
        "pickup_p50_ms": spread([r["p50"] for r in runs]),
        "pickup_p99_ms": spread([r["p99"] for r in runs]),
        "cpu_ms_per_task": spread([r["cpu_ms"] for r in runs]),
        "idle_rss_mb": spread([r["rss"] for r in runs]),
        "runs": {"tasks_per_s": rates, "idle_rss_mb": [r["rss"] for r in runs]},
        "tasks_per_run": row.tasks,
        "unfinished_tasks": sum(r["lost"] for r in runs),
        "load": os.getloadavg(),
    }


def measure_cancel(
    spec: WorkerSpec, target: Target, websocket: bool, plan: Plan, tmp: Path, cwd: Path
) -> dict[str, Any]:
    """Cancel request -> handler stopped, over the WebSocket or through the Redis flag only."""
    extra = {"WORKER_ENABLE_WEBSOCKETS": "true" if websocket else "false", "BENCH_HOLD_SKILL": "1"}
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
