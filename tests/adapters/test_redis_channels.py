"""Channels: several streams on one Redis (one stream key per topic) served by one worker,
a client picking one by path or query; the operators' configuration (URL, key prefix,
retention, timeouts). The ASGI ``EventStreamRouter`` runs under a real uvicorn (in the
test's loop) against a real redis-server started by the test."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from sse_core import Event, InvalidConfigError
from sse_core.adapters import ServerOptions
from sse_core.adapters.asgi import EventStream, EventStreamRouter
from sse_core.state import GAP_EVENT_TYPE, POSITION_EVENT_TYPE, ReplayConfig
from tests.adapters import redis_support
from tests.adapters.redis_support import RedisServer, StreamReader, run
from tests.adapters.test_asyncio_channels import get

#: A redis-server of the test's own, without persistence.
plain = redis_support.plain

uvicorn = pytest.importorskip("uvicorn", reason="uvicorn is in the peers extra")
redis_feed = pytest.importorskip("sse_core.adapters.redis")
RedisChannels = redis_feed.RedisChannels
#: A tail that notices a wiped Redis within 0.2 s.
FAST = redis_feed.TailConfig(block_timeout=0.2)

TIMEOUT = 60.0


@asynccontextmanager
async def served(app: Any) -> AsyncIterator[tuple[str, int]]:
    """``app`` under uvicorn (lifespan on) on a free port, in this loop."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    address = sock.getsockname()[:2]
    config = uvicorn.Config(
        app, http="h11", lifespan="on", log_config=None, log_level="critical",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve([sock]))
    while not server.started:
        assert not task.done(), "uvicorn did not start"
        await asyncio.sleep(0.01)
    try:
        yield address
    finally:
        server.should_exit = True
        await task
        sock.close()


def test_one_worker_serves_several_channels_picked_by_path_or_query(
    plain: RedisServer,
) -> None:
    """Two channels behind one router: a client picks one by the path's last segment or by
    ``?channel=``; each gets its channel's events only, in order; each channel is its own
    Redis stream ``prefix + name``; an unknown channel is 404; uvicorn's lifespan starts the
    tails and its shutdown closes the streams."""

    async def scenario() -> None:
        channels = RedisChannels.from_url(plain.url, prefix="app1:", tail=FAST)
        router = EventStreamRouter(
            {name: EventStream(feed=channels.feed(name)) for name in ("news", "alerts")}
        )
        async with served(router) as address:
            news = await StreamReader.open(address, "/events/news")
            alerts = await StreamReader.open(address, "/events?channel=alerts")
            missing = await StreamReader.open(address, "/events/sports")
            assert (news.status, alerts.status, missing.status) == (200, 200, 404)
            await missing.close()
            for reader in (news, alerts):
                first = await reader.next_event()
                assert first is not None and first.event == POSITION_EVENT_TYPE
            sent_news = [await channels.publish("news", Event(data=f"n{i}")) for i in range(3)]
            sent_alerts = [await channels.publish("alerts", Event(data=f"a{i}")) for i in range(2)]
            assert [e.id for e in await news.read_data(3)] == [s.id for s in sent_news]
            assert [e.id for e in await alerts.read_data(2)] == [s.id for s in sent_alerts]
            assert await channels.client.exists("app1:news", "app1:alerts") == 2
            assert await channels.client.xlen("app1:news") == 3
            # Resume on the path, by Last-Event-ID, as on any worker.
            again = await StreamReader.open(address, "/news", last_event_id=sent_news[0].id)
            assert [e.id for e in await again.read_data(2)] == [s.id for s in sent_news[1:]]
            await again.close()
            await news.close()
            await alerts.close()
        assert all(stream.is_closed for stream in router.streams.values())
        await channels.aclose()

    run(scenario, TIMEOUT)


def test_retention_applies_to_every_channel_and_an_evicted_resume_is_a_gap(
    plain: RedisServer,
) -> None:
    """The channels' retention (here 3 events) bounds each Redis stream; a client resuming
    from an evicted id gets the ``too_old`` gap signal, then what is kept."""

    async def scenario() -> None:
        channels = RedisChannels.from_url(
            plain.url, prefix="app2:", config=ReplayConfig(max_events=3),
            tail=FAST,
        )
        feed = channels.feed("news")
        router = EventStreamRouter({"news": EventStream(feed=feed)})
        async with served(router) as address:
            sent = [await channels.publish("news", Event(data=f"n{i}")) for i in range(8)]
            assert await channels.client.xlen("app2:news") == 3
            # The worker's copy keeps 3 events too, once its tail has read them all (before,
            # it may still hold older ones, which a resume would rightly be given).
            deadline = time.monotonic() + 15.0
            while not (feed.mirror.is_loaded and feed.mirror.position == sent[-1].id):
                assert time.monotonic() < deadline, "the tail did not catch up"
                await asyncio.sleep(0.01)
            reader = await StreamReader.open(address, "/news", last_event_id=sent[1].id)
            signal = await asyncio.wait_for(reader.next_event(), 15.0)
            assert signal is not None and signal.event == GAP_EVENT_TYPE
            assert json.loads(signal.data)["reason"] == "too_old"
            assert [e.id for e in await reader.read_data(3)] == [s.id for s in sent[5:]]
            await reader.close()
        await channels.aclose()

    run(scenario, TIMEOUT)


def test_channel_configuration_is_checked() -> None:
    """Bad names, a socket timeout that the tail's blocking read would hit, an epoch in the
    retention and a router without streams are refused on construction."""

    async def scenario() -> None:
        channels = RedisChannels.from_url("redis://127.0.0.1:1/0")
        for name in ("", "a b", "x/y", "é", "n" * 201):
            with pytest.raises(InvalidConfigError):
                channels.key(name)
        assert channels.key("news.eu:1") == "sse:news.eu:1"
        with pytest.raises(InvalidConfigError, match="block_timeout"):
            RedisChannels.from_url("redis://127.0.0.1:1/0", socket_timeout=1.0)
        with pytest.raises(InvalidConfigError):
            RedisChannels(channels.client, config=ReplayConfig(epoch="x"))
        with pytest.raises(InvalidConfigError):
            EventStreamRouter({})
        with pytest.raises(InvalidConfigError):
            EventStreamRouter({"news": EventStream()}, query_param="")
        await channels.aclose()

    run(scenario, TIMEOUT)


def test_a_channel_picked_by_the_path_reaches_its_stream_without_that_segment() -> None:
    """With ``long_poll_path="/poll"``, ``/poll/news`` is a poll of ``news`` under the
    router, as ``/poll?channel=news`` is (and as on the asyncio router): the stream sees the
    path without the channel's segment. Each answer holds that channel's events only."""

    async def scenario() -> None:
        options = ServerOptions(long_poll_path="/poll")
        router = EventStreamRouter(
            {name: EventStream(options=options) for name in ("news", "alerts")}
        )
        async with served(router) as address:
            sent = [router.streams["news"].publish(Event(data=f"n{i}")) for i in range(3)]
            router.streams["alerts"].publish(Event(data="a"))
            for target in ("/poll/news?", "/poll?channel=news&"):
                status, body = await get(
                    address, f"{target}lastEventId={sent[0].id}&timeout=0", "application/json"
                )
                answer = json.loads(body)
                assert status == 200 and answer["gap"] is None, body
                assert [e["id"] for e in answer["events"]] == [s.id for s in sent[1:]]

    run(scenario, TIMEOUT)
