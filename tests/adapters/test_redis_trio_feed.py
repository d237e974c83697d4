"""The trio ``EventStreamServer`` fed from the shared log's live tail: ``TrioRedisFeed``
(blocking redis-py in worker threads, the tail a task of the server's nursery) against a
real redis-server -- and the scenarios it shares with the blocking server's
``SyncRedisFeed`` (the same blocking client, a tail thread), run for both (``kind``).

Each test starts its own redis-server (a free loopback port, its own directory; with and
without AOF where a restart is part of the test). Each trio server runs in a thread of its
own with its own ``trio.run`` (``TrioWorker``: what a worker process would be), on a real
loopback socket, and offers what the blocking server does (``address``, a ``publish`` that
blocks until Redis answered); the test drives both from asyncio, whose clients are bare
HTTP readers (``StreamReader``) that see every byte.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import attrs
import pytest

trio = pytest.importorskip("trio", reason="trio is in the test extra")

from sse_core import Event, InvalidConfigError, LocalProtocolError, ServerConfig  # noqa: E402
from sse_core.adapters import ServerOptions  # noqa: E402
from sse_core.adapters.trio import EventStreamRouter, EventStreamServer  # noqa: E402
from sse_core.state import (  # noqa: E402
    GAP_EVENT_TYPE,
    POSITION_EVENT_TYPE,
    LogUnavailableError,
    ReplayLog,
    StoredEvent,
)
from tests.adapters import redis_support  # noqa: E402
from tests.adapters.redis_support import RedisServer, StreamReader, run  # noqa: E402
from tests.adapters.test_redis_feed import (  # noqa: E402
    FAST,
    SHORT,
    TIMEOUT,
    redis_feed,
    wait_until,
)
from tests.adapters.test_redis_feed import feed_of as asyncio_feed_of  # noqa: E402
from tests.adapters.test_redis_sync_feed import client_of  # noqa: E402
from tests.adapters.test_redis_sync_feed import feed_of as sync_feed_of  # noqa: E402
from tests.adapters.test_redis_sync_feed import worker as sync_worker  # noqa: E402
from tests.adapters.test_trio_channels import fetch  # noqa: E402

TrioRedisFeed = redis_feed.TrioRedisFeed

#: Redis servers of the test's own: with and without AOF (``server``), without (``plain``).
server, plain = redis_support.server, redis_support.plain
each_server, each_plain = redis_support.each_server, redis_support.each_plain

_T = TypeVar("_T")
#: What names the thread of a running tail's request (trio names a worker thread after the
#: function and the task).
TAIL_THREAD = "TrioRedisFeed.run"


def feed_of(redis_server: RedisServer, key: str = "sse:news", **kwargs: Any) -> Any:
    """A trio feed (blocking client, retrying once on a new connection) with a short block
    timeout."""
    kwargs.setdefault("tail", FAST)
    return TrioRedisFeed(client_of(redis_server), key, **kwargs)


def tail_threads() -> list[str]:
    """The threads carrying out a tail's request now."""
    return [thread.name for thread in threading.enumerate() if TAIL_THREAD in thread.name]


