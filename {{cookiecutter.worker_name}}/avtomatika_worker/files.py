"""The per-task file workspace (`files: TaskFiles` in a handler): `s3://` inputs streamed to disk and checked,
outputs uploaded under the job's prefix, everything removed when the task ends however it ends."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import unicodedata
import uuid
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import InvalidInputError, PermanentError, TaskFailure
from .s3 import FileSettings, ObjectInfo, ObjectMissing, ObstoreClient, S3Client, parse_uri
from .typing import INTEGRITY_MISMATCH_ERROR

logger = logging.getLogger(__name__)

_MD5 = re.compile(r"[0-9a-f]{32}")
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


class IntegrityMismatchError(TaskFailure):
    """A downloaded file does not match its params_metadata (size or ETag): the job fails at once."""

    code = INTEGRITY_MISMATCH_ERROR


def safe_relative_path(name: str) -> PurePosixPath:
    """`name` as a relative path that stays inside a directory; ValueError for `..`, absolute paths, drive
    letters, NUL/control/format characters, and what Unicode NFKC normalisation turns into any of those."""
    normal = unicodedata.normalize("NFKC", name)
    if not normal.strip():
        raise ValueError(f"file name {name!r} is empty")
    if any(unicodedata.category(ch) in _BAD_CATEGORIES for ch in normal):
        raise ValueError(f"file name {name!r} holds a control or invisible character")
    if normal.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", normal):
        raise ValueError(f"file name {name!r} is absolute: give a name relative to the task folder")
    parts = [part for part in re.split(r"[/\\]", normal) if part not in ("", ".")]
    if not parts or any(part == ".." for part in parts):
        raise ValueError(
            f"file name {name!r} leaves the task folder ('..'): give a plain name like report.txt"
        )
    return PurePosixPath(*parts)


def inside(root: Path, name: str) -> Path:
    """The path of `name` under `root`, refused (ValueError) when it or a symlink on the way leaves `root`."""
    path = root.joinpath(safe_relative_path(name))
    if not path.resolve().is_relative_to(root.resolve()):
        raise ValueError(f"file name {name!r} leads outside the task folder (through a symlink)")
    return path


class BlobCache:
    """Downloaded inputs kept by ETag across tasks, the least recently used dropped beyond `limit` bytes."""

    def __init__(self, directory: Path, limit: int) -> None:
        self.directory = directory
        self.limit = limit
        self._locks: dict[str, asyncio.Lock] = {}

    def lock(self, etag: str) -> asyncio.Lock:
        """One download per ETag at a time."""
        return self._locks.setdefault(etag, asyncio.Lock())

    def _entry(self, etag: str) -> Path:
        return self.directory / re.sub(r"[^0-9A-Za-z_-]", "_", etag)

    def take(self, etag: str, size: int, dest: Path) -> bool:
        """Link the cached copy of `etag` to `dest` when there is one of `size` bytes."""
        entry = self._entry(etag)
        try:
            if self.limit <= 0 or entry.stat().st_size != size:
                return False
            _link_or_copy(entry, dest)
            os.utime(entry)
        except OSError:
            return False
        return True

    def keep(self, etag: str, source: Path) -> None:
        """Remember `source` under `etag` (a hard link: eviction never breaks a running task's file)."""
        size = source.stat().st_size
        if self.limit <= 0 or size > self.limit:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        entry = self._entry(etag)
        temporary = entry.with_name(f".{entry.name}.{uuid.uuid4().hex}")
        try:
            _link_or_copy(source, temporary)
            os.replace(temporary, entry)
        except OSError as exc:
            logger.warning("file cache: could not keep %s (%s)", source.name, exc)
            temporary.unlink(missing_ok=True)
            return
        self._evict()

    def _evict(self) -> None:
        entries = [(p.stat().st_mtime, p.stat().st_size, p) for p in self.directory.iterdir() if p.is_file()]
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total <= self.limit:
                break
            path.unlink(missing_ok=True)
            total -= size


def _link_or_copy(source: Path, dest: Path) -> None:
    try:
        os.link(source, dest)
    except OSError:
        shutil.copyfile(source, dest)


class FileStore:
    """What every task's workspace shares: settings, the S3 client, the cache."""

    def __init__(self, settings: FileSettings, client: S3Client | None = None) -> None:
        self.settings = settings
        self._client = client
        self.cache = BlobCache(Path(settings.cache_dir), settings.cache_bytes)

    @property
    def client(self) -> S3Client:
        """The S3 client; a PermanentError naming S3_ENDPOINT_URL when S3 is not configured."""
        if self._client is None:
            if not self.settings.endpoint_url:
                raise PermanentError(
                    "this task uses s3:// files but S3_ENDPOINT_URL is not set: point it at the orchestrator's "
                    "S3 server (e.g. S3_ENDPOINT_URL=http://s3:9000)"
                )
            self._client = ObstoreClient(self.settings)
        return self._client

    def workspace(self, task: dict[str, Any]) -> TaskFiles:
        """A new workspace for `task` (its folder appears on first use)."""
        return TaskFiles(self, task)


class TaskFiles:
    """A task's folder: `await files.download("param")`, `files.path("out.txt")`, `await files.upload(...)`."""

    def __init__(self, store: FileStore, task: dict[str, Any]) -> None:
        self._store = store
        params = task.get("params")
        self._params: dict[str, Any] = params if isinstance(params, dict) else {}
        metadata = task.get("params_metadata")
        self._metadata: dict[str, Any] = metadata if isinstance(metadata, dict) else {}
        self.job_id = str(task.get("job_id") or "")
        task_id = str(task.get("task_id") or "")
        folder = task_id if _plain_segment(task_id) else uuid.uuid4().hex
        self.root = Path(store.settings.workspace_dir) / folder

    def path(self, name: str) -> Path:
        """A path inside the task's folder (created); ValueError for names that would leave it."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = inside(self.root, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    async def download(self, param: str, local_name: str | None = None) -> Path:
        """Download the `s3://` file the param `param` names into the folder, checked against params_metadata."""
        uri = self._params.get(param)
        if not isinstance(uri, str):
            raise InvalidInputError(f"input file {param!r}: the task has no such param holding an s3:// URI")
        try:
            bucket, key = parse_uri(uri)
            dest = self.path(local_name or PurePosixPath(key).name)
        except ValueError as exc:
            raise InvalidInputError(f"input file {param!r}: {exc}") from None
        expected = self._metadata.get(param)
        expected = expected if isinstance(expected, dict) else {}
        await self._fetch(param, uri, bucket, key, dest, expected)
        return dest

    async def download_all(self) -> dict[str, Path]:
        """Download every top-level param holding an `s3://` URI; {param: local path}."""
        names = [k for k, v in self._params.items() if isinstance(v, str) and v.startswith("s3://")]
        return {name: await self.download(name) for name in names}

    async def _fetch(
        self, param: str, uri: str, bucket: str, key: str, dest: Path, expected: dict[str, Any]
    ) -> None:
        etag, size = _plain(expected.get("etag")), expected.get("size")
        cache = self._store.cache
        if etag and isinstance(size, int) and size > 0:
            async with cache.lock(etag):
                if cache.take(etag, size, dest):
                    return
        check = _checker(param, etag, size)
        partial = dest.with_name(f".{dest.name}.part")
        try:
            info = await self._store.client.download(bucket, key, partial, check)
        except ObjectMissing:
            partial.unlink(missing_ok=True)
            raise InvalidInputError(f"input file {param!r}: {uri} does not exist on the S3 server") from None
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        check(info)  # the bytes that arrived, against the expected size
        _verify_content(param, info, etag)
        os.replace(partial, dest)
        if info.etag:
            cache.keep(info.etag, dest)

    async def upload(self, name: str, remote_name: str | None = None) -> dict[str, Any]:
        """Upload a file of the folder under the job's prefix; its `{uri, size, etag}`."""
        source = inside(self.root, name) if not os.path.isabs(name) else Path(name)
        if not source.resolve().is_relative_to(self.root.resolve()) or not source.is_file():
            raise ValueError(f"output {name!r} is not a file in the task folder {self.root}")
        target = safe_relative_path(remote_name or source.name)
        if not _plain_segment(self.job_id):
            raise ValueError(f"job id {self.job_id!r} cannot name an S3 prefix")
        bucket = self._store.settings.bucket
        key = f"jobs/{self.job_id}/{target}"  # the orchestrator deletes jobs/<job_id>/ when the job ends
        info = await self._store.client.upload(source, bucket, key)
        meta: dict[str, Any] = {"uri": f"s3://{bucket}/{key}", "size": info.size}
        if info.etag:
            meta["etag"] = info.etag
        return meta

    async def publish(self, data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Upload every file of the folder the result `data` names (as a str path); the data with URIs in their
        place, and the data_metadata keyed by where each was (`report`, `files[0]`, `a.b`)."""
        metadata: dict[str, Any] = {}
        if not self._store.settings.endpoint_url:
            return data, metadata  # local files only (no S3): paths stay paths
        prefix = f"{self.root}{os.sep}"

        async def walk(value: Any, where: str) -> Any:
            if isinstance(value, str) and value.startswith(prefix) and os.path.isfile(value):
                meta = await self.upload(value)
                metadata[where] = meta
                return meta["uri"]
            if isinstance(value, dict):
                return {k: await walk(v, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
            if isinstance(value, list):
                return [await walk(v, f"{where}[{i}]") for i, v in enumerate(value)]
            return value

        return await walk(data, ""), metadata

    def close(self) -> None:
        """Remove the task's folder (synchronous, so it happens even while the task is being cancelled)."""
        shutil.rmtree(self.root, ignore_errors=True)


def _plain_segment(value: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,200}", value)) and ".." not in value


def _plain(etag: Any) -> str | None:
    return etag.strip().strip('"') or None if isinstance(etag, str) else None


def _checker(param: str, etag: str | None, size: Any) -> Callable[[ObjectInfo], None]:
    def check(info: ObjectInfo) -> None:
        if isinstance(size, int) and size > 0 and info.size != size:
            raise IntegrityMismatchError(
                f"input file {param!r}: the server holds {info.size} bytes but params_metadata says {size}"
            )
        if etag and info.etag and info.etag != etag:
            raise IntegrityMismatchError(
                f"input file {param!r}: etag {info.etag!r} from the server does not match "
                f"params_metadata etag {etag!r}"
            )

    return check


def _verify_content(param: str, info: ObjectInfo, etag: str | None) -> None:
    """A single-part ETag is the MD5 of the content: check what arrived against it."""
    for claimed in {e for e in (etag, info.etag) if e and _MD5.fullmatch(e)}:
        if info.md5 and info.md5 != claimed:
            raise IntegrityMismatchError(
                f"input file {param!r}: the content's MD5 {info.md5} does not match its etag {claimed!r}"
            )


FilesFactory = Callable[[dict[str, Any]], TaskFiles]
FILES_KWARGS = ("files", "task_files")  # ours, and the official SDK's usual parameter name


def open_workspace(
    accepted: frozenset[str], task: dict[str, Any], factory: FilesFactory | None
) -> TaskFiles | None:
    """The task's workspace when the handler accepts a `files` keyword; local files only without a factory."""
    if not any(name in accepted for name in FILES_KWARGS):
        return None
    return (factory or FileStore(FileSettings()).workspace)(task)


def files_kwargs(accepted: frozenset[str], files: TaskFiles | None) -> dict[str, Any]:
    """The `files`/`task_files` keyword arguments the handler declared."""
    return {name: files for name in FILES_KWARGS if name in accepted and files is not None}
