"""The rate-limit row: tasks/min of one worker against the real orchestrator with its rate limits on."""

from __future__ import annotations

import math
import os
import re
import signal
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from .measure import WorkerSpec, running_worker, spread
from .targets import TERMINAL_JOB, Target, real_orchestrator

# One access-log line of the real orchestrator (LOG_FORMAT=text; aiohttp.access logs at INFO, which
# LOG_LEVEL=WARNING does not silence: it only sets the level of the `avtomatika` logger).
ACCESS = re.compile(r'^(\S+) - aiohttp\.access - \w+ - \S+ \[[^\]]*\] "(\w+) ([^ ?"]+)\S* [^"]*" (\d{3}) ')
FIRST_RESULT_WAIT_S = 30.0  # a registered worker with a backlog picks its first job within one long-poll
STORM_SIZE = 3  # this many 429s to one worker within one rate-limit period make a storm


@dataclass(frozen=True)
class Limits:
    """The orchestrator's rate-limit settings (requests per worker and message type per period)."""

    period: int  # RATE_LIMIT_PERIOD, s
    poll: int  # RATE_LIMIT_POLL_LIMIT
    heartbeat: int  # RATE_LIMIT_HEARTBEAT_LIMIT
    other: int  # RATE_LIMIT_LIMIT: results, registration, and the client API per address and path

    def env(self) -> dict[str, str]:
        """The settings as the orchestrator's environment, all explicit."""
        return {
            "RATE_LIMITING_ENABLED": "true",
            "RATE_LIMIT_PERIOD": str(self.period),
            "RATE_LIMIT_POLL_LIMIT": str(self.poll),
            "RATE_LIMIT_HEARTBEAT_LIMIT": str(self.heartbeat),
            "RATE_LIMIT_LIMIT": str(self.other),
        }

    def worker_env(self) -> dict[str, str]:
        """WORKER_RATE_LIMITS telling our SDK these settings (the official SDK has no such setting)."""
        limits = f"poll={self.poll},heartbeat={self.heartbeat},other={self.other},period={self.period}"
        return {"WORKER_RATE_LIMITS": limits}

    def allowed_per_min(self) -> float:
        """Tasks/min the poll limit allows one worker at concurrency 1 (one task per poll)."""
        return self.poll * 60 / self.period


@dataclass(frozen=True)
class RatePlan:
    """Sizes of the rate-limit row."""

    limits: Limits
    window_s: float  # measured window from the first handler start
    backlog: int  # noop jobs queued before the worker may poll (more than the window can take)
    runs: int


FULL_RATE = RatePlan(Limits(60, 60, 120, 100), 300.0, 400, int(os.environ.get("BENCH_RATE_RUNS", "1")))
SHORT_RATE = RatePlan(Limits(5, 10, 10, 20), 15.0, 60, 1)
WORKERS = ("ours", "official")


@dataclass(frozen=True)
class Request:
    """One worker request from the access log: when it was answered, its message type and status."""

    at: float
    kind: str
    status: int


def _kind(method: str, path: str) -> str:
    if path.endswith("/tasks/next"):
        return "poll"
    if path.endswith("/tasks/result"):
        return "result"
    if path.endswith("/register"):
        return "register"
    return "heartbeat" if method == "PATCH" else "other"


def worker_requests(log: Path) -> list[Request]:
    """Every /_worker/ request the orchestrator logged (one worker per orchestrator in this row)."""
    out = []
    for line in log.read_text(errors="replace").splitlines():
        match = ACCESS.match(line)
        if match and match[3].startswith("/_worker/"):
            at = datetime.fromisoformat(match[1]).timestamp()
            out.append(Request(at, _kind(match[2], match[3]), int(match[4])))
    return out


def storms(times: list[float], period: float) -> int:
    """Non-overlapping rate-limit periods, each opened by a 429, that hold STORM_SIZE or more 429s."""
    ordered, count, i = sorted(times), 0, 0
    while i + STORM_SIZE - 1 < len(ordered):
        if ordered[i + STORM_SIZE - 1] - ordered[i] <= period:
            count += 1
            end = ordered[i] + period
            while i < len(ordered) and ordered[i] <= end:
                i += 1
        else:
            i += 1
    return count


def max_per_period(times: list[float], period: float) -> int:
    """The most 429s within any one rate-limit period."""
    ordered = sorted(times)
    return max((sum(1 for u in ordered[i:] if u - t <= period) for i, t in enumerate(ordered)), default=0)


def bursts(starts: list[float], gap: float) -> list[float]:
    """Start times of the bursts: runs of handler starts separated by pauses longer than `gap`."""
    return [t for i, t in enumerate(starts) if i == 0 or t - starts[i - 1] > gap]


def rates(starts: list[float], window: float, period: float) -> dict[str, Any]:
    """Tasks/min over [first start, first start + window], and the steady state: tasks from the first
    burst's start up to the last burst's start over that time (without two bursts: the window's rate)."""
    if not starts:
        zero = {"tasks_in_window": 0, "tasks_per_min": 0.0, "steady_tasks_per_min": 0.0, "bursts": 0}
        return {**zero, "burst_offsets_s": [], "burst_sizes": []}
    inside = [t for t in starts if t <= starts[0] + window]
    heads = bursts(inside, period / 4)
    per_min = len(inside) * 60 / window
    steady = (
        sum(1 for t in inside if t < heads[-1]) * 60 / (heads[-1] - heads[0]) if len(heads) > 1 else per_min
    )
    return {
        "tasks_in_window": len(inside),
        "tasks_per_min": per_min,
        "steady_tasks_per_min": steady,
        "bursts": len(heads),
        "burst_offsets_s": [round(h - starts[0], 2) for h in heads],
        "burst_sizes": [
            sum(1 for t in inside if h <= t < nxt) for h, nxt in zip(heads, [*heads[1:], math.inf])
        ],
    }


