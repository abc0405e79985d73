"""The mock's per-worker rate limiter (MOCK_RATE_LIMITS), answering like avtomatika 1.0b30 when over it."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import WSMsgType, WSServerHandshakeError
from aiohttp.test_utils import TestClient

from mock_orchestrator.rate_limits import LIMITER_KEY
from mock_orchestrator.settings import ConfigError, RateLimits, load_server_config

from mock_support import (
    WORKER_ID,
    WORKER_TOKEN,
    FakeClock,
    heartbeat,
    mock_client,
    poll,
    post_json,
    registration,
    seal,
    worker_headers,
)

# What avtomatika 1.0b30 sends: the engine's JSON text, nested once more by rxon's HTTP listener.
REFUSED_BODY = b'{"error":"{\\"error\\": \\"Too Many Requests\\"}"}'
LIMIT = 3
PERIOD = 60
UPGRADE_HEADERS = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


@asynccontextmanager
async def limited(clock: FakeClock, **limits: int) -> AsyncIterator[TestClient]:
    """A mock with rate limiting on (LIMIT for every type and a PERIOD-second window unless given)."""
    values = {"poll": LIMIT, "heartbeat": LIMIT, "other": LIMIT, "period": PERIOD} | limits
    async with mock_client(clock, hold=0.001, rate_limits=RateLimits(**values)) as running:
        yield running


async def expect_refused(resp: Any) -> None:
    """Byte for byte the 429 a worker gets from the real orchestrator's HTTP endpoints."""
    assert resp.status == 429, await resp.text()
    assert await resp.read() == REFUSED_BODY
    assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
    assert resp.headers["X-RXON-Version"] == "1.0b17"
    assert "Retry-After" not in resp.headers


# --- one request of each message type, as a well-behaved worker sends it ---------------------------

Send = Callable[[TestClient, FakeClock, str], Awaitable[Any]]


async def send_register(client: TestClient, clock: FakeClock, worker_id: str) -> Any:
    body = seal(registration(worker_id), clock)
    return await post_json(client, "/_worker/workers/register", body, worker_headers(worker_id))


async def send_empty_heartbeat(client: TestClient, clock: FakeClock, worker_id: str) -> Any:
    return await heartbeat(client, worker_id, None)


async def send_signed_heartbeat(client: TestClient, clock: FakeClock, worker_id: str) -> Any:
    return await heartbeat(client, worker_id, seal({"worker_id": worker_id, "status": "idle"}, clock))


async def send_poll(client: TestClient, clock: FakeClock, worker_id: str) -> Any:
    return await poll(client, worker_id)


async def send_result(client: TestClient, clock: FakeClock, worker_id: str) -> Any:
    body = seal({"job_id": "job-x", "task_id": "task-x", "worker_id": worker_id, "status": "success"}, clock)
    return await post_json(client, "/_worker/tasks/result", body, worker_headers(worker_id))


async def send_event(client: TestClient, clock: FakeClock, worker_id: str) -> Any:
    event = {
        "event_id": uuid.uuid4().hex,
        "worker_id": worker_id,
        "origin_worker_id": worker_id,
        "event_type": "progress",
        "payload": {"progress": 0.5},
    }
    return await post_json(client, "/_worker/events", seal(event, clock), worker_headers(worker_id))


SENDERS: dict[str, Send] = {
    "register": send_register,
    "heartbeat": send_empty_heartbeat,
    "signed_heartbeat": send_signed_heartbeat,
    "poll": send_poll,
    "result": send_result,
    "event": send_event,
}


async def accepted(resp: Any) -> None:
    assert resp.status in (200, 204), await resp.text()


async def exhaust(client: TestClient, clock: FakeClock, send: Send, worker_id: str = WORKER_ID) -> None:
    """Use up the limit (all accepted), then see the first refusal."""
    for _ in range(LIMIT):
        await accepted(await send(client, clock, worker_id))
    await expect_refused(await send(client, clock, worker_id))


# --- MOCK_RATE_LIMITS ------------------------------------------------------------------------------


def rate_limits_from(raw: str | None) -> RateLimits | None:
    env = {"WORKER_TOKEN": "w", "CLIENT_TOKEN": "c"}
    if raw is not None:
        env["MOCK_RATE_LIMITS"] = raw
    return load_server_config(env).settings.rate_limits


@pytest.mark.parametrize("raw", [None, "", "off", "OFF", "false", "0", "no"])
def test_rate_limits_are_off_unless_switched_on(raw: str | None) -> None:
    assert rate_limits_from(raw) is None


