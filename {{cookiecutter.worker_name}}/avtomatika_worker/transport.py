"""HTTP client for the orchestrator's `/_worker` API; the one place aiohttp errors become SDK errors.

Every request passes the rate budget of its message type first (ratelimit.py) and is timed by the
reply watch (stalls.py), so pacing and slow-reply warnings cover every message the worker sends.
"""

from __future__ import annotations

import email.utils
import logging
import math
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
import orjson

from . import observe, tracing
from .config import WorkerConfig
from .endpoints import Endpoints
from .errors import (
    OrchestratorRateLimitedError,
    OrchestratorRejectedError,
    OrchestratorUnavailableError,
    ProtocolError,
)
from .ratelimit import EVENT, HEARTBEAT, POLL, REGISTER, RESULT, WEBSOCKET, RateBudget
from .signing import seal
from .stalls import ReplyWatch

logger = logging.getLogger(__name__)

API_PREFIX = "/_worker"
PROTOCOL_VERSION = "1.0b17"
DEFAULT_REQUEST_TIMEOUT = 30.0
# Requests made while stopping must leave time for the rest of the stop sequence.
URGENT_REQUEST_TIMEOUT = 2.0
# An instance that does not even accept the connection by then is down (or unreachable): fail over.
CONNECT_TIMEOUT = 5.0

WS_HEARTBEAT = 20.0  # seconds between WebSocket pings: detects a silently dead connection
# 1.0b30 counts the upgrade before its generic handler turns the 429 into a plain-text 500.
_WS_RATE_LIMITED = frozenset({429, 500})

_NO_REPLY = object()
# What a proxy in front of an instance answers when the instance is gone: fail over as for a refusal.
_GATEWAY_DOWN = frozenset({502, 503, 504})

WsConnect = Callable[[], Awaitable[aiohttp.ClientWebSocketResponse]]
"""Opens the orchestrator's WebSocket command channel (`GET /_worker/ws/{worker_id}`)."""

Message = dict[str, Any] | Callable[[], dict[str, Any]]
"""A request body, or a function building it at the moment the request goes out."""

ExchangeObserver = Callable[[bool], None]
"""Told True after every reply proving the orchestrator is up, False after every transient failure."""


