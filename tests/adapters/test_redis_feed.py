"""The broadcaster fed from the shared log's live tail: ``RedisFeed`` with the asyncio
``EventStreamServer`` and the ASGI ``EventStream``, against a real redis-server.

Each test starts its own redis-server (a free loopback port, its own directory; with and
without AOF where a restart is part of the test) and real servers on loopback sockets; the
clients are bare HTTP readers (``StreamReader``) that see every byte.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from sse_core import Event, InvalidConfigError, LocalProtocolError, ServerConfig
from sse_core.adapters import ServerOptions
from sse_core.adapters.asyncio import EventStreamServer
from sse_core.state import GAP_EVENT_TYPE, POSITION_EVENT_TYPE, LogUnavailableError
from tests.adapters import redis_support
from tests.adapters.redis_support import RedisServer, StreamReader, redis, run

#: Redis servers of the test's own: with and without AOF (``server``), without (``plain``);
#: ``each_server`` and ``each_plain`` run the test on a valkey-server too.
server, plain = redis_support.server, redis_support.plain
each_server, each_plain = redis_support.each_server, redis_support.each_plain

redis_feed = pytest.importorskip("sse_core.adapters.redis")
RedisFeed = redis_feed.RedisFeed
#: A tail that notices a wiped Redis within 0.2 s.
FAST = redis_feed.TailConfig(block_timeout=0.2)
#: ... and whose clients wait for it 0.3 s at most.
SHORT = redis_feed.TailConfig(block_timeout=0.2, catch_up_timeout=0.3)

#: Seconds any one scenario may take; only a failure ever waits this long.
TIMEOUT = 60.0


def client_of(redis_server: RedisServer) -> Any:
    """An asyncio Redis client whose timeouts fit a tail blocking 0.2 s at a time."""
    return redis.asyncio.Redis.from_url(
        redis_server.url, socket_timeout=2.0, socket_connect_timeout=1.0
    )


def feed_of(redis_server: RedisServer, key: str = "sse:news", **kwargs: Any) -> Any:
    """A feed with a short block timeout (the tail notices a wiped Redis fast)."""
    kwargs.setdefault("tail", FAST)
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


def test_every_worker_delivers_every_event_in_order_and_a_client_resumes_on_another(
    each_plain: RedisServer,
) -> None:
    """Two servers, each with its own feed on one Redis stream: events published through
    either reach the clients of both, in the log's order, once; a client that moves from
    one worker to the other with its Last-Event-ID gets exactly the events it missed
    (on Redis, and on Valkey)."""

    async def scenario() -> None:
        feed_a, feed_b = feed_of(each_plain), feed_of(each_plain)
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
            seen_a = await on_a.read_data(10)
            seen_b = await on_b.read_data(10)
            assert [e.data for e in seen_a] == [f"e{i}" for i in range(10)]
            assert [e.id for e in seen_a] == [s.id for s in published] == [e.id for e in seen_b]
            await on_a.close()
            # Moved to worker B after event 3, while 6 more were published.
            for i in range(10, 16):
                published.append(await feed_a.publish(Event(data=f"e{i}")))
            moved = await StreamReader.open(b.address, last_event_id=seen_a[3].id)
            again = await moved.read_data(12)
            assert [e.id for e in again] == [s.id for s in published[4:]]
            await moved.close()
            await on_b.close()
        for feed in (feed_a, feed_b):
            await feed.client.aclose()

    run(scenario, TIMEOUT)


def test_server_publish_refuses_and_a_feed_needs_an_asyncio_server(plain: RedisServer) -> None:
    """A server fed from the shared log publishes there only (its own publish refuses, so
    nothing reaches one worker's clients alone), takes no replay log besides, a feed serves
    one server, and its tail starts only in an asyncio loop."""

    async def scenario() -> None:
        feed = feed_of(plain)
        async with worker(feed) as stream_server:
            with pytest.raises(LocalProtocolError, match=r"feed\.publish"):
                stream_server.publish(Event(data="x"))
            with pytest.raises(InvalidConfigError, match="already feeds"):
                EventStreamServer(feed=feed)
        with pytest.raises(InvalidConfigError, match="not both"):
            from sse_core.state import ReplayLog

            EventStreamServer(ReplayLog(), feed=feed_of(plain))
        from sse_core.adapters.trio import EventStreamServer as TrioServer

        with pytest.raises(InvalidConfigError, match="runs on trio"):
            TrioServer(feed=feed_of(plain))
        await feed.client.aclose()

    run(scenario, TIMEOUT)
    with pytest.raises(LocalProtocolError, match="asyncio"):
        feed_of(plain).start()  # no loop runs: the tail is redis.asyncio


def retrying_client(redis_server: RedisServer) -> Any:
    """A client that retries a command once on a new connection (pooled connections are
    dead after a restart)."""
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return redis.asyncio.Redis.from_url(
        redis_server.url, socket_timeout=2.0, socket_connect_timeout=1.0,
        retry=Retry(NoBackoff(), 1), retry_on_error=[redis.exceptions.ConnectionError],
    )


async def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Poll ``predicate`` until it holds (only a failure waits ``timeout``)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def test_redis_down_keeps_streams_and_heartbeats_and_a_restart_resumes_or_gaps(
    each_server: RedisServer,
) -> None:
    """Redis killed while a client streams: publishing raises LogUnavailableError (nothing
    acknowledged), the client keeps its connection and its heartbeats, the tail backs off.
    Redis started again: with AOF the tail catches up from its last id and the client gets
    every event published afterwards, no gap; without persistence the client's stream ends
    and its resume gets the explicit gap signal, never a silent loss (Valkey alike)."""
    server = each_server

    async def scenario() -> None:
        feed = RedisFeed(retrying_client(server), "sse:down", tail=FAST)
        config = ServerConfig(heartbeat_interval=0.2)
        async with worker(feed, config=config) as stream_server:
            reader = await StreamReader.open(stream_server.address)
            before = [await feed.publish(Event(data=f"b{i}")) for i in range(3)]
            assert [e.id for e in await reader.read_data(3)] == [s.id for s in before]
            server.crash()
            with pytest.raises(LogUnavailableError):
                await feed.publish(Event(data="lost"))
            beats = reader.comments
            failures = feed.failures
            await wait_until(lambda: feed.failures > failures, "the tail to fail")
            # Heartbeats go on while Redis is down (read them off the socket).
            reading = asyncio.ensure_future(reader.next_event())
            await asyncio.sleep(1.0)
            assert not reading.done(), "an event or the end came while Redis was down"
            assert reader.comments >= beats + 2, "no heartbeats while Redis was down"
            server.start()
            after = [await feed.publish(Event(data=f"a{i}")) for i in range(3)]
            if server.aof:
                assert after[0].id.split("-")[0] == before[0].id.split("-")[0]
                first = await reading
                rest = await reader.read_data(2)
                assert [first.id if first else None] + [e.id for e in rest] == [
                    s.id for s in after
                ]
            else:
                assert await reading is None, "the stream did not end on the lost epoch"
                await wait_until(lambda: feed.gaps >= 1, "the tail to report the gap")
                again = await StreamReader.open(stream_server.address, last_event_id=before[-1].id)
                signal = await again.next_event()
                assert signal is not None and signal.event == GAP_EVENT_TYPE
                assert json.loads(signal.data) == {
                    "last_event_id": before[-1].id, "reason": "unknown"
                }
                position = await again.next_event()
                assert position is not None and position.event == POSITION_EVENT_TYPE
                assert position.id.split("-")[0] == after[0].id.split("-")[0]
                more = await feed.publish(Event(data="more"))
                assert [e.id for e in await again.read_data(1)] == [more.id]
                await again.close()
            await reader.close()
        await feed.client.aclose()

    run(scenario, TIMEOUT)


def test_a_deleted_stream_ends_every_stream_with_a_gap(plain: RedisServer) -> None:
    """An operator deletes the stream's key: the tail sees the log gone within its block
    timeout, every client's stream ends, and a resume says ``unknown`` -- the events are
    gone and the client is told."""

    async def scenario() -> None:
        feed = feed_of(plain, "sse:deleted")
        async with worker(feed) as stream_server:
            reader = await StreamReader.open(stream_server.address)
            stored = await feed.publish(Event(data="x"))
            assert [e.id for e in await reader.read_data(1)] == [stored.id]
            await feed.client.delete("sse:deleted")
            assert await reader.next_event() is None
            again = await StreamReader.open(stream_server.address, last_event_id=stored.id)
            signal = await again.next_event()
            assert signal is not None and signal.event == GAP_EVENT_TYPE
            await again.close()
            await reader.close()
        await feed.client.aclose()

    run(scenario, TIMEOUT)


def test_a_client_ahead_of_a_workers_tail_waits_for_it_instead_of_reading_a_gap(
    plain: RedisServer,
) -> None:
    """A client served by a fast worker moves to one whose tail has not read the newest
    events yet (here: stopped while events were published): the worker waits for its tail
    to catch up with the client's id, then resumes it exactly -- no false gap."""

    async def scenario() -> None:
        feed_a, feed_b = feed_of(plain), feed_of(plain)
        async with worker(feed_a) as a, worker(feed_b) as b:
            on_a = await StreamReader.open(a.address)
            on_b = await StreamReader.open(b.address)
            await on_a.next_event()
            await on_b.next_event()
            await feed_b.aclose()  # B's tail stops: its mirror falls behind
            published = [await feed_a.publish(Event(data=f"e{i}")) for i in range(3)]
            assert [e.id for e in await on_a.read_data(3)] == [s.id for s in published]
            assert feed_b.mirror.is_behind(published[-1].id)
            moved = await StreamReader.open(b.address, last_event_id=published[1].id)
            assert moved.status == 200
            more = await feed_a.publish(Event(data="more"))
            seen = await moved.read_data(2)
            assert [e.id for e in seen] == [published[2].id, more.id]
            for reader in (on_a, on_b, moved):
                await reader.close()
        for feed in (feed_a, feed_b):
            await feed.client.aclose()

    run(scenario, TIMEOUT)


def test_a_worker_that_cannot_load_the_log_refuses_new_streams_with_503(tmp_path: Path) -> None:
    """A worker whose Redis has never answered has no position to give a new client: after
    ``catch_up_timeout`` the stream is refused with 503 and Retry-After (the client comes
    back), instead of a stream that could not be resumed."""

    async def scenario() -> None:
        dead = RedisServer(tmp_path, aof=False)  # never started: the port refuses
        feed = RedisFeed(client_of(dead), "sse:x", tail=SHORT)
        async with worker(feed) as stream_server:
            reader = await StreamReader.open(stream_server.address)
            assert reader.status == 503 and reader.header("Retry-After") is not None
            await reader.close()
            assert not feed.is_connected and feed.failures >= 1
        await feed.client.aclose()

    run(scenario, TIMEOUT)


def test_the_docs_example_runs_against_a_real_redis(plain: RedisServer) -> None:
    """docs/examples/redis_feed.py, shown on docs/adapters/redis.rst, runs as written
    against a real redis-server: two workers, one channel, a client moving between them."""
    script = Path(__file__).resolve().parent.parent.parent / "docs" / "examples" / "redis_feed.py"
    done = subprocess.run(
        [sys.executable, str(script)], env={**os.environ, "REDIS_URL": plain.url},
        capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "every event once, in order, across two workers" in done.stdout


async def poll(address: tuple[str, int], query: str) -> tuple[int, bytes]:
    """One long poll (HTTP/1.0): its status and body."""
    reader, writer = await asyncio.open_connection(*address)
    writer.write(f"GET /poll?{query} HTTP/1.0\r\nAccept: application/json\r\n\r\n".encode())
    response = await asyncio.wait_for(reader.read(), 15.0)
    writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def test_a_long_poll_resumes_from_the_shared_log_and_waits_for_the_tail(
    plain: RedisServer, tmp_path: Path
) -> None:
    """Long polls are served from the same copy of the log: a poll whose ``lastEventId``
    (query) is newer than the worker's copy waits for the tail, then answers the events
    after it exactly; a worker that cannot load the log answers a poll 503."""

    async def scenario() -> None:
        options = ServerOptions(long_poll_path="/poll")
        feed_a, feed_b = feed_of(plain), feed_of(plain)
        async with worker(feed_a, options=options), worker(feed_b, options=options) as b:
            await feed_b.ready(None)
            await feed_b.aclose()  # B's copy falls behind
            sent = [await feed_a.publish(Event(data=f"e{i}")) for i in range(3)]
            status, body = await poll(b.address, f"lastEventId={sent[0].id}&timeout=0")
            answer = json.loads(body)
            assert status == 200 and answer["gap"] is None
            assert [e["id"] for e in answer["events"]] == [s.id for s in sent[1:]]
        dead = RedisServer(tmp_path, aof=False)
        feed = RedisFeed(client_of(dead), "sse:x", tail=SHORT)
        async with worker(feed, options=options) as lonely:
            status, _ = await poll(lonely.address, "timeout=0")
            assert status == 503
        for each in (feed_a, feed_b, feed):
            await each.client.aclose()

    run(scenario, TIMEOUT)


def test_a_client_ahead_of_a_worker_while_redis_is_down_is_asked_to_come_back_not_gapped(
    server: RedisServer,
) -> None:
    """Redis is down and a client brings an id the worker's tail has not read: the worker
    cannot tell a gap from a delay, so after ``catch_up_timeout`` it answers 503 with
    Retry-After (no false gap); once Redis is back the same request resumes exactly."""

    async def scenario() -> None:
        feed_a = RedisFeed(retrying_client(server), "sse:ahead", tail=FAST)
        feed_b = RedisFeed(retrying_client(server), "sse:ahead", tail=SHORT)
        async with worker(feed_a) as a, worker(feed_b) as b:
            on_a = await StreamReader.open(a.address)
            await on_a.next_event()
            assert await feed_b.ready(None)
            await feed_b.aclose()  # B falls behind
            sent = [await feed_a.publish(Event(data=f"e{i}")) for i in range(2)]
            assert [e.id for e in await on_a.read_data(2)] == [s.id for s in sent]
            server.crash()
            refused = await StreamReader.open(b.address, last_event_id=sent[-1].id)
            assert refused.status == 503 and refused.header("Retry-After") is not None
            await refused.close()
            server.start()
            if server.aof:  # (without persistence the id is gone: see the gap tests)
                more = await feed_a.publish(Event(data="more"))
                # B's tail reconnects with backoff: until it has caught up, the answer is
                # 503 again (Retry-After), as a client would be told; then the resume.
                for _ in range(50):
                    again = await StreamReader.open(b.address, last_event_id=sent[-1].id)
                    if again.status == 200:
                        break
                    assert again.status == 503 and again.header("Retry-After") is not None
                    await again.close()
                    await asyncio.sleep(0.2)
                assert again.status == 200
                assert [e.id for e in await again.read_data(1)] == [more.id]
                await again.close()
            await on_a.close()
        for feed in (feed_a, feed_b):
            await feed.client.aclose()

    run(scenario, TIMEOUT)