@pytest.mark.parametrize("raw", ["on", "true", "defaults", " Defaults ", "1", "yes"])
def test_on_means_the_real_orchestrators_defaults(raw: str) -> None:
    assert rate_limits_from(raw) == RateLimits(poll=60, heartbeat=120, other=100, period=60)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("poll=10,heartbeat=10,other=20,period=5", RateLimits(poll=10, heartbeat=10, other=20, period=5)),
        ("period=5", RateLimits(period=5)),
        (" Poll = 0 , OTHER=7 ", RateLimits(poll=0, other=7)),
    ],
)
def test_an_explicit_list_overrides_only_the_limits_it_names(raw: str, expected: RateLimits) -> None:
    assert rate_limits_from(raw) == expected


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("maybe", "'maybe' is not one of poll=N, heartbeat=N, other=N, period=N"),
        ("pol=10", "'pol=10' is not one of poll=N"),
        ("poll=ten", "poll='ten' is not a whole number"),
        ("poll=-1", "poll='-1' is not a whole number"),
        ("period=0", "period='0' is not a whole number >= 1"),
        ("poll=1,poll=2", "poll is given twice"),
        ("poll=1,", "'' is not one of poll=N"),
    ],
)
def test_bad_rate_limits_name_variable_value_rule_and_example(raw: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        rate_limits_from(raw)
    message = str(caught.value)
    assert message.startswith(f"MOCK_RATE_LIMITS={raw!r} is invalid: {problem}")
    assert "; it must be off, on (avtomatika's defaults poll=60,heartbeat=120,other=100,period=60)" in message
    assert message.endswith("(e.g. MOCK_RATE_LIMITS=poll=10,heartbeat=10,other=20,period=5)")
    assert "\n" not in message


# --- counting ------------------------------------------------------------------------------------


async def test_without_rate_limits_a_worker_is_never_refused(client: TestClient, clock: FakeClock) -> None:
    for _ in range(130):  # more than the real default heartbeat limit of 120
        await accepted(await heartbeat(client, WORKER_ID, None))


async def test_with_the_defaults_the_61st_poll_in_a_minute_is_refused(clock: FakeClock) -> None:
    async with mock_client(clock, hold=0.001, rate_limits=RateLimits()) as client:
        for _ in range(60):
            assert (await poll(client)).status == 204
            clock.now += 0.5
        await expect_refused(await poll(client))


@pytest.mark.parametrize("kind", list(SENDERS))
async def test_every_worker_endpoint_is_refused_over_its_limit(clock: FakeClock, kind: str) -> None:
    async with limited(clock) as client:
        await exhaust(client, clock, SENDERS[kind])
        await expect_refused(await SENDERS[kind](client, clock, WORKER_ID))


async def test_each_message_type_has_its_own_limit(clock: FakeClock) -> None:
    async with limited(clock, poll=1, heartbeat=2, other=4) as client:
        assert (await poll(client)).status == 204
        await expect_refused(await poll(client))
        for _ in range(2):
            await accepted(await heartbeat(client, WORKER_ID, None))
        await expect_refused(await heartbeat(client, WORKER_ID, None))
        for send in (send_register, send_result, send_event):  # "other" is one limit, not one counter
            for _ in range(4):
                await accepted(await send(client, clock, WORKER_ID))
            await expect_refused(await send(client, clock, WORKER_ID))


async def test_empty_and_signed_heartbeats_share_one_counter(clock: FakeClock) -> None:
    async with limited(clock) as client:
        await accepted(await send_empty_heartbeat(client, clock, WORKER_ID))
        await accepted(await send_signed_heartbeat(client, clock, WORKER_ID))
        await accepted(await send_empty_heartbeat(client, clock, WORKER_ID))
        await expect_refused(await send_signed_heartbeat(client, clock, WORKER_ID))


async def test_counters_are_per_worker(clock: FakeClock) -> None:
    async with limited(clock) as client:
        await exhaust(client, clock, send_empty_heartbeat, "worker-1")
        await accepted(await heartbeat(client, "worker-2", None))


# --- the window ----------------------------------------------------------------------------------


async def test_refused_requests_push_the_window_out_again(clock: FakeClock) -> None:
    async with limited(clock) as client:
        await exhaust(client, clock, send_empty_heartbeat)
        for _ in range(3):  # each refusal restarts the 60 s, as Redis EXPIRE does
            clock.now += PERIOD - 1
            await expect_refused(await heartbeat(client, WORKER_ID, None))


async def test_a_full_period_without_requests_resets_the_counter(clock: FakeClock) -> None:
    async with limited(clock) as client:
        await exhaust(client, clock, send_empty_heartbeat)
        clock.now += PERIOD  # the key still exists at its exact expiry instant ...
        await expect_refused(await heartbeat(client, WORKER_ID, None))
        clock.now += PERIOD + 0.001  # ... and is gone right after it
        await exhaust(client, clock, send_empty_heartbeat)


async def test_accepted_requests_also_keep_the_window_open(clock: FakeClock) -> None:
    async with limited(clock) as client:
        for _ in range(LIMIT):
            await accepted(await heartbeat(client, WORKER_ID, None))
            clock.now += PERIOD - 1  # never a full period of silence, so the count keeps growing
        await expect_refused(await heartbeat(client, WORKER_ID, None))


# --- what is not counted (checked before the limiter, as in the real orchestrator) -----------------


async def test_authentication_failures_are_not_counted(clock: FakeClock) -> None:
    async with limited(clock) as client:
        for _ in range(5):
            wrong = await client.patch(
                f"/_worker/workers/{WORKER_ID}", headers=worker_headers(token="not-the-token")
            )
            assert wrong.status == 403
        await exhaust(client, clock, send_empty_heartbeat)
        wrong = await client.patch(f"/_worker/workers/{WORKER_ID}", headers=worker_headers(token="bad"))
        assert wrong.status == 403  # authentication still comes first when over the limit


async def test_unparsable_bodies_are_a_400_and_not_counted(clock: FakeClock) -> None:
    async with limited(clock) as client:
        for _ in range(5):
            resp = await client.post("/_worker/workers/register", data=b"{nope", headers=worker_headers())
            assert resp.status == 400
        await exhaust(client, clock, send_register)
        resp = await client.post("/_worker/workers/register", data=b"{nope", headers=worker_headers())
        assert resp.status == 400  # parsing still comes first when over the limit


async def test_invalid_but_authenticated_requests_are_counted(clock: FakeClock) -> None:
    async with limited(clock) as client:
        unsigned = registration()
        for _ in range(LIMIT):
            resp = await post_json(client, "/_worker/workers/register", unsigned, worker_headers())
            assert resp.status == 403  # the signature check comes after the limiter
        await expect_refused(await send_register(client, clock, WORKER_ID))


# --- the WebSocket -------------------------------------------------------------------------------


async def test_websocket_over_the_limit_is_a_plain_text_500_before_the_upgrade(clock: FakeClock) -> None:
    async with limited(clock) as client:
        for _ in range(LIMIT):
            ws = await client.ws_connect(f"/_worker/ws/{WORKER_ID}", headers=worker_headers())
            await ws.close()
        resp = await client.get(f"/_worker/ws/{WORKER_ID}", headers=worker_headers() | UPGRADE_HEADERS)
        assert (resp.status, await resp.text()) == (500, "Too Many Requests")
        assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert resp.headers["X-RXON-Version"] == "1.0b17"
        with pytest.raises(WSServerHandshakeError) as refused:
            await client.ws_connect(f"/_worker/ws/{WORKER_ID}", headers=worker_headers())
        assert refused.value.status == 500


async def test_a_failed_upgrade_is_aiohttps_400_and_still_counted(clock: FakeClock) -> None:
    async with limited(clock) as client:
        for _ in range(LIMIT):
            resp = await client.get(f"/_worker/ws/{WORKER_ID}", headers=worker_headers())
            assert resp.status == 400
            assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
            assert "X-RXON-Version" not in resp.headers  # the real one does not add it here either
        with pytest.raises(WSServerHandshakeError) as refused:
            await client.ws_connect(f"/_worker/ws/{WORKER_ID}", headers=worker_headers())
        assert refused.value.status == 500


def charge_websocket_counter(client: TestClient) -> None:
    # Only reachable through the API when Redis expires websocket_auth just before websocket.
    for _ in range(LIMIT):
        client.app[LIMITER_KEY].hit(WORKER_TOKEN, WORKER_ID, "websocket")


async def test_websocket_counted_after_the_upgrade_writes_the_raw_429_into_the_stream(
    clock: FakeClock,
) -> None:
    async with limited(clock) as client:
        charge_websocket_counter(client)
        reader, writer = await asyncio.open_connection(client.host, client.port)
        headers = worker_headers() | UPGRADE_HEADERS | {"Host": "127.0.0.1"}
        request = f"GET /_worker/ws/{WORKER_ID} HTTP/1.1\r\n"
        request += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        writer.write((request + "\r\n").encode())
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
            refusal = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            body = await asyncio.wait_for(reader.readexactly(30), 5)
        finally:
            writer.close()
        lines = refusal.decode().split("\r\n")
        assert lines[0] == "HTTP/1.1 429 Too Many Requests"
        assert f"Retry-After: {PERIOD}" in lines
        assert "Content-Type: application/json; charset=utf-8" in lines
        assert not any(line.startswith("X-RXON-Version") for line in lines)
        assert body == b'{"error": "Too Many Requests"}'


async def test_websocket_client_sees_a_protocol_error_when_refused_after_the_upgrade(
    clock: FakeClock,
) -> None:
    async with limited(clock) as client:
        charge_websocket_counter(client)
        ws = await client.ws_connect(f"/_worker/ws/{WORKER_ID}", headers=worker_headers())
        message = await ws.receive(timeout=5)
        assert message.type == WSMsgType.ERROR
        assert ws.close_code == 1002  # the HTTP response bytes are not a valid frame
        await ws.close()


# --- logging -------------------------------------------------------------------------------------


async def test_one_warning_per_burst_and_type_not_per_refusal(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="mock_orchestrator")
    async with limited(clock) as client:
        await exhaust(client, clock, send_empty_heartbeat)
        await exhaust(client, clock, send_poll)
        for _ in range(5):
            await expect_refused(await heartbeat(client, WORKER_ID, None))
        clock.now += PERIOD + 1
        await exhaust(client, clock, send_empty_heartbeat)
    warnings = [r.getMessage() for r in caplog.records if "rate limit" in r.getMessage()]
    assert [w.split("refusing ")[1].split()[0] for w in warnings] == ["heartbeat", "poll", "heartbeat"]
    assert all(f"worker {WORKER_ID} (more than {LIMIT} within {PERIOD} s)" in w for w in warnings)