def _error_text(body: bytes) -> tuple[str, bool]:
    """The orchestrator's `{"error": ...}` text (and True), else the raw body (and False)."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "replace")[:500] or "(empty body)", False
    if isinstance(parsed, dict) and "error" in parsed:
        return str(parsed["error"]), True
    return body.decode("utf-8", "replace")[:500], False


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Parse a Retry-After header (seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


class OrchestratorClient:
    """Signed JSON requests to one orchestrator, authenticated with the worker token."""

    def __init__(
        self,
        config: WorkerConfig,
        session: aiohttp.ClientSession | None = None,
        on_exchange: ExchangeObserver | None = None,
        *,
        budget: RateBudget | None = None,
        watch: ReplyWatch | None = None,
    ) -> None:
        self._config = config
        self._session = session
        self._owns_session = session is None
        self._on_exchange = on_exchange
        self.budget = budget or RateBudget(config.rate_limits)
        self.watch = watch or ReplyWatch()
        self.endpoints = Endpoints(config.endpoints, config.worker_id)
        self._tokens = {e.url: e.token or config.worker_token for e in config.endpoints}
        self._headers_by_url = {url: _headers(token, config.worker_id) for url, token in self._tokens.items()}
        # One instance (the usual case): the session sends the headers itself, cheaper than per request.
        self._headers = self._headers_by_url[config.endpoints[0].url]
        self._json_headers = {**self._headers, "Content-Type": "application/json"}
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}
        self._ssl = config.tls.ssl_context()  # HTTP and the WebSocket share it (one connector)

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            # aiohttp's default Accept-Encoding is gzip/deflate: never zstd, which we could not decode.
            # No cookie jar: the protocol uses none, and a jar costs a lookup on every request.
            # The session sends our headers itself: per-request headers cost a merge on every request.
            # Content-Type goes only with a body: a bodiless GET that claims JSON is odd for proxies.
            connector = aiohttp.TCPConnector(ssl=self._ssl) if self._ssl is not None else None
            self._session = aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar(), headers=self._headers
            )
        return self._session

    async def close(self) -> None:
        """Close the HTTP session if this client created it."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def register(self, message: dict[str, Any]) -> Any:
        """POST a (freshly sealed) registration; returns the decoded reply."""
        path = f"{API_PREFIX}/workers/register"
        return self._reply(await self._request(REGISTER, "POST", path, message, urgent=True))

    async def heartbeat(self, message: Message | None, *, urgent: bool = False) -> Any:
        """PATCH a sealed heartbeat (a dict, or a callable building it when the request goes out), or
        (None) an empty one, whose reply is JSON null for a forgotten worker."""
        path = f"{API_PREFIX}/workers/{self._config.worker_id}"
        timeout = URGENT_REQUEST_TIMEOUT if urgent else DEFAULT_REQUEST_TIMEOUT
        reply = await self._request(HEARTBEAT, "PATCH", path, message, timeout, urgent=urgent)
        return self._reply(reply)

    async def send_result(self, message: dict[str, Any], *, urgent: bool = False) -> Any:
        """POST a sealed task result; returns the orchestrator's reply."""
        path = f"{API_PREFIX}/tasks/result"
        timeout = URGENT_REQUEST_TIMEOUT if urgent else DEFAULT_REQUEST_TIMEOUT
        return self._reply(await self._request(RESULT, "POST", path, message, timeout, urgent=urgent))

    async def send_event(self, message: dict[str, Any], request_timeout: float) -> Any:
        """POST a sealed event (e.g. progress); returns the reply (`{"status": "event_accepted"}`)."""
        path = f"{API_PREFIX}/events"
        return self._reply(await self._request(EVENT, "POST", path, message, request_timeout))

    async def ws_connect(self) -> aiohttp.ClientWebSocketResponse:
        """Open the WebSocket command channel; raises OrchestratorRejectedError/OrchestratorUnavailableError."""
        path = f"{API_PREFIX}/ws/{self._config.worker_id}"
        await self.budget.acquire(WEBSOCKET)
        endpoint = self.endpoints.current()
        try:
            return await self._get_session().ws_connect(
                endpoint.url + path,
                headers=self._headers_by_url[endpoint.url],
                heartbeat=WS_HEARTBEAT,
                timeout=aiohttp.ClientWSTimeout(ws_close=10.0),
            )
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status in _WS_RATE_LIMITED:
                self.budget.refused(WEBSOCKET, retry_after_seconds(_header(exc.headers, "Retry-After")))
            if 400 <= exc.status < 500 and exc.status != 429:
                raise OrchestratorRejectedError(exc.status, exc.message) from exc
            raise OrchestratorUnavailableError(f"GET {path} (WebSocket) failed: {exc}", exc.status) from exc
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            text = _failed(f"GET {path} (WebSocket)", exc, self._config, endpoint.url)
            self.endpoints.failed(endpoint, text)
            raise OrchestratorUnavailableError(text) from exc
        finally:
            self.budget.release(WEBSOCKET)

    def _observe(self, reachable: bool) -> None:
        if self._on_exchange is not None:
            self._on_exchange(reachable)

    @staticmethod
    def _reply(reply: Any) -> Any:
        return {} if reply is _NO_REPLY else reply

    async def next_task(self) -> Any:
        """Long-poll for a task; None on 204 or when the client timeout expires (an empty poll).

        The reply is returned as decoded JSON: the caller validates it (tasks.py)."""
        path = f"{API_PREFIX}/workers/{self._config.worker_id}/tasks/next"
        try:
            reply = await self._request(POLL, "GET", path, None, self._config.poll_timeout)
        except TimeoutError:
            return None
        return None if reply is _NO_REPLY else reply

    async def _request(
        self,
        kind: str,
        method: str,
        path: str,
        message: Message | None,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        *,
        urgent: bool = False,
    ) -> Any:
        """Send one request of message type `kind`; maps every transport failure to the SDK's exceptions."""
        body = None
        await self.budget.acquire(kind, urgent=urgent)
        endpoint = self.endpoints.current()
        url = endpoint.url + path
        if message is not None:
            # Built and sealed after the budget wait: current content, and a fresh timestamp and nonce for
            # every send (the orchestrator rejects a repeated body as a replay).
            content = message() if callable(message) else message
            body = orjson.dumps(seal(content, self._config.worker_id, self._tokens[endpoint.url]))
        headers = self._request_headers(endpoint.url, body is not None)
        timeout = self._timeouts.get(request_timeout)
        if timeout is None:
            timeout = self._timeouts[request_timeout] = aiohttp.ClientTimeout(
                total=request_timeout, sock_connect=min(request_timeout, CONNECT_TIMEOUT)
            )
        pending = self.watch.start(f"{method} {path}", poll=kind == POLL)
        began, span = time.perf_counter(), tracing.request_span(kind, method, path)
        status = 0
        try:
            async with self._get_session().request(
                method, url, data=body, headers=headers, timeout=timeout
            ) as response:
                status = response.status
                raw = await response.read()
                retry_after = response.headers.get("Retry-After")
        except TimeoutError:
            self._observe(False)
            self.endpoints.failed(endpoint, f"no reply within {request_timeout:g} s")
            if kind == POLL:
                raise
            raise OrchestratorUnavailableError(
                f"{method} {path} timed out after {request_timeout:g} s"
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            self._observe(False)
            text = _failed(f"{method} {path}", exc, self._config, endpoint.url)
            self.endpoints.failed(endpoint, text)
            raise OrchestratorUnavailableError(text) from exc
        finally:
            self.budget.release(kind)
            self.watch.finish(pending, empty_poll=kind == POLL and status == 204)
            observe.get().on_request(kind, time.perf_counter() - began, 200 <= status < 300)
            tracing.end_request_span(span, status)
        if status == 429:
            self.budget.refused(kind, retry_after_seconds(retry_after))
        try:
            decoded = self._decode(method, path, status, raw, retry_after)
        except OrchestratorUnavailableError:
            self._observe(False)
            if status in _GATEWAY_DOWN:
                self.endpoints.failed(endpoint, f"HTTP {status} from a proxy in front of it")
            raise
        self.endpoints.succeeded(endpoint)
        self._observe(True)
        return decoded

    def _request_headers(self, url: str, with_body: bool) -> dict[str, str] | None:
        if self.endpoints.several:  # tokens may differ per instance: always per request
            headers = self._headers_by_url[url]
            return {**headers, "Content-Type": "application/json"} if with_body else headers
        return self._json_headers if with_body else None if self._owns_session else self._headers

    @staticmethod
    def _decode(method: str, path: str, status: int, raw: bytes, retry_after: str | None) -> Any:
        if status == 204:
            return _NO_REPLY
        if status == 429:
            text, _ = _error_text(raw)
            message = f"{method} {path}: HTTP 429 (rate limited): {text}"
            raise OrchestratorRateLimitedError(message, retry_after_seconds(retry_after))
        if status >= 500:
            text, answered = _error_text(raw)
            raise OrchestratorUnavailableError(
                f"{method} {path}: HTTP {status}: {text}", status, answered=answered
            )
        if status >= 400:
            raise OrchestratorRejectedError(status, _error_text(raw)[0])
        if status >= 300:
            raise ProtocolError(f"{method} {path}: unexpected HTTP {status}")
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ProtocolError(f"{method} {path}: reply is not JSON: {raw[:200]!r}") from exc


def _headers(token: str, worker_id: str) -> dict[str, str]:
    return {"X-Worker-Token": token, "X-Worker-ID": worker_id, "X-RXON-Version": PROTOCOL_VERSION}


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    return headers.get(name) if headers is not None else None


def _failed(request: str, exc: BaseException, config: WorkerConfig, url: str) -> str:
    """What went wrong with `request` to `url`, with a hint when the host name does not resolve or TLS failed."""
    tls = config.tls.describe(exc, url)
    if tls is not None:
        return f"{request} failed: {tls}"
    text = f"{request} failed: {exc or type(exc).__name__}"
    if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(exc.os_error, socket.gaierror):
        text += unresolved_host_hint(exc.host, in_container())
    return text


def in_container() -> bool:
    """Whether this process runs in a container (Docker, Podman, a Kubernetes pod)."""
    markers = ("/.dockerenv", "/run/.containerenv")
    return any(os.path.exists(path) for path in markers) or "KUBERNETES_SERVICE_HOST" in os.environ


def unresolved_host_hint(host: str, containerised: bool) -> str:
    """Why the orchestrator's host name may not resolve, for where the worker runs."""
    text = f"; the host name {host!r} of ORCHESTRATOR_URL does not resolve here: "
    if containerised:
        # A service name that is not up yet, or on another network than this container's.
        return text + "is that service running, and on this container's network? (docker compose ps)"
    # Typically a compose service name (mock-orchestrator) used by a worker started outside Docker.
    return text + "outside Docker, point ORCHESTRATOR_URL at a published port, e.g. http://localhost:8080"
