"""`python -m bench [--short] [--out docs/benchmarks.json] [--no-docker] [--only SECTION ...] [--render-only]`:
measure, print, save the JSON, and render the Markdown page and the SVG chart from it."""

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

from .chart import svg
from .measure import WorkerSpec
from .procs import HERE, REPO, bake, official_python
from .ratelimit import FULL_RATE, SHORT_RATE, measure_ratelimit
from .report import markdown, table
from .suite import FULL, SHORT, OpenTarget, Plan, Row, measure_cancel, measure_rows, ratios
from .targets import Target, mock_orchestrator, real_orchestrator


def _specs(project: Path) -> dict[str, WorkerSpec]:
    py = sys.executable
    return {
        "ours": WorkerSpec("ours", py, HERE / "ours_worker.py", {"PYTHONPATH": str(project)}),
        "bare": WorkerSpec("bare", py, HERE / "bare_loop.py", {}),
        "official": WorkerSpec("official", str(official_python()), HERE / "official_worker.py", {}),
    }


def _ratio(
    found: dict[tuple[str, int], dict[str, Any]], name: str, conc: int, other: str, target: bool
) -> Any:
    return {
        "name": name,
        "ratio": ratios(found["ours", conc], found[other, conc]),
        "target": target,
    }


def _measure(
    doc: dict[str, Any],
    rows: list[Row],
    specs: dict[str, WorkerSpec],
    open_target: OpenTarget,
    plan: Plan,
    tmp: Path,
    project: Path,
    label: str,
) -> dict[tuple[str, int], dict[str, Any]]:
    found = {}
    for summary in measure_rows(rows, specs, open_target, plan, tmp, project, label):
        found[summary["worker"], summary["concurrency"]] = summary
        doc["workers"].append(summary)
    return found


