"""Render the results: the terminal table and docs/benchmarks.md, both from the JSON document."""

from __future__ import annotations

from typing import Any

TARGETS = {
    ("mock", "ours", 1): ("tasks_per_s", ">=", 1000.0),
    ("mock", "ours", 8): ("tasks_per_s", ">=", 3000.0),
}


def fmt(value: float) -> str:
    """A number with as many digits as its size deserves (1,234; 56.7; 8.90)."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


def span(stats: dict[str, float]) -> str:
    """`median (min-max)` of a measured figure."""
    return f"{fmt(stats['median'])} ({fmt(stats['min'])}-{fmt(stats['max'])})"


def _counts(stats: dict[str, float]) -> str:
    return f"{stats['median']:.0f} ({stats['min']:.0f}-{stats['max']:.0f})"


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def rows(doc: dict[str, Any]) -> list[list[str]]:
    """Table rows: metric, value (median (min-max)), target, verdict."""
    out: list[list[str]] = []
    for m in doc["workers"]:
        name = f"{m['worker']} vs {m['orchestrator']}, concurrency {m['concurrency']}"
        target = TARGETS.get((m["orchestrator"], m["worker"], m["concurrency"]))
        goal = f">= {target[2]:,.0f}" if target else ""
        verdict = _verdict(m["tasks_per_s"]["median"] >= target[2]) if target else ""
        out.append([f"{name}: tasks/s", span(m["tasks_per_s"]), goal, verdict])
        p99_goal = m["orchestrator"] == "mock" and m["worker"] == "ours"
        out.append([f"{name}: pickup p50 ms", span(m["pickup_p50_ms"]), "", ""])
        out.append(
            [
                f"{name}: pickup p99 ms",
                span(m["pickup_p99_ms"]),
                "<= 5" if p99_goal else "",
                _verdict(m["pickup_p99_ms"]["median"] <= 5) if p99_goal else "",
            ]
        )
        if m.get("unfinished_tasks"):
            out.append(
                [
                    f"{name}: tasks lost (never ran, e.g. quarantined, or not ended in 120 s)",
                    str(m["unfinished_tasks"]),
                    "0",
                    "MISSED",
                ]
            )
        out.append([f"{name}: CPU ms/task", span(m["cpu_ms_per_task"]), "", ""])
        rss_goal = m["concurrency"] == 1 and m["worker"] != "bare"
        out.append(
            [
                f"{name}: idle RSS MiB",
                span(m["idle_rss_mb"]),
                "<= 50" if rss_goal else "",
                _verdict(m["idle_rss_mb"]["median"] <= 50) if rss_goal else "",
            ]
        )
    for ratio in doc["ratios"]:
        out.append(
            [
                ratio["name"],
                span(ratio["ratio"]),
                ">= 20" if ratio["target"] else "",
                _verdict(ratio["ratio"]["median"] >= 20) if ratio["target"] else "",
            ]
        )
    for c in doc["cancel"]:
        ws = c["channel"] == "websocket"
        out.append(
            [
                f"cancel via {c['channel']} ({c['worker']} vs {c['orchestrator']}) ms",
                span(c["cancel_ms"]),
                "<= 100" if ws else "",
                _verdict(c["cancel_ms"]["median"] <= 100) if ws else "",
            ]
        )
    out.extend(_image_rows(doc.get("image")))
    out.extend(_rate_rows(doc.get("ratelimit")))
    out.extend(_file_rows(doc.get("files")))
    out.extend(_observe_rows(doc.get("observe")))
    return out


def _file_rows(files: dict[str, Any] | None) -> list[list[str]]:
    if not files:
        return []
    name = f"files through S3 ({files['size_mb']} MiB object, moto on loopback)"
    return [
        [f"{name}: worker TaskFiles down MB/s", span(files["worker_down_mb_s"]), "", ""],
        [f"{name}: bare obstore down MB/s", span(files["bare_down_mb_s"]), "", ""],
        [f"{name}: worker TaskFiles up MB/s", span(files["worker_up_mb_s"]), "", ""],
        [f"{name}: bare obstore up MB/s", span(files["bare_up_mb_s"]), "", ""],
        [
            f"{name}: worker peak RSS growth while downloading MiB",
            span(files["worker_down_rss_growth_mib"]),
            "< 30",
            _verdict(files["worker_down_rss_growth_mib"]["max"] < 30),
        ],
    ]


def _observe_rows(result: dict[str, Any] | None) -> list[list[str]]:
    """Report rows: tasks/s and CPU ms per task, off and on."""
    if not result:
        return []
    out = []
    for state in ("off", "on"):
        row = result[state]
        name = f"metrics+tracing {state} (ours vs mock, concurrency 1)"
        out.append([f"{name}: tasks/s", span(row["tasks_per_s"]), "", ""])
        out.append([f"{name}: CPU ms/task", span(row["cpu_ms_per_task"]), "", ""])
    out.append(
        ["metrics+tracing: added CPU ms/task (medians)", f"{result['added_cpu_ms_per_task']:.2f}", "", ""]
    )
    return out


def rate_title(rate: dict[str, Any]) -> str:
    """How the rate-limit row names its limits: default ones, or the scaled-down ones of short mode."""
    lim = rate["limits"]
    if (lim["period"], lim["poll"], lim["heartbeat"], lim["other"]) == (60, 60, 120, 100):
        return "default rate limits"
    return f"rate limits scaled down ({lim['poll']} polls / {lim['period']} s)"


def rate_goal(rate: dict[str, Any]) -> float:
    """Ours must reach 95 % of the tasks/min that the poll limit allows."""
    return 0.95 * float(rate["allowed_per_min"])


def _rate_rows(rate: dict[str, Any] | None) -> list[list[str]]:
    if not rate:
        return []
    out: list[list[str]] = []
    window = f"{rate['window_s'] / 60:g} min" if rate["window_s"] >= 60 else f"{rate['window_s']:g} s"
    for w in rate["workers"]:
        ours = w["worker"] == "ours"
        name = f"{w['worker']} vs real, {rate_title(rate)}"
        rpm = w["tasks_per_min"]["median"]
        storms = w["storms"]["max"]
        out += [
            [
                f"{name}: tasks/min over {window}",
                span(w["tasks_per_min"]),
                f">= {rate_goal(rate):.0f}" if ours else "",
                _verdict(rpm >= rate_goal(rate)) if ours else "",
            ],
            [f"{name}: steady tasks/min (first to last burst)", span(w["steady_tasks_per_min"]), "", ""],
            [f"{name}: HTTP 429 replies", _counts(w["http_429"]), "", ""],
            [
                f"{name}: 429 storms (>= 3 in one period)",
                _counts(w["storms"]),
                "0" if ours else "",
                _verdict(storms == 0) if ours else "",
            ],
            [
                f"{name}: jobs lost",
                str(w["lost"]),
                "0" if ours else "",
                _verdict(w["lost"] == 0) if ours else "",
            ],
        ]
    return out


def _image_rows(image: dict[str, Any] | None) -> list[list[str]]:
    if not image:
        return []
    from .measure import spread

    over = image["over_base_mb"]
    return [
        ["image size MB", fmt(image["image_mb"]), "", ""],
        [f"image over base ({image['base_image']}) MB", fmt(over), "<= 30", _verdict(over <= 30)],
        ["cold start s (docker run -> registered)", span(spread(image["cold_start_s"])), "", ""],
        ["rebuild s after a source-only change", span(spread(image["rebuild_s"])), "", ""],
    ]


def table(doc: dict[str, Any]) -> str:
    """A fixed-width text table."""
    body = [["metric", "median (min-max)", "target", ""], *rows(doc)]
    widths = [max(len(r[i]) for r in body) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in body)


def _rate_lines(rate: dict[str, Any] | None) -> list[str]:
    if not rate:
        return []
    env = " ".join(f"{k}={v}" for k, v in rate["orchestrator_env"].items())
    return [
        (
            f"- rate-limit row ({rate['mode']} mode, measured {rate['measured_at']}, {rate['runs']} run(s) per "
            f"worker, interleaved: one run each is enough at this length): a fresh real orchestrator per run "
            f"with `{env}`; {rate['backlog']} `noop` jobs queued while the registered worker is stopped "
            "(SIGSTOP: with no registered worker the dispatcher fails them), then concurrency 1 for "
            f"{rate['window_s']:g} s from the first handler start, and the worker is stopped (SIGTERM). "
            "WORKER_TIMEOUT_SECONDS is raised above the run's length because it also fails dispatched jobs "
            "still queued after that time; the client API is limited per address and path too, so the "
            "bench's own requests rotate over loopback source addresses."
        ),
        (
            f"- tasks/min: handler starts within [first start, first start + window] per minute; the poll "
            f"limit allows {rate['allowed_per_min']:g} (one task per poll). The orchestrator counts with "
            "INCR + EXPIRE on every request, rejected ones included, so a counter only resets after a whole "
            "period without requests of that type: a worker gets bursts, and the steady figure is the tasks "
            "from the first burst's start to the last burst's start over that time (no cut burst). 429s: "
            "the orchestrator's access log (every request with its status, even at LOG_LEVEL=WARNING); a "
            "storm is 3 or more 429s within one period (non-overlapping periods, each opened by a 429). "
            "Lost: jobs failed or quarantined, or taken by the worker and never answered; jobs the window "
            "did not reach are not lost."
        ),
    ]


def _file_lines(files: dict[str, Any] | None) -> list[str]:
    if not files:
        return []
    return [
        (
            f"- file rows ({files['runs']} run(s), alternating): one {files['size_mb']} MiB object on a moto S3 "
            "server (a separate process on loopback); the worker's path is a task run by the SDK's executor "
            "with `files: TaskFiles`: `download()` (streamed to disk, size and ETag checked against "
            "params_metadata, MD5 of the content checked) then `upload()` under jobs/<job_id>/; the bare "
            "client is obstore alone (GET streamed to a file, PUT of the file, no hashing), same server, same run. "
            "Peak RSS growth: VmHWM reset (/proc/self/clear_refs) just before the download."
        )
    ]


def _observe_lines(result: dict[str, Any] | None) -> list[str]:
    if not result:
        return []
    off = result["off"]
    return [
        (
            f"- metrics+tracing rows ({len(off['runs']['tasks_per_s'])} run(s) each, interleaved, "
            f"{off['tasks_per_run']} tasks per run, a fresh mock per run): off is the default worker (no "
            "WORKER_METRICS_PORT, no OTEL_* variable: every event goes to the no-op observer and OpenTelemetry "
            "is never imported, the code path of the other ours-vs-mock rows); on sets WORKER_METRICS_PORT "
            "and OTEL_EXPORTER_OTLP_ENDPOINT (OTLP/HTTP to an in-process sink that accepts and drops): a span "
            "per task and per request, and the Prometheus counters. The added CPU is the difference of the "
            "medians; tasks/s at concurrency 1 is bound by the round trip, so it moves with the machine's load."
        )
    ]


def markdown(doc: dict[str, Any], chart: str | None = None) -> str:
    """docs/benchmarks.md: how it was measured, the environment, the chart and the table."""
    env = doc["environment"]
    again = env.get("remeasured")
    lines = [
        "# Benchmarks",
        "",
        (
            "Generated by `make bench` (`python -m bench`) from `docs/benchmarks.json`; do not edit by hand "
            "(`python -m bench --render-only` re-renders this page and the chart from the JSON)."
        ),
        "",
        (
            f"- mode: {env['mode']}, {env['runs']} run(s), each on a fresh orchestrator and a fresh worker "
            f"process; per run {env['tasks']} tasks (mock) or {env['real_tasks']} jobs (real orchestrator, "
            f"every worker) for throughput, then {env['pickups']} sequential tasks for pickup latency"
        ),
        *(
            [f"- re-measured later with `--only {' '.join(again['sections'])}` ({again['mode']} mode)"]
            if again
            else []
        ),
        f"- machine: {env['cpus']} CPU(s), Python {env['python']}, load average at start {env['load_start']}",
        (
            f"- mock poll hold: {env['mock_poll_hold_s']} s; real orchestrator WORKER_POLL_TIMEOUT_SECONDS: "
            f"{env['real_poll_timeout_s']} s; rate limiting off (except in the rate-limit row), Redis storage"
        ),
        (
            "- throughput: tasks queued while the worker is stopped (SIGSTOP), then drained; rate = (n-1) / "
            "(last - first handler start). Pickup: one task at a time, queued (mock `created_at`, real: time "
            "before the job POST) to handler start (time.time() in the handler). Ratios pair runs of one "
            "invocation. Cancel: cancel request to the handler's stop mark (WebSocket on; or off, so only "
            "the Redis flag, read every WORKER_CANCEL_CHECK_INTERVAL = 0.5 s)."
        ),
        (
            "- CPU ms/task: the worker process's CPU time (all threads) while draining, per task finished. "
            "Idle RSS: VmRSS of the registered, idle worker. The mock runs with MOCK_LOG_LEVEL=WARNING, the real "
            "orchestrator with LOG_LEVEL=WARNING (1.0b30 still logs every HTTP request). The bare loop "
            "(`bench/bare_loop.py`) only polls and posts signed results: it bounds what any SDK can get."
        ),
        *_rate_lines(doc.get("ratelimit")),
        *_file_lines(doc.get("files")),
        *_observe_lines(doc.get("observe")),
        *(f"- note: {note}" for note in env.get("notes", [])),
        "",
        *([f"![Benchmark chart: medians with min-max whiskers]({chart})", ""] if chart else []),
        "| metric | median (min-max) | target | |",
        "|---|---|---|---|",
    ]
    lines += [f"| {' | '.join(r)} |" for r in rows(doc)]
    return "\n".join(lines) + "\n"
