"""``python -m mock_orchestrator.cli``: submit, list, show, cancel and watch tasks of the mock orchestrator.

Reads ``CLIENT_TOKEN`` and where the mock is from the environment and from ``.env`` (the real environment
wins): ``MOCK_ORCHESTRATOR_URL``, else ``http://localhost:$MOCK_ORCHESTRATOR_PORT`` (default 8080, the port
``python -m mock_orchestrator`` listens on and ``docker compose`` publishes). Standard library only.
Exit codes: 0 done (a followed task ended well), 1 failed (unreachable, refused, not found, the task ended
in failure, cancelled or quarantined, or --timeout passed), 2 bad input (arguments, params, configuration,
HTTP 400).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

from .address import dashboard_url
from .cli_client import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    WAIT_SECONDS,
    Client,
    CliError,
    base_url,
    client_token,
)
from .cli_format import change_line, clock, shorten, table, task_details, task_table, worker_details
from .envfile import environment

ACTIVE = frozenset({"queued", "running"})
UNSUCCESSFUL = frozenset({"failure", "cancelled", "quarantined"})
REQUIREMENTS_EXAMPLE = '\'{"resources": {"devices": [{"type": "gpu"}]}}\''
PARAMS_EXAMPLE = '\'{"items": ["apple"]}\''
FILE_PARAM = "input_file"  # the param a bare --file PATH fills
EPILOG = """examples:
  python -m mock_orchestrator.cli submit check_inventory '{"items": ["apple"]}' --wait
  python -m mock_orchestrator.cli watch              follow every task (Ctrl-C ends)
  python -m mock_orchestrator.cli show 3f2a          a unique start of a task id is enough
  python -m mock_orchestrator.cli submit count_lines --file data.csv --wait
                                                     upload a file (s3_files); params.input_file = s3://...

