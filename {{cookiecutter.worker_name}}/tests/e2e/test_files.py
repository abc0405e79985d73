"""Files through S3 in the compose stack (s3_files): the stack's S3 server, the mock and the worker image."""

from __future__ import annotations

import asyncio
import hashlib
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from dotenv import dotenv_values
from pytest_docker.plugin import Services

from mock_orchestrator.s3 import S3Client, S3Settings, parse_s3_uri, s3_settings

from e2e.stack import WAIT_SECONDS, WORKER, Compose, Mock, docker, wait_for
from services import PROJECT_ROOT

pytestmark = pytest.mark.e2e

TASK_TYPE = "count_lines"  # my_worker.py's file example
LINE = b"x" * 99 + b"\n"
BIG_BYTES = 200 * 1024 * 1024
MAX_RSS_GROWTH_KB = 30 * 1024
# The memory (kB) of a process in a container, found by the start of its command line and read from /proc;
# "reset" first zeroes its peak (VmHWM), so the peak read afterwards is the peak since then.
MEMORY_PROBE = """
import os, sys
prefix = sys.argv[1].encode().replace(b" ", b"\\0")
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        if open(f"/proc/{pid}/cmdline", "rb").read().startswith(prefix):
            break
    except OSError:
        pass
if sys.argv[2:] == ["reset"]:
    open(f"/proc/{pid}/clear_refs", "w").write("5")
status = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status").read().splitlines())
print(int(status["VmRSS"].split()[0]), int(status["VmHWM"].split()[0]))
"""
# The task folders left in the worker's TASK_FILES_DIR (the SDK's default when unset).
WORKSPACE_PROBE = """
import os
root = os.environ.get("TASK_FILES_DIR") or "/tmp/payloads"
print(*(sorted(os.listdir(root)) if os.path.isdir(root) else []))
"""


