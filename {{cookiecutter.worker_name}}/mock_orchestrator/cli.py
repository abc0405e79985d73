"""``python -m mock_orchestrator.cli``: submit, list, show, cancel and watch tasks of the mock orchestrator.

Reads ``CLIENT_TOKEN`` and ``MOCK_ORCHESTRATOR_URL`` (default ``http://localhost:$MOCK_ORCHESTRATOR_PORT``,
port 8080) from the environment and from ``.env`` (the real environment wins); standard library only.
Exit codes: 0 done (a followed task ended well), 1 failed (unreachable, refused, not found, or the task
ended in failure, cancelled or quarantined), 2 bad input (arguments, params, configuration, HTTP 400).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from .cli_format import change_line, clock, shorten, table, task_details, task_table

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
ACTIVE = frozenset({"queued", "running"})
UNSUCCESSFUL = frozenset({"failure", "cancelled", "quarantined"})
REQUEST_TIMEOUT = 10.0
WAIT_SECONDS = 25.0  # one long poll of the control API; repeated until the task is done
PARAMS_EXAMPLE = '\'{"items": ["apple"]}\''
START_HINT = "start it with `docker compose up` (or `python -m mock_orchestrator`)"
EPILOG = """examples:
  python -m mock_orchestrator.cli submit check_inventory '{"items": ["apple"]}' --wait
  python -m mock_orchestrator.cli watch              follow every task (Ctrl-C ends)
  python -m mock_orchestrator.cli show 3f2a          a unique start of a task id is enough

