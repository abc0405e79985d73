"""Compare S3 clients for the worker's file workspace: MB/s and peak RSS growth streaming one object down to
disk and back up, against a local moto S3 server (docs/s3-client.md).

`python -m bench.s3_clients --mb 200 obstore=/venv-a/bin/python aiobotocore=/venv-b/bin/python ...`
(each Python has that client installed; this one needs moto and flask). One child process per client and
direction, so the peak RSS (VmHWM) of one measurement is not inflated by another.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from .files import BUCKET, moto_server, write_file

CHILD = r"""
import asyncio, json, os, sys, time
client, direction, url, key, path = sys.argv[1:6]
CHUNK = 1024 * 1024

def hwm_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

async def obstore_run():
    import obstore
    from obstore.store import S3Store
    store = S3Store("avtomatika-payloads", endpoint=url, access_key_id="t", secret_access_key="t",
                    region="us-east-1", client_options={"allow_http": True})
    if direction == "down":
        result = await obstore.get_async(store, key)
        with open(path, "wb") as out:
            async for chunk in result.stream(min_chunk_size=CHUNK):
                out.write(memoryview(chunk))
    else:
        await obstore.put_async(store, key + ".up", __import__("pathlib").Path(path), chunk_size=int(os.environ.get("PUT_CHUNK_MB", "5")) * CHUNK, max_concurrency=int(os.environ.get("PUT_CONCURRENCY", "12")))

async def aiobotocore_run():
    from aiobotocore.session import get_session
    async with get_session().create_client("s3", endpoint_url=url, aws_access_key_id="t",
                                           aws_secret_access_key="t", region_name="us-east-1") as s3:
        if direction == "down":
            reply = await s3.get_object(Bucket="avtomatika-payloads", Key=key)
            with open(path, "wb") as out:
                async for chunk in reply["Body"].iter_chunks(CHUNK):
                    out.write(chunk)
        else:
            with open(path, "rb") as body:
                await s3.put_object(Bucket="avtomatika-payloads", Key=key + ".up", Body=body)

async def boto3_run():
    import boto3
    s3 = boto3.client("s3", endpoint_url=url, aws_access_key_id="t", aws_secret_access_key="t",
                      region_name="us-east-1")
    if direction == "down":
        await asyncio.to_thread(s3.download_file, "avtomatika-payloads", key, path)
    else:
        await asyncio.to_thread(s3.upload_file, path, "avtomatika-payloads", key + ".up")

run = {"obstore": obstore_run, "aiobotocore": aiobotocore_run, "boto3": boto3_run}[client]
__import__(client)
baseline = hwm_kib()
started = time.perf_counter()
asyncio.run(run())
elapsed = time.perf_counter() - started
print(json.dumps({"seconds": elapsed, "rss_growth_kib": hwm_kib() - baseline, "baseline_kib": baseline}))
sys.stdout.flush()
os._exit(0)  # obstore's runtime threads sometimes abort (SIGABRT) during interpreter finalisation
"""


def measure(name: str, python: str, url: str, key: str, size_mb: int, tmp: Path) -> dict[str, Any]:
    """Down then up through one client; MB/s and peak RSS growth (MiB) of each."""
    out: dict[str, Any] = {"client": name}
    for direction in ("down", "up"):
        path = tmp / f"{name}.bin"
        args = [python, "-c", CHILD, name, direction, url, key, str(path)]
        done = subprocess.run(args, check=False, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{name} {direction} failed ({done.returncode}): {done.stderr[-2000:]}")
        result = json.loads(done.stdout)
        out[f"{direction}_mb_s"] = round(size_mb / result["seconds"], 1)
        out[f"{direction}_rss_growth_mib"] = round(result["rss_growth_kib"] / 1024, 1)
        out["import_rss_mib"] = round(result["baseline_kib"] / 1024, 1)
    return out


def main(argv: list[str] | None = None) -> int:
    """Measure every client given as name=python and print one JSON line each."""
    parser = argparse.ArgumentParser(prog="python -m bench.s3_clients", description=__doc__)
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("clients", nargs="+", help="client=python, client one of obstore, aiobotocore, boto3")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="s3-clients-") as tmp_name, moto_server() as (url, s3):
        tmp = Path(tmp_name)
        source = write_file(tmp / "source.bin", args.mb)
        s3.upload_file(str(source), BUCKET, "bench/source.bin")
        for spec in args.clients:
            name, _, python = spec.partition("=")
            print(json.dumps(measure(name, python, url, "bench/source.bin", args.mb, tmp)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
