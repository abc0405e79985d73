"""The mock's S3 access: settings from the orchestrator's ``S3_*`` variables and a small streaming client.

The client speaks S3's REST API over aiohttp with Signature Version 4 (path-style addressing, payload
left unsigned as ``UNSIGNED-PAYLOAD``), so the mock needs no S3 library: with no ``S3_*`` settings it
never touches S3 at all. Bodies are streamed both ways, never held in memory.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import urllib.parse
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

S3_VARIABLES = ("S3_ENDPOINT_URL", "S3_ACCESS_KEY", "S3_SECRET_KEY")
DEFAULT_BUCKET = "avtomatika-payloads"  # avtomatika 1.0b30's S3_DEFAULT_BUCKET default
DEFAULT_REGION = "us-east-1"
UNSIGNED = "UNSIGNED-PAYLOAD"
CHUNK = 1 << 16
TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)


class S3Error(RuntimeError):
    """An S3 request failed; the text names the operation, the object and S3's answer."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class S3Settings:
    """Where the files live: avtomatika's S3_ENDPOINT_URL, S3_ACCESS_KEY, S3_SECRET_KEY, S3_REGION, bucket."""

    endpoint: str
    access_key: str
    secret_key: str = ""
    region: str = DEFAULT_REGION
    bucket: str = DEFAULT_BUCKET

    def __repr__(self) -> str:  # the secret key never reaches a log line
        return f"S3Settings(endpoint={self.endpoint!r}, bucket={self.bucket!r}, region={self.region!r})"