class TrioWorker:
    """A trio server (or router) in a thread of its own (its own ``trio.run``): a worker as
    a process would hold it. Its calls block the caller until trio has run them."""

    def __init__(self, server: EventStreamServer | EventStreamRouter, feed: Any = None) -> None:
        self.feed = feed
        self.server = server
        self.address: tuple[str, int] = ("", 0)
        self._token: Any = None
        self._nursery: Any = None
        self.errors: list[BaseException] = []
        started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(started,))
        self._thread.start()
        assert started.wait(TIMEOUT), "the trio server did not start"

    def _run(self, started: threading.Event) -> None:
        try:
            trio.run(self._main, started)
        except BaseException as error:  # reported by close()
            self.errors.append(error)

    async def _main(self, started: threading.Event) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._stop = trio.Event()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self.address = await nursery.start(self.server.serve)
            started.set()
            await self._stop.wait()
            await self.server.aclose()

    def call(self, function: Callable[..., Awaitable[_T]], *args: Any) -> _T:
        """Run an async function in the server's trio thread; its result."""
        return trio.from_thread.run(function, *args, trio_token=self._token)

    def publish(self, event: Event) -> StoredEvent:
        """Publish through the feed (to Redis), as a trio program does."""
        return self.call(self.feed.publish, event)

    def run_tail(self) -> None:
        """Run the feed's tail again (in the worker's nursery), after ``feed.aclose()``."""
        trio.from_thread.run_sync(
            self._nursery.start_soon, self.feed.run, trio_token=self._token
        )

    def close(self) -> None:
        """Close the server (its feed's tail stops with it) and end the thread.

        Raises:
            AssertionError: the server's trio.run ended with an error, or did not end.
        """
        if self._thread.is_alive():
            trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        self._thread.join(TIMEOUT)
        assert not self._thread.is_alive(), "trio.run did not end"
        assert not self.errors, f"the trio server failed: {self.errors!r}"


@contextmanager
def worker(feed: Any, **kwargs: Any) -> Iterator[TrioWorker]:
    """A trio server on a free port, serving ``feed``; its Redis client closed after."""
    made = TrioWorker(EventStreamServer(feed=feed, **kwargs), feed)
    try:
        yield made
    finally:
        made.close()
        feed.client.close()


@attrs.frozen
class Kind:
    """A server over the blocking client, as the shared scenarios use it: its feed, a
    worker serving one, and how to stop and start that worker's tail."""

    feed_of: Callable[..., Any]
    worker: Callable[..., Any]
    stop_tail: Callable[[Any, Any], object]
    start_tail: Callable[[Any, Any], object]


KINDS = {
    "sync": Kind(sync_feed_of, sync_worker, lambda _, feed: feed.close(),
                 lambda _, feed: feed.start()),
    "trio": Kind(feed_of, worker, lambda w, feed: w.call(feed.aclose),
                 lambda w, _: w.run_tail()),
}


@pytest.fixture(params=sorted(KINDS))
def kind(request: pytest.FixtureRequest) -> Kind:
    """The blocking server with a ``SyncRedisFeed``, or the trio one with a
    ``TrioRedisFeed``."""
    return KINDS[request.param]


def test_two_workers_deliver_every_event_once_in_order_and_a_client_moves(
    each_plain: RedisServer, kind: Kind
) -> None:
    """Two servers, each with its own feed on one Redis stream: events published through
    either (to Redis) reach the clients of both, in the log's order, once; a client that
    moves to the other worker with its Last-Event-ID gets exactly the events it missed
    (on Redis, and on Valkey)."""
    plain = each_plain

    async def scenario() -> None:
        with kind.worker(kind.feed_of(plain)) as a, kind.worker(kind.feed_of(plain)) as b:
            readers = [await StreamReader.open(w.address) for w in (a, b)]
            assert [reader.status for reader in readers] == [200, 200]
            positions = [await reader.next_event() for reader in readers]
            assert {p.event for p in positions if p} == {POSITION_EVENT_TYPE}
            assert positions[0] and positions[1] and positions[0].id == positions[1].id
            sent = [(b, a)[i % 2].publish(Event(data=f"e{i}")) for i in range(10)]
            for reader in readers:
                got = await reader.read_data(10)
                assert [(e.id, e.data) for e in got] == [(s.id, s.event.data) for s in sent]
            await readers[0].close()
            sent += [a.publish(Event(data=f"e{i}")) for i in range(10, 16)]
            moved = await StreamReader.open(b.address, last_event_id=sent[3].id)
            assert [e.id for e in await moved.read_data(12)] == [s.id for s in sent[4:]]
            last = b.publish(Event(data="last"))
            # Nothing twice: what comes next on B's first stream is the next event.
            rest = await readers[1].read_data(7)
            assert [e.id for e in rest] == [s.id for s in [*sent[10:], last]]
            await moved.close()
            await readers[1].close()

    run(scenario, TIMEOUT)


