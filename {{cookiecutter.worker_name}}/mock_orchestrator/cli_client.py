"""The CLI's side of the control API: where the mock is, and one HTTP client whose failures are CliErrors.

Standard library only, like the whole CLI.
"""

from __future__ import annotations

import json
import mimetypes
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .address import parse_port, port_setting

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
REQUEST_TIMEOUT = 10.0
WAIT_SECONDS = 25.0  # one long poll of the control API; repeated until the task is done
START_HINT = "start it with `docker compose up` (or `python -m mock_orchestrator`)"


class CliError(Exception):
    """A problem reported in one line on stderr; ``code`` is the exit code, ``status`` the HTTP status."""

    def __init__(self, message: str, code: int = EXIT_FAILED, status: int | None = None) -> None:
        super().__init__(message)
        self.code, self.status = code, status


def base_url(settings: Mapping[str, str]) -> str:
    """MOCK_ORCHESTRATOR_URL, or http://localhost:<the port the mock listens on>; validated."""
    url = settings.get("MOCK_ORCHESTRATOR_URL", "").strip()
    if not url:
        name, raw = port_setting(settings)
        if parse_port(raw) is None:
            raise CliError(f"{name}={raw!r} is invalid: must be a port number, e.g. 8080", EXIT_USAGE)
        url = f"http://localhost:{raw}"
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise CliError(
            f"MOCK_ORCHESTRATOR_URL={url!r} is invalid: must be an http(s) URL, e.g. http://localhost:8080",
            EXIT_USAGE,
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
        if data is not None:
            request.add_header("Content-Type", "application/json")
        return self._send(request, timeout)

    def upload(self, path: str) -> dict[str, Any]:
        """Stream a local file to the mock's S3 bucket (POST /api/v1/files); its FileMetadata."""
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed below, after the request
        except OSError as exc:
            raise CliError(
                f"--file {path!r} cannot be read ({exc.strerror}): name a file", EXIT_USAGE
            ) from None
        with handle:
            name = urllib.parse.quote(os.path.basename(path))
            request = urllib.request.Request(
                f"{self.url}/api/v1/files?name={name}", data=handle, method="POST"
            )
            request.add_header("Content-Length", str(os.fstat(handle.fileno()).st_size))
            request.add_header("Content-Type", mimetypes.guess_type(path)[0] or "application/octet-stream")
            return dict(self._send(request, REQUEST_TIMEOUT))

    def _send(self, request: urllib.request.Request, timeout: float) -> Any:
        request.add_header("X-Client-Token", self.token)
        try:
            with self.open(request, timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise self._refusal(exc) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CliError(
                f"cannot reach the mock orchestrator at {self.url} ({reason}): {START_HINT}, "
                "or set MOCK_ORCHESTRATOR_PORT (or MOCK_ORCHESTRATOR_URL) to where it listens"
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
        if exc.code == 501:
            return CliError(f"{reason} (HTTP 501 from {self.url})", EXIT_USAGE, 501)
        return CliError(f"{reason} (HTTP {exc.code} from {self.url})", status=exc.code)

    def task(self, task_id: str, wait: float | None = None) -> dict[str, Any]:
        """One task's view; with ``wait``, once it is done or after that many seconds."""
        path = f"/api/v1/tasks/{urllib.parse.quote(task_id, safe='')}"
        if wait is None:
            return self._linked(self.call("GET", path))
        return self._linked(self.call("GET", f"{path}?wait={wait:g}", timeout=wait + REQUEST_TIMEOUT))

    def tasks(self) -> list[dict[str, Any]]:
        """Every task, newest first."""
        return [self._linked(task) for task in self.call("GET", "/api/v1/tasks")["tasks"]]

    def _linked(self, task: dict[str, Any]) -> dict[str, Any]:
        """The task with its output files' download links made absolute (they are relative to the mock)."""
        for entry in task.get("output_files") or []:
            if str(entry.get("download", "")).startswith("/"):
                entry["download"] = f"{self.url}{entry['download']}"
        return dict(task)

    def workers(self) -> list[dict[str, Any]]:
        """The live workers."""
        return list(self.call("GET", "/api/v1/workers")["workers"])

    def wait_for_change(self, since: int) -> int:
        """Block until the mock's state version exceeds ``since`` (or a while passed); the new version."""
        path = f"/api/v1/events?since={since}&wait={WAIT_SECONDS:g}"
        return int(self.call("GET", path, timeout=WAIT_SECONDS + REQUEST_TIMEOUT)["version"])
