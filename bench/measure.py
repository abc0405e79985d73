"""One measurement = one worker process against one target: throughput, pickup, cancel, RSS, CPU/task."""

from __future__ import annotations

import math
import os
import signal
import statistics
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .procs import WORKER_TOKEN, cpu_seconds, free_port, rss_mb, wait_until, worker_process
from .targets import Submitted, Target

DRAIN_SECONDS = 120.0


@dataclass(frozen=True)
class WorkerSpec:
    """How to start one kind of worker: interpreter, script, extra environment."""

    name: str
    python: str
    script: Path
    env: dict[str, str]


def worker_env(
    spec: WorkerSpec, target: Target, worker_id: str, concurrency: int, tmp: Path
) -> dict[str, str]:
    """Environment of a worker against `target` (both SDKs' variable names; each ignores the other's)."""
    return {
        "ORCHESTRATOR_URL": target.url,
        "WORKER_TOKEN": WORKER_TOKEN,
        "WORKER_ID": worker_id,
        "REDIS_URL": target.redis_url,
        "WORKER_ENABLE_WEBSOCKETS": "false",
        "WORKER_LOG_FORMAT": "text",
        "WORKER_MAX_CONCURRENT_TASKS": str(concurrency),
        "MAX_CONCURRENT_TASKS": str(concurrency),
        "WORKER_SPOOL_DIR": str(tmp / f"spool-{worker_id}"),
        "WORKER_HEALTH_FILE": str(tmp / f"{worker_id}.health"),
        "WORKER_PORT": str(free_port()),
        "REQUIRE_TASK_SIGNATURE": "false",
        "BENCH_MARKS_FILE": str(tmp / "marks"),
        "LOG_LEVEL": "WARNING",
        # The throughput rows run without rate limits (mock, and the real orchestrator with
        # RATE_LIMITING_ENABLED=false); the rate-limit row passes the orchestrator's settings.
        "WORKER_RATE_LIMITS": "off",
        **spec.env,
    }


@contextmanager
def running_worker(
    spec: WorkerSpec,
    target: Target,
    concurrency: int,
    tmp: Path,
    cwd: Path,
    extra: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start the worker and return once the orchestrator lists it as registered."""
    worker_id = f"bench-{spec.name}-{uuid.uuid4().hex[:8]}"
    env = {**worker_env(spec, target, worker_id, concurrency, tmp), **(extra or {})}
    log = tmp / f"{worker_id}.log"
    with worker_process(spec.python, spec.script, env, log, cwd) as proc:

        def registered() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"worker {spec.name} exited: {log.read_text()[-3000:]}")
            return worker_id in target.worker_ids()

        wait_until(registered, 60, f"worker {spec.name} to register", pause=0.01)
        yield proc


def throughput(target: Target, proc: subprocess.Popen[bytes], tasks: int) -> tuple[float, float, int]:
    """Tasks/s over the handler start times of `tasks` queued while the worker was stopped; CPU s/task;
    how many did not end within the drain deadline (reported, not fatal)."""
    os.kill(proc.pid, signal.SIGSTOP)  # queue everything first, so submission never bounds the worker
    try:
        refs = [target.submit() for _ in range(tasks)]
    finally:
        cpu_before = cpu_seconds(proc.pid)
        os.kill(proc.pid, signal.SIGCONT)
    deadline = time.monotonic() + DRAIN_SECONDS
    # Wait on the last task queued first (one request at a time): asking about every task while the
    # worker drains would load the orchestrator that the worker is talking to. Once it has ended, the
    # others have (nearly) all ended too and are read back after the measured window.
    _ends_by(target, refs[-1].ref, deadline)
    cpu_used = cpu_seconds(proc.pid) - cpu_before
    ended = [sub for sub in refs if _ends_by(target, sub.ref, deadline)]
    starts = sorted(t for t in (target.started(sub.ref) for sub in ended) if t is not None)
    if len(starts) < 2:  # every job was lost (e.g. quarantined): reported as 0 tasks/s, never a crash
        return 0.0, 0.0, len(refs) - len(starts)
    return (len(starts) - 1) / (starts[-1] - starts[0]), cpu_used / len(starts), len(refs) - len(starts)


def _ends_by(target: Target, ref: str, deadline: float) -> bool:
    try:
        target.wait(ref, timeout=max(0.0, deadline - time.monotonic()))
    except TimeoutError:
        return False
    return True


def pickup_latencies(target: Target, tasks: int) -> list[float]:
    """Milliseconds from queued to handler start, one task at a time against an idle worker."""
    result = []
    for _ in range(tasks):
        sub: Submitted = target.submit()
        target.wait(sub.ref)
        started = target.started(sub.ref)
        if started is not None:  # a quarantined job never ran; it shows in the JSON as fewer samples
            result.append((started - sub.queued_at) * 1000)
    return result


def percentile(values: list[float], pct: float) -> float:
    """The `pct` percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))]


def _marks(path: Path) -> dict[tuple[str, str], float]:
    if not path.exists():
        return {}
    rows = [line.split() for line in path.read_text().splitlines() if line.count(" ") == 2]
    return {(event, tag): float(at) for event, tag, at in rows}


def cancel_latency(target: Target, marks: Path) -> float:
    """Milliseconds from the cancel request to the `hold` handler stopping."""
    tag = uuid.uuid4().hex
    sub = target.submit("hold", {"tag": tag})
    wait_until(lambda: ("start", tag) in _marks(marks), 30, f"hold task {tag} to start")
    asked = time.time()
    target.cancel(sub.ref)
    wait_until(lambda: ("stop", tag) in _marks(marks), 30, f"hold task {tag} to stop")
    target.wait(sub.ref)
    return (_marks(marks)[("stop", tag)] - asked) * 1000


def idle_rss(proc: subprocess.Popen[bytes]) -> float:
    """VmRSS in MiB of a registered, idle worker."""
    return rss_mb(proc.pid)


def spread(values: list[float]) -> dict[str, float]:
    """Median, min and max of the values that are numbers (NaN marks a run without a value)."""
    real = [v for v in values if not math.isnan(v)]
    if not real:
        return {"median": math.nan, "min": math.nan, "max": math.nan}
    return {"median": statistics.median(real), "min": min(real), "max": max(real)}
