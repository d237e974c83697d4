"""The threaded ``EventStreamServer`` fed from the shared log's live tail: ``SyncRedisFeed``
(blocking redis-py, a tail thread) against a real redis-server. The scenarios it shares
with the trio server's ``TrioRedisFeed`` (two workers, Redis down and restarted, a client
ahead of the tail, a log that cannot load) run for both in ``test_redis_trio_feed.py``.

Each test starts its own redis-server (a free loopback port, its own directory; with and
without AOF where a restart is part of the test) and real threaded servers on loopback
sockets (two of them play two workers); the clients are bare HTTP readers
(``StreamReader``) that see every byte.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from sse_core import Event, InvalidConfigError
from sse_core.adapters.sync import EventStreamServer
from sse_core.state import ReplayLog
from tests.adapters import redis_support
from tests.adapters.redis_support import RedisServer, redis
from tests.adapters.test_redis_feed import FAST, SHORT, TIMEOUT, redis_feed

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


def test_a_sync_feed_serves_one_server_and_no_replay_log_besides(plain: RedisServer) -> None:
    """A feed serves one server, and a server takes a replay log or a feed, not both."""
    feed = feed_of(plain)
    EventStreamServer(feed=feed)
    with pytest.raises(InvalidConfigError, match="already feeds"):
        EventStreamServer(feed=feed)
    with pytest.raises(InvalidConfigError, match="not both"):
        EventStreamServer(ReplayLog(), feed=feed_of(plain))


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



def test_threads_publishing_at_once_are_never_refused_for_the_clock(
    plain: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``publish`` is safe from any thread: of two threads publishing at once, the one that
    read the clock first may reach the log second, which must not be taken for a clock going
    backwards (``ClockError``). Made certain here: the first thread's clock read waits (up to
    a second) for the second thread's publish to be done."""
    feed = feed_of(plain, key="sse:threads")
    first_reading, second_done = threading.Event(), threading.Event()
    reads = iter([1000.0, 2000.0])
    lock = threading.Lock()

    def clock() -> float:
        with lock:
            value = next(reads, 3000.0)
        if value == 1000.0:
            first_reading.set()
            second_done.wait(1.0)
        return value

    from sse_core.adapters import _redis_sync_feed  # here: redis-py may be missing

    monkeypatch.setattr(_redis_sync_feed.time, "monotonic", clock)
    errors: list[BaseException] = []

    def publish(data: str, done: threading.Event | None = None) -> None:
        try:
            feed.publish(Event(data=data))
        except BaseException as error:
            errors.append(error)
        if done is not None:
            done.set()

    first = threading.Thread(target=publish, args=("first",))
    first.start()
    assert first_reading.wait(TIMEOUT)
    second = threading.Thread(target=publish, args=("second", second_done))
    second.start()
    for thread in (first, second):
        thread.join(TIMEOUT)
    monkeypatch.undo()
    feed.client.close()
    assert errors == []
    assert redis.Redis.from_url(plain.url).xlen("sse:threads") == 2
