"""Channels on the asyncio server: one ``EventStreamRouter`` (one port, one process) serves
several channels, each an ``EventStreamServer`` fed from its own Redis stream key
(``RedisChannels``), against a real redis-server started by the test and clients on real
loopback sockets (``StreamReader``: bare HTTP/1.0, every byte seen)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from sse_core import Event
from sse_core.adapters import ServerOptions
from sse_core.adapters.asyncio import EventStreamRouter, EventStreamServer
from sse_core.state import GAP_EVENT_TYPE, POSITION_EVENT_TYPE
from tests.adapters import redis_support
from tests.adapters.redis_support import RedisServer, StreamReader, run
from tests.adapters.test_asyncio_channels import get

#: A redis-server of the test's own, without persistence.
plain = redis_support.plain

redis_feed = pytest.importorskip("sse_core.adapters.redis")
RedisChannels = redis_feed.RedisChannels
#: A tail that notices a wiped Redis within 0.2 s.
FAST = redis_feed.TailConfig(block_timeout=0.2)
#: ... and whose clients wait for it 0.3 s at most.
SHORT = redis_feed.TailConfig(block_timeout=0.2, catch_up_timeout=0.3)

TIMEOUT = 60.0
#: Polls are answered on their own path (``/poll/news``, ``/poll?channel=news``).
POLLS = ServerOptions(long_poll_path="/poll")


def router_of(channels: Any, *names: str, **kwargs: Any) -> EventStreamRouter:
    """A router of one asyncio server per channel, each fed from the channel's Redis key."""
    return EventStreamRouter(
        {name: EventStreamServer(feed=channels.feed(name), **kwargs) for name in names}
    )


async def subscribed(router: EventStreamRouter, name: str, count: int) -> None:
    """Wait until channel ``name`` has ``count`` streams open."""
    await asyncio.wait_for(router.servers[name].wait_for_subscribers(count), 15.0)


def test_one_asyncio_server_serves_two_channels_each_client_gets_its_own_once_in_order(
    plain: RedisServer,
) -> None:
    """Two channels on one port: clients pick theirs by the path's last segment or by
    ``?channel=``; events published to both, interleaved, reach each client of a channel
    once, in order, and nothing of the other channel does; a client resumes by
    ``Last-Event-ID`` within its channel (an id of the other channel is unknown there: its
    own log); a request naming no channel, or the channel under another path, is 404; closing
    the router ends every channel's streams."""

    async def scenario() -> None:
        channels = RedisChannels.from_url(plain.url, prefix="c1:", tail=FAST)
        async with router_of(channels, "news", "alerts") as router:
            address = router.address
            news = [
                await StreamReader.open(address, "/events/news"),
                await StreamReader.open(address, "/events?channel=news"),
            ]
            alerts = [
                await StreamReader.open(address, "/events/alerts/"),
                await StreamReader.open(address, "/events?channel=alerts"),
            ]
            assert [reader.status for reader in news + alerts] == [200] * 4
            await subscribed(router, "news", 2)
            await subscribed(router, "alerts", 2)
            for target, status, text in [
                ("/events/sports", 404, b"no such event stream\n"),
                ("/events?channel=sports", 404, b"no such event stream\n"),
                ("/events/news?channel=sports", 404, b"no such event stream\n"),
                ("/events", 404, b"no such event stream\n"),
                ("/elsewhere/news", 404, b"not found\n"),
            ]:
                assert await get(address, target) == (status, text), target
            sent_news, sent_alerts = [], []
            for i in range(5):
                sent_news.append(await channels.publish("news", Event(data=f"n{i}")))
                sent_alerts.append(await channels.publish("alerts", Event(data=f"a{i}")))
            # One more each, read after the five: nothing came in between.
            sent_news.append(await channels.publish("news", Event(data="n-last")))
            sent_alerts.append(await channels.publish("alerts", Event(data="a-last")))
            for readers, sent in ((news, sent_news), (alerts, sent_alerts)):
                for reader in readers:
                    got = await reader.read_data(len(sent))
                    assert [(e.id, e.data) for e in got] == [(s.id, s.event.data) for s in sent]
            assert await channels.client.xlen("c1:news") == 6
            assert await channels.client.xlen("c1:alerts") == 6
            # Resume within a channel, on the path and by the query.
            for target in ("/events/news", "/events?channel=news"):
                again = await StreamReader.open(address, target, last_event_id=sent_news[2].id)
                assert [e.id for e in await again.read_data(3)] == [s.id for s in sent_news[3:]]
                await again.close()
            # Another channel's id: that log never issued it -- an explicit gap, then the
            # channel's live events.
            crossed = await StreamReader.open(
                address, "/events/alerts", last_event_id=sent_news[0].id
            )
            (signal,) = await crossed.read_data(1)
            assert signal.event == GAP_EVENT_TYPE
            assert json.loads(signal.data)["reason"] == "unknown"
            await subscribed(router, "alerts", 3)
            sent_alerts.append(await channels.publish("alerts", Event(data="a-after")))
            assert [e.id for e in await crossed.read_data(1)] == [sent_alerts[-1].id]
            for reader in alerts:
                assert [e.id for e in await reader.read_data(1)] == [sent_alerts[-1].id]
            await crossed.close()
        for reader in news + alerts:  # the router's close ended every channel's streams
            while (event := await asyncio.wait_for(reader.next_event(), 15.0)) is not None:
                assert event.event == POSITION_EVENT_TYPE, event
            assert reader.is_ended
            await reader.close()
        await channels.aclose()

    run(scenario, TIMEOUT)


