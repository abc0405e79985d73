"""The S3 seam of the task file workspace: settings from the environment, `s3://` URIs, and the client.

The client library (obstore, the orchestrator's own) is imported only when a task first touches S3, so the SDK
imports and runs without it; it is installed only by the template's `s3_files` option.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .errors import ConfigError, PermanentError

DEFAULT_BUCKET = "avtomatika-payloads"  # the orchestrator's S3_DEFAULT_BUCKET default
_CHUNK = 1024 * 1024
_PART = 5 * 1024 * 1024  # S3's smallest multipart part
_PARTS_IN_FLIGHT = 2


@dataclass(frozen=True)
class FileSettings:
    """Where task files live: S3 (S3_*, the orchestrator's names) and the local workspace and cache."""

    endpoint_url: str = ""  # S3_ENDPOINT_URL; empty: no S3, the workspace holds local files only
    access_key: str = field(default="", repr=False)
    secret_key: str = field(default="", repr=False)
    region: str = "us-east-1"
    bucket: str = DEFAULT_BUCKET
    workspace_dir: str = "/tmp/payloads"  # TASK_FILES_DIR (the official SDK's name and default)
    cache_dir: str = "/tmp/avtomatika_cache"  # WORKER_BLOB_CACHE_DIR
    cache_bytes: int = 1024 * 1024 * 1024  # WORKER_BLOB_CACHE_MB

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> FileSettings:
        """Read the settings; raises ConfigError naming the variable, its value and the fix."""
        from .config import env_secret  # config.py imports this module

        def text(name: str, default: str) -> str:
            value = (env.get(name) or "").strip()
            return value or default

        endpoint = text("S3_ENDPOINT_URL", "")
        if endpoint and not endpoint.startswith(("http://", "https://")):
            raise ConfigError(
                f"S3_ENDPOINT_URL={endpoint!r} is invalid: it must be an http(s) URL "
                "(e.g. S3_ENDPOINT_URL=http://s3:9000)"
            )
        return cls(
            endpoint_url=endpoint,
            access_key=text("S3_ACCESS_KEY", ""),
            secret_key=(env_secret(env, "S3_SECRET_KEY") or "").strip(),
            region=text("S3_REGION", "us-east-1"),
            bucket=text("S3_DEFAULT_BUCKET", DEFAULT_BUCKET),
            workspace_dir=text("TASK_FILES_DIR", "/tmp/payloads"),
            cache_dir=text("WORKER_BLOB_CACHE_DIR", "/tmp/avtomatika_cache"),
            cache_bytes=_megabytes(text("WORKER_BLOB_CACHE_MB", "1024")),
        )


def _megabytes(raw: str) -> int:
    if not raw.isdigit():
        raise ConfigError(
            f"WORKER_BLOB_CACHE_MB={raw!r} is invalid: it must be a whole number of megabytes, 0 for no cache "
            "(e.g. WORKER_BLOB_CACHE_MB=1024)"
        )
    return int(raw) * 1024 * 1024


def parse_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/key` -> (bucket, key); ValueError saying what is wrong otherwise."""
    if not uri.startswith("s3://"):
        raise ValueError(f"{uri!r} is not an s3:// URI (e.g. s3://avtomatika-payloads/jobs/j1/in.csv)")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket or not key or key.endswith("/"):
        raise ValueError(f"{uri!r} names no object: it needs a bucket and a file key (s3://bucket/dir/file)")
    return bucket, key


def plain_etag(etag: str | None) -> str | None:
    """An ETag without the quotes S3 puts around it (None stays None)."""
    return etag.strip().strip('"') if etag else None


@dataclass(frozen=True)
class ObjectInfo:
    """What S3 says about an object (and, after a download, the MD5 of what arrived)."""

    size: int
    etag: str | None
    md5: str | None = None


class ObjectMissing(Exception):
    """The object does not exist."""


class S3Client(Protocol):
    """What the workspace needs from S3 (tests and other stores plug in here)."""

    async def download(
        self, bucket: str, key: str, dest: Path, check: Callable[[ObjectInfo], None]
    ) -> ObjectInfo:
        """Stream the object into `dest` chunk by chunk; `check` sees its size and ETag before any byte."""

    async def upload(self, source: Path, bucket: str, key: str) -> ObjectInfo:
        """Stream `source` to the object; its size and ETag."""


class ObstoreClient:
    """S3 through obstore (imported on first use); one store per bucket."""

    def __init__(self, settings: FileSettings) -> None:
        self._settings = settings
        self._stores: dict[str, Any] = {}

    def _store(self, bucket: str) -> Any:
        if bucket not in self._stores:
            try:
                from obstore.store import S3Store
            except ImportError:
                raise PermanentError(
                    "S3_ENDPOINT_URL is set but the S3 client is not installed: add obstore to requirements.txt "
                    "(the template's s3_files option does)"
                ) from None
            s = self._settings
            self._stores[bucket] = S3Store(
                bucket,
                endpoint=s.endpoint_url,
                access_key_id=s.access_key or None,
                secret_access_key=s.secret_key or None,
                region=s.region,
                virtual_hosted_style_request=False,
                client_options={"allow_http": s.endpoint_url.startswith("http://")},
            )
        return self._stores[bucket]

    async def download(
        self, bucket: str, key: str, dest: Path, check: Callable[[ObjectInfo], None]
    ) -> ObjectInfo:
        """Stream the object into `dest` (never whole in memory), hashing it on the way."""
        store = self._store(bucket)
        import obstore
        from obstore.exceptions import NotFoundError

        try:
            result = await obstore.get_async(store, key)
        except (NotFoundError, FileNotFoundError) as exc:
            raise ObjectMissing(f"s3://{bucket}/{key}") from exc
        meta = result.meta
        info = ObjectInfo(int(meta["size"]), plain_etag(meta.get("e_tag")))
        check(info)
        digest = hashlib.md5(usedforsecurity=False)
        written = 0
        with open(dest, "wb") as out:

            def consume(view: memoryview) -> None:
                digest.update(view)
                out.write(view)

            async for chunk in result.stream(min_chunk_size=_CHUNK):
                view = memoryview(chunk)
                # Off the event loop: hashing and writing a chunk would hold it for milliseconds each.
                await asyncio.to_thread(consume, view)
                written += len(view)
        return ObjectInfo(written, info.etag, digest.hexdigest())

    async def upload(self, source: Path, bucket: str, key: str) -> ObjectInfo:
        """Stream `source` to the object (multipart above obstore's chunk size)."""
        store = self._store(bucket)
        import obstore

        # Two 5 MiB parts in flight: obstore's default (12) holds ~100 MiB more for ~15% more MB/s (s3-client.md).
        result = await obstore.put_async(
            store, key, source, chunk_size=_PART, max_concurrency=_PARTS_IN_FLIGHT
        )
        return ObjectInfo(os.path.getsize(source), plain_etag(result.get("e_tag")))