async def publish_on_server(stream_server: EventStreamServer) -> None:
    """The server's own publish, from its trio thread."""
    stream_server.publish(Event(data="x"))


def test_a_trio_feed_serves_one_server_and_the_trio_server_takes_no_asyncio_feed(
    plain: RedisServer,
) -> None:
    """A feed serves one server, a server takes a replay log or a feed, not both, the
    trio server refuses the asyncio ``RedisFeed`` (its tail runs on asyncio), and its own
    publish refuses (publish to the shared log: nothing reaches one worker's clients
    alone)."""
    feed = feed_of(plain)
    fed = EventStreamServer(feed=feed)
    with pytest.raises(LocalProtocolError, match=r"feed\.publish"):
        trio.run(publish_on_server, fed)
    refused: list[tuple[str, Callable[[], object]]] = [
        ("already feeds", lambda: EventStreamServer(feed=feed)),
        ("not both", lambda: EventStreamServer(ReplayLog(), feed=feed_of(plain))),
        ("runs on trio", lambda: EventStreamServer(feed=asyncio_feed_of(plain))),
    ]
    for reason, make in refused:
        with pytest.raises(InvalidConfigError, match=reason):
            make()


def test_redis_down_keeps_streams_and_heartbeats_and_a_restart_resumes_or_gaps(
    each_server: RedisServer, kind: Kind
) -> None:
    """Redis killed while a client streams: publishing raises LogUnavailableError (nothing
    acknowledged), the client keeps its connection and its heartbeats, the tail backs off.
    Redis started again: with AOF the tail catches up and the client gets every event
    published afterwards, no gap; without persistence its stream ends and its resume gets
    the explicit gap signal at once (Redis never issued that id in its new epoch). Valkey
    alike."""
    server = each_server

    async def scenario() -> None:
        feed = kind.feed_of(server, "sse:down")
        with kind.worker(feed, config=ServerConfig(heartbeat_interval=0.2)) as served:
            reader = await StreamReader.open(served.address)
            before = [served.publish(Event(data=f"b{i}")) for i in range(3)]
            assert [e.id for e in await reader.read_data(3)] == [s.id for s in before]
            server.crash()
            with pytest.raises(LogUnavailableError):
                served.publish(Event(data="lost"))
            beats, failures = reader.comments, feed.failures
            await wait_until(lambda: feed.failures > failures, "the tail to fail")
            reading = asyncio.ensure_future(reader.next_event())
            await asyncio.sleep(1.0)
            assert not reading.done(), "an event or the end came while Redis was down"
            assert reader.comments >= beats + 2, "no heartbeats while Redis was down"
            assert not feed.is_connected
            server.start()
            after = [served.publish(Event(data=f"a{i}")) for i in range(3)]
            if server.aof:
                assert after[0].id.split("-")[0] == before[0].id.split("-")[0]
                first = await reading
                got = [first] + await reader.read_data(2)
                assert [e.id if e else None for e in got] == [s.id for s in after]
                assert feed.gaps == 0
            else:
                assert await reading is None, "the stream did not end on the lost epoch"
                await wait_until(lambda: feed.gaps >= 1, "the tail to report the gap")
                started = time.monotonic()
                again = await StreamReader.open(served.address, last_event_id=before[-1].id)
                signal = await again.next_event()
                assert signal is not None and signal.event == GAP_EVENT_TYPE
                assert json.loads(signal.data) == {
                    "last_event_id": before[-1].id, "reason": "unknown"
                }
                assert time.monotonic() - started < FAST.catch_up_timeout, "the gap waited"
                position = await again.next_event()
                assert position is not None and position.event == POSITION_EVENT_TYPE
                assert position.id.split("-")[0] == after[0].id.split("-")[0]
                more = served.publish(Event(data="more"))
                assert [e.id for e in await again.read_data(1)] == [more.id]
                await again.close()
            await reader.close()

    run(scenario, TIMEOUT)


