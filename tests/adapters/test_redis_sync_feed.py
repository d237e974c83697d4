"""The threaded ``EventStreamServer`` fed from the shared log's live tail: ``SyncRedisFeed``
(blocking redis-py, a tail thread) against a real redis-server.

Each test starts its own redis-server (a free loopback port, its own directory; with and
without AOF where a restart is part of the test) and real threaded servers on loopback
sockets (two of them play two workers); the clients are bare HTTP readers
(``StreamReader``) that see every byte.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from sse_core import Event, InvalidConfigError, ServerConfig
from sse_core.adapters.sync import EventStreamServer
from sse_core.state import GAP_EVENT_TYPE, POSITION_EVENT_TYPE, LogUnavailableError, ReplayLog
from tests.adapters import redis_support
from tests.adapters.redis_support import RedisServer, StreamReader, redis, run
from tests.adapters.test_redis_feed import FAST, SHORT, TIMEOUT, redis_feed, wait_until

SyncRedisFeed = redis_feed.SyncRedisFeed

#: Redis servers of the test's own: with and without AOF (``server``), without (``plain``).
server, plain = redis_support.server, redis_support.plain


def client_of(redis_server: RedisServer) -> Any:
    """A blocking Redis client whose timeouts fit a tail blocking 0.2 s at a time, and that
    retries a command once on a new connection (pooled ones are dead after a restart)."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(
        redis_server.url, socket_timeout=2.0, socket_connect_timeout=1.0,
        retry=Retry(NoBackoff(), 1), retry_on_error=[redis.exceptions.ConnectionError],
    )


def feed_of(redis_server: RedisServer, key: str = "sse:news", **kwargs: Any) -> Any:
    """A blocking feed with a short block timeout."""
    kwargs.setdefault("tail", FAST)
    return SyncRedisFeed(client_of(redis_server), key, **kwargs)


@contextmanager
def worker(feed: Any, **kwargs: Any) -> Iterator[EventStreamServer]:
    """A threaded server on a free port, serving ``feed``; its client closed after."""
    stream_server = EventStreamServer(feed=feed, **kwargs)
    stream_server.start()
    try:
        yield stream_server
    finally:
        stream_server.close()
        feed.client.close()


def test_two_sync_workers_deliver_every_event_once_in_order_and_a_client_resumes_on_the_other(
    plain: RedisServer,
) -> None:
    """Two threaded servers, each with its own feed on one Redis stream: events published
    through either server (its publish goes to Redis) reach the clients of both, in the
    log's order, once; a client that moves to the other worker with its Last-Event-ID gets
    exactly the events it missed."""

    async def scenario() -> None:
        with worker(feed_of(plain)) as a, worker(feed_of(plain)) as b:
            on_a = await StreamReader.open(a.address)
            on_b = await StreamReader.open(b.address)
            assert on_a.status == on_b.status == 200
            first_a, first_b = await on_a.next_event(), await on_b.next_event()
            assert first_a is not None and first_a.event == POSITION_EVENT_TYPE
            assert first_b is not None and first_b.id == first_a.id
            published = [(a if i % 2 else b).publish(Event(data=f"e{i}")) for i in range(10)]
            seen_a, seen_b = await on_a.read_data(10), await on_b.read_data(10)
            assert [e.data for e in seen_a] == [f"e{i}" for i in range(10)]
            assert [e.id for e in seen_a] == [s.id for s in published] == [e.id for e in seen_b]
            await on_a.close()
            published += [a.publish(Event(data=f"e{i}")) for i in range(10, 16)]
            moved = await StreamReader.open(b.address, last_event_id=seen_a[3].id)
            assert [e.id for e in await moved.read_data(12)] == [s.id for s in published[4:]]
            # Nothing twice: the next thing on B's old stream is the next event.
            last = b.publish(Event(data="last"))
            assert [e.id for e in await on_b.read_data(7)] == [
                s.id for s in published[10:]
            ] + [last.id]
            await moved.close()
            await on_b.close()

    run(scenario, TIMEOUT)


