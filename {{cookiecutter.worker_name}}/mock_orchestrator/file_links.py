"""Download links of output files: what a task view shows, signed with the client token (no S3 needed)."""

from __future__ import annotations

import hashlib
import hmac
import urllib.parse
from collections.abc import Mapping
from typing import Any

DOWNLOAD_ROUTE = "/files"


def link_signature(client_token: str, uri: str) -> str:
    """The signature a download link for ``uri`` carries (keyed with the client token)."""
    return hmac.new(client_token.encode(), f"download\n{uri}".encode(), hashlib.sha256).hexdigest()


def download_link(client_token: str, uri: str) -> str:
    """The mock's relative download link for an S3 object."""
    query = urllib.parse.urlencode({"uri": uri, "sig": link_signature(client_token, uri)})
    return f"{DOWNLOAD_ROUTE}?{query}"


def _s3_strings(value: Any, path: str = "") -> list[tuple[str, str]]:
    """(key path, uri) of every ``s3://`` string in a result's data, in the official SDK's key-path form."""
    if isinstance(value, str):
        return [(path, value)] if value.startswith("s3://") else []
    if isinstance(value, dict):
        return [hit for k, v in value.items() for hit in _s3_strings(v, f"{path}.{k}" if path else str(k))]
    if isinstance(value, list):
        return [hit for i, v in enumerate(value) for hit in _s3_strings(v, f"{path}[{i}]")]
    return []


def output_files(
    data: Any, data_metadata: Mapping[str, Any] | None, client_token: str
) -> list[dict[str, Any]]:
    """The output files of a result: its ``data_metadata`` entries, then other ``s3://`` URIs in its data."""
    files: dict[str, dict[str, Any]] = {}
    for name, meta in (data_metadata or {}).items():
        if isinstance(meta, dict) and isinstance(meta.get("uri"), str):
            files[meta["uri"]] = {"name": name, **meta}
    for name, uri in _s3_strings(data):
        files.setdefault(uri, {"name": name, "uri": uri})
    return [
        dict(entry, download=download_link(client_token, uri))
        for uri, entry in files.items()
        if uri.startswith("s3://") and not uri.endswith("/")  # a folder has no single body to download
    ]