def test_a_client_ahead_of_a_workers_tail_waits_for_it_instead_of_reading_a_gap(
    plain: RedisServer, kind: Kind
) -> None:
    """A client moves to a worker whose tail has not read the newest events (stopped while
    they were published): its request waits, without holding up the worker's other
    clients, until the tail runs again and has caught up; then it resumes exactly."""

    async def scenario() -> None:
        feed_b = kind.feed_of(plain)
        with kind.worker(kind.feed_of(plain)) as a, kind.worker(feed_b, config=ServerConfig(
            heartbeat_interval=0.2
        )) as b:
            on_a = await StreamReader.open(a.address)
            on_b = await StreamReader.open(b.address)
            await on_a.next_event()
            await on_b.next_event()
            kind.stop_tail(b, feed_b)  # B's tail stops: its mirror falls behind
            sent = [a.publish(Event(data=f"e{i}")) for i in range(3)]
            assert [e.id for e in await on_a.read_data(3)] == [s.id for s in sent]
            assert feed_b.mirror.is_behind(sent[-1].id)
            opening = asyncio.ensure_future(
                StreamReader.open(b.address, last_event_id=sent[1].id)
            )
            beats = on_b.comments
            reading = asyncio.ensure_future(on_b.next_event())
            await asyncio.sleep(1.0)
            assert not opening.done(), "served before the tail caught up"
            assert not reading.done() and on_b.comments >= beats + 2, "B's other client stalled"
            kind.start_tail(b, feed_b)
            moved = await opening
            assert moved.status == 200
            more = a.publish(Event(data="more"))
            assert [e.id for e in await moved.read_data(2)] == [sent[2].id, more.id]
            first = await reading
            got = [first] + await on_b.read_data(3)
            assert [e.id if e else None for e in got] == [s.id for s in [*sent, more]]
            for reader in (on_a, on_b, moved):
                await reader.close()

    run(scenario, TIMEOUT)


def test_a_worker_that_cannot_load_the_log_refuses_with_503(
    tmp_path: Path, kind: Kind
) -> None:
    """A worker whose Redis has never answered has no position to give a new client: after
    ``catch_up_timeout`` the stream is refused with 503 and Retry-After, and publishing
    raises LogUnavailableError."""

    async def scenario() -> None:
        dead = RedisServer(tmp_path, aof=False)  # never started: the port refuses
        feed = kind.feed_of(dead, "sse:x", tail=SHORT)
        with kind.worker(feed) as served:
            started = time.monotonic()
            reader = await StreamReader.open(served.address)
            assert reader.status == 503 and reader.header("Retry-After") is not None
            assert time.monotonic() - started >= SHORT.catch_up_timeout * 0.9
            await reader.close()
            assert not feed.is_connected and feed.failures >= 1
            with pytest.raises(LogUnavailableError):
                served.publish(Event(data="x"))

    run(scenario, TIMEOUT)


@pytest.mark.parametrize("how", ["aclose", "cancelled"])
def test_stopping_a_trio_server_stops_its_tail_and_leaves_no_thread_working(
    plain: RedisServer, how: str
) -> None:
    """While the server serves, its tail's request runs in a worker thread (blocked in
    ``XREAD BLOCK`` most of the time); once ``aclose`` returns, or the nursery serving it
    is cancelled, no such thread is left and Redis has no blocked client, although the tail
    blocks 2 s at a time: the request under way was waited for, not left behind."""
    feed = feed_of(plain, tail=redis_feed.TailConfig(block_timeout=2.0))
    probe = client_of(plain)

    def is_blocked() -> bool:
        return bool(tail_threads()) and probe.info("clients")["blocked_clients"] == 1

    async def serve_until_blocked() -> None:
        stream_server = EventStreamServer(feed=feed)
        async with trio.open_nursery() as nursery:
            await nursery.start(stream_server.serve)
            with trio.fail_after(TIMEOUT):
                while not await trio.to_thread.run_sync(is_blocked):
                    await trio.sleep(0.02)
            if how == "aclose":
                await stream_server.aclose()
            else:
                nursery.cancel_scope.cancel()

    try:
        trio.run(serve_until_blocked)
        assert tail_threads() == []
        assert probe.info("clients")["blocked_clients"] == 0
    finally:
        feed.client.close()
        probe.close()