def _first_result(log: Path, deadline: float) -> float | None:
    """Wall-clock time at which the log first shows an accepted result (after the handler started)."""
    while time.time() < deadline:
        if any(r.kind == "result" and r.status < 300 for r in worker_requests(log)):
            return time.time()
        time.sleep(0.05)
    return None


def _jobs(records: list[dict[str, Any]]) -> dict[str, Any]:
    starts, lost, waiting = [], 0, 0
    for rec in records:
        history = rec.get("state_history") or {}
        if rec["status"] == "finished" and "started" in history:
            starts.append(float(history["started"]))
        elif rec["status"] in TERMINAL_JOB or rec.get("task_picked_up_at") is not None:
            lost += 1  # failed/quarantined, or taken by the worker and never answered
        else:
            waiting += 1
    return {"starts": sorted(starts), "lost": lost, "not_reached": waiting}


def _orchestrator_env(plan: RatePlan) -> dict[str, str]:
    # WORKER_TIMEOUT_SECONDS (default 300) also bounds how long a dispatched job may wait in the
    # worker's queue; the backlog outlasts the window by design, so it is raised above the run's length.
    timeout = int(2 * plan.window_s + 120)
    return {**plan.limits.env(), "WORKER_TIMEOUT_SECONDS": str(timeout), "LOG_FORMAT": "text"}


def _drive(target: Target, spec: WorkerSpec, plan: RatePlan, workdir: Path, cwd: Path) -> list[str]:
    """Queue the backlog while the registered worker is stopped, then let it run for the window."""
    with running_worker(spec, target, 1, workdir, cwd, plan.limits.worker_env()) as proc:
        os.kill(proc.pid, signal.SIGSTOP)  # the dispatcher fails jobs that no registered worker can take
        try:
            refs = [target.submit().ref for _ in range(plan.backlog)]
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        resumed = time.time()
        first = _first_result(workdir / "real.log", resumed + FIRST_RESULT_WAIT_S)
        time.sleep(max(0.0, (first or resumed) + plan.window_s + 0.5 - time.time()))
    return refs  # the worker has been stopped (SIGTERM): the window is over


def one_window(spec: WorkerSpec, plan: RatePlan, workdir: Path, cwd: Path) -> dict[str, Any]:
    """One worker against a fresh rate-limited real orchestrator: tasks/min, 429s, storms, lost jobs."""
    workdir.mkdir(parents=True, exist_ok=True)
    begun = time.monotonic()
    with real_orchestrator(workdir, _orchestrator_env(plan)) as target:
        refs = _drive(target, spec, plan, workdir, cwd)
        jobs = _jobs([target.record(ref) for ref in refs])
    requests = worker_requests(workdir / "real.log")
    refused = [r.at for r in requests if r.status == 429]
    kinds = sorted({r.kind for r in requests})
    return {
        **rates(jobs["starts"], plan.window_s, plan.limits.period),
        "http_429": {k: sum(1 for r in requests if r.kind == k and r.status == 429) for k in kinds},
        "requests": {k: sum(1 for r in requests if r.kind == k) for k in kinds},
        "http_429_total": len(refused),
        "storms": storms(refused, plan.limits.period),
        "max_429_per_period": max_per_period(refused, plan.limits.period),
        "finished": len(jobs["starts"]),
        "lost": jobs["lost"],
        "not_reached": jobs["not_reached"],
        "wall_s": time.monotonic() - begun,
    }


def measure_ratelimit(
    specs: dict[str, WorkerSpec], plan: RatePlan, tmp: Path, cwd: Path, mode: str
) -> dict[str, Any]:
    """Both SDKs, runs interleaved (run 1 of each, then run 2, ...), each on a fresh orchestrator."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in WORKERS}
    load_start = os.getloadavg()
    for run in range(plan.runs):
        for name in WORKERS:
            workdir = tmp / f"ratelimit-{name}-run{run}"
            runs[name].append(one_window(specs[name], plan, workdir, cwd))
    return {
        "mode": mode,
        "measured_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "limits": asdict(plan.limits),
        "orchestrator_env": _orchestrator_env(plan),
        "allowed_per_min": plan.limits.allowed_per_min(),
        "window_s": plan.window_s,
        "backlog": plan.backlog,
        "concurrency": 1,
        "runs": plan.runs,
        "load_start": load_start,
        "load_end": os.getloadavg(),
        "workers": [_summary(name, runs[name]) for name in WORKERS],
    }


def _summary(name: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "worker": name,
        "tasks_per_min": spread([r["tasks_per_min"] for r in runs]),
        "steady_tasks_per_min": spread([r["steady_tasks_per_min"] for r in runs]),
        "http_429": spread([float(r["http_429_total"]) for r in runs]),
        "storms": spread([float(r["storms"]) for r in runs]),
        "lost": sum(r["lost"] for r in runs),
        "runs": runs,
    }
