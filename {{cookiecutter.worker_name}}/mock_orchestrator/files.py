"""Files through S3, when the mock has ``S3_*`` settings: upload an input, list output files, download one.

- ``GET /api/v1/files``: whether files are on, and the bucket.
- ``POST /api/v1/files?name=data.csv``: the request body (streamed) becomes ``s3://<bucket>/uploads/<id>/data.csv``;
  the reply is its FileMetadata ``{"uri", "size", "etag"}``, what a task's ``params_metadata`` carries.
- ``GET /files?uri=s3://...&sig=...``: an output file, streamed from S3. The link is signed with the client
  token (``download_link``), so a browser can follow it without the token header; it is only handed out in
  task views, which need the token.
"""

from __future__ import annotations

import hmac
import logging
import mimetypes
import re
import urllib.parse
import uuid
from pathlib import PurePosixPath

from aiohttp import web

from .control_api import _client_api
from .file_links import DOWNLOAD_ROUTE, link_signature
from .responses import error_reply, json_reply
from .s3 import CHUNK, S3Client, S3Error, S3Settings, parse_s3_uri
from .state import STATE_KEY
from .submissions import InvalidRequest

UPLOAD_PREFIX = "uploads"
MAX_NAME = 200
FILES_KEY: web.AppKey[S3Client | None] = web.AppKey("mock_orchestrator_files")
UNSAFE_NAME = re.compile(r"[\x00-\x1f/\\]")

log = logging.getLogger("mock_orchestrator")


def upload_name(raw: str | None) -> str:
    """The file name part of an upload's ``name`` (no folders); InvalidRequest when there is none."""
    name = PurePosixPath((raw or "").replace("\\", "/")).name
    if not name or name in (".", "..") or len(name) > MAX_NAME or UNSAFE_NAME.search(name):
        raise InvalidRequest(
            f"query parameter 'name' = {raw!r} is invalid: must be a file name of 1-{MAX_NAME} characters "
            "without folders or control characters; e.g. ?name=data.csv"
        )
    return name


def _files(request: web.Request) -> S3Client | None:
    return request.app.get(FILES_KEY)


def _not_configured() -> web.Response:
    return error_reply(
        501,
        "files are off: the mock has no S3 settings (set S3_ENDPOINT_URL, S3_ACCESS_KEY and S3_SECRET_KEY, "
        "as the s3_files option of the template does in docker-compose.yml)",
    )


@_client_api
async def files_status(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/files: ``{"enabled": bool, "bucket": name or null}``."""
    client = _files(request)
    return json_reply({"enabled": client is not None, "bucket": client.settings.bucket if client else None})


@_client_api
async def upload_file(request: web.Request) -> web.StreamResponse:
    """POST /api/v1/files?name=NAME: stream the body to S3; 201 with the file's FileMetadata."""
    client = _files(request)
    if client is None:
        return _not_configured()
    name = upload_name(request.query.get("name"))
    size = request.content_length
    if size is None:
        raise InvalidRequest("the upload needs a Content-Length header (send the file as the request body)")
    bucket, key = client.settings.bucket, f"{UPLOAD_PREFIX}/{uuid.uuid4().hex}/{name}"
    content_type = _content_type(request.headers.get("Content-Type", ""), name)
    try:
        etag = await client.put(bucket, key, request.content.iter_chunked(CHUNK), size, content_type)
    except S3Error as exc:
        log.warning("upload of %s failed: %s", name, exc)
        return error_reply(502, str(exc))
    uri = f"s3://{bucket}/{key}"
    log.info("file %s uploaded (%d bytes)", uri, size)
    return json_reply({"uri": uri, "size": size, "etag": etag}, status=201)


async def download_file(request: web.Request) -> web.StreamResponse:
    """GET /files?uri=...&sig=...: the object, streamed, as an attachment named after its key."""
    client = _files(request)
    if client is None:
        return _not_configured()
    uri, sig = request.query.get("uri", ""), request.query.get("sig", "")
    expected = link_signature(request.app[STATE_KEY].settings.client_token, uri)
    if not hmac.compare_digest(sig.encode(), expected.encode()):
        return error_reply(
            403, "this download link is not valid: take the link from the task (dashboard or CLI)"
        )
    try:
        bucket, key = parse_s3_uri(uri)
        stored, upstream = await client.get(bucket, key)
    except (ValueError, S3Error) as exc:
        return error_reply(404 if getattr(exc, "status", 404) == 404 else 502, str(exc))
    try:
        filename = urllib.parse.quote(PurePosixPath(key).name)
        response = web.StreamResponse(
            headers={
                "Content-Type": stored.content_type or "application/octet-stream",
                "Content-Length": str(stored.size),
                "Content-Disposition": f"attachment; filename*=UTF-8''{filename}",
            }
        )
        await response.prepare(request)
        async for chunk in upstream.content.iter_chunked(CHUNK):
            await response.write(chunk)
        await response.write_eof()
        return response
    finally:
        upstream.release()


def _content_type(given: str, name: str) -> str:
    """The type to store: the client's, unless it is the form type curl and urllib send by default.

    A form type would also make S3 servers built on form-parsing frameworks (moto) swallow the body.
    """
    if given and not given.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        return given
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


async def _open(app: web.Application) -> None:
    client = app[FILES_KEY]
    if client is None:
        return
    try:
        await client.ensure_bucket()
        log.info("files: S3 at %s, bucket %s", client.settings.endpoint, client.settings.bucket)
    except S3Error as exc:  # S3 may come up later: uploads will say what is wrong then
        log.warning("files: cannot create bucket %s yet: %s", client.settings.bucket, exc)


async def _close(app: web.Application) -> None:
    client = app[FILES_KEY]
    if client is not None:
        await client.close()


def setup_file_routes(app: web.Application, settings: S3Settings | None) -> None:
    """Add the file routes; with ``settings`` None they answer 501 (files off)."""
    app[FILES_KEY] = S3Client(settings) if settings is not None else None
    app.router.add_get("/api/v1/files", files_status)
    app.router.add_post("/api/v1/files", upload_file)
    app.router.add_get(DOWNLOAD_ROUTE, download_file)
    app.on_startup.append(_open)
    app.on_cleanup.append(_close)
