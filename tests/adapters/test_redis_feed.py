"""The broadcaster fed from the shared log's live tail: ``RedisFeed`` with the asyncio
``EventStreamServer`` and the ASGI ``EventStream``, against a real redis-server.

Each test starts its own redis-server (a free loopback port, its own directory; with and
without AOF where a restart is part of the test) and real servers on loopback sockets; the
clients are bare HTTP readers (``StreamReader``) that see every byte.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from sse_core import Event, InvalidConfigError, LocalProtocolError, ServerConfig
from sse_core.adapters import ServerOptions
from sse_core.adapters.asyncio import EventStreamServer
from sse_core.state import GAP_EVENT_TYPE, POSITION_EVENT_TYPE, LogUnavailableError, ReplayConfig
from tests.adapters.redis_support import RedisServer, StreamReader, redis

redis_feed = pytest.importorskip("sse_core.adapters.redis")
RedisFeed = redis_feed.RedisFeed

#: Seconds any one scenario may take; only a failure ever waits this long.
TIMEOUT = 60.0


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    """Run an async scenario under a deadline."""

    async def bounded() -> None:
        await asyncio.wait_for(scenario(), TIMEOUT)

    asyncio.run(bounded())


@pytest.fixture(params=[False, True], ids=["no-persistence", "aof"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server without persistence, and one with AOF."""
    made = RedisServer(tmp_path, aof=request.param)
    made.start()
    try:
        yield made
    finally:
        made.stop()


@pytest.fixture
def plain(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server without persistence."""
    made = RedisServer(tmp_path, aof=False)
    made.start()
    try:
        yield made
    finally:
        made.stop()


def client_of(redis_server: RedisServer) -> Any:
    """An asyncio Redis client whose timeouts fit a tail blocking 0.2 s at a time."""
    return redis.asyncio.Redis.from_url(
        redis_server.url, socket_timeout=2.0, socket_connect_timeout=1.0
    )


def feed_of(redis_server: RedisServer, key: str = "sse:news", **kwargs: Any) -> Any:
    """A feed with a short block timeout (the tail notices a wiped Redis fast)."""
    kwargs.setdefault("block_timeout", 0.2)
    return RedisFeed(client_of(redis_server), key, **kwargs)


@asynccontextmanager
async def worker(feed: Any, **kwargs: Any) -> AsyncIterator[EventStreamServer]:
    """An asyncio server on a free port, serving ``feed``."""
    stream_server = EventStreamServer(feed=feed, **kwargs)
    await stream_server.start()
    try:
        yield stream_server
    finally:
        await stream_server.aclose()


async def read_data(reader: StreamReader, count: int) -> list[Event]:
    """The next ``count`` events that carry data (position events skipped)."""
    events: list[Event] = []
    while len(events) < count:
        event = await reader.next_event()
        assert event is not None, f"the stream ended after {events}"
        if event.event != POSITION_EVENT_TYPE:
            events.append(event)
    return events


def test_every_worker_delivers_every_event_in_order_and_a_client_resumes_on_another(
    plain: RedisServer,
) -> None:
    """Two servers, each with its own feed on one Redis stream: events published through
    either reach the clients of both, in the log's order, once; a client that moves from
    one worker to the other with its Last-Event-ID gets exactly the events it missed."""

    async def scenario() -> None:
        feed_a, feed_b = feed_of(plain), feed_of(plain)
        async with worker(feed_a) as a, worker(feed_b) as b:
            on_a = await StreamReader.open(a.address)
            on_b = await StreamReader.open(b.address)
            assert on_a.status == on_b.status == 200
            first_a = await on_a.next_event()
            first_b = await on_b.next_event()
            assert first_a is not None and first_a.event == POSITION_EVENT_TYPE
            assert first_b is not None and first_b.id == first_a.id
            published = []
            for i in range(10):
                feed = feed_a if i % 2 else feed_b
                published.append(await feed.publish(Event(data=f"e{i}")))
            seen_a = await read_data(on_a, 10)
            seen_b = await read_data(on_b, 10)
            assert [e.data for e in seen_a] == [f"e{i}" for i in range(10)]
            assert [e.id for e in seen_a] == [s.id for s in published] == [e.id for e in seen_b]
            await on_a.close()
            # Moved to worker B after event 3, while 6 more were published.
            for i in range(10, 16):
                published.append(await feed_a.publish(Event(data=f"e{i}")))
            moved = await StreamReader.open(b.address, last_event_id=seen_a[3].id)
            again = await read_data(moved, 12)
            assert [e.id for e in again] == [s.id for s in published[4:]]
            await moved.close()
            await on_b.close()
        for feed in (feed_a, feed_b):
            await feed.client.aclose()

    run(scenario)


def test_server_publish_refuses_and_a_feed_needs_an_asyncio_server(plain: RedisServer) -> None:
    """A server fed from the shared log publishes there only (its own publish refuses, so
    nothing reaches one worker's clients alone), takes no replay log besides, and a feed
    serves one server."""

    async def scenario() -> None:
        feed = feed_of(plain)
        async with worker(feed) as stream_server:
            with pytest.raises(LocalProtocolError, match="feed.publish"):
                stream_server.publish(Event(data="x"))
            with pytest.raises(InvalidConfigError, match="already feeds"):
                EventStreamServer(feed=feed)
        with pytest.raises(InvalidConfigError, match="not both"):
            from sse_core.state import ReplayLog

            EventStreamServer(ReplayLog(), feed=feed_of(plain))
        from sse_core.adapters.trio import EventStreamServer as TrioServer

        with pytest.raises(InvalidConfigError, match="takes no feed"):
            TrioServer(feed=feed_of(plain))
        await feed.client.aclose()

    run(scenario)
