"""The task file workspace against a real S3 server (moto's, in its own process on loopback)."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from avtomatika_worker import TaskFiles
from avtomatika_worker.config import SECRET_VARIABLES, WorkerConfig
from avtomatika_worker.errors import ConfigError
from avtomatika_worker.executor import Outcome, TaskTools, execute
from avtomatika_worker.files import BlobCache, FileStore, inside, safe_relative_path
from avtomatika_worker.handlers import RegisteredHandler
from avtomatika_worker.s3 import FileSettings
from avtomatika_worker.typing import (
    INTEGRITY_MISMATCH_ERROR,
    INVALID_INPUT_ERROR,
    PERMANENT_ERROR,
    SUCCESS,
)

BUCKET = "avtomatika-payloads"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    """A moto S3 server process with the bucket created."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    code = f"from moto.server import ThreadedMotoServer as S; S('127.0.0.1', {port}).start(); input()"
    server = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(urllib.request.Request(f"{url}/{BUCKET}", method="PUT"), timeout=2).close()
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise
            time.sleep(0.1)
    yield url
    server.kill()
    server.wait()


@pytest.fixture
def s3(s3_url: str) -> Any:
    """A plain boto3 client on the same server (to put inputs and read outputs back)."""
    return boto3.client(
        "s3",
        endpoint_url=s3_url,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    )


@pytest.fixture
def settings(s3_url: str, tmp_path: Path) -> FileSettings:
    return FileSettings(
        endpoint_url=s3_url,
        access_key="test",
        secret_key="test",
        workspace_dir=str(tmp_path / "payloads"),
        cache_dir=str(tmp_path / "cache"),
    )


def _task(
    params: dict[str, Any], metadata: dict[str, Any] | None = None, task_id: str = "t-1"
) -> dict[str, Any]:
    task: dict[str, Any] = {"job_id": "job-1", "task_id": task_id, "type": "files", "params": params}
    if metadata is not None:
        task["params_metadata"] = metadata
    return task


async def _run(handler: Any, task: dict[str, Any], store: FileStore) -> Outcome:
    return await execute(RegisteredHandler.wrap("files", handler), task, TaskTools(files=store.workspace))


def _put(s3: Any, key: str, body: bytes) -> dict[str, Any]:
    etag = s3.put_object(Bucket=BUCKET, Key=key, Body=body)["ETag"].strip('"')
    return {"uri": f"s3://{BUCKET}/{key}", "size": len(body), "etag": etag}


async def count_lines(params: dict[str, Any], files: TaskFiles) -> dict[str, Any]:
    source = await files.download("input_file")
    report = files.path("report.txt")
    lines = source.read_bytes().count(b"\n")
    report.write_text(f"{lines} lines\n")
    return {"status": "success", "data": {"report": str(report), "name": source.name}}


async def test_input_is_downloaded_and_output_uploaded_under_the_job_prefix(
    s3: Any, settings: FileSettings
) -> None:
    meta = _put(s3, "inbox/in.csv", b"a\nb\nc\n")
    outcome = await _run(
        count_lines, _task({"input_file": meta["uri"]}, {"input_file": meta}), FileStore(settings)
    )
    assert outcome.status == SUCCESS, outcome
    assert outcome.data == {"report": f"s3://{BUCKET}/jobs/job-1/report.txt", "name": "in.csv"}
    body = s3.get_object(Bucket=BUCKET, Key="jobs/job-1/report.txt")["Body"].read()
    assert body == b"3 lines\n"
    assert outcome.data_metadata == {
        "report": {
            "uri": f"s3://{BUCKET}/jobs/job-1/report.txt",
            "size": 8,
            "etag": hashlib.md5(body).hexdigest(),
        }
    }
    assert outcome.to_message()["data_metadata"] == outcome.data_metadata
    assert not list(Path(settings.workspace_dir).iterdir())  # the task's folder is gone


async def test_etag_mismatch_fails_with_integrity_error_naming_the_param(
    s3: Any, settings: FileSettings
) -> None:
    meta = _put(s3, "inbox/etag.csv", b"x\n") | {"etag": "0" * 32}
    outcome = await _run(
        count_lines, _task({"input_file": meta["uri"]}, {"input_file": meta}), FileStore(settings)
    )
    assert outcome.error is not None and outcome.error["code"] == INTEGRITY_MISMATCH_ERROR
    assert "'input_file'" in outcome.error["message"] and "etag" in outcome.error["message"]
    assert not list(Path(settings.workspace_dir).iterdir())


