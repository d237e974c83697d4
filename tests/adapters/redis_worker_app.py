"""One worker of the multi-process proof (``test_redis_workers.py``): the ASGI
``EventStream`` (``uvicorn tests.adapters.redis_worker_app:app --workers N``), the asyncio
``EventStreamServer`` (``python -m tests.adapters.redis_worker_app PORT``), the blocking
one (``... PORT sync``: a ``SyncRedisFeed``) or the trio one (``... PORT trio``: a
``TrioRedisFeed``), each fed from
the Redis log named by ``SSE_REDIS_URL`` and ``SSE_REDIS_KEY``. Every response says which
process served it (``X-Worker``: its pid)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from typing import Any

import redis
import redis.asyncio
import redis.retry
import trio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from sse_core import ServerConfig
from sse_core.adapters.asgi import EventStream
from sse_core.adapters.asyncio import EventStreamServer
from sse_core.adapters.redis import RedisFeed, SyncRedisFeed, TailConfig, TrioRedisFeed
from sse_core.adapters.sync import EventStreamServer as SyncEventStreamServer
from sse_core.adapters.trio import EventStreamServer as TrioEventStreamServer
from sse_core.state import ReplayConfig

#: Every worker's retention and tail (blocking 0.2 s at a time).
CONFIG = ReplayConfig(max_events=100_000, max_bytes=None)
TAIL = TailConfig(block_timeout=0.2)


def client_options(retry: Any) -> dict[str, Any]:
    """A client that retries once on a new connection (after a Redis restart the pooled
    ones are dead); ``retry``: redis-py's asyncio or blocking ``Retry``."""
    return {
        "socket_timeout": 2.0, "socket_connect_timeout": 1.0,
        "retry": retry(NoBackoff(), 1), "retry_on_error": [redis.exceptions.ConnectionError],
    }


def make_feed() -> RedisFeed:
    """The asyncio worker's feed."""
    client = redis.asyncio.Redis.from_url(os.environ["SSE_REDIS_URL"], **client_options(Retry))
    return RedisFeed(client, os.environ["SSE_REDIS_KEY"], CONFIG, tail=TAIL)


def make_sync_feed() -> SyncRedisFeed:
    """The blocking worker's feed."""
    options = client_options(redis.retry.Retry)
    client = redis.Redis.from_url(os.environ["SSE_REDIS_URL"], **options)
    return SyncRedisFeed(client, os.environ["SSE_REDIS_KEY"], CONFIG, tail=TAIL)


def make_trio_feed() -> TrioRedisFeed:
    """The trio worker's feed (over the blocking client, like the blocking worker's)."""
    feed = make_sync_feed()
    return TrioRedisFeed(feed.client, os.environ["SSE_REDIS_KEY"], CONFIG, tail=TAIL)


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


def serve_sync(port: int) -> None:
    """The blocking server on ``port`` until SIGTERM."""
    stream_server = SyncEventStreamServer(feed=make_sync_feed(), config=server_config())
    stream_server.start("127.0.0.1", port)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    print("ready", flush=True)
    stopped.wait()
    stream_server.close(grace=0.2)


async def serve_trio(port: int) -> None:
    """The trio server on ``port`` until SIGTERM."""
    stream_server = TrioEventStreamServer(feed=make_trio_feed(), config=server_config())
    with trio.open_signal_receiver(signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(stream_server.serve, "127.0.0.1", port)
            print("ready", flush=True)
            async for _ in signals:
                break
            await stream_server.aclose(grace=0.2)


if __name__ == "__main__":
    if sys.argv[2:] == ["sync"]:
        serve_sync(int(sys.argv[1]))
    elif sys.argv[2:] == ["trio"]:
        trio.run(serve_trio, int(sys.argv[1]))
    else:
        asyncio.run(serve(int(sys.argv[1])))
