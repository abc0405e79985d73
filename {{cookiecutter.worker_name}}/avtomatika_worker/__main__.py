"""`python -m avtomatika_worker run --app my_worker:worker`: the official SDK's command line.

`run` imports the `Worker` named by `--app` (module:attribute, the working directory first on the path)
and runs it serving `GET /health` on WORKER_PORT (8083 when unset), as the official SDK does;
`--no-health-check` runs it without. `--reload` (development) runs it in a child process restarted when a
`.py` file under the working directory changes; it needs the `watchfiles` package, which the image lacks.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import shlex
import sys

from .config import WorkerConfig, load_env_file
from .errors import ConfigError
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
    run.add_argument(
        "--reload", action="store_true", help="restart on .py changes (development; needs watchfiles)"
    )
    args = parser.parse_args(argv)
    if args.reload:
        return _run_reloading(args.app, not args.no_health_check)
    return _run(args.app, not args.no_health_check)


def _run(app: str, health_check: bool) -> int:
    sys.path.insert(0, os.getcwd())
    try:
        worker = load_app(app)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if health_check:
        worker.run_with_health_check()
    else:
        worker.run()
    return 0


def _run_reloading(app: str, health_check: bool) -> int:
    try:
        import watchfiles
    except ImportError:
        print(
            "error: --reload needs the watchfiles package (a development tool, not in the image): "
            "pip install watchfiles, or leave out --reload",
            file=sys.stderr,
        )
        return 2
    command = [sys.executable, "-m", "avtomatika_worker", "run", "--app", app]
    if not health_check:
        command.append("--no-health-check")
    # A command, not a function: the child imports the changed code afresh. SIGINT gives it the
    # worker's clean stop (running tasks get WORKER_SHUTDOWN_TIMEOUT, then are handed back) before the
    # restart, so the watcher waits that long (+2 s) before it kills.
    watchfiles.run_process(
        os.getcwd(),
        target=shlex.join(command),
        target_type="command",
        watch_filter=watchfiles.PythonFilter(),
        sigint_timeout=math.ceil(_shutdown_timeout()) + 2,
    )
    return 0


def _shutdown_timeout() -> float:
    load_env_file()
    try:
        return WorkerConfig.from_env("reload").shutdown_timeout
    except ConfigError:
        return WorkerConfig.shutdown_timeout  # the child reports the configuration error itself


if __name__ == "__main__":
    raise SystemExit(main())