def test_one_trio_router_serves_two_redis_channels_and_one_whose_redis_is_down(
    plain: RedisServer, tmp_path: Path
) -> None:
    """Three channels on one trio port, each fed from its own Redis key: ``news`` and
    ``alerts`` on a live Redis, ``down`` on one that never answers. Events published to
    news and alerts, interleaved, reach each client of a channel (picked by path or query)
    once, in order, nothing of the other's; a client resumes within its channel; an id of
    the other channel is a gap there, and a long poll of news (``/poll/news``,
    ``/poll?channel=news``) gets news's events after its id; an unknown channel is 404;
    ``down`` answers 503 with Retry-After (stream and poll) while the others are served;
    closing the router stops every tail."""
    dead = RedisServer(tmp_path, aof=False)  # never started: the port refuses
    feeds = {"news": feed_of(plain, "c:news"), "alerts": feed_of(plain, "c:alerts"),
             "down": feed_of(dead, "c:down", tail=SHORT)}
    polls = ServerOptions(long_poll_path="/poll")
    router = EventStreamRouter(
        {name: EventStreamServer(feed=feed, options=polls) for name, feed in feeds.items()}
    )

    def fetch_now(target: str, is_poll: bool = False) -> Awaitable[tuple[int, bytes]]:
        """One request read to its end, by a trio client in a thread of its own."""
        return asyncio.to_thread(trio.run, partial(fetch, served.address, target, is_poll=is_poll))

    async def scenario() -> None:
        address = served.address
        news = [await StreamReader.open(address, "/events/news"),
                await StreamReader.open(address, "/events?channel=news")]
        alerts = [await StreamReader.open(address, "/events/alerts/"),
                  await StreamReader.open(address, "/events?channel=alerts")]
        assert [reader.status for reader in news + alerts] == [200] * 4
        refused = await StreamReader.open(address, "/events/down")
        assert refused.status == 503 and refused.header("Retry-After") is not None
        await refused.close()
        assert (await fetch_now("/poll/down?timeout=0", is_poll=True))[0] == 503
        for target in ("/events/sports", "/events?channel=sports", "/events"):
            assert await fetch_now(target) == (404, b"no such event stream\n")
        sent: dict[str, list[StoredEvent]] = {"news": [], "alerts": []}
        for i in range(6):
            for name in ("news", "alerts"):
                sent[name].append(served.call(feeds[name].publish, Event(data=f"{name}{i}")))
        for readers, name in ((news, "news"), (alerts, "alerts")):
            for reader in readers:
                got = await reader.read_data(6)
                assert [(e.id, e.data) for e in got] == [(s.id, s.event.data) for s in sent[name]]
        again = await StreamReader.open(address, "/events/news", last_event_id=sent["news"][2].id)
        assert [e.id for e in await again.read_data(3)] == [s.id for s in sent["news"][3:]]
        crossed = await StreamReader.open(
            address, "/events?channel=alerts", last_event_id=sent["news"][0].id
        )
        (signal,) = await crossed.read_data(1)
        assert signal.event == GAP_EVENT_TYPE and json.loads(signal.data)["reason"] == "unknown"
        for target in ("/poll/news?", "/poll?channel=news&"):
            status, body = await fetch_now(
                f"{target}lastEventId={sent['news'][0].id}&timeout=0", is_poll=True
            )
            answer = json.loads(body)
            assert status == 200 and answer["gap"] is None, body
            assert [e["id"] for e in answer["events"]] == [s.id for s in sent["news"][1:]]
        for reader in [*news, *alerts, again, crossed]:
            await reader.close()

    served = TrioWorker(router)
    try:
        run(scenario, TIMEOUT)
    finally:
        served.close()
        for feed in feeds.values():
            feed.client.close()
    assert tail_threads() == []
