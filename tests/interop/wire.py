"""A test-local worker-protocol client that signs its own messages (protocol.md §3), good or bad.

Written from the protocol document, not from the SDK, so the contract test can send exactly the
malformed, unsigned, expired or replayed messages a real worker must never send.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

WORKER_PREFIX = "/_worker"
EXPIRED_SECONDS = 120  # twice the orchestrator's +-60 s window
# The reply headers a worker can act on; Date and Server differ by nature, Content-Length follows the body.
PROTOCOL_HEADERS = ("Content-Type", "X-RXON-Version", "Retry-After")
UPGRADE_HEADERS = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


def _normalise(value: Any) -> Any:
    """Drop null members of objects and turn integral floats into ints, recursively (§3 step 4)."""
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def canonical(body: dict[str, Any]) -> bytes:
    """The bytes the orchestrator signs: body minus `security`/`_signature`, normalised, keys sorted."""
    unsigned = {k: v for k, v in body.items() if k not in ("security", "_signature")}
    return orjson.dumps(_normalise(unsigned), option=orjson.OPT_SORT_KEYS)


def signature(body: dict[str, Any], key: str) -> str:
    """Hex HMAC-SHA256 of the canonical body under `key`."""
    return hmac.new(key.encode(), canonical(body), hashlib.sha256).hexdigest()


def seal(body: dict[str, Any], key: str, signer: str, mode: str = "ok") -> dict[str, Any]:
    """Return `body` with timestamp, nonce and signature as `mode` says.

    Modes: ok, unsigned (no timestamp, no security), no_security (timestamp only), bad_signature,
    expired (timestamp 120 s old, correctly signed), float_timestamp (correctly signed float).
    """
    if mode == "unsigned":
        return dict(body)
    now = time.time()
    stamped: dict[str, Any] = {**body, "nonce": secrets.token_hex(16)}
    stamped["timestamp"] = {"expired": int(now) - EXPIRED_SECONDS, "float_timestamp": now + 0.25}.get(
        mode, int(now)
    )
    if mode == "no_security":
        return stamped
    sig = signature(stamped, key)
    if mode == "bad_signature":
        sig = signature(stamped, key + "-not-the-key")
    elif mode not in ("ok", "expired", "float_timestamp"):
        raise ValueError(f"unknown seal mode {mode!r}; use ok, unsigned, no_security, bad_signature, ...")
    return {**stamped, "security": {"signature": sig, "signer_id": signer}}


@dataclass(frozen=True)
class Reply:
    """One HTTP answer: status code and decoded JSON body (None for an empty body), raw bytes and headers."""

    status: int
    body: Any
    raw: bytes = field(default=b"", compare=False)
    headers: Mapping[str, str] = field(default_factory=dict, compare=False)

    def pair(self) -> tuple[int, Any]:
        """(status, body), the form scenario expectations are written in."""
        return self.status, self.body

    def exact(self) -> tuple[int, str, dict[str, str | None]]:
        """(status, body text byte for byte, the protocol headers with None for an absent one)."""
        return self.status, self.raw.decode(), {name: self.headers.get(name) for name in PROTOCOL_HEADERS}


class WireClient:
    """Raw HTTP access to the worker API of one orchestrator (mock or real) for one worker id."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, worker_id: str, token: str) -> None:
        self.session = session
        self.base_url = base_url
        self.worker_id = worker_id
        self.token = token
        self.last_body: bytes | None = None
        self.last_target: tuple[str, str, dict[str, str]] | None = None

    def headers(self, token: str | None = "ok", worker_header: str | None = "self") -> dict[str, str]:
        """Auth headers; token ok/wrong/None and X-Worker-ID self/other/None."""
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["X-Worker-Token"] = self.token if token == "ok" else token
        if worker_header is not None:
            headers["X-Worker-ID"] = self.worker_id if worker_header == "self" else worker_header
        return headers

    async def send(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str], timeout: float = 300
    ) -> Reply:
        """Send raw bytes and decode the reply; remembers them for `replay()`."""
        self.last_body, self.last_target = body, (method, path, headers)
        limit = aiohttp.ClientTimeout(total=timeout)
        url = self.base_url + path
        async with self.session.request(method, url, data=body, headers=headers, timeout=limit) as resp:
            raw = await resp.read()
            received = resp.headers.copy()
        if not raw:
            return Reply(resp.status, None, raw, received)
        try:
            return Reply(resp.status, orjson.loads(raw), raw, received)
        except orjson.JSONDecodeError:
            return Reply(resp.status, raw.decode(errors="replace"), raw, received)

    async def replay(self) -> Reply:
        """Send the previous request again, byte for byte."""
        assert self.last_target is not None, "nothing to replay yet"
        method, path, headers = self.last_target
        return await self.send(method, path, self.last_body, headers)

    async def post_signed(
        self, method: str, path: str, body: dict[str, Any], mode: str = "ok", **header_opts: Any
    ) -> Reply:
        """Seal `body` (see `seal`) and send it."""
        sealed = seal(body, self.token, self.worker_id, mode)
        return await self.send(method, path, orjson.dumps(sealed), self.headers(**header_opts))

    async def register(self, skills: list[str], mode: str = "ok", **header_opts: Any) -> Reply:
        """POST /workers/register announcing `skills`."""
        body = {
            "worker_id": self.worker_id,
            "worker_type": "contract-probe",
            "supported_skills": [{"name": s, "type": s} for s in skills],
        }
        return await self.post_signed("POST", f"{WORKER_PREFIX}/workers/register", body, mode, **header_opts)

    async def heartbeat(self, body: dict[str, Any] | None, worker_id: str | None = None) -> Reply:
        """PATCH the worker record: signed when `body` is given, empty otherwise."""
        path = f"{WORKER_PREFIX}/workers/{worker_id or self.worker_id}"
        if body is None:
            return await self.send("PATCH", path, None, self.headers())
        return await self.post_signed("PATCH", path, {"worker_id": self.worker_id, **body})

    async def poll(self) -> Reply:
        """GET the next task (200 + task, or 204)."""
        return await self.send(
            "GET", f"{WORKER_PREFIX}/workers/{self.worker_id}/tasks/next", None, self.headers()
        )

    async def result(self, body: dict[str, Any], mode: str = "ok") -> Reply:
        """POST a task result."""
        return await self.post_signed(
            "POST", f"{WORKER_PREFIX}/tasks/result", {"worker_id": self.worker_id, **body}, mode
        )

    async def event(self, body: dict[str, Any]) -> Reply:
        """POST a worker event (progress etc.); `event_id` doubles as the replay nonce."""
        message = {
            "event_id": secrets.token_hex(16),
            "worker_id": self.worker_id,
            "origin_worker_id": self.worker_id,
        }
        return await self.post_signed("POST", f"{WORKER_PREFIX}/events", {**message, **body})

    async def websocket_handshake(self, upgrade: bool = True) -> Reply:
        """GET the command channel as a plain request (with or without upgrade headers), to see a refusal."""
        headers = self.headers() | (UPGRADE_HEADERS if upgrade else {})
        return await self.send("GET", f"{WORKER_PREFIX}/ws/{self.worker_id}", None, headers, timeout=10)

    async def websocket(self) -> aiohttp.ClientWebSocketResponse:
        """Open the command channel."""
        url = f"{self.base_url}{WORKER_PREFIX}/ws/{self.worker_id}"
        return await self.session.ws_connect(url, headers=self.headers())
