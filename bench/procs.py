"""Processes under test: a baked project, the mock or real orchestrator, and workers, with /proc readings."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from baking import bake_in, make_sandbox
from processes import free_port, logged_process, orchestrator_python, redis_server

HERE = Path(__file__).resolve().parent
WORKER_TOKEN, CLIENT_TOKEN = "bench-worker-token", "bench-client-token"
OFFICIAL_PIN = "avtomatika-worker==1.0b20"
CLK_TCK = os.sysconf("SC_CLK_TCK")

__all__ = [
    "CLIENT_TOKEN",
    "HERE",
    "REPO",
    "WORKER_TOKEN",
    "bake",
    "cpu_seconds",
    "free_port",
    "logged_process",
    "official_python",
    "orchestrator_python",
    "redis_server",
    "rss_mb",
    "wait_until",
    "worker_process",
]


def bake(root: Path) -> Path:
    """Bake the default project into `root` (isolated cookiecutter config) and return it."""
    return bake_in(make_sandbox(root / "sandbox"), root / "out")


def wait_until(condition: Callable[[], bool], timeout: float, what: str, pause: float = 0.002) -> None:
    """Re-check `condition` until it holds; raise naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(pause)


def official_python() -> Path:
    """A venv with the official SDK, created once (BENCH_OFFICIAL_VENV, default under ~/.cache)."""
    default = Path.home() / ".cache" / "avtomatika-template" / "official-1.0b20"
    venv = Path(os.environ.get("BENCH_OFFICIAL_VENV", default))
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", OFFICIAL_PIN], check=True)
    return python


@contextmanager
def worker_process(
    python: Path | str, script: Path, env: dict[str, str], log: Path, cwd: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a worker script with `env` added to ours; stopped on exit."""
    with logged_process([str(python), str(script)], {**os.environ, **env}, log, cwd) as proc:
        yield proc


def rss_mb(pid: int) -> float:
    """Resident set size of `pid` in MiB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """CPU seconds used by `pid` so far, all threads (schedstat: ns; else user + system clock ticks)."""
    try:
        return (
            sum(
                int((task / "schedstat").read_text().split()[0])
                for task in Path(f"/proc/{pid}/task").iterdir()
            )
            / 1e9
        )
    except (OSError, ValueError):  # kernels without schedstats: 10 ms resolution
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