def test_a_sync_feed_serves_one_server_and_no_replay_log_besides(plain: RedisServer) -> None:
    """A feed serves one server, and a server takes a replay log or a feed, not both."""
    feed = feed_of(plain)
    EventStreamServer(feed=feed)
    with pytest.raises(InvalidConfigError, match="already feeds"):
        EventStreamServer(feed=feed)
    with pytest.raises(InvalidConfigError, match="not both"):
        EventStreamServer(ReplayLog(), feed=feed_of(plain))


def test_redis_down_keeps_sync_streams_and_heartbeats_and_a_restart_resumes_or_gaps(
    server: RedisServer,
) -> None:
    """Redis killed while a client streams: publishing raises LogUnavailableError (nothing
    acknowledged), the client keeps its connection and its heartbeats, the tail backs off.
    Redis started again: with AOF the tail catches up and the client gets every event
    published afterwards, no gap; without persistence its stream ends and its resume gets
    the explicit gap signal at once (Redis never issued that id in its new epoch)."""

    async def scenario() -> None:
        feed = feed_of(server, "sse:down")
        with worker(feed, config=ServerConfig(heartbeat_interval=0.2)) as stream_server:
            reader = await StreamReader.open(stream_server.address)
            before = [stream_server.publish(Event(data=f"b{i}")) for i in range(3)]
            assert [e.id for e in await reader.read_data(3)] == [s.id for s in before]
            server.crash()
            with pytest.raises(LogUnavailableError):
                stream_server.publish(Event(data="lost"))
            beats, failures = reader.comments, feed.failures
            await wait_until(lambda: feed.failures > failures, "the tail to fail")
            reading = asyncio.ensure_future(reader.next_event())
            await asyncio.sleep(1.0)
            assert not reading.done(), "an event or the end came while Redis was down"
            assert reader.comments >= beats + 2, "no heartbeats while Redis was down"
            server.start()
            after = [stream_server.publish(Event(data=f"a{i}")) for i in range(3)]
            if server.aof:
                assert after[0].id.split("-")[0] == before[0].id.split("-")[0]
                first = await reading
                rest = await reader.read_data(2)
                assert [first.id if first else None] + [e.id for e in rest] == [
                    s.id for s in after
                ]
                assert feed.gaps == 0
            else:
                assert await reading is None, "the stream did not end on the lost epoch"
                await wait_until(lambda: feed.gaps >= 1, "the tail to report the gap")
                started = time.monotonic()
                again = await StreamReader.open(stream_server.address, last_event_id=before[-1].id)
                signal = await again.next_event()
                assert signal is not None and signal.event == GAP_EVENT_TYPE
                assert json.loads(signal.data) == {
                    "last_event_id": before[-1].id, "reason": "unknown"
                }
                assert time.monotonic() - started < FAST.catch_up_timeout, "the gap waited"
                position = await again.next_event()
                assert position is not None and position.event == POSITION_EVENT_TYPE
                assert position.id.split("-")[0] == after[0].id.split("-")[0]
                more = stream_server.publish(Event(data="more"))
                assert [e.id for e in await again.read_data(1)] == [more.id]
                await again.close()
            await reader.close()

    run(scenario, TIMEOUT)