def s3_settings(env: Mapping[str, str]) -> S3Settings | None:
    """The S3 settings, None when none of S3_ENDPOINT_URL/S3_ACCESS_KEY/S3_SECRET_KEY is set.

    Raises ValueError naming the missing ones when only some are (the orchestrator disables S3 then).
    """
    values = {name: env.get(name, "").strip() for name in S3_VARIABLES}
    if not any(values.values()):
        return None
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise ValueError(
            f"{', '.join(missing)} not set while {', '.join(n for n in S3_VARIABLES if n not in missing)} "
            "is: set all three (e.g. S3_ENDPOINT_URL=http://s3:9000 S3_ACCESS_KEY=dev S3_SECRET_KEY=dev-secret) "
            "or none"
        )
    endpoint = values["S3_ENDPOINT_URL"]
    if urllib.parse.urlsplit(endpoint).scheme not in ("http", "https"):
        raise ValueError(
            f"S3_ENDPOINT_URL={endpoint!r} is invalid: must be an http(s) URL, e.g. http://s3:9000"
        )
    return S3Settings(
        endpoint=endpoint.rstrip("/"),
        access_key=values["S3_ACCESS_KEY"],
        secret_key=values["S3_SECRET_KEY"],
        region=env.get("S3_REGION", "").strip() or DEFAULT_REGION,
        bucket=env.get("S3_DEFAULT_BUCKET", "").strip() or DEFAULT_BUCKET,
    )


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """(bucket, key) of ``s3://bucket/key``; ValueError for anything else."""
    parts = urllib.parse.urlsplit(uri)
    key = parts.path.lstrip("/")
    if parts.scheme != "s3" or not parts.netloc or not key:
        raise ValueError(f"{uri!r} is not an S3 object URI like s3://avtomatika-payloads/uploads/data.csv")
    return parts.netloc, key


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def sign_headers(
    settings: S3Settings, method: str, url: URL, now: datetime.datetime | None = None
) -> dict[str, str]:
    """The SigV4 headers of one request (host, x-amz-date, x-amz-content-sha256, Authorization)."""
    moment = now or datetime.datetime.now(datetime.UTC)
    stamp, day = moment.strftime("%Y%m%dT%H%M%SZ"), moment.strftime("%Y%m%d")
    host = url.raw_host or ""
    if url.explicit_port:
        host = f"{host}:{url.port}"
    headers = {"host": host, "x-amz-content-sha256": UNSIGNED, "x-amz-date": stamp}
    signed = ";".join(sorted(headers))
    query = "&".join(
        sorted(f"{k}={v}" for k, v in (p.split("=", 1) for p in url.raw_query_string.split("&") if p))
    )
    canonical = "\n".join(
        [method, url.raw_path, query, *(f"{k}:{headers[k]}" for k in sorted(headers)), "", signed, UNSIGNED]
    )
    scope = f"{day}/{settings.region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(f"AWS4{settings.secret_key}".encode(), day)
    for part in (settings.region, "s3", "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    credential = f"{settings.access_key}/{scope}"
    authorization = f"AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders={signed}, Signature={signature}"
    return {**{k: v for k, v in headers.items() if k != "host"}, "Authorization": authorization}


@dataclass(frozen=True)
class StoredObject:
    """What S3 reports about an object."""

    size: int
    etag: str | None
    content_type: str | None = None


class S3Client:
    """PUT, GET, HEAD of objects and bucket creation, streamed; one aiohttp session per client."""

    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        self._session: aiohttp.ClientSession | None = None

    def _url(self, bucket: str, key: str = "") -> URL:
        path = (
            "/"
            + urllib.parse.quote(bucket, safe="")
            + ("/" + urllib.parse.quote(key, safe="/~") if key else "")
        )
        return URL(self.settings.endpoint + path, encoded=True)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=TIMEOUT, auto_decompress=False)
        return self._session

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()

    async def _request(self, method: str, url: URL, **kwargs: Any) -> aiohttp.ClientResponse:
        headers = {**kwargs.pop("headers", {}), **sign_headers(self.settings, method, url)}
        try:
            return await self._client().request(method, url, headers=headers, **kwargs)
        except aiohttp.ClientError as exc:
            raise S3Error(
                f"cannot reach S3 at {self.settings.endpoint} ({exc}): is S3_ENDPOINT_URL right?"
            ) from exc

    async def _check(self, response: aiohttp.ClientResponse, what: str) -> None:
        if response.status < 300:
            return
        text = (await response.text(errors="replace"))[:300]
        response.release()
        raise S3Error(f"{what} failed: HTTP {response.status} {text}", response.status)

    async def ensure_bucket(self, bucket: str | None = None) -> None:
        """Create the bucket unless it exists."""
        name = bucket or self.settings.bucket
        response = await self._request("PUT", self._url(name))
        if response.status == 409:  # BucketAlreadyOwnedByYou / BucketAlreadyExists
            response.release()
            return
        await self._check(response, f"creating bucket {name!r}")
        response.release()

    async def put(
        self, bucket: str, key: str, body: AsyncIterator[bytes], size: int, content_type: str
    ) -> str | None:
        """Upload ``size`` bytes from ``body``; the object's ETag (quotes removed)."""
        headers = {"Content-Length": str(size), "Content-Type": content_type}
        response = await self._request("PUT", self._url(bucket, key), data=body, headers=headers)
        await self._check(response, f"uploading s3://{bucket}/{key}")
        response.release()
        etag = response.headers.get("ETag")
        return etag.strip('"') if etag else None

    async def head(self, bucket: str, key: str) -> StoredObject:
        """Size, ETag and content type of an object (S3Error with status 404 when missing)."""
        response = await self._request("HEAD", self._url(bucket, key))
        response.release()
        if response.status >= 300:
            raise S3Error(f"s3://{bucket}/{key}: HTTP {response.status}", response.status)
        return _stored(response)

    async def get(self, bucket: str, key: str) -> tuple[StoredObject, aiohttp.ClientResponse]:
        """The object's description and the open response to stream its body from (release it after)."""
        response = await self._request("GET", self._url(bucket, key))
        await self._check(response, f"downloading s3://{bucket}/{key}")
        return _stored(response), response


def _stored(response: aiohttp.ClientResponse) -> StoredObject:
    etag = response.headers.get("ETag")
    return StoredObject(
        size=int(response.headers.get("Content-Length", "0")),
        etag=etag.strip('"') if etag else None,
        content_type=response.headers.get("Content-Type"),
    )
