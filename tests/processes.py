"""Real services for the template's tests: redis-server, the real orchestrator and baked workers."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# The generated project's own copy (copied verbatim), so the template and its users run the same code.
ORCHESTRATOR_DIR = REPO_ROOT / "{{cookiecutter.worker_name}}" / "orchestrator"
ORCHESTRATOR_REQUIREMENTS = ORCHESTRATOR_DIR / "requirements.txt"
# Likewise the generated project's test helpers: one free_port and one skip-or-fail policy for both.
sys.path.append(str(REPO_ROOT / "{{cookiecutter.worker_name}}" / "tests"))

from services import free_port, skip_or_fail

__all__ = ["free_port", "skip_or_fail"]  # re-exported: the template's tests import them from here


def wait_for(condition: Callable[[], bool], timeout: float, what: str, pause: float = 0.05) -> None:
    """Re-check `condition` until it holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(pause)


def http_json(
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    context: ssl.SSLContext | None = None,
) -> Any:
    """Send a JSON request over loopback (https: with `context`) and decode the JSON reply (HTTP errors raise)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30, context=context) as response:
        return json.loads(response.read() or b"null")


def answers(url: str) -> bool:
    """Whether an HTTP GET of `url` succeeds."""
    try:
        http_json("GET", url)
        return True
    except (urllib.error.URLError, ConnectionError):
        return False


@contextmanager
def redis_server() -> Iterator[str]:
    """A throw-away redis-server on a free loopback port; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        skip_or_fail("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    args = [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # the server's own readiness line, not a timer
            if "Ready to accept connections" in line:
                break
        else:
            pytest.fail(f"redis-server exited with code {proc.wait()}")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def orchestrator_python(suffix: str = "", extra: tuple[str, ...] = ()) -> Path:
    """The interpreter of a venv holding the pinned real orchestrator, created on first use (a separate
    venv `<pin><suffix>` when `extra` packages are asked for: they change the orchestrator's behaviour)."""
    pin = ORCHESTRATOR_REQUIREMENTS.read_text().split()[0].split("==")[-1]
    venv = Path(os.environ.get("AVTOMATIKA_VENV", Path.home() / ".cache" / "avtomatika-template" / pin))
    venv = venv.with_name(venv.name + suffix)
    python, installed = venv / "bin" / "python", venv / ".installed"
    if installed.exists():
        return python
    venv.parent.mkdir(parents=True, exist_ok=True)
    with (venv.parent / f"{venv.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the other test processes wait for one install
        if not installed.exists():
            shutil.rmtree(venv, ignore_errors=True)  # a half-made venv from an interrupted run
            install = subprocess.run(
                [sys.executable, "-m", "venv", str(venv)], check=False, capture_output=True, text=True
            )
            if install.returncode == 0:
                requirements = ["-r", str(ORCHESTRATOR_REQUIREMENTS), *extra]
                pip = [str(python), "-m", "pip", "install", "-q", *requirements]
                install = subprocess.run(pip, check=False, capture_output=True, text=True)
            if install.returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)
                skip_or_fail(f"could not install the real orchestrator into {venv}: {install.stderr[-2000:]}")
            installed.touch()
    return python


def orchestrator_s3_python() -> Path:
    """orchestrator_python() with its S3 mode's extra installed (`avtomatika[s3]`: obstore, aiofiles)."""
    python = orchestrator_python()
    pin = ORCHESTRATOR_REQUIREMENTS.read_text().split()[0].split("==")[-1]
    marker = python.parent.parent / ".installed-s3"
    with (python.parent.parent.parent / f"{python.parent.parent.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists():
            pip = [str(python), "-m", "pip", "install", "-q", f"avtomatika[s3]=={pin}"]
            install = subprocess.run(pip, check=False, capture_output=True, text=True)
            if install.returncode != 0:
                skip_or_fail(f"could not install avtomatika[s3] into {python}: {install.stderr[-2000:]}")
            marker.touch()
    return python


@contextmanager
def logged_process(
    args: list[str], env: dict[str, str], log: Path, cwd: Path, grace: float = 15.0
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a process with its output in `log`; stop it (SIGTERM, then SIGKILL after `grace` s) on exit."""
    with log.open("wb") as out:
        proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
