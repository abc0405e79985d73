"""What the tests run against and wait with: free loopback ports, condition waits, and a real Redis.

Redis comes the way users have it: the `redis-server` binary if it is installed, else the Redis image of
this project's compose stack run in Docker. A test never passes by skipping: with neither, it fails and
says how to get one. `TEST_REDIS=server` or `TEST_REDIS=docker` forces one way.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
REDIS_READY_TIMEOUT = 60.0  # a generous bound for a cold Docker; reached only when something is broken
FAILED_KEY = pytest.StashKey[bool]()  # set on a test item that failed (conftest.py), read by the e2e logs


def skip_or_fail(reason: str) -> None:
    """Skip for a developer without the tool (Docker for the e2e suite); fail in CI, where all must run."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this test may not skip)")
    pytest.skip(reason)


def free_port() -> int:
    """A TCP port that is free on the loopback interface right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Re-check `condition` until it holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


async def eventually(predicate: Callable[[], bool], within: float = 10.0, what: str = "condition") -> None:
    """Wait until `predicate()` holds, failing after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"{what} not met within {within:g} s")
        await asyncio.sleep(0.01)


class RedisServer:
    """A throw-away Redis on a loopback port; `stop()` and `start()` again keep the port (outage tests)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.way = _redis_way()
        self._proc: subprocess.Popen[str] | None = None
        self._container = f"redis-test-{os.getpid()}-{self.port}"

    def start(self) -> None:
        """Start the server and return once it accepts connections."""
        if self.way == "server":
            self._start_binary()
        else:
            self._start_container()

    def stop(self) -> None:
        """Stop the server (its data is gone)."""
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
            self._proc = None
        elif self.way == "docker":
            subprocess.run(["docker", "rm", "-f", self._container], capture_output=True, check=False)

    def _start_binary(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self._proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert self._proc.stdout is not None
        for line in self._proc.stdout:  # the server's own readiness line, not a timer
            if "Ready to accept connections" in line:
                return
        raise AssertionError(f"redis-server exited with code {self._proc.wait()}")

    def _start_container(self) -> None:
        image = _compose_redis_image()
        run = ["docker", "run", "-d", "--rm", "--name", self._container, "-p", f"127.0.0.1:{self.port}:6379"]
        started = subprocess.run([*run, image], capture_output=True, text=True, check=False)
        if started.returncode != 0:
            raise AssertionError(f"could not start Redis in Docker ({image}): {started.stderr.strip()}")
        wait_until(self._answers, f"Redis in container {self._container}", REDIS_READY_TIMEOUT)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


def _redis_way() -> str:
    forced = os.environ.get("TEST_REDIS", "")
    if forced in ("server", "docker"):
        return forced
    if forced:
        raise AssertionError(f"TEST_REDIS={forced!r}: use 'server', 'docker' or leave it unset")
    if shutil.which("redis-server"):
        return "server"
    if shutil.which("docker") and _docker_answers():
        return "docker"
    raise AssertionError(
        "these tests need a real Redis: install redis-server (apt-get install redis-server, "
        "brew install redis) or start Docker (the compose stack's Redis image is used then)"
    )


def _docker_answers() -> bool:
    try:
        return (
            subprocess.run(["docker", "info"], capture_output=True, timeout=20, check=False).returncode == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def _compose_redis_image() -> str:
    """The image of the compose stack's `redis` service (what `docker compose up` runs)."""
    # Placeholders for the variables compose insists on, in case `.env` is missing: images need none.
    env = {"WORKER_TOKEN": "unused", "CLIENT_TOKEN": "unused", **os.environ}
    config = subprocess.run(
        ["docker", "compose", "config", "--images", "redis"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if config.returncode != 0 or not config.stdout.strip():
        raise AssertionError(f"`docker compose config --images redis` failed: {config.stderr.strip()}")
    return config.stdout.split()[0]