def write_lines(path: Path, size: int) -> str:
    """Write ``size`` bytes of 100-byte lines to ``path``, chunk by chunk; their MD5 (S3's single-part ETag)."""
    chunk, digest = LINE * 10_000, hashlib.md5()  # noqa: S324 - what S3 puts in an ETag
    with path.open("wb") as handle:
        for _ in range(size // len(chunk)):
            handle.write(chunk)
            digest.update(chunk)
        rest = LINE * ((size % len(chunk)) // len(LINE))
        handle.write(rest)
        digest.update(rest)
    return digest.hexdigest()


def upload(mock: Mock, path: Path) -> dict[str, Any]:
    """Stream a file to the mock (POST /api/v1/files), which stores it in the stack's S3 server."""
    with path.open("rb") as handle:
        request = urllib.request.Request(
            f"{mock.base_url}/api/v1/files?name={path.name}",
            data=handle,
            method="POST",
            headers={"X-Client-Token": mock.client_token, "Content-Length": str(path.stat().st_size)},
        )
        with urllib.request.urlopen(request, timeout=WAIT_SECONDS) as response:
            meta: dict[str, Any] = json.loads(response.read())
    return meta


def submit_file_task(mock: Mock, meta: dict[str, Any]) -> str:
    """Queue the file example with the upload ``meta`` (FileMetadata) as its input and params_metadata."""
    body = {"type": TASK_TYPE, "params": {"input_file": meta["uri"]}, "params_metadata": {"input_file": meta}}
    return str(mock.call("POST", "/api/v1/tasks", body)["task_id"])


def download(mock: Mock, entry: dict[str, Any]) -> bytes:
    """An output file, through its download link (signed: no token needed)."""
    with urllib.request.urlopen(mock.base_url + entry["download"], timeout=WAIT_SECONDS) as response:
        body: bytes = response.read()
    return body


def run_in(compose: Compose, service: str, *command: str) -> str:
    """Run a command in the service's (single) container; its stdout."""
    (container,) = compose.run("ps", "--quiet", service).stdout.split()
    result = docker(["docker", "exec", container, *command])
    assert result.returncode == 0, result.stderr
    return result.stdout


def memory(compose: Compose, service: str, command: str, reset: bool = False) -> tuple[int, int]:
    """(VmRSS, VmHWM) in kB of the process running ``command`` in the service; ``reset`` zeroes the peak."""
    probe = ["python", "-c", MEMORY_PROBE, command, *(["reset"] if reset else [])]
    rss, peak = run_in(compose, service, *probe).split()
    return int(rss), int(peak)


def workspaces(compose: Compose) -> list[str]:
    """The task folders in the worker's TASK_FILES_DIR."""
    return run_in(compose, WORKER, "python", "-c", WORKSPACE_PROBE).split()


@pytest.fixture
def s3(docker_services: Services) -> S3Settings:
    """The stack's S3 server as a worker on this machine reaches it (.env's keys, the published port)."""
    port = docker_services.port_for("s3", 9000)
    env = {k: v or "" for k, v in dotenv_values(PROJECT_ROOT / ".env").items()}
    settings = s3_settings({**env, "S3_ENDPOINT_URL": f"http://127.0.0.1:{port}"})
    assert settings is not None, ".env has no S3_ENDPOINT_URL, S3_ACCESS_KEY and S3_SECRET_KEY"
    return settings


async def stored(settings: S3Settings, uri: str) -> tuple[int, str | None, str]:
    """Size, ETag and MD5 of an object, read from S3 directly (streamed)."""
    client, digest = S3Client(settings), hashlib.md5()  # noqa: S324
    try:
        meta, response = await client.get(*parse_s3_uri(uri))
        async for chunk in response.content.iter_chunked(1 << 20):
            digest.update(chunk)
        response.release()
    finally:
        await client.close()
    return meta.size, meta.etag, digest.hexdigest()


def test_a_file_uploaded_through_the_mock_is_in_the_bucket_created_at_start_up(
    mock: Mock, s3: S3Settings, tmp_path: Path
) -> None:
    path = tmp_path / "stock.csv"
    md5 = write_lines(path, 1000 * len(LINE))
    meta = upload(mock, path)
    assert meta["uri"].startswith(f"s3://{s3.bucket}/uploads/") and meta["uri"].endswith("/stock.csv")
    assert (meta["size"], meta["etag"]) == (path.stat().st_size, md5)
    assert asyncio.run(stored(s3, meta["uri"])) == (meta["size"], md5, md5)


def test_a_file_task_reads_its_input_from_s3_and_the_client_reads_its_output_file_back(
    mock: Mock, tmp_path: Path
) -> None:
    path = tmp_path / "stock.csv"
    write_lines(path, 1000 * len(LINE))
    view = mock.wait_done(submit_file_task(mock, upload(mock, path)))
    assert view["status"] == "success", view
    assert view["data"]["lines"] == 1000 and view["data"]["report"].startswith("s3://")
    (report,) = view["output_files"]
    assert (report["name"], report["uri"]) == ("report", view["data"]["report"])
    assert view["data_metadata"]["report"]["size"] == report["size"] > 0
    assert download(mock, report) == b"1000 lines in stock.csv\n"


def test_a_200_mib_input_is_streamed_through_the_mock_and_the_worker_with_little_memory(
    mock: Mock, one_worker: Compose, s3: S3Settings, tmp_path: Path
) -> None:
    path = tmp_path / "big.txt"
    md5 = write_lines(path, BIG_BYTES)
    mock_before, _ = memory(one_worker, "mock-orchestrator", "python -m mock_orchestrator", reset=True)
    meta = upload(mock, path)
    _, mock_peak = memory(one_worker, "mock-orchestrator", "python -m mock_orchestrator")
    path.unlink()
    assert asyncio.run(stored(s3, meta["uri"])) == (BIG_BYTES, md5, md5)
    worker_before, _ = memory(one_worker, WORKER, "python my_worker.py", reset=True)
    view = mock.wait_done(submit_file_task(mock, meta), timeout=300)
    _, worker_peak = memory(one_worker, WORKER, "python my_worker.py")
    assert view["status"] == "success", view
    assert view["data"]["lines"] == BIG_BYTES // len(LINE)
    growth = {"mock": mock_peak - mock_before, "worker": worker_peak - worker_before}
    print(f"RSS growth for a 200 MiB file: mock +{growth['mock']} kB, worker +{growth['worker']} kB")
    assert max(growth.values()) < MAX_RSS_GROWTH_KB, growth
    assert workspaces(one_worker) == []


def test_a_cancelled_file_task_leaves_no_workspace_behind(
    mock: Mock, one_worker: Compose, tmp_path: Path
) -> None:
    path = tmp_path / "big.txt"
    write_lines(path, BIG_BYTES)
    meta = upload(mock, path)
    path.unlink()
    for _attempt in range(3):  # the cancel must come while the task runs: a 200 MiB input takes a while
        task_id = submit_file_task(mock, meta)
        mock.wait_running(task_id)
        try:
            mock.cancel(task_id)
        except urllib.error.HTTPError as exc:  # 404: the task finished first
            assert exc.code == 404, exc
            continue
        break
    else:
        pytest.fail("three file tasks in a row finished before their cancel arrived")
    mock.wait_reported(task_id)
    assert mock.task(task_id)["status"] == "cancelled"
    wait_for(lambda: workspaces(one_worker) == [], "the cancelled task's folder to be removed")


def test_an_input_whose_etag_does_not_match_fails_the_task_naming_the_param(
    mock: Mock, tmp_path: Path
) -> None:
    path = tmp_path / "stock.csv"
    write_lines(path, 10 * len(LINE))
    meta = dict(upload(mock, path), etag="0" * 32)
    view = mock.wait_done(submit_file_task(mock, meta))
    assert view["status"] == "failure", view
    assert view["error"]["code"] == "INTEGRITY_MISMATCH_ERROR", view["error"]
    assert "input_file" in view["error"]["message"] and "etag" in view["error"]["message"].lower()