CLIENT_TOKEN and MOCK_ORCHESTRATOR_URL (default http://localhost:$MOCK_ORCHESTRATOR_PORT, port 8080)
come from the environment or .env (the environment wins).
exit codes: 0 done; 1 failed (unreachable, refused, not found, or the task ended in failure, cancelled
or quarantined); 2 bad input (arguments, params, configuration, or refused by the mock with HTTP 400)."""


class CliError(Exception):
    """A problem reported in one line on stderr; ``code`` is the exit code, ``status`` the HTTP status."""

    def __init__(self, message: str, code: int = EXIT_FAILED, status: int | None = None) -> None:
        super().__init__(message)
        self.code, self.status = code, status


def load_settings(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables of ``.env`` (found from the current directory up) overlaid by the real environment."""
    values: dict[str, str] = {}
    try:
        from dotenv import dotenv_values, find_dotenv
    except ImportError:  # python-dotenv is optional; the environment alone is enough
        pass
    else:
        path = find_dotenv(usecwd=True)
        values.update({k: v for k, v in dotenv_values(path).items() if v is not None} if path else {})
    values.update(os.environ if environ is None else environ)
    return values


def base_url(settings: Mapping[str, str]) -> str:
    """MOCK_ORCHESTRATOR_URL, or http://localhost:MOCK_ORCHESTRATOR_PORT; validated."""
    url = settings.get("MOCK_ORCHESTRATOR_URL", "").strip()
    if not url:
        port = settings.get("MOCK_ORCHESTRATOR_PORT", "8080").strip() or "8080"
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise CliError(f"MOCK_ORCHESTRATOR_PORT={port!r} is invalid: must be a port number, e.g. 8080", 2)
        url = f"http://localhost:{port}"
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise CliError(
            f"MOCK_ORCHESTRATOR_URL={url!r} is invalid: must be an http(s) URL, e.g. http://localhost:8080", 2
        )
    return url.rstrip("/")


def client_token(settings: Mapping[str, str]) -> str:
    """CLIENT_TOKEN, required."""
    token = settings.get("CLIENT_TOKEN", "").strip()
    if not token:
        raise CliError(
            "CLIENT_TOKEN is not set: export it or run from the project folder, whose .env has it "
            "(the token the mock orchestrator was started with)",
            EXIT_USAGE,
        )
    return token


Opener = Callable[[urllib.request.Request, float], Any]


def _direct_opener() -> Opener:
    # The mock is local: a proxy configured for the internet must not intercept it.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return lambda request, timeout: opener.open(request, timeout=timeout)


@dataclass
class Client:
    """The control API over HTTP; every transport failure becomes a CliError here."""

    url: str
    token: str
    open: Opener = field(default_factory=_direct_opener)

    def call(self, method: str, path: str, body: Any = None, timeout: float = REQUEST_TIMEOUT) -> Any:
        """Send one request and return the decoded JSON reply."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        request.add_header("X-Client-Token", self.token)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with self.open(request, timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise self._refusal(exc) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CliError(
                f"cannot reach the mock orchestrator at {self.url} ({reason}): {START_HINT}, "
                "or set MOCK_ORCHESTRATOR_URL to where it listens"
            ) from None

    def _refusal(self, exc: urllib.error.HTTPError) -> CliError:
        try:
            reason = str(json.loads(exc.read()).get("error", exc.reason))
        except (ValueError, AttributeError):
            reason = str(exc.reason)
        if exc.code == 403:
            return CliError(
                f"the mock orchestrator at {self.url} refused the client token ({reason}): set CLIENT_TOKEN "
                "to the one the mock was started with (CLIENT_TOKEN in the project's .env)",
                status=403,
            )
        if exc.code == 400:
            return CliError(f"the mock orchestrator rejected the request: {reason}", EXIT_USAGE, 400)
        return CliError(f"{reason} (HTTP {exc.code} from {self.url})", status=exc.code)

    def task(self, task_id: str, wait: float | None = None) -> dict[str, Any]:
        """One task's view; with ``wait``, once it is done or after that many seconds."""
        path = f"/api/v1/tasks/{urllib.parse.quote(task_id, safe='')}"
        if wait is None:
            return dict(self.call("GET", path))
        return dict(self.call("GET", f"{path}?wait={wait:g}", timeout=wait + REQUEST_TIMEOUT))

    def tasks(self) -> list[dict[str, Any]]:
        """Every task, newest first."""
        return list(self.call("GET", "/api/v1/tasks")["tasks"])

    def wait_for_change(self, since: int) -> int:
        """Block until the mock's state version exceeds ``since`` (or a while passed); the new version."""
        path = f"/api/v1/events?since={since}&wait={WAIT_SECONDS:g}"
        return int(self.call("GET", path, timeout=WAIT_SECONDS + REQUEST_TIMEOUT)["version"])


# --- commands --------------------------------------------------------------------------------------


@dataclass
class Session:
    """What a command works with: the API client, the output stream, the JSON switch and the clock."""

    client: Client
    out: TextIO
    as_json: bool = False
    clock: Callable[[], float] = time.time

    def emit(self, text: str, data: Any) -> None:
        """Print ``data`` as one JSON line with --json, else ``text``; flushed so pipes see it at once."""
        print(json.dumps(data, ensure_ascii=False) if self.as_json else text, file=self.out, flush=True)


def parse_params(raw: str, stdin: TextIO = sys.stdin) -> dict[str, Any]:
    """PARAMS_JSON (``-`` reads stdin) as a JSON object, or a CliError naming the problem."""
    text = stdin.read() if raw == "-" else raw
    try:
        params = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(
            f"PARAMS_JSON {shorten(text, 60)!r} is not valid JSON ({exc}); e.g. {PARAMS_EXAMPLE}", 2
        ) from None
    if not isinstance(params, dict):
        kind = "an array" if isinstance(params, list) else f"a {type(params).__name__}"
        raise CliError(
            f"PARAMS_JSON must be a JSON object, got {kind} ({shorten(text, 60)}); e.g. {PARAMS_EXAMPLE}", 2
        )
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


def cmd_submit(session: Session, args: argparse.Namespace) -> int:
    """Queue a task; with --wait, also wait for it and show how it ended."""
    body: dict[str, Any] = {"type": args.type, "params": parse_params(args.params)}
    if args.priority is not None:
        body["priority"] = args.priority
    if args.deadline is not None:
        body["deadline"] = args.deadline
    task = dict(session.client.call("POST", "/api/v1/tasks", body))
    if not args.wait:
        session.emit(f"queued {task['task_id']} ({task['type']}, priority {task['priority']:g})", task)
        return EXIT_OK
    while task["status"] in ACTIVE:
        task = session.client.task(task["task_id"], wait=WAIT_SECONDS)
    session.emit(task_details(task, session.clock()), task)
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
    workers = list(session.client.call("GET", "/api/v1/workers")["workers"])
    rows = [["WORKER", "TYPE", "STATUS", "SKILLS", "LAST HEARTBEAT"]] + [
        [
            w["worker_id"],
            w["worker_type"],
            str(w["status"]),
            ", ".join(w["skills"]),
            clock(w.get("last_heartbeat")),
        ]
        for w in workers
    ]
    empty = f"no worker registered at {session.client.url}: start one with `docker compose up`"
    session.emit(table(rows) if workers else empty, {"workers": workers})
    return EXIT_OK


def cmd_dashboard(session: Session, args: argparse.Namespace) -> int:
    """The dashboard's address, carrying the client token (open it in a browser)."""
    from .dashboard import dashboard_url

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
    "dashboard": cmd_dashboard,
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (``--json`` and ``--url`` go after the command)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON (one object per line) for scripts")
    common.add_argument("--url", help="the mock orchestrator (default: MOCK_ORCHESTRATOR_URL or localhost)")
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
    submit.add_argument("--wait", action="store_true", help="wait until the task is done and show it")
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
    sub.add_parser("dashboard", parents=[common], help="print the dashboard's address with the token")
    return parser


def main(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run one command; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(environ)
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