CLIENT_TOKEN and MOCK_ORCHESTRATOR_PORT (default 8080; or MOCK_ORCHESTRATOR_URL for a mock elsewhere)
come from the environment or .env (the environment wins).
exit codes: 0 done; 1 failed (unreachable, refused, not found, the task ended in failure, cancelled or
quarantined, or --timeout passed); 2 bad input (arguments, params, configuration, or refused by the mock
with HTTP 400)."""


# --- commands --------------------------------------------------------------------------------------


@dataclass
class Session:
    """What a command works with: the API client, the output streams, the JSON switch and the clock."""

    client: Client
    out: TextIO
    as_json: bool = False
    clock: Callable[[], float] = time.time
    err: TextIO = sys.stderr

    def emit(self, text: str, data: Any) -> None:
        """Print ``data`` as one JSON line with --json, else ``text``; flushed so pipes see it at once."""
        print(json.dumps(data, ensure_ascii=False) if self.as_json else text, file=self.out, flush=True)

    def note(self, text: str) -> None:
        """A hint for the person at the terminal, on stderr (never in --json output)."""
        print(f"note: {text}", file=self.err, flush=True)


def parse_params(
    raw: str, stdin: TextIO = sys.stdin, name: str = "PARAMS_JSON", example: str = PARAMS_EXAMPLE
) -> dict[str, Any]:
    """PARAMS_JSON (``-`` reads stdin; or the option ``name``) as a JSON object, or a CliError naming the problem."""
    text = stdin.read() if raw == "-" else raw
    try:
        params = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{name} {shorten(text, 60)!r} is not valid JSON ({exc}); e.g. {example}", 2) from None
    if not isinstance(params, dict):
        kind = "an array" if isinstance(params, list) else f"a {type(params).__name__}"
        raise CliError(f"{name} must be a JSON object, got {kind} ({shorten(text, 60)}); e.g. {example}", 2)
    return params


def resolve(client: Client, task_id: str) -> dict[str, Any]:
    """The task with this id, or the only one whose id starts with it (``task-`` may be left out)."""
    try:
        return client.task(task_id)
    except CliError as exc:
        if exc.status != 404:
            raise
    prefixes = (task_id, f"task-{task_id}")
    matches = [t for t in client.tasks() if t["task_id"].startswith(prefixes)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise CliError(f"no task {task_id!r} (see `python -m mock_orchestrator.cli list`)")
    shown = ", ".join(t["task_id"] for t in matches[:5])
    raise CliError(f"{task_id!r} matches {len(matches)} tasks ({shown}); give more of the id", EXIT_USAGE)


def finished_code(task: Mapping[str, Any]) -> int:
    """Exit code for a task that is done."""
    return EXIT_FAILED if task["status"] in UNSUCCESSFUL else EXIT_OK


def follow(session: Session, task_id: str | None) -> Iterator[dict[str, Any]]:
    """Each task (or the one task) whenever it changes; parks on /api/v1/events in between."""
    seen: dict[str, tuple[Any, ...]] = {}
    version, first = 0, True
    while True:
        tasks = [session.client.task(task_id)] if task_id else session.client.tasks()
        for task in reversed(tasks):  # oldest first, like a log
            mark = (
                task["status"],
                task.get("worker_id"),
                task.get("progress"),
                len(task.get("attempts") or []),
            )
            # At start, all-task mode shows only what is still going on, not the whole history.
            if seen.get(task["task_id"]) != mark and (task_id or not first or task["status"] in ACTIVE):
                yield task
            seen[task["task_id"]] = mark
        if task_id and tasks[0]["status"] not in ACTIVE:
            return
        version, first = session.client.wait_for_change(version), False


def missing_skill(client: Client, task_type: str) -> str | None:
    """Why a task may wait for ever: no live worker has its skill. Names the skills there are."""
    workers = client.workers()
    if any(task_type in w["skills"] for w in workers):
        return None
    skills = sorted({skill for w in workers for skill in w["skills"]})
    there = (
        f"the registered skills are {', '.join(skills)}"
        if skills
        else "no worker is registered (start one with `docker compose up` or `python my_worker.py`)"
    )
    return f"no registered worker has skill {task_type!r}; {there}"


def wait_done(client: Client, task: dict[str, Any], timeout: float | None) -> dict[str, Any]:
    """The task once it is done, or as it is when ``timeout`` seconds have passed."""
    give_up = None if timeout is None else time.monotonic() + timeout
    while task["status"] in ACTIVE:
        wait = WAIT_SECONDS if give_up is None else min(WAIT_SECONDS, give_up - time.monotonic())
        if wait <= 0:
            break
        task = client.task(task["task_id"], wait=wait)
    return task


def attach_files(session: Session, body: dict[str, Any], files: list[str]) -> None:
    """Upload each ``[PARAM=]PATH`` and put its s3:// URI in params[PARAM], its FileMetadata in params_metadata."""
    for given in files:
        param, equals, path = given.partition("=")
        if not equals or os.path.exists(given):
            param, path = FILE_PARAM, given
        if not param.isidentifier():
            raise CliError(
                f"--file {given!r} is invalid: PARAM must be a name, e.g. --file report=data.csv", EXIT_USAGE
            )
        meta = session.client.upload(path)
        session.note(f"uploaded {path} as {meta['uri']} ({meta['size']} bytes); params.{param} is its URI")
        body["params"][param] = meta["uri"]
        body.setdefault("params_metadata", {})[param] = meta


