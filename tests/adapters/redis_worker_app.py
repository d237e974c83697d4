"""One worker of the multi-process proof (``test_redis_workers.py``): the ASGI
``EventStream`` (``uvicorn tests.adapters.redis_worker_app:app --workers N``) or the asyncio
``EventStreamServer`` (``python -m tests.adapters.redis_worker_app PORT``), each fed from
the Redis log named by ``SSE_REDIS_URL`` and ``SSE_REDIS_KEY``. Every response says which
process served it (``X-Worker``: its pid)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from sse_core import ServerConfig
from sse_core.adapters.asgi import EventStream
from sse_core.adapters.asyncio import EventStreamServer
from sse_core.adapters.redis import RedisFeed, TailConfig
from sse_core.state import ReplayConfig


def make_feed() -> RedisFeed:
    """The worker's feed: a client that retries once on a new connection (after a Redis
    restart the pooled ones are dead), a tail blocking 0.2 s at a time."""
    client = redis.asyncio.Redis.from_url(
        os.environ["SSE_REDIS_URL"], socket_timeout=2.0, socket_connect_timeout=1.0,
        retry=Retry(NoBackoff(), 1), retry_on_error=[redis.exceptions.ConnectionError],
    )
    config = ReplayConfig(max_events=100_000, max_bytes=None)
    tail = TailConfig(block_timeout=0.2)
    return RedisFeed(client, os.environ["SSE_REDIS_KEY"], config, tail=tail)


def server_config() -> ServerConfig:
    """Heartbeats every 0.5 s; the worker's pid in a header."""
    return ServerConfig(heartbeat_interval=0.5, headers=(("X-Worker", str(os.getpid())),))


def __getattr__(name: str) -> EventStream:
    """``app``, made on first use in the worker process (uvicorn imports it there)."""
    if name == "app":
        made = EventStream(feed=make_feed(), config=server_config())
        globals()["app"] = made
        return made
    raise AttributeError(name)


async def serve(port: int) -> None:
    """The asyncio server on ``port`` until SIGTERM."""
    stream_server = EventStreamServer(feed=make_feed(), config=server_config())
    await stream_server.start("127.0.0.1", port)
    stopped = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopped.set)
    print("ready", flush=True)
    await stopped.wait()
    await stream_server.aclose(grace=0.2)


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
