"""`python -m bench [--short] [--out docs/benchmarks.json] [--no-docker]`: measure, print, save JSON + Markdown."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from .measure import WorkerSpec
from .procs import HERE, REPO, bake, official_python
from .report import markdown, table
from .suite import FULL, SHORT, Plan, measure_cancel, measure_worker, ratios
from .targets import Target, mock_orchestrator, real_orchestrator


def _specs(project: Path) -> dict[str, WorkerSpec]:
    py = sys.executable
    return {
        "ours": WorkerSpec("ours", py, HERE / "ours_worker.py", {"PYTHONPATH": str(project)}),
        "bare": WorkerSpec("bare", py, HERE / "bare_loop.py", {}),
        "official": WorkerSpec("official", str(official_python()), HERE / "official_worker.py", {}),
    }


def _against_mock(
    doc: dict[str, Any], specs: dict[str, WorkerSpec], plan: Plan, tmp: Path, project: Path, docker: bool
) -> None:
    def fresh_mock(workdir: Path) -> AbstractContextManager[Target]:
        return mock_orchestrator(project, workdir, sys.executable)

    found: dict[tuple[str, int], dict[str, Any]] = {}
    for name, conc in (("ours", 1), ("ours", 8), ("bare", 1), ("bare", 8)):
        found[name, conc] = measure_worker(
            specs[name], fresh_mock, conc, plan, tmp, project, plan.tasks, "mock"
        )
        doc["workers"].append(found[name, conc])
    for conc in (1, 8):
        doc["ratios"].append(
            {
                "name": f"mock, concurrency {conc}: ours / bare loop tasks/s",
                "ratio": ratios(found["ours", conc], found["bare", conc]),
                "target": False,
            }
        )
    with fresh_mock(tmp / "mock-cancel") as mock:
        for websocket in (True, False):
            doc["cancel"].append(measure_cancel(specs["ours"], mock, websocket, plan, tmp, project))
        if docker:
            from .docker_bench import measure_image

            doc["image"] = measure_image(project, mock, max(1, min(plan.runs, 3)))


def _against_real(
    doc: dict[str, Any], specs: dict[str, WorkerSpec], plan: Plan, tmp: Path, project: Path
) -> None:
    found: dict[tuple[str, int], dict[str, Any]] = {}
    for name, conc in (("ours", 1), ("official", 1), ("bare", 1), ("ours", 8), ("official", 8)):
        found[name, conc] = measure_worker(
            specs[name], real_orchestrator, conc, plan, tmp, project, plan.real_tasks, "real"
        )
        doc["workers"].append(found[name, conc])
    for conc in (1, 8):
        doc["ratios"].append(
            {
                "name": f"real orchestrator, concurrency {conc}: ours / official tasks/s",
                "ratio": ratios(found["ours", conc], found["official", conc]),
                "target": conc == 1,
            }
        )
    doc["ratios"].append(
        {
            "name": "real orchestrator, concurrency 1: ours / bare loop tasks/s",
            "ratio": ratios(found["ours", 1], found["bare", 1]),
            "target": False,
        }
    )


def run(plan: Plan, short: bool, docker: bool) -> dict[str, Any]:
    """Bake the default project and measure everything; returns the JSON document."""
    doc: dict[str, Any] = {
        "workers": [],
        "ratios": [],
        "cancel": [],
        "image": None,
        "environment": {
            "mode": "short" if short else "full",
            "runs": plan.runs,
            "tasks": plan.tasks,
            "real_tasks": plan.real_tasks,
            "pickups": plan.pickups,
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_start": os.getloadavg(),
            "mock_poll_hold_s": 30,
            "real_poll_timeout_s": 30,
        },
    }
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp_name:
        tmp = Path(tmp_name)
        project = bake(tmp / "bake")
        specs = _specs(project)
        _against_mock(doc, specs, plan, tmp, project, docker)
        _against_real(doc, specs, plan, tmp, project)
    doc["environment"]["load_end"] = os.getloadavg()
    return doc


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, measure, print the table and write JSON + Markdown."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--short", action="store_true", help="1 run, few tasks (CI: keeps the command working)"
    )
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.json")
    parser.add_argument("--no-docker", action="store_true", help="skip the image measurements")
    args = parser.parse_args(argv)
    docker = not args.no_docker
    if docker:
        from .docker_bench import docker_problem

        problem = docker_problem()
        if problem is not None:
            if os.environ.get("CI"):
                parser.error(f"{problem}; CI must measure the image (start Docker first)")
            print(f"image rows skipped: {problem} (start Docker, or pass --no-docker)", file=sys.stderr)
            docker = False
    doc = run(SHORT if args.short else FULL, args.short, docker)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(doc))
    print(table(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