def test_a_channel_behind_or_down_waits_or_answers_503_without_touching_the_others(
    plain: RedisServer, tmp_path: Path
) -> None:
    """Two workers (two routers, one process here) on one Redis: a client moves from A to B
    on channel ``news`` with an id B's tail has not read yet, and B waits for that channel's
    tail, then resumes it exactly (stream and long poll, by path and by query); on B a
    channel whose Redis never answers is refused with 503 and Retry-After (stream and poll)
    while ``news`` is served."""

    async def scenario() -> None:
        live = RedisChannels.from_url(plain.url, prefix="c2:", tail=FAST)
        dead_redis = RedisServer(tmp_path, aof=False)  # never started: the port refuses
        dead = RedisChannels.from_url(dead_redis.url, prefix="c2:", tail=SHORT)
        feed_b = live.feed("news")
        worker_b = EventStreamRouter({
            "news": EventStreamServer(feed=feed_b, options=POLLS),
            "down": EventStreamServer(feed=dead.feed("down"), options=POLLS),
        })
        async with router_of(live, "news", options=POLLS) as worker_a, worker_b:
            on_a = await StreamReader.open(worker_a.address, "/events/news")
            on_b = await StreamReader.open(worker_b.address, "/events?channel=news")
            await subscribed(worker_a, "news", 1)
            await subscribed(worker_b, "news", 1)
            refused = await StreamReader.open(worker_b.address, "/events/down")
            assert refused.status == 503 and refused.header("Retry-After") is not None
            await refused.close()
            status, _ = await get(worker_b.address, "/poll/down?timeout=0", "application/json")
            assert status == 503
            await feed_b.aclose()  # B's tail of news stops: its copy falls behind
            sent = [await live.publish("news", Event(data=f"e{i}")) for i in range(3)]
            assert [e.id for e in await on_a.read_data(3)] == [s.id for s in sent]
            assert feed_b.mirror.is_behind(sent[-1].id)
            moved = await StreamReader.open(
                worker_b.address, "/events/news", last_event_id=sent[1].id
            )
            assert moved.status == 200
            more = await live.publish("news", Event(data="more"))
            assert [e.id for e in await moved.read_data(2)] == [sent[2].id, more.id]
            # The client that stayed on B saw every event once too, after its tail resumed.
            assert [e.id for e in await on_b.read_data(4)] == [s.id for s in [*sent, more]]
            for target in ("/poll/news?", "/poll?channel=news&"):
                status, body = await get(
                    worker_b.address, f"{target}lastEventId={sent[0].id}&timeout=0",
                    "application/json",
                )
                answer = json.loads(body)
                assert status == 200 and answer["gap"] is None, body
                assert [e["id"] for e in answer["events"]] == [s.id for s in [*sent[1:], more]]
            for reader in (on_a, on_b, moved):
                await reader.close()
        await live.aclose()
        await dead.aclose()

    run(scenario, TIMEOUT)
