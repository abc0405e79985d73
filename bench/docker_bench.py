"""Image numbers: size (total and over the base image), cold start to registration, source-only rebuild."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from .procs import WORKER_TOKEN, wait_until
from .targets import Target


def _docker(*args: str) -> str:
    done = subprocess.run(["docker", *args], check=False, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"`docker {' '.join(args[:3])} ...` failed: {done.stderr.strip()[-2000:]}")
    return done.stdout.strip()


def docker_problem() -> str | None:
    """Why the image rows cannot be measured here (no docker CLI, engine not running), or None."""
    if shutil.which("docker") is None:
        return "no `docker` command"
    done = subprocess.run(["docker", "info"], check=False, capture_output=True, text=True)
    if done.returncode != 0:
        return f"the Docker engine is not reachable ({done.stderr.strip().splitlines()[-1:]})"
    return None


def _size_mb(image: str) -> float:
    return int(_docker("image", "inspect", "-f", "{{.Size}}", image)) / 1e6


def _build(project: Path, tag: str) -> float:
    started = time.monotonic()
    _docker("build", "-q", "-t", tag, str(project))
    return time.monotonic() - started


def base_image(project: Path) -> str:
    """The last FROM of the project's Dockerfile (the runtime stage)."""
    text = (project / "Dockerfile").read_text()
    defaults = dict(re.findall(r"^ARG\s+(\w+)=(\S+)", text, re.MULTILINE))
    image = re.findall(r"^FROM\s+(\S+)", text, re.MULTILINE)[-1]
    return re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], image)


def cold_start(tag: str, target: Target) -> float:
    """Seconds from `docker run` to the worker being listed by the mock (host network, loopback mock)."""
    worker_id = f"bench-docker-{uuid.uuid4().hex[:8]}"
    env = {"ORCHESTRATOR_URL": target.url, "WORKER_TOKEN": WORKER_TOKEN, "WORKER_ID": worker_id}
    flags = [f"-e{k}={v}" for k, v in env.items()]
    started = time.monotonic()
    container = _docker("run", "-d", "--rm", "--network", "host", *flags, tag)
    try:
        wait_until(lambda: worker_id in target.worker_ids(), 60, "the container's worker to register", 0.005)
        return time.monotonic() - started
    finally:
        subprocess.run(["docker", "rm", "-f", container], check=False, capture_output=True)


def measure_image(project: Path, target: Target, runs: int) -> dict[str, Any]:
    """Build the baked project's image and measure it; rebuilds after appending a comment to my_worker.py."""
    tag = f"bench-worker:{os.getpid()}"
    first_build = _build(project, tag)
    base = base_image(project)
    size, base_size = _size_mb(tag), _size_mb(base)
    starts = [cold_start(tag, target) for _ in range(runs)]
    rebuilds = []
    source = project / "my_worker.py"
    for i in range(runs):
        source.write_text(source.read_text() + f"# bench edit {i}\n")
        rebuilds.append(_build(project, tag))
    subprocess.run(["docker", "rmi", "-f", tag], check=False, capture_output=True)
    return {
        "image_mb": size,
        "base_image": base,
        "base_mb": base_size,
        "over_base_mb": size - base_size,
        "first_build_s": first_build,
        "cold_start_s": starts,
        "rebuild_s": rebuilds,
        "load": os.getloadavg(),
    }