async def test_size_mismatch_fails_with_integrity_error(s3: Any, settings: FileSettings) -> None:
    meta = _put(s3, "inbox/size.csv", b"x\n") | {"size": 3}
    outcome = await _run(
        count_lines, _task({"input_file": meta["uri"]}, {"input_file": meta}), FileStore(settings)
    )
    assert outcome.error is not None and outcome.error["code"] == INTEGRITY_MISMATCH_ERROR
    assert "2 bytes" in outcome.error["message"]


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        (f"s3://{BUCKET}/inbox/missing.csv", "does not exist"),
        ("http://example.invalid/x.csv", "not an s3:// URI"),
        (f"s3://{BUCKET}/", "names no object"),
        (f"s3://{BUCKET}/jobs/..", "leaves the task folder"),
        (42, "no such param"),
    ],
)
async def test_bad_input_uris_fail_clearly_naming_the_param(
    settings: FileSettings, uri: Any, says: str
) -> None:
    outcome = await _run(count_lines, _task({"input_file": uri}), FileStore(settings))
    assert outcome.error is not None and outcome.error["code"] == INVALID_INPUT_ERROR
    assert "'input_file'" in outcome.error["message"] and says in outcome.error["message"]


async def test_without_s3_endpoint_s3_files_fail_permanently_naming_the_variable(tmp_path: Path) -> None:
    store = FileStore(FileSettings(workspace_dir=str(tmp_path)))
    outcome = await _run(count_lines, _task({"input_file": f"s3://{BUCKET}/a.csv"}), store)
    assert outcome.error is not None and outcome.error["code"] == PERMANENT_ERROR
    assert "S3_ENDPOINT_URL" in outcome.error["message"]


async def test_without_s3_endpoint_result_paths_stay_local_paths(tmp_path: Path) -> None:
    async def write(params: dict[str, Any], files: TaskFiles) -> dict[str, Any]:
        out = files.path("out.txt")
        out.write_text("x")
        return {"status": "success", "data": {"out": str(out)}}

    outcome = await _run(write, _task({}), FileStore(FileSettings(workspace_dir=str(tmp_path))))
    assert outcome.status == SUCCESS and outcome.data_metadata is None
    assert outcome.data == {"out": str(tmp_path / "t-1" / "out.txt")}


async def test_without_the_client_installed_the_task_fails_permanently_saying_what_to_add(
    settings: FileSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "obstore.store", None)
    outcome = await _run(count_lines, _task({"input_file": f"s3://{BUCKET}/a.csv"}), FileStore(settings))
    assert outcome.error is not None and outcome.error["code"] == PERMANENT_ERROR
    assert "add obstore to requirements.txt" in outcome.error["message"]


async def test_cached_input_is_served_by_etag_without_the_server(s3: Any, settings: FileSettings) -> None:
    store = FileStore(settings)
    meta = _put(s3, "inbox/cached.csv", b"1\n2\n")
    task = _task({"input_file": meta["uri"]}, {"input_file": meta})
    assert (await _run(count_lines, task, store)).status == SUCCESS
    s3.delete_object(Bucket=BUCKET, Key="inbox/cached.csv")
    again = await _run(count_lines, _task(task["params"], task["params_metadata"], "t-2"), store)
    assert again.status == SUCCESS, again


def test_cache_drops_least_recently_used_beyond_its_bound(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path / "cache", limit=10)
    for name in ("a", "b", "c"):
        (tmp_path / name).write_bytes(b"12345")
        cache.keep(name, tmp_path / name)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["b", "c"]
    assert not cache.take("a", 5, tmp_path / "a2")
    assert cache.take("c", 5, tmp_path / "c2") and (tmp_path / "c2").read_bytes() == b"12345"


async def test_workspace_is_removed_when_the_task_is_cancelled(settings: FileSettings) -> None:
    started = asyncio.Event()

    async def slow(params: dict[str, Any], files: TaskFiles) -> dict[str, Any]:
        files.path("partial.bin").write_bytes(b"x")
        started.set()
        await asyncio.Event().wait()
        return {}

    run = asyncio.create_task(_run(slow, _task({}), FileStore(settings)))
    await started.wait()
    assert list(Path(settings.workspace_dir).iterdir())
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert not list(Path(settings.workspace_dir).iterdir())