def cmd_submit(session: Session, args: argparse.Namespace) -> int:
    """Queue a task; with --wait (or --timeout), also wait for it and show how it ended."""
    body: dict[str, Any] = {"type": args.type, "params": parse_params(args.params)}
    attach_files(session, body, args.file or [])
    if args.priority is not None:
        body["priority"] = args.priority
    if args.deadline is not None:
        body["deadline"] = args.deadline
    for name in ("skill_version", "skill_type", "max_cost"):
        if getattr(args, name) is not None:
            body[name] = getattr(args, name)
    if args.requirements is not None:
        body["resource_requirements"] = parse_params(
            args.requirements, name="--requirements", example=REQUIREMENTS_EXAMPLE
        )
    if args.metadata is not None:
        body["metadata"] = parse_params(args.metadata, name="--metadata", example='\'{"source": "cli"}\'')
    task = dict(session.client.call("POST", "/api/v1/tasks", body))
    waiting = args.wait or args.timeout is not None
    problem = missing_skill(session.client, task["type"]) if task["status"] in ACTIVE else None
    if problem:
        stop = "Ctrl-C stops waiting" if args.timeout is None else f"giving up after {args.timeout:g} s"
        session.note(
            f"{problem}: the task waits until a worker with it polls" + (f" ({stop})" if waiting else "")
        )
    if not waiting:
        session.emit(f"queued {task['task_id']} ({task['type']}, priority {task['priority']:g})", task)
        return EXIT_OK
    task = wait_done(session.client, task, args.timeout)
    session.emit(task_details(task, session.clock()), task)
    if task["status"] in ACTIVE:
        raise CliError(
            f"{task['task_id']} is still {task['status']} after {args.timeout:g} s; it stays queued "
            f"(cancel it with `python -m mock_orchestrator.cli cancel {task['task_id']}`)"
        )
    return finished_code(task)


def cmd_list(session: Session, args: argparse.Namespace) -> int:
    """All tasks, newest first."""
    tasks = session.client.tasks()
    empty = "no tasks yet: submit one with `python -m mock_orchestrator.cli submit TYPE '{...}'`"
    session.emit(task_table(tasks, session.clock()) if tasks else empty, {"tasks": tasks})
    return EXIT_OK


def cmd_show(session: Session, args: argparse.Namespace) -> int:
    """One task in detail."""
    task = resolve(session.client, args.task_id)
    session.emit(task_details(task, session.clock()), task)
    return EXIT_OK


def cmd_cancel(session: Session, args: argparse.Namespace) -> int:
    """Ask for a queued or running task to be cancelled."""
    task = resolve(session.client, args.task_id)
    task_id = task["task_id"]
    if task["status"] not in ACTIVE:
        raise CliError(
            f"{task_id} is already {task['status']}: only queued or running tasks can be cancelled"
        )
    reply = session.client.call("POST", f"/api/v1/tasks/{urllib.parse.quote(task_id, safe='')}/cancel")
    session.emit(f"cancellation of {task_id} requested", reply)
    return EXIT_OK


def cmd_watch(session: Session, args: argparse.Namespace) -> int:
    """Print every change of one task until it is done, or of all tasks until Ctrl-C."""
    task_id = resolve(session.client, args.task_id)["task_id"] if args.task_id else None
    last: dict[str, Any] | None = None
    for last in follow(session, task_id):
        session.emit(change_line(last), last)
    return finished_code(last) if last is not None else EXIT_OK


def cmd_workers(session: Session, args: argparse.Namespace) -> int:
    """The registered workers."""
    workers = session.client.workers()
    rows = [["WORKER", "TYPE", "STATUS", "SKILLS", "LAST HEARTBEAT"]] + [
        [
            w["worker_id"],
            w["worker_type"],
            f"{w['status']}{', polling' if w.get('polling') else ''}",
            ", ".join(w["skills"]),
            clock(w.get("last_heartbeat")),
        ]
        for w in workers
    ]
    empty = f"no worker registered at {session.client.url}: start one with `docker compose up`"
    session.emit(table(rows) if workers else empty, {"workers": workers})
    return EXIT_OK


def cmd_worker(session: Session, args: argparse.Namespace) -> int:
    """One worker in detail: every skill as published, resources, software, artifacts, costs."""
    workers = session.client.workers()
    found = [w for w in workers if w["worker_id"] == args.worker_id] or [
        w for w in workers if w["worker_id"].startswith(args.worker_id)
    ]
    if len(found) != 1:
        known = ", ".join(w["worker_id"] for w in workers) or "none"
        raise CliError(f"no single worker {args.worker_id!r} (registered: {known})")
    session.emit(worker_details(found[0]), found[0])
    return EXIT_OK


def cmd_dashboard(session: Session, args: argparse.Namespace) -> int:
    """The dashboard's address, carrying the client token (open it in a browser)."""
    url = dashboard_url(session.client.url, session.client.token)
    session.emit(url, {"url": url})
    return EXIT_OK


