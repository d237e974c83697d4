"""Channels on the asyncio server without a shared log: an ``EventStreamRouter`` of
in-memory ``EventStreamServer`` objects on one loopback port, read by the asyncio
``EventSource`` and by bare HTTP/1.0 requests (statuses, long polls). The rule that picks the
channel is the ASGI router's (``pick_channel`` in ``_server_base``), checked here on its own
too. Redis-fed channels: ``test_redis_asyncio_channels.py``."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from sse_core import ClientConfig, Event, InvalidConfigError, ReportGap, ServerConfig
from sse_core.adapters import ServerOptions
from sse_core.adapters._server_base import pick_channel
from sse_core.adapters.asgi import EventStream
from sse_core.adapters.asgi import EventStreamRouter as ASGIRouter
from sse_core.adapters.asyncio import EventSource, EventStreamRouter, EventStreamServer
from tests.adapters.test_asyncio import TIMEOUT, run

QUIET = ServerConfig(heartbeat_interval=None)


def in_memory(*names: str, **kwargs: Any) -> EventStreamRouter:
    """A router of one in-memory server per channel."""
    kwargs.setdefault("config", QUIET)
    return EventStreamRouter({name: EventStreamServer(**kwargs) for name in names})


async def get(
    address: tuple[str, int], target: str, accept: str = "text/event-stream"
) -> tuple[int, bytes]:
    """One HTTP/1.0 request, read to its end: its status and body (a refusal, or a long
    poll's answer)."""
    reader, writer = await asyncio.open_connection(*address)
    writer.write(f"GET {target} HTTP/1.0\r\nAccept: {accept}\r\n\r\n".encode())
    try:
        response = await asyncio.wait_for(reader.read(), TIMEOUT)
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


async def read(source: EventSource, count: int) -> list[tuple[str, str]]:
    """The next ``count`` events of ``source``: (id, data)."""
    got: list[tuple[str, str]] = []

    async def take() -> None:
        async for event in source:
            got.append((event.id or "", event.data))
            if len(got) == count:
                break

    await asyncio.wait_for(take(), TIMEOUT)
    return got


async def first_gap(source: EventSource) -> ReportGap:
    """The first gap report of ``source``."""
    async for report in source.reports():
        if isinstance(report, ReportGap):
            return report
    raise AssertionError("the source ended without a gap")


@pytest.mark.parametrize(
    ("target", "channel", "rest"),
    [
        ("/events/news", "news", "/events"),
        ("/events/news/", "news", "/events"),
        ("/news", "news", "/"),
        ("/events?channel=news", "news", "/events"),
        ("/events/alerts?channel=news", "news", "/events/alerts"),
        ("/events/news?channel=sports", None, "/events/news"),
        ("/events/news?channel=", "news", "/events"),
        ("/events?other=news", None, "/events"),
        ("/events", None, "/events"),
        ("/", None, "/"),
    ],
)
def test_the_channel_rule_is_the_asgi_routers(target: str, channel: str | None, rest: str) -> None:
    """The query parameter first (a name it gives is final, known or not), then the path's
    last segment, which is taken off the path; the ASGI router answers with the same rule."""
    path, _, query = target.partition("?")
    assert pick_channel(path, query, {"news", "alerts"}, "channel") == (channel, rest)
    asgi = ASGIRouter({name: EventStream() for name in ("news", "alerts")})
    scope = {"path": path, "query_string": query.encode()}
    assert asgi.channel_of(scope) == channel


def test_channels_on_one_port_each_client_gets_its_own_events_once_in_order() -> None:
    """Two in-memory channels behind one router, published to through their servers: each
    client (the asyncio EventSource, picking its channel by path or by query) gets its
    channel's events once, in order; a client resumes within its channel by
    ``Last-Event-ID``, and an id of the other channel reads as a gap there."""

    async def main() -> None:
        async with in_memory("news", "alerts") as router:
            host, port = router.address
            base = f"http://{host}:{port}"
            news, alerts = router.servers["news"], router.servers["alerts"]
            sources = {
                "news": [EventSource(ClientConfig(url=f"{base}/events/news")),
                         EventSource(ClientConfig(url=f"{base}/events?channel=news"))],
                "alerts": [EventSource(ClientConfig(url=f"{base}/events/alerts"))],
            }
            readers = {
                name: [asyncio.create_task(read(source, 4)) for source in group]
                for name, group in sources.items()
            }
            await asyncio.wait_for(news.wait_for_subscribers(2), TIMEOUT)
            await asyncio.wait_for(alerts.wait_for_subscribers(1), TIMEOUT)
            sent: dict[str, list[tuple[str, str]]] = {"news": [], "alerts": []}
            for i in range(4):
                for name in ("news", "alerts"):
                    stored = router.servers[name].publish(Event(data=f"{name} {i}"))
                    sent[name].append((stored.id, stored.event.data))
            for name, tasks in readers.items():
                for task in tasks:
                    assert await task == sent[name]
            for group in sources.values():
                for source in group:
                    await source.aclose()
            resumed = EventSource(
                ClientConfig(url=f"{base}/events/news", last_event_id=sent["news"][1][0])
            )
            async with resumed:
                assert await read(resumed, 2) == sent["news"][2:]
            crossed = EventSource(
                ClientConfig(url=f"{base}/events/alerts", last_event_id=sent["news"][0][0])
            )
            async with crossed:
                gap = await asyncio.wait_for(first_gap(crossed), TIMEOUT)
                assert (gap.reason, gap.last_event_id) == ("unknown", sent["news"][0][0])

    run(main)


def test_unknown_channels_and_paths_are_404_and_each_channel_keeps_its_own_path() -> None:
    """A request that names no channel gets 404 "no such event stream"; a channel named
    under a path its server does not serve gets the server's own 404; with
    ``query_param=None`` only the path picks."""

    async def main() -> None:
        async with in_memory("news") as router:
            for target in ("/events/sports", "/events?channel=sports", "/events", "/"):
                assert await get(router.address, target) == (404, b"no such event stream\n")
            assert await get(router.address, "/elsewhere/news") == (404, b"not found\n")
        by_path = EventStreamRouter(
            {"news": EventStreamServer(config=QUIET)}, query_param=None
        )
        async with by_path:
            status, _ = await get(by_path.address, "/events?channel=news")
            assert status == 404
            published = asyncio.create_task(publish_when_subscribed(by_path.servers["news"]))
            source = EventSource(ClientConfig(
                url=f"http://{by_path.address[0]}:{by_path.address[1]}/events/news"
            ))
            async with source:
                assert [data for _, data in await read(source, 1)] == ["hello"]
            await published

    run(main)


async def publish_when_subscribed(server: EventStreamServer) -> None:
    """Publish ``hello`` once a client's stream is open."""
    await asyncio.wait_for(server.wait_for_subscribers(), TIMEOUT)
    server.publish(Event(data="hello"))


def test_long_polls_pick_their_channel_on_their_own_path_or_by_negotiation() -> None:
    """With ``long_poll_path`` apart (``/poll``), ``/poll/news`` and ``/poll?channel=news``
    are polls of ``news``; with one path for both, ``Accept: application/json`` on
    ``/events/news`` is. Each answer holds that channel's events after the id, nothing of the
    other's; an id of the other channel is a gap."""

    async def main() -> None:
        for options, targets in [
            (ServerOptions(long_poll_path="/poll"), ("/poll/news", "/poll?channel=news")),
            (ServerOptions(long_poll_path="/events"), ("/events/news", "/events?channel=news")),
        ]:
            async with in_memory("news", "alerts", options=options) as router:
                news = [router.servers["news"].publish(Event(data=f"n{i}")) for i in range(3)]
                other = router.servers["alerts"].publish(Event(data="a"))
                for target in targets:
                    joiner = "&" if "?" in target else "?"
                    status, body = await get(
                        router.address, f"{target}{joiner}lastEventId={news[0].id}&timeout=0",
                        "application/json",
                    )
                    answer = json.loads(body)
                    assert status == 200 and answer["gap"] is None, body
                    assert [e["id"] for e in answer["events"]] == [s.id for s in news[1:]]
                    status, body = await get(
                        router.address, f"{target}{joiner}lastEventId={other.id}&timeout=0",
                        "application/json",
                    )
                    assert status == 200 and json.loads(body)["gap"] is not None, body

    run(main)


def test_closing_the_router_ends_every_channel_and_lets_go_of_silent_connections() -> None:
    """``aclose`` ends the stream of every channel's clients (the end of the body), lets go
    of a connection that never sent its request, and stops listening."""

    async def main() -> None:
        router = in_memory("news", "alerts")
        await router.start()
        address = router.address
        streams = []
        for target in ("/events/news", "/events/alerts"):
            reader, writer = await asyncio.open_connection(*address)
            writer.write(f"GET {target} HTTP/1.0\r\n\r\n".encode())
            streams.append((reader, writer))
        silent = await asyncio.open_connection(*address)
        for name in ("news", "alerts"):
            await asyncio.wait_for(router.servers[name].wait_for_subscribers(), TIMEOUT)
        await router.aclose(grace=5.0)
        for reader, writer in streams:
            whole = await asyncio.wait_for(reader.read(), TIMEOUT)  # to the end: no hang
            assert whole.startswith(b"HTTP/1.0 200 ") or whole.startswith(b"HTTP/1.1 200 ")
            writer.close()
            await writer.wait_closed()
        reader, writer = silent
        with pytest.raises(ConnectionResetError):  # let go with a reset
            await asyncio.wait_for(reader.read(), TIMEOUT)
        writer.close()
        with pytest.raises(OSError):
            await asyncio.open_connection(*address)

    run(main)


def test_a_router_is_checked_on_construction() -> None:
    """No servers, a server that is not the asyncio one, an empty query parameter, and
    servers whose connection timeouts differ (they apply before the channel is known) are
    refused."""
    with pytest.raises(InvalidConfigError):
        EventStreamRouter({})
    with pytest.raises(InvalidConfigError):
        EventStreamRouter({"news": EventStream()})  # type: ignore[dict-item]
    with pytest.raises(InvalidConfigError):
        EventStreamRouter({"": EventStreamServer()})
    with pytest.raises(InvalidConfigError):
        EventStreamRouter({"news": EventStreamServer()}, query_param="")
    with pytest.raises(InvalidConfigError, match="request_timeout"):
        EventStreamRouter({
            "news": EventStreamServer(),
            "alerts": EventStreamServer(options=ServerOptions(send_timeout=None)),
        })
    # Other options may differ per channel.
    router = EventStreamRouter({
        "news": EventStreamServer(),
        "alerts": EventStreamServer(options=ServerOptions(max_subscribers=1, path="/a")),
    })
    assert set(router.servers) == {"news", "alerts"}