def test_a_client_ahead_of_a_sync_workers_tail_waits_for_it_instead_of_reading_a_gap(
    plain: RedisServer,
) -> None:
    """A client moves to a worker whose tail has not read the newest events (stopped while
    they were published): its request waits, without holding up the worker's other
    clients, until the tail is back and has caught up; then it resumes exactly."""

    async def scenario() -> None:
        feed_b = feed_of(plain)
        with worker(feed_of(plain)) as a, worker(feed_b) as b:
            on_a = await StreamReader.open(a.address)
            on_b = await StreamReader.open(b.address)
            await on_a.next_event()
            await on_b.next_event()
            feed_b.close()  # B's tail stops: its mirror falls behind
            published = [a.publish(Event(data=f"e{i}")) for i in range(3)]
            assert [e.id for e in await on_a.read_data(3)] == [s.id for s in published]
            assert feed_b.mirror.is_behind(published[-1].id)
            opening = asyncio.ensure_future(
                StreamReader.open(b.address, last_event_id=published[1].id)
            )
            await asyncio.sleep(0.5)
            assert not opening.done(), "served before the tail caught up"
            assert on_b.comments == 0  # (heartbeats are 15 s apart: B's loop is not stuck)
            feed_b.start()  # the tail is back
            moved = await opening
            assert moved.status == 200
            more = a.publish(Event(data="more"))
            assert [e.id for e in await moved.read_data(2)] == [published[2].id, more.id]
            assert [e.id for e in await on_b.read_data(4)] == [
                *(s.id for s in published), more.id
            ]
            for reader in (on_a, on_b, moved):
                await reader.close()

    run(scenario, TIMEOUT)


def test_a_sync_worker_that_cannot_load_the_log_refuses_with_503(tmp_path: Path) -> None:
    """A worker whose Redis has never answered has no position to give a new client: after
    ``catch_up_timeout`` the stream is refused with 503 and Retry-After."""

    async def scenario() -> None:
        dead = RedisServer(tmp_path, aof=False)  # never started: the port refuses
        feed = feed_of(dead, "sse:x", tail=SHORT)
        with worker(feed) as stream_server:
            started = time.monotonic()
            reader = await StreamReader.open(stream_server.address)
            assert reader.status == 503 and reader.header("Retry-After") is not None
            assert time.monotonic() - started >= SHORT.catch_up_timeout * 0.9
            await reader.close()
            assert not feed.is_connected and feed.failures >= 1
            with pytest.raises(LogUnavailableError):
                stream_server.publish(Event(data="x"))

    run(scenario, TIMEOUT)


def test_ids_waiting_to_be_asked_about_stay_bounded_while_redis_is_down(tmp_path: Path) -> None:
    """Redis is down and every request brings another made-up id ahead of the mirror: the
    ids the tail will ask Redis about stay bounded (each failed turn puts them back), so a
    flood of cheap requests during an outage cannot grow the worker's memory."""
    dead = RedisServer(tmp_path, aof=False)  # never started: the port refuses
    feed = feed_of(dead, "sse:x", tail=SHORT)
    feed.start()
    try:
        for n in range(5000):
            with feed._lock:
                feed.ask(f"0-0-{n}")
        failed = feed.failures
        deadline = time.monotonic() + TIMEOUT
        while feed.failures < failed + 2:  # two more turns failed, each putting them back
            assert time.monotonic() < deadline, "the tail never failed again"
            time.sleep(0.02)
        with feed._lock:
            assert 0 < len(feed._asked) <= 1024
    finally:
        feed.close()


def test_a_client_that_leaves_while_it_waits_for_the_tail_is_closed_at_once(
    tmp_path: Path,
) -> None:
    """A client that waits for a tail that cannot load the log (Redis down) and hangs up is
    closed as soon as the server reads its end, not when its wait is over (nor does its
    closed socket keep the server's loop spinning meanwhile)."""
    import socket

    dead = RedisServer(tmp_path, aof=False)  # never started: the port refuses
    tail = redis_feed.TailConfig(block_timeout=0.2, catch_up_timeout=20.0)
    with worker(feed_of(dead, "sse:x", tail=tail)) as stream_server:
        with socket.create_connection(stream_server.address) as sock:
            sock.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
            deadline = time.monotonic() + 10.0
            while stream_server.connection_count != 1:
                assert time.monotonic() < deadline
                time.sleep(0.01)
        started = time.monotonic()
        while stream_server.connection_count:
            assert time.monotonic() - started < 5.0, "kept until its wait was over"
            time.sleep(0.01)
