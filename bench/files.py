"""The file-throughput row: MB/s down and up through the worker's task file workspace (TaskFiles: streamed
download checked against params_metadata, upload under the job's prefix) vs a bare obstore client, on the same
local moto S3 server in the same run."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .measure import spread

BUCKET = "avtomatika-payloads"
SERVER_START_S = 60.0

WORKER_CHILD = r"""
import asyncio, json, os, sys, time
from avtomatika_worker.executor import TaskTools, execute
from avtomatika_worker.files import FileStore
from avtomatika_worker.handlers import RegisteredHandler
from avtomatika_worker.s3 import FileSettings

url, uri, size, etag, tmp = sys.argv[1:6]
settings = FileSettings(endpoint_url=url, access_key="t", secret_key="t", workspace_dir=tmp + "/ws",
                        cache_dir=tmp + "/cache", cache_bytes=0)

def hwm_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

async def handler(params, files):
    open("/proc/self/clear_refs", "w").write("5")
    before = hwm_kib()
    started = time.perf_counter()
    path = await files.download("input")
    down = time.perf_counter() - started
    grown = hwm_kib() - before
    started = time.perf_counter()
    await files.upload(path.name, "bench-up.bin")
    up = time.perf_counter() - started
    return {"status": "success", "data": {"down_s": down, "up_s": up, "rss_growth_kib": grown}}

task = {"job_id": "bench-job", "task_id": "bench-task", "params": {"input": uri},
        "params_metadata": {"input": {"uri": uri, "size": int(size), "etag": etag}}}
outcome = asyncio.run(execute(RegisteredHandler.wrap("files", handler), task,
                              TaskTools(files=FileStore(settings).workspace)))
assert outcome.status == "success", outcome
print(json.dumps(outcome.data))
sys.stdout.flush()
os._exit(0)  # obstore's runtime threads sometimes abort (SIGABRT) during interpreter finalisation
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def moto_server() -> Iterator[tuple[str, Any]]:
    """A moto S3 server process on loopback with the bucket created; (its URL, a boto3 client)."""
    import boto3  # type: ignore[import-untyped]

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    code = f"from moto.server import ThreadedMotoServer as S; S('127.0.0.1', {port}).start(); input()"
    server = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            try:
                request = urllib.request.Request(f"{url}/{BUCKET}", method="PUT")
                urllib.request.urlopen(request, timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.1)
        yield (
            url,
            boto3.client(
                "s3",
                endpoint_url=url,
                aws_access_key_id="t",
                aws_secret_access_key="t",
                region_name="us-east-1",
            ),
        )
    finally:
        server.kill()
        server.wait()


def write_file(path: Path, size_mb: int) -> Path:
    """A file of `size_mb` MiB of incompressible bytes."""
    block = bytes(range(256)) * 4096
    with path.open("wb") as out:
        for _ in range(size_mb):
            out.write(block)
    return path


def _worker_run(project: Path, url: str, uri: str, size: int, etag: str, tmp: Path) -> dict[str, Any]:
    args = [sys.executable, "-c", WORKER_CHILD, url, uri, str(size), etag, str(tmp)]
    env = {"PYTHONPATH": str(project), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(args, check=True, capture_output=True, text=True, env=env)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def measure_files(project: Path, size_mb: int, runs: int) -> dict[str, Any]:
    """Median (min-max) MB/s down and up: the worker's TaskFiles vs a bare obstore client, alternating runs."""
    from .s3_clients import measure as bare_measure

    found: dict[str, list[float]] = {k: [] for k in ("worker_down", "worker_up", "bare_down", "bare_up")}
    growth: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-files-") as tmp_name, moto_server() as (url, s3):
        tmp = Path(tmp_name)
        source = write_file(tmp / "source.bin", size_mb)
        s3.upload_file(str(source), BUCKET, "bench/source.bin")
        etag = s3.head_object(Bucket=BUCKET, Key="bench/source.bin")["ETag"].strip('"')
        source.unlink()
        uri, size = f"s3://{BUCKET}/bench/source.bin", size_mb * 1024 * 1024
        for _ in range(runs):
            worker = _worker_run(project, url, uri, size, etag, tmp)
            found["worker_down"].append(size_mb / worker["down_s"])
            found["worker_up"].append(size_mb / worker["up_s"])
            growth.append(worker["rss_growth_kib"] / 1024)
            bare = bare_measure("obstore", sys.executable, url, "bench/source.bin", size_mb, tmp)
            found["bare_down"].append(bare["down_mb_s"])
            found["bare_up"].append(bare["up_mb_s"])
    return {
        "size_mb": size_mb,
        "runs": runs,
        "server": "moto (ThreadedMotoServer) on loopback",
        **{f"{key}_mb_s": spread(values) for key, values in found.items()},
        "worker_down_rss_growth_mib": spread(growth),
    }
