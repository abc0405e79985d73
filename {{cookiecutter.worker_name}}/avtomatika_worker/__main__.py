"""`python -m avtomatika_worker run --app my_worker:worker`: the official SDK's command line.

`run` imports the `Worker` named by `--app` (module:attribute, the working directory first on the path)
and runs it serving `GET /health` on WORKER_PORT (8083 when unset), as the official SDK does;
`--no-health-check` runs it without. `--reload` is refused with the alternative, since restarting on
code changes needs a file watcher this SDK does not ship.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from .worker import Worker


def load_app(target: str) -> Worker:
    """The Worker at `module:attribute`; raises ValueError saying what is wrong and how to fix it."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"--app {target!r} must be module:attribute, e.g. --app my_worker:worker")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(
            f"--app {target!r}: cannot import {module_name!r} ({exc}); run from the project folder"
        ) from exc
    worker = getattr(module, attribute, None)
    if not isinstance(worker, Worker):
        found = type(worker).__name__ if worker is not None else "nothing"
        raise ValueError(
            f"--app {target!r}: {module_name}.{attribute} is {found}, not an avtomatika_worker.Worker"
        )
    return worker


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the worker; returns the exit code for a bad command line."""
    parser = argparse.ArgumentParser(prog="python -m avtomatika_worker", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a worker")
    run.add_argument(
        "--app", required=True, help="the Worker to run, as module:attribute (e.g. my_worker:worker)"
    )
    run.add_argument("--no-health-check", action="store_true", help="do not serve GET /health")
    run.add_argument("--health-check", action="store_true", help="serve GET /health (the default)")
    run.add_argument("--reload", action="store_true", help="not supported: see the message")
    args = parser.parse_args(argv)
    if args.reload:
        print(
            "--reload is not supported by this SDK: run `docker compose up --build` again, or restart "
            "`python my_worker.py`, after a change",
            file=sys.stderr,
        )
        return 2
    sys.path.insert(0, os.getcwd())
    try:
        worker = load_app(args.app)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.no_health_check:
        worker.run()
    else:
        worker.run_with_health_check()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
