"""Human-readable output of ``python -m mock_orchestrator.cli``: durations, tables, task details."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from typing import Any


def shorten(text: str, limit: int) -> str:
    """``text`` cut at ``limit`` characters."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def compact(value: Any, limit: int = 100) -> str:
    """One-line JSON, cut at ``limit`` characters."""
    return shorten(json.dumps(value, ensure_ascii=False), limit)


def _round(value: float) -> int:
    """Nearest integer, halves up: JavaScript's Math.round, so that CLI and dashboard agree to the digit."""
    whole = math.floor(value)
    return whole + 1 if value - whole >= 0.5 else whole


def human_duration(value: float) -> str:
    """A duration for people: 12 ms, 3.4 s, 42 s, 4 min 5 s, 1 h 59 min.

    Rounded to the smallest unit shown first, then split, so 299.6 s is "5 min 0 s", never "4 min 60 s".
    The dashboard's ``duration`` (static/format.js) is the same rule, line for line.
    """
    value = max(0.0, value)
    millis = _round(value * 1000)
    if millis < 1000:
        return f"{millis} ms"
    tenths = _round(value * 10)
    if tenths < 100:
        return f"{tenths / 10:.1f} s"
    whole_seconds = _round(value)
    if whole_seconds < 60:
        return f"{whole_seconds} s"
    if whole_seconds < 3600:
        return f"{whole_seconds // 60} min {whole_seconds % 60} s"
    minutes = _round(value / 60)
    return f"{minutes // 60} h {minutes % 60} min"


def clock(epoch: float | None) -> str:
    """Local wall-clock time of an epoch, or '-'."""
    return time.strftime("%H:%M:%S", time.localtime(epoch)) if epoch else "-"


def duration(task: Mapping[str, Any], now: float) -> str:
    """How long the task waited (queued), has run (running) or ran (done)."""
    if task["status"] == "queued":
        return f"waiting {human_duration(now - task['created_at'])}"
    started = task.get("started_at")
    if not started:
        return "-"
    end = task.get("finished_at") or (now if task["status"] == "running" else None)
    return human_duration(end - started) if end else "-"


def outcome(task: Mapping[str, Any]) -> str:
    """The result in one line: data, the error, progress, or the orchestrator's explanation."""
    error = task.get("error")
    if error:
        return f"{error.get('code', 'ERROR')}: {error.get('message', '')}"
    if task.get("data") is not None:
        return compact(task["data"])
    if task["status"] == "running" and isinstance(task.get("progress"), (int, float)):
        return f"{task['progress'] * 100:.0f}% {task.get('progress_message') or ''}".rstrip()
    return str(task.get("error_message") or "")


