"""CI short mode of the benchmark: the command runs end to end and fills every row (timings never asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from processes import orchestrator_python

pytestmark = pytest.mark.bench
REPO = Path(__file__).resolve().parents[1]
WORKER_ROWS = {
    ("mock", "ours", 1),
    ("mock", "ours", 8),
    ("mock", "bare", 1),
    ("mock", "bare", 8),
    ("real", "ours", 1),
    ("real", "official", 1),
    ("real", "bare", 1),
    ("real", "ours", 8),
    ("real", "official", 8),
}


def _positive(value: object) -> bool:
    if isinstance(value, dict):
        return all(_positive(v) for k, v in value.items() if k in {"median", "min", "max"})
    return isinstance(value, (int, float)) and value > 0


def test_short_benchmark_produces_every_row_with_positive_numbers(tmp_path: Path) -> None:
    orchestrator_python()  # installs (or skips/fails outside CI) before the benchmark needs it
    out = tmp_path / "benchmarks.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--short", "--out", str(out)],
        cwd=REPO,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    doc = json.loads(out.read_text())
    rows = {(w["orchestrator"], w["worker"], w["concurrency"]): w for w in doc["workers"]}
    assert set(rows) == WORKER_ROWS
    for key, row in rows.items():
        for metric in ("tasks_per_s", "pickup_p50_ms", "pickup_p99_ms", "idle_rss_mb", "cpu_ms_per_task"):
            assert _positive(row[metric]), (key, metric, row[metric])
        assert row["unfinished_tasks"] == 0, (key, "tasks lost or stuck")
    assert {c["channel"] for c in doc["cancel"]} == {"websocket", "redis_flag"}
    assert all(_positive(c["cancel_ms"]) for c in doc["cancel"])
    assert len(doc["ratios"]) == 5 and all(_positive(r["ratio"]) for r in doc["ratios"])
    if os.environ.get("CI"):
        assert doc["image"] is not None, "CI must measure the image"
    if doc["image"] is not None:
        assert _positive(doc["image"]["over_base_mb"]) and all(
            _positive(s) for s in doc["image"]["cold_start_s"]
        )
    markdown = out.with_suffix(".md").read_text()
    assert markdown.count("\n| ") >= 40 and "ours / official" in markdown
    assert "ours vs mock, concurrency 1: tasks/s" in done.stdout
