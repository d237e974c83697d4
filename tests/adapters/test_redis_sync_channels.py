"""Channels on the blocking server fed from Redis: one ``sync.EventStreamRouter`` (one port)
serves several channels, each a threaded ``EventStreamServer`` with its own ``SyncRedisFeed``
on the channel's stream key (``prefix + name``, as ``RedisChannels`` names them), against a
real redis-server started by the test; the clients are bare blocking HTTP/1.0 readers on
real loopback sockets that see every byte (``Stream``). In-memory channels:
``test_sync_channels.py``."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sse_core import Event
from sse_core.adapters import ServerOptions
from sse_core.adapters.sync import EventStreamRouter, EventStreamServer
from sse_core.state import GAP_EVENT_TYPE
from tests.adapters import redis_support
from tests.adapters.redis_support import RedisServer, redis
from tests.adapters.test_redis_feed import FAST, SHORT, redis_feed
from tests.adapters.test_redis_sync_feed import client_of
from tests.adapters.test_sync import no_leaks
from tests.adapters.test_sync_channels import Stream, get, subscribed

__all__ = ["no_leaks"]  # the autouse fixture: no thread or descriptor left behind

#: A redis-server of the test's own, without persistence.
plain = redis_support.plain

SyncRedisFeed = redis_feed.SyncRedisFeed
#: Polls are answered on their own path (``/poll/news``, ``/poll?channel=news``).
POLLS = ServerOptions(long_poll_path="/poll")


def router_of(client: Any, prefix: str, *names: str, **kwargs: Any) -> EventStreamRouter:
    """A router of one threaded server per channel, each fed from the channel's Redis key."""
    return EventStreamRouter({
        name: EventStreamServer(feed=SyncRedisFeed(client, prefix + name, tail=FAST), **kwargs)
        for name in names
    })


@pytest.fixture
def silent_redis() -> Iterator[str]:
    """The URL of a "Redis" that takes connections and never answers (a listening socket
    nobody accepts from: the kernel completes the handshakes, then nothing)."""
    with socket.create_server(("127.0.0.1", 0), backlog=16) as listener:
        host, port = listener.getsockname()[:2]
        yield f"redis://{host}:{port}/0"


