"""Run the real avtomatika orchestrator on Redis storage with the sample blueprints.

Configuration is avtomatika's own (API_PORT, GLOBAL_WORKER_TOKEN, CLIENT_TOKEN, WORKERS_CONFIG_PATH, ...)
plus REDIS_URL. Used by the template's interop tests and by the top-level docker-compose.yml.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

from avtomatika.config import Config
from avtomatika.engine import OrchestratorEngine
from avtomatika.storage.redis import RedisStorage
from redis.asyncio import Redis

STOP_GRACE_SECONDS = 5.0


def build_engine() -> OrchestratorEngine:
    """Create the engine with Redis storage and the blueprints folder beside this file."""
    os.environ.setdefault("BLUEPRINTS_DIR", str(Path(__file__).with_name("blueprints")))
    os.environ.setdefault("LOG_FORMAT", "text")
    config = Config()
    # socket_timeout=None: redis-py's default 5 s read timeout breaks the orchestrator's blocking
    # long poll (storage/redis.py: dequeue_task_for_worker, BZPOPMAX) and makes its job executor back off.
    redis = Redis.from_url(
        os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), decode_responses=False, socket_timeout=None
    )
    return OrchestratorEngine(RedisStorage(redis), config)


async def serve() -> None:
    """Serve until SIGTERM/SIGINT, then stop within a bounded time."""
    engine = build_engine()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await engine.start()
    logging.getLogger(__name__).info("real orchestrator ready on port %s", engine.config.API_PORT)
    await stop.wait()
    # engine.stop() (engine.py, l. 945) can hang on Redis storage: bound it.
    try:
        await asyncio.wait_for(engine.stop(), STOP_GRACE_SECONDS)
    except TimeoutError:
        logging.getLogger(__name__).warning("orchestrator did not stop within %.0f s", STOP_GRACE_SECONDS)


if __name__ == "__main__":
    try:
        asyncio.run(serve())
    finally:
        os._exit(0)