def _peak_rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc/self/status")


async def test_large_input_is_streamed_to_disk_not_held_in_memory(
    s3: Any, settings: FileSettings, tmp_path: Path
) -> None:
    size = 96 * 1024 * 1024
    source = tmp_path / "big.bin"
    with source.open("wb") as out:
        for _ in range(size // (1024 * 1024)):
            out.write(b"\x5a" * (1024 * 1024))
    s3.upload_file(str(source), BUCKET, "inbox/big.bin")
    head = s3.head_object(Bucket=BUCKET, Key="inbox/big.bin")
    meta = {"uri": f"s3://{BUCKET}/inbox/big.bin", "size": size, "etag": head["ETag"].strip('"')}

    async def measure(params: dict[str, Any], files: TaskFiles) -> dict[str, Any]:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS (VmHWM) to the current RSS
        before = _peak_rss_kib()
        path = await files.download("input_file")
        return {
            "status": "success",
            "data": {"grew_kib": _peak_rss_kib() - before, "size": path.stat().st_size},
        }

    store = FileStore(FileSettings(**{**settings.__dict__, "cache_bytes": 0}))
    outcome = await _run(measure, _task({"input_file": meta["uri"]}, {"input_file": meta}), store)
    assert outcome.data is not None and outcome.data["size"] == size, outcome
    assert outcome.data["grew_kib"] < 30 * 1024


@pytest.mark.parametrize(
    "name",
    [
        "../x",
        "a/../../b",
        "/etc/passwd",
        "\\\\server\\share",
        "C:\\x",
        "x\x00y",
        "\uff0e\uff0e/x",
        "a\u202eb",
        "",
        "..",
    ],
)
def test_file_names_that_would_leave_the_workspace_are_refused(name: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="file name"):
        inside(tmp_path, name)


def test_plain_and_nested_file_names_stay_inside(tmp_path: Path) -> None:
    assert inside(tmp_path, "out/report.txt") == tmp_path / "out" / "report.txt"
    assert str(safe_relative_path("./a\\b.txt")) == "a/b.txt"
    (tmp_path / "link").symlink_to("/etc")
    with pytest.raises(ValueError, match="symlink"):
        inside(tmp_path, "link/passwd")


def test_settings_come_from_s3_variables_with_a_secret_file(tmp_path: Path) -> None:
    secret = tmp_path / "s3_secret"
    secret.write_text("s3cr3t-value\n")
    env = {
        "WORKER_TOKEN": "t" * 16,
        "ORCHESTRATOR_URL": "http://localhost:8080",
        "S3_ENDPOINT_URL": "http://s3:9000",
        "S3_ACCESS_KEY": "key",
        "S3_SECRET_KEY_FILE": str(secret),
        "TASK_FILES_DIR": "/data/tasks",
    }
    files = WorkerConfig.from_env("w", env).files
    assert (files.endpoint_url, files.secret_key, files.workspace_dir) == (
        "http://s3:9000",
        "s3cr3t-value",
        "/data/tasks",
    )
    assert "s3cr3t" not in repr(files)
    assert "S3_SECRET_KEY" in SECRET_VARIABLES  # the health check never reads it nor its file
    with pytest.raises(ConfigError, match="S3_ENDPOINT_URL='s3:9000'"):
        FileSettings.from_env({"S3_ENDPOINT_URL": "s3:9000"})
    with pytest.raises(ConfigError, match="WORKER_BLOB_CACHE_MB"):
        FileSettings.from_env({"WORKER_BLOB_CACHE_MB": "lots"})


@pytest.mark.parametrize("with_obstore", [True, False])
def test_the_worker_process_ends_without_finalisation_once_obstore_is_loaded(with_obstore: bool) -> None:
    """obstore's runtime can abort the interpreter's finalisation (SIGABRT); the end of run() skips it."""
    script = (
        "import atexit, sys\n"
        + ("import obstore\n" if with_obstore else "")
        + "from avtomatika_worker.worker import end_process\n"
        "atexit.register(lambda: print('finalised', flush=True))\n"
        "print('stopped', flush=True)\n"
        "end_process(0)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == (["stopped"] if with_obstore else ["stopped", "finalised"])