def table(rows: list[list[str]]) -> str:
    """Left-aligned columns separated by two spaces."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def task_table(tasks: list[dict[str, Any]], now: float) -> str:
    """The tasks as a table, one per line."""
    rows = [["TASK", "TYPE", "STATUS", "WORKER", "SUBMITTED", "DURATION", "RESULT"]]
    for t in tasks:
        rows.append([
            t["task_id"], t["type"], t["status"], t.get("worker_id") or "-", clock(t["created_at"]),
            duration(t, now), shorten(outcome(t), 60),
        ])  # fmt: skip
    return table(rows)


def task_details(task: Mapping[str, Any], now: float) -> str:
    """Every field of one task, one per line."""
    lines = [
        ("task", task["task_id"]), ("type", task["type"]), ("status", task["status"]),
        ("worker", task.get("worker_id") or "-"), ("priority", f"{task['priority']:g}"),
        ("submitted", clock(task["created_at"])), ("started", clock(task.get("started_at"))),
        ("finished", clock(task.get("finished_at"))), ("duration", duration(task, now)),
    ]  # fmt: skip
    if task.get("deadline"):
        lines.append(("deadline", clock(task["deadline"])))
    attempts = task.get("attempts") or []
    if len(attempts) > 1:
        lines.append(("attempts", ", ".join(f"{a['task_id']} {a['status']}" for a in attempts)))
    lines.append(("params", compact(task["params"], 400)))
    if task.get("data") is not None:
        lines.append(("data", compact(task["data"], 400)))
    error = task.get("error")
    if error:
        lines.append(("error", f"{error.get('code', 'ERROR')}: {error.get('message', '')}"))
    if task.get("error_message"):
        lines.append(("explanation", str(task["error_message"])))
    lines.extend(_task_extras(task))
    return "\n".join(f"{name:<12}{value}" for name, value in lines)


def _task_extras(task: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Requirements the task was submitted with and what its worker reported beside the data."""
    labels = {
        "skill_version": "pinned ver",
        "skill_type": "pinned type",
        "max_cost": "max cost",
        "resource_requirements": "requires",
        "waiting_reason": "waiting",
    }
    lines = [
        (label, task[name] if isinstance(task[name], str) else compact(task[name], 400))
        for name, label in labels.items()
        if task.get(name) is not None
    ]
    if task.get("metadata"):
        lines.append(("metadata", compact(task["metadata"], 400)))
    for entry in task.get("output_files") or []:
        size = f" ({entry['size']} bytes)" if isinstance(entry.get("size"), int) else ""
        lines.append(("output file", f"{entry.get('name') or entry['uri']}{size}: {entry['download']}"))
    if task.get("costs"):
        lines.append(("costs", compact(task["costs"], 400)))
    if task.get("picked_up_at"):
        lines.append(("picked up", str(task["picked_up_at"])))
    for event in task.get("events") or []:
        lines.append(
            (
                "event",
                f"{clock(event.get('received_at'))} {event['event_type']} {compact(event['payload'], 80)}",
            )
        )
    return lines


def _skill_line(skill: Mapping[str, Any], hot: list[Any]) -> str:
    parts = [str(skill["name"])]
    parts += [f"{key} {skill[key]}" for key in ("version", "type") if skill.get(key)]
    if skill["name"] in hot:
        parts.append("hot")
    if skill.get("output_statuses"):
        parts.append(f"statuses {', '.join(map(str, skill['output_statuses']))}")
    parts += [
        f"{key} {compact(skill[key], 200)}" for key in ("input_schema", "output_schema") if skill.get(key)
    ]
    if skill.get("events_schema"):
        parts.append(f"events {', '.join(skill['events_schema'])}")
    text = "; ".join(parts)
    return f"{text} - {skill['description']}" if skill.get("description") else text


def worker_details(worker: Mapping[str, Any]) -> str:
    """Everything a worker declared (skills in full, resources, software, artifacts, costs), one per line."""
    lines = [
        ("worker", worker["worker_id"]), ("type", worker["worker_type"]), ("status", worker["status"]),
        ("registered", clock(worker.get("registered_at"))), ("heartbeat", clock(worker.get("last_heartbeat"))),
    ]  # fmt: skip
    hot = list(worker.get("hot_skills") or [])
    lines += [("skill", _skill_line(s, hot)) for s in worker.get("supported_skills") or []]
    capabilities = worker.get("capabilities") or {}
    for name, value in (
        ("resources", worker.get("resources")),
        ("software", worker.get("installed_software")),
        ("artifacts", worker.get("installed_artifacts")),
        ("costs", capabilities.get("cost_per_skill")),
        ("extra", capabilities.get("extra")),
    ):
        if value:
            lines.append((name, compact(value, 400)))
    return "\n".join(f"{name:<12}{value}" for name, value in lines)


def change_line(task: Mapping[str, Any]) -> str:
    """One line of ``watch`` output."""
    worker = f" on {task['worker_id']}" if task.get("worker_id") else ""
    detail = outcome(task)
    return f"{clock(time.time())}  {task['task_id']}  {task['type']}  {task['status']}{worker}" + (
        f"  {detail}" if detail else ""
    )