def _against_mock(
    doc: dict[str, Any], specs: dict[str, WorkerSpec], plan: Plan, tmp: Path, project: Path, docker: bool
) -> None:
    def fresh_mock(workdir: Path) -> AbstractContextManager[Target]:
        return mock_orchestrator(project, workdir, sys.executable)

    rows = [
        Row(name, conc, plan.tasks) for name, conc in (("ours", 1), ("ours", 8), ("bare", 1), ("bare", 8))
    ]
    found = _measure(doc, rows, specs, fresh_mock, plan, tmp, project, "mock")
    for conc in (1, 8):
        doc["ratios"].append(
            _ratio(found, f"mock, concurrency {conc}: ours / bare loop tasks/s", conc, "bare", False)
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
    pairs = (("ours", 1), ("official", 1), ("bare", 1), ("ours", 8), ("official", 8))
    rows = [Row(name, conc, plan.real_tasks) for name, conc in pairs]
    found = _measure(doc, rows, specs, real_orchestrator, plan, tmp, project, "real")
    for conc in (1, 8):
        name = f"real orchestrator, concurrency {conc}: ours / official tasks/s"
        doc["ratios"].append(_ratio(found, name, conc, "official", conc == 1))
    name = "real orchestrator, concurrency 1: ours / bare loop tasks/s"
    doc["ratios"].append(_ratio(found, name, 1, "bare", False))


SECTIONS = ("mock", "real", "ratelimit", "files", "observe")
FILE_MB = {"short": 50, "full": 200}  # the object streamed down and up per file-throughput run


def _environment(plan: Plan, short: bool) -> dict[str, Any]:
    return {
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
    }


def _section(doc: dict[str, Any], name: str) -> dict[str, Any]:
    """The parts of `doc` that the section `name` fills (for --only: they replace the saved ones)."""
    if name in ("ratelimit", "files", "observe"):
        return {name: doc.get(name)}
    prefix = "mock" if name == "mock" else "real orchestrator,"
    extra = {"cancel": doc["cancel"], "image": doc["image"]} if name == "mock" else {}
    return {
        "workers": [w for w in doc["workers"] if w["orchestrator"] == name],
        "ratios": [r for r in doc["ratios"] if r["name"].startswith(prefix)],
        **extra,
    }


def merge(saved: dict[str, Any], fresh: dict[str, Any], only: list[str]) -> dict[str, Any]:
    """`saved` with the sections in `only` replaced by those of `fresh` (sections keep their order)."""
    parts = {name: _section(fresh if name in only else saved, name) for name in SECTIONS}
    doc = {**saved, "workers": [], "ratios": []}
    for part in parts.values():
        doc["workers"] += part.pop("workers", [])
        doc["ratios"] += part.pop("ratios", [])
        doc.update(part)
    earlier = saved["environment"].get("remeasured", {}).get("sections", [])
    sections = [*(name for name in earlier if name not in only), *only]  # every later re-measurement
    doc["environment"] = {
        **saved["environment"],
        "remeasured": {**fresh["environment"], "sections": sections},
    }
    return doc


def run(plan: Plan, short: bool, docker: bool, only: list[str]) -> dict[str, Any]:
    """Bake the default project and measure the sections in `only`; returns the JSON document."""
    doc: dict[str, Any] = {
        "workers": [],
        "ratios": [],
        "cancel": [],
        "image": None,
        "ratelimit": None,
        "files": None,
        "observe": None,
        "environment": _environment(plan, short),
    }
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp_name:
        tmp = Path(tmp_name)
        project = bake(tmp / "bake")
        specs = _specs(project)
        if "mock" in only:
            _against_mock(doc, specs, plan, tmp, project, docker)
        if "real" in only:
            _against_real(doc, specs, plan, tmp, project)
        if "ratelimit" in only:
            rate_plan = SHORT_RATE if short else FULL_RATE
            mode = doc["environment"]["mode"]
            doc["ratelimit"] = measure_ratelimit(specs, rate_plan, tmp, project, mode)
        if "files" in only:
            from .files import measure_files

            doc["files"] = measure_files(project, FILE_MB[doc["environment"]["mode"]], plan.runs)
        if "observe" in only:
            from .observe import measure_observe

            doc["observe"] = measure_observe(specs, plan, tmp, project)
    doc["environment"]["load_end"] = os.getloadavg()
    return doc


def render(doc: dict[str, Any], out: Path) -> None:
    """Write the JSON's Markdown page and SVG chart beside it (out.md, out.svg)."""
    chart = out.with_suffix(".svg")
    chart.write_text(svg(doc))
    out.with_suffix(".md").write_text(markdown(doc, chart.name))


def _docker_ok(parser: argparse.ArgumentParser, wanted: bool) -> bool:
    if not wanted:
        return False
    from .docker_bench import docker_problem

    problem = docker_problem()
    if problem is None:
        return True
    if os.environ.get("CI"):
        parser.error(f"{problem}; CI must measure the image (start Docker first)")
    print(f"image rows skipped: {problem} (start Docker, or pass --no-docker)", file=sys.stderr)
    return False


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, measure, print the table and write JSON, Markdown and SVG."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--short", action="store_true", help="1 run, few tasks (CI: keeps the command working)"
    )
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.json")
    parser.add_argument("--no-docker", action="store_true", help="skip the image measurements")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=SECTIONS,
        help="measure only these sections; the others are kept from an existing --out file",
    )
    parser.add_argument(
        "--render-only", action="store_true", help="measure nothing: re-render .md and .svg from --out"
    )
    args = parser.parse_args(argv)
    if args.render_only:
        doc = json.loads(args.out.read_text())
    else:
        only = args.only or list(SECTIONS)
        docker = _docker_ok(parser, not args.no_docker and "mock" in only)
        doc = run(SHORT if args.short else FULL, args.short, docker, only)
        if args.only and args.out.exists():
            doc = merge(json.loads(args.out.read_text()), doc, only)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=2) + "\n")
    render(doc, args.out)
    print(table(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