COMMANDS: dict[str, Callable[[Session, argparse.Namespace], int]] = {
    "submit": cmd_submit,
    "list": cmd_list,
    "show": cmd_show,
    "cancel": cmd_cancel,
    "watch": cmd_watch,
    "workers": cmd_workers,
    "worker": cmd_worker,
    "dashboard": cmd_dashboard,
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (``--json`` and ``--url`` go after the command)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON (one object per line) for scripts")
    common.add_argument(
        "--url",
        help="the mock orchestrator (default: MOCK_ORCHESTRATOR_URL, or localhost:MOCK_ORCHESTRATOR_PORT)",
    )
    parser = argparse.ArgumentParser(
        prog="python -m mock_orchestrator.cli",
        description="Drive the mock orchestrator's control API: submit, inspect, cancel and watch tasks.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    submit = sub.add_parser("submit", parents=[common], help="queue a task")
    submit.add_argument("type", metavar="TYPE", help="a skill your worker registers, e.g. check_inventory")
    submit.add_argument(
        "params", metavar="PARAMS_JSON", nargs="?", default="{}", help="a JSON object, '-' = stdin"
    )
    submit.add_argument("--priority", type=float, help="higher runs first (default 0)")
    submit.add_argument(
        "--deadline", type=float, metavar="S", help="seconds from now the task must finish in"
    )
    submit.add_argument("--skill-version", metavar="V", help="only a worker declaring this skill version")
    submit.add_argument("--skill-type", metavar="T", help="only a worker declaring this skill type")
    submit.add_argument("--max-cost", type=float, metavar="C", help="only a worker whose cost_per_skill <= C")
    submit.add_argument(
        "--requirements",
        metavar="JSON",
        help=f"resource_requirements, e.g. {REQUIREMENTS_EXAMPLE}",
    )
    submit.add_argument(
        "--metadata", metavar="JSON", help="the job's metadata; results' metadata is merged into it"
    )
    submit.add_argument(
        "--file",
        action="append",
        metavar="[PARAM=]PATH",
        help=f"upload PATH to the mock's S3 bucket; params.PARAM (default {FILE_PARAM}) becomes its s3:// URI "
        "(repeatable; needs the s3_files option's S3 settings)",
    )
    submit.add_argument("--wait", action="store_true", help="wait until the task is done and show it")
    submit.add_argument(
        "--timeout",
        type=float,
        metavar="S",
        help="with --wait: give up after S seconds (exit 1; implies --wait)",
    )
    sub.add_parser("list", parents=[common], help="list tasks, newest first")
    for name, text in (("show", "show one task"), ("cancel", "cancel a queued or running task")):
        sub.add_parser(name, parents=[common], help=text).add_argument(
            "task_id", metavar="TASK_ID", help="the task id, or a unique start of it"
        )
    watch = sub.add_parser(
        "watch", parents=[common], help="print changes until the task is done (all: Ctrl-C)"
    )
    watch.add_argument(
        "task_id", metavar="TASK_ID", nargs="?", help="one task; leave out to follow every task"
    )
    sub.add_parser("workers", parents=[common], help="list the registered workers")
    sub.add_parser(
        "worker", parents=[common], help="show one worker's declared skills and resources"
    ).add_argument("worker_id", metavar="WORKER_ID", help="the worker id, or a unique start of it")
    sub.add_parser("dashboard", parents=[common], help="print the dashboard's address with the token")
    return parser


def main(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run one command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "timeout", None) is not None and args.timeout <= 0:
        parser.error("--timeout must be a positive number of seconds, e.g. --timeout 30")
    try:
        settings = environment(environ)
        url = base_url(dict(settings, MOCK_ORCHESTRATOR_URL=args.url) if args.url else settings)
        session = Session(Client(url, client_token(settings)), sys.stdout, args.json)
        return COMMANDS[args.command](session, args)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:  # Ctrl-C is how `watch` ends
        return EXIT_OK if args.command == "watch" else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
