"""Files at the mock (s3_files): uploads to a real S3 server, params_metadata, output files' download links."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import io
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from mock_orchestrator import cli
from mock_orchestrator.s3 import S3Client, S3Settings, parse_s3_uri, s3_settings, sign_headers
from mock_orchestrator.settings import ConfigError, load_server_config

from mock_support import (
    CLIENT_HEADERS,
    CLIENT_TOKEN,
    FakeClock,
    expect_error,
    mock_client,
    post_json,
    register,
    result_reply,
    submit,
    take,
    task_view,
)
from services import free_port, wait_until

SERVER_START_TIMEOUT = 60.0


class S3Server:
    """moto's S3 server (the compose stack's s3 service runs the same) as a process on a loopback port."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        args = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        self._log = log.open("w")
        self._proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT)
        wait_until(self._answers, f"moto's S3 server on port {self.port} (log: {log})", SERVER_START_TIMEOUT)

    def _answers(self) -> bool:
        assert self._proc.poll() is None, f"moto's S3 server exited with {self._proc.returncode}"
        try:
            urllib.request.urlopen(self.endpoint, timeout=1).close()
        except OSError:
            return False
        return True

    def stop(self) -> None:
        self._proc.terminate()
        self._proc.wait(timeout=10)
        self._log.close()


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One S3 server for the module; each test gets its own bucket."""
    server = S3Server(tmp_path_factory.mktemp("s3") / "moto.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3(s3_server: S3Server) -> S3Settings:
    """Settings of a fresh bucket (the mock creates it at start-up)."""
    return S3Settings(s3_server.endpoint, "test-key", "test-secret", bucket=f"test-{uuid.uuid4().hex[:12]}")


@pytest.fixture
async def files_client(clock: FakeClock, s3: S3Settings) -> AsyncIterator[TestClient]:
    """A mock orchestrator with files on."""
    async with mock_client(clock, s3=s3) as running:
        yield running


async def upload(client: TestClient, name: str, body: bytes) -> dict[str, Any]:
    resp = await client.post(f"/api/v1/files?name={name}", data=body, headers=CLIENT_HEADERS)
    assert resp.status == 201, await resp.text()
    meta: dict[str, Any] = await resp.json()
    return meta


async def read_object(settings: S3Settings, uri: str) -> bytes:
    client = S3Client(settings)
    try:
        _, response = await client.get(*parse_s3_uri(uri))
        body = await response.read()
        response.release()
        return body
    finally:
        await client.close()


async def test_an_upload_is_stored_in_the_bucket_and_described_like_file_metadata(
    files_client: TestClient, s3: S3Settings
) -> None:
    body = b"sku,count\napple,12\n" * 1000
    meta = await upload(files_client, "stock.csv", body)
    assert meta["uri"].startswith(f"s3://{s3.bucket}/uploads/") and meta["uri"].endswith("/stock.csv")
    assert (meta["size"], meta["etag"]) == (len(body), hashlib.md5(body).hexdigest())  # noqa: S324 - S3's ETag
    assert await read_object(s3, meta["uri"]) == body


async def test_an_upload_sent_as_a_form_like_curl_and_urllib_do_keeps_its_body(
    files_client: TestClient, s3: S3Settings
) -> None:
    headers = {**CLIENT_HEADERS, "Content-Type": "application/x-www-form-urlencoded"}
    resp = await files_client.post("/api/v1/files?name=stock.csv", data=b"apple=12&pear=0", headers=headers)
    meta = await resp.json()
    assert await read_object(s3, meta["uri"]) == b"apple=12&pear=0"


async def test_an_upload_keeps_only_the_file_name_and_refuses_none(files_client: TestClient) -> None:
    meta = await upload(files_client, "../../etc/stock.csv", b"x")
    assert meta["uri"].endswith("/stock.csv") and "/etc/" not in meta["uri"]
    resp = await files_client.post("/api/v1/files?name=..", data=b"x", headers=CLIENT_HEADERS)
    await expect_error(resp, 400, "query parameter 'name' = '..' is invalid")


async def test_files_need_the_client_token(files_client: TestClient) -> None:
    resp = await files_client.post("/api/v1/files?name=a.txt", data=b"x")
    await expect_error(resp, 403, "Missing X-Client-Token header")


async def test_a_task_carries_its_params_metadata_to_the_worker(
    files_client: TestClient, clock: FakeClock
) -> None:
    meta = await upload(files_client, "stock.csv", b"apple,12\n")
    await register(files_client, clock)
    await submit(files_client, params={"input_file": meta["uri"]}, params_metadata={"input_file": meta})
    task = await take(files_client)
    assert task["params"] == {"input_file": meta["uri"]}
    assert task["params_metadata"] == {"input_file": meta}


async def test_params_metadata_must_describe_a_param_as_file_metadata(files_client: TestClient) -> None:
    body = {
        "type": "check_inventory",
        "params": {"a": 1},
        "params_metadata": {"input_file": {"uri": "s3://b/k"}},
    }
    resp = await post_json(files_client, "/api/v1/tasks", body, CLIENT_HEADERS)
    await expect_error(resp, 400, "field 'params_metadata.input_file'")
    body["params_metadata"] = {"a": {"size": 3}}
    resp = await post_json(files_client, "/api/v1/tasks", body, CLIENT_HEADERS)
    await expect_error(resp, 400, "Object missing required field `uri`")


async def test_output_files_of_a_result_get_download_links_that_stream_them_back(
    files_client: TestClient, clock: FakeClock
) -> None:
    produced = await upload(files_client, "report.txt", b"12 apples\n")
    await register(files_client, clock)
    await submit(files_client)
    task = await take(files_client)
    data_metadata = {"report": {"uri": produced["uri"], "size": produced["size"], "etag": produced["etag"]}}
    await result_reply(
        files_client, clock, task, data={"report": produced["uri"]}, data_metadata=data_metadata
    )
    view = await task_view(files_client, task["task_id"])
    assert view["data_metadata"] == data_metadata
    (entry,) = view["output_files"]
    assert (entry["name"], entry["uri"], entry["size"]) == ("report", produced["uri"], 10)
    resp = await files_client.get(entry["download"])  # no client token: the link is signed
    assert resp.status == 200
    assert await resp.read() == b"12 apples\n"
    assert resp.headers["Content-Disposition"] == "attachment; filename*=UTF-8''report.txt"


async def test_cli_show_prints_each_output_file_with_an_absolute_download_link(
    files_client: TestClient, clock: FakeClock
) -> None:
    produced = await upload(files_client, "report.txt", b"12 apples\n")
    await register(files_client, clock)
    queued = await submit(files_client)
    task = await take(files_client)
    await result_reply(files_client, clock, task, data={}, data_metadata={"report": produced})
    environ = {
        "CLIENT_TOKEN": CLIENT_TOKEN,
        "MOCK_ORCHESTRATOR_URL": str(files_client.make_url("")).rstrip("/"),
    }
    out = io.StringIO()

    def run() -> int:
        with redirect_stdout(out):
            return cli.main(["show", queued["task_id"]], environ)

    assert await asyncio.to_thread(run) == 0
    (line,) = [line for line in out.getvalue().splitlines() if line.startswith("output file")]
    link = line.split(": ", 1)[1]
    assert line.startswith("output file report (10 bytes): ") and link.startswith(
        environ["MOCK_ORCHESTRATOR_URL"]
    )
    resp = await files_client.get(link.removeprefix(environ["MOCK_ORCHESTRATOR_URL"]))
    assert await resp.read() == b"12 apples\n"


async def test_a_download_link_with_a_wrong_signature_is_refused(files_client: TestClient) -> None:
    meta = await upload(files_client, "secret.txt", b"x")
    resp = await files_client.get("/files", params={"uri": meta["uri"], "sig": "0" * 64})
    await expect_error(resp, 403, "this download link is not valid")


async def test_without_s3_settings_files_are_off_and_say_how_to_turn_them_on(client: TestClient) -> None:
    resp = await client.get("/api/v1/files", headers=CLIENT_HEADERS)
    assert await resp.json() == {"enabled": False, "bucket": None}
    resp = await client.post("/api/v1/files?name=a.txt", data=b"x", headers=CLIENT_HEADERS)
    await expect_error(resp, 501, "set S3_ENDPOINT_URL, S3_ACCESS_KEY and S3_SECRET_KEY")


async def test_cli_submit_file_uploads_it_and_names_it_in_the_params(
    files_client: TestClient, clock: FakeClock, tmp_path: Path
) -> None:
    data = tmp_path / "stock.csv"
    data.write_bytes(b"apple,12\npear,0\n")
    environ = {"CLIENT_TOKEN": CLIENT_TOKEN, "MOCK_ORCHESTRATOR_URL": str(files_client.make_url(""))}
    args = [
        "submit",
        "check_inventory",
        '{"items": ["apple"]}',
        "--file",
        str(data),
        "--file",
        f"extra={data}",
    ]
    out = io.StringIO()

    def run() -> int:
        with redirect_stdout(out):
            return cli.main([*args, "--json"], environ)

    assert await asyncio.to_thread(run) == 0
    queued = orjson.loads(out.getvalue())
    params, metadata = queued["params"], queued["params_metadata"]
    assert params["items"] == ["apple"] and params["input_file"].endswith("/stock.csv")
    assert metadata["input_file"] == {
        "uri": params["input_file"],
        "size": 16,
        "etag": metadata["input_file"]["etag"],
    }
    assert metadata["extra"]["uri"] == params["extra"] != params["input_file"]


def test_the_s3_settings_are_all_three_or_none() -> None:
    assert s3_settings({}) is None
    base = {"WORKER_TOKEN": "w", "CLIENT_TOKEN": "c"}
    with pytest.raises(ConfigError, match="S3_SECRET_KEY not set while S3_ENDPOINT_URL, S3_ACCESS_KEY is"):
        load_server_config({**base, "S3_ENDPOINT_URL": "http://s3:9000", "S3_ACCESS_KEY": "k"})
    config = load_server_config(
        {**base, "S3_ENDPOINT_URL": "http://s3:9000/", "S3_ACCESS_KEY": "k", "S3_SECRET_KEY": "s"}
    )
    assert config.settings.s3 == S3Settings("http://s3:9000", "k", "s", "us-east-1", "avtomatika-payloads")
    assert "secret" not in repr(S3Settings("http://s3:9000", "k", "secret"))  # never in a log line


def test_the_s3_signature_is_the_one_botocore_computes() -> None:
    """moto accepts any signature, so the SigV4 code is checked against botocore's (a moto dependency)."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    settings = S3Settings("http://127.0.0.1:9000", "AKIDEXAMPLE", "secret", "eu-west-1")
    moment = datetime.datetime(2026, 12, 3, 9, 0, 0, tzinfo=datetime.UTC)
    for key in ("uploads/a b/ü.txt", "x+y=z&q~.bin", ""):
        url = S3Client(settings)._url("bucket", key)
        stamp = "20261203T090000Z"
        request = AWSRequest(
            method="PUT",
            url=str(url),
            headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD", "X-Amz-Date": stamp},
        )
        request.context["timestamp"] = stamp
        auth = S3SigV4Auth(Credentials("AKIDEXAMPLE", "secret"), "s3", "eu-west-1")
        auth.payload = lambda _request: "UNSIGNED-PAYLOAD"  # type: ignore[method-assign]
        expected = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
        assert sign_headers(settings, "PUT", url, moment)["Authorization"].endswith(f"Signature={expected}")