def test_one_sync_router_serves_two_redis_channels_each_client_gets_its_own_once_in_order(
    plain: RedisServer,
) -> None:
    """Two channels on one port, each on its own Redis stream key: clients pick theirs by
    the path's last segment or by ``?channel=``; events published to both, interleaved
    (through the servers, and through the asyncio ``RedisChannels`` of another process's
    kind, which names the same keys), reach each client of a channel once, in order, and
    nothing of the other channel does; a client resumes by ``Last-Event-ID`` within its
    channel, on this worker and on another one (a second router); an id of the other
    channel is unknown there (the explicit gap); a request naming no channel is 404;
    closing the router ends every channel's streams and stops every tail thread."""
    client = client_of(plain)
    router = router_of(client, "c1:", "news", "alerts")
    other = router_of(client, "c1:", "news")
    try:
        router.start()
        other.start()
        address = router.address
        news = [Stream(address, "/events/news"), Stream(address, "/events?channel=news")]
        alerts = [Stream(address, "/events/alerts/"), Stream(address, "/events?channel=alerts")]
        assert [reader.status for reader in news + alerts] == [200] * 4
        subscribed(router, "news", 2)
        subscribed(router, "alerts", 2)
        for target in ("/events/sports", "/events?channel=sports", "/events"):
            assert get(address, target) == (404, b"no such event stream\n"), target
        sent: dict[str, list[Any]] = {"news": [], "alerts": []}
        for i in range(5):
            for name in ("news", "alerts"):
                sent[name].append(router.servers[name].publish(Event(data=f"{name} {i}")))

        async def publish_elsewhere() -> list[Any]:
            channels = redis_feed.RedisChannels.from_url(plain.url, prefix="c1:")
            try:
                return [await channels.publish(name, Event(data=f"{name} from asyncio"))
                        for name in ("news", "alerts")]
            finally:
                await channels.aclose()

        elsewhere = asyncio.run(publish_elsewhere())
        sent["news"].append(elsewhere[0])
        sent["alerts"].append(elsewhere[1])
        # One more each, read after the others: nothing came in between.
        for name in ("news", "alerts"):
            sent[name].append(router.servers[name].publish(Event(data=f"{name} last")))
        for readers, name in ((news, "news"), (alerts, "alerts")):
            for reader in readers:
                got = reader.read_data(len(sent[name]))
                assert [(e.id, e.data) for e in got] == [
                    (s.id, s.event.data) for s in sent[name]
                ]
        assert client.xlen("c1:news") == client.xlen("c1:alerts") == 7
        news_ids = [s.id for s in sent["news"]]
        for at, target in ((address, "/events/news"), (other.address, "/events?channel=news")):
            again = Stream(at, target, last_event_id=news_ids[2])
            assert [e.id for e in again.read_data(4)] == news_ids[3:], target
            again.close()
        crossed = Stream(address, "/events/alerts", last_event_id=news_ids[0])
        (signal,) = crossed.read_data(1)
        assert signal.event == GAP_EVENT_TYPE
        assert json.loads(signal.data)["reason"] == "unknown"
        subscribed(router, "alerts", 3)
        after = router.servers["alerts"].publish(Event(data="alerts after"))
        for reader in [crossed, *alerts]:
            assert [e.id for e in reader.read_data(1)] == [after.id]
        crossed.close()
    finally:
        router.close()
        other.close()
        client.close()
    for reader in news + alerts:  # the router's close ended every channel's streams
        assert reader.rest() == []
        reader.close()


def test_a_channel_whose_redis_never_answers_gets_503_while_the_other_is_served(
    plain: RedisServer, silent_redis: str
) -> None:
    """On one router, channel ``down`` is fed from a Redis that takes connections and never
    answers: its streams and polls are refused with 503 and ``Retry-After`` (after the
    feed's ``catch_up_timeout``), again and again, while channel ``news`` streams, resumes
    and answers polls as if nothing were wrong."""
    client = client_of(plain)
    dead_client = redis.Redis.from_url(silent_redis, socket_timeout=1.0,
                                       socket_connect_timeout=1.0)
    router = EventStreamRouter({
        "news": EventStreamServer(feed=SyncRedisFeed(client, "c2:news", tail=FAST),
                                  options=POLLS),
        "down": EventStreamServer(feed=SyncRedisFeed(dead_client, "c2:down", tail=SHORT),
                                  options=POLLS),
    })
    try:
        router.start()
        address = router.address
        reader = Stream(address, "/events/news")
        assert reader.status == 200
        subscribed(router, "news")
        for _ in range(2):
            began = time.monotonic()
            refused = Stream(address, "/events/down")
            assert refused.status == 503 and refused.fields["Retry-After"] is not None
            refused.close()
            # Meanwhile news is served: an event published now arrives.
            sent = router.servers["news"].publish(Event(data="live"))
            assert [e.id for e in reader.read_data(1)] == [sent.id]
            assert time.monotonic() - began < 10.0
        status, _ = get(address, "/poll/down?timeout=0", "application/json")
        assert status == 503
        status, body = get(
            address, f"/poll?channel=news&lastEventId={sent.id}&timeout=0", "application/json"
        )
        assert status == 200 and json.loads(body)["gap"] is None, body
        more = router.servers["news"].publish(Event(data="more"))
        resumed = Stream(address, "/events?channel=news", last_event_id=sent.id)
        assert [e.id for e in resumed.read_data(1)] == [more.id]
        resumed.close()
        reader.close()
        assert len(router.servers["down"].broadcaster) == 0
    finally:
        router.close()
        client.close()
        dead_client.close()
