"""A loopback HTTP proxy, in its own thread, that can hold every request back for a while (a stall)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp
from aiohttp import web

from processes import free_port

HOP_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


class StallProxy:
    """Forwards to `upstream`; while `stall` > 0 every request waits that long before it is forwarded."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.stall = 0.0
        self.stalled_requests = 0
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.stall > 0:
            self.stalled_requests += 1
            await asyncio.sleep(self.stall)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        async with (
            aiohttp.ClientSession(auto_decompress=False) as session,
            session.request(
                request.method,
                self.upstream + request.path_qs,
                data=await request.read() or None,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=120),
            ) as reply,
        ):
            body = await reply.read()
            out = {k: v for k, v in reply.headers.items() if k.lower() not in HOP_HEADERS}
            return web.Response(status=reply.status, body=body, headers=out)


@contextmanager
def stall_proxy(upstream: str) -> Iterator[StallProxy]:
    """Run a StallProxy in a background thread for the duration of the block."""
    proxy = StallProxy(upstream)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", proxy.handle)
    runner = web.AppRunner(app, handler_cancellation=True)

    async def start() -> None:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", proxy.port).start()
        ready.set()

    def serve() -> None:
        loop.run_until_complete(start())
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield proxy
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
