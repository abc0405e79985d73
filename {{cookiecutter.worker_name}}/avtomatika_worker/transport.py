"""HTTP client for the orchestrator's `/_worker` API; the one place aiohttp errors become SDK errors."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson

from .config import WorkerConfig
from .errors import OrchestratorRejectedError, OrchestratorUnavailableError, ProtocolError
from .signing import seal

logger = logging.getLogger(__name__)

API_PREFIX = "/_worker"
PROTOCOL_VERSION = "1.0b17"
DEFAULT_REQUEST_TIMEOUT = 30.0

WS_HEARTBEAT = 20.0  # seconds between WebSocket pings: detects a silently dead connection

_NO_REPLY = object()

WsConnect = Callable[[], Awaitable[aiohttp.ClientWebSocketResponse]]
"""Opens the orchestrator's WebSocket command channel (`GET /_worker/ws/{worker_id}`)."""

ExchangeObserver = Callable[[bool], None]
"""Told True after every reply proving the orchestrator is up, False after every transient failure."""


def _error_text(body: bytes) -> str:
    """Extract the orchestrator's `{"error": ...}` text, falling back to the raw body."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "replace")[:500] or "(empty body)"
    if isinstance(parsed, dict) and "error" in parsed:
        return str(parsed["error"])
    return body.decode("utf-8", "replace")[:500]


class OrchestratorClient:
    """Signed JSON requests to one orchestrator, authenticated with the worker token."""

    def __init__(
        self,
        config: WorkerConfig,
        session: aiohttp.ClientSession | None = None,
        on_exchange: ExchangeObserver | None = None,
    ) -> None:
        self._config = config
        self._session = session
        self._owns_session = session is None
        self._on_exchange = on_exchange
        self._headers = {
            "X-Worker-Token": config.worker_token,
            "X-Worker-ID": config.worker_id,
            "X-RXON-Version": PROTOCOL_VERSION,
        }
        self._json_headers = {**self._headers, "Content-Type": "application/json"}
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            # aiohttp's default Accept-Encoding is gzip/deflate: never zstd, which we could not decode.
            # No cookie jar: the protocol uses none, and a jar costs a lookup on every request.
            self._session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        return self._session

    async def close(self) -> None:
        """Close the HTTP session if this client created it."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def register(self, message: dict[str, Any]) -> Any:
        """POST a (freshly sealed) registration; returns the decoded reply."""
        return self._reply(await self._request("POST", f"{API_PREFIX}/workers/register", message))

    async def heartbeat(self, message: dict[str, Any]) -> Any:
        """PATCH a sealed heartbeat; returns the reply (`{"status": "ok", ...}`)."""
        return self._reply(
            await self._request("PATCH", f"{API_PREFIX}/workers/{self._config.worker_id}", message)
        )

    async def refresh_ttl(self) -> Any:
        """PATCH an empty heartbeat; the reply is `None` (JSON null) when the orchestrator forgot us."""
        return self._reply(
            await self._request("PATCH", f"{API_PREFIX}/workers/{self._config.worker_id}", None)
        )

    async def send_result(self, message: dict[str, Any]) -> Any:
        """POST a sealed task result; returns the orchestrator's reply."""
        return self._reply(await self._request("POST", f"{API_PREFIX}/tasks/result", message))

    async def send_event(self, message: dict[str, Any], request_timeout: float) -> Any:
        """POST a sealed event (e.g. progress); returns the reply (`{"status": "event_accepted"}`)."""
        return self._reply(
            await self._request("POST", f"{API_PREFIX}/events", message, request_timeout=request_timeout)
        )

    async def ws_connect(self) -> aiohttp.ClientWebSocketResponse:
        """Open the WebSocket command channel; raises OrchestratorRejectedError/OrchestratorUnavailableError."""
        path = f"{API_PREFIX}/ws/{self._config.worker_id}"
        try:
            return await self._get_session().ws_connect(
                self._config.orchestrator_url + path,
                headers=self._headers,
                heartbeat=WS_HEARTBEAT,
                timeout=aiohttp.ClientWSTimeout(ws_close=10.0),
            )
        except aiohttp.WSServerHandshakeError as exc:
            if 400 <= exc.status < 500 and exc.status != 429:
                raise OrchestratorRejectedError(exc.status, exc.message) from exc
            raise OrchestratorUnavailableError(f"GET {path} (WebSocket) failed: {exc}", exc.status) from exc
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise OrchestratorUnavailableError(
                f"GET {path} (WebSocket) failed: {exc or type(exc).__name__}"
            ) from exc

    def _observe(self, reachable: bool) -> None:
        if self._on_exchange is not None:
            self._on_exchange(reachable)

    @staticmethod
    def _reply(reply: Any) -> Any:
        return {} if reply is _NO_REPLY else reply

    async def next_task(self) -> dict[str, Any] | None:
        """Long-poll for a task; `None` on 204 or when the client timeout expires (an empty poll)."""
        path = f"{API_PREFIX}/workers/{self._config.worker_id}/tasks/next"
        try:
            reply = await self._request("GET", path, None, request_timeout=self._config.poll_timeout)
        except TimeoutError:
            return None
        if reply is _NO_REPLY:
            return None
        if not isinstance(reply, dict):
            raise ProtocolError(f"task poll returned {type(reply).__name__}, expected a JSON object")
        return reply

    async def _request(
        self,
        method: str,
        path: str,
        message: dict[str, Any] | None,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    ) -> Any:
        """Send one request; maps every transport failure to the SDK's exception tree."""
        url = self._config.orchestrator_url + path
        body = None
        if message is not None:
            # Sealed on every call so that a retry carries a new timestamp and nonce (replay guard).
            body = orjson.dumps(seal(message, self._config.worker_id, self._config.worker_token))
        headers = self._headers if body is None else self._json_headers
        timeout = self._timeouts.get(request_timeout)
        if timeout is None:
            timeout = self._timeouts[request_timeout] = aiohttp.ClientTimeout(total=request_timeout)
        try:
            async with self._get_session().request(
                method, url, data=body, headers=headers, timeout=timeout
            ) as response:
                status = response.status
                raw = await response.read()
        except TimeoutError:
            if method == "GET":
                raise
            self._observe(False)
            raise OrchestratorUnavailableError(
                f"{method} {path} timed out after {request_timeout:g} s"
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            self._observe(False)
            raise OrchestratorUnavailableError(
                f"{method} {path} failed: {exc or type(exc).__name__}"
            ) from exc
        try:
            decoded = self._decode(method, path, status, raw)
        except OrchestratorUnavailableError:
            self._observe(False)
            raise
        self._observe(True)
        return decoded

    @staticmethod
    def _decode(method: str, path: str, status: int, raw: bytes) -> Any:
        if status == 204:
            return _NO_REPLY
        if status == 429 or status >= 500:
            raise OrchestratorUnavailableError(f"{method} {path}: HTTP {status}: {_error_text(raw)}", status)
        if status >= 400:
            raise OrchestratorRejectedError(status, _error_text(raw))
        if status >= 300:
            raise ProtocolError(f"{method} {path}: unexpected HTTP {status}")
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ProtocolError(f"{method} {path}: reply is not JSON: {raw[:200]!r}") from exc
