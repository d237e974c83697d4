"""Channels on the trio server without a shared log: an ``EventStreamRouter`` of in-memory
``EventStreamServer`` objects on one loopback port, read by the trio ``EventSource`` and by
bare HTTP/1.0 requests (statuses, long polls, the end of the body). The channel rule is the
asyncio and ASGI routers' (``channel_of`` in ``_server_base``). Redis-fed trio channels:
``test_redis_trio_feed.py``.

Every test runs in ``test_trio.run``: a hang limit, and no file descriptor left open.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio

from sse_core import ClientConfig, Event, InvalidConfigError, ReportGap, ServerConfig
from sse_core.adapters import ServerOptions
from sse_core.adapters.asyncio import EventStreamServer as AsyncioServer
from sse_core.adapters.trio import EventSource, EventStreamRouter, EventStreamServer
from tests.adapters.test_trio import FAST, run

QUIET = ServerConfig(heartbeat_interval=None)


def router_of(*names: str, options: ServerOptions | None = None) -> EventStreamRouter:
    """A router of one in-memory trio server per channel, without heartbeats."""
    servers = {name: EventStreamServer(config=QUIET, options=options) for name in names}
    return EventStreamRouter(servers)


async def fetch(
    address: tuple[str, int], target: str, *, is_poll: bool = False
) -> tuple[int, bytes]:
    """One HTTP/1.0 request read to its end (a long poll's with ``is_poll``): (status,
    body)."""
    accept = "application/json" if is_poll else "text/event-stream"
    stream = await trio.open_tcp_stream(*address)
    async with stream:
        await stream.send_all(f"GET {target} HTTP/1.0\r\nAccept: {accept}\r\n\r\n".encode())
        response = b""
        while chunk := await stream.receive_some(65536):
            response += chunk
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


async def take(source: EventSource, count: int, into: list[tuple[str, str]]) -> None:
    """Put the next ``count`` events of ``source`` (id, data) into ``into``."""
    async for event in source:
        into.append((event.id or "", event.data))
        if len(into) == count:
            return


def url_of(router: EventStreamRouter, target: str) -> str:
    host, port = router.address
    return f"http://{host}:{port}{target}"


def test_two_channels_on_one_trio_port_each_client_gets_its_own_once_in_order() -> None:
    """Two channels behind one trio router, published to alternately through their servers:
    each client (the trio EventSource, picking its channel by path or by query) gets its
    channel's events once, in order, nothing of the other's; a client resumes within its
    channel by ``Last-Event-ID``, and an id of the other channel is a gap there."""

    async def body() -> None:
        async with router_of("news", "alerts") as router:
            targets = {"news": ["/events/news", "/events?channel=news"],
                       "alerts": ["/events/alerts/", "/events?channel=alerts"]}
            got: dict[str, list[list[tuple[str, str]]]] = {}
            sent: dict[str, list[tuple[str, str]]] = {"news": [], "alerts": []}
            async with trio.open_nursery() as nursery:
                for name, paths in targets.items():
                    got[name] = []
                    for path in paths:
                        source = EventSource(ClientConfig(url=url_of(router, path), backoff=FAST))
                        got[name].append([])
                        nursery.start_soon(read_and_close, source, 4, got[name][-1])
                for name in targets:
                    await router.servers[name].wait_for_subscribers(2)
                for i in range(4):
                    for name in ("alerts", "news"):
                        stored = router.servers[name].publish(Event(data=f"{name}-{i}"))
                        sent[name].append((stored.id, stored.event.data))
            for name, lists in got.items():
                assert lists == [sent[name]] * 2, name
            later: list[tuple[str, str]] = []
            resumed = EventSource(ClientConfig(
                url=url_of(router, "/events?channel=news"), last_event_id=sent["news"][1][0]
            ))
            await read_and_close(resumed, 2, later)
            assert later == sent["news"][2:]
            crossed = EventSource(ClientConfig(
                url=url_of(router, "/events/alerts"), last_event_id=sent["news"][0][0]
            ))
            async with crossed:
                async for report in crossed.reports():
                    if isinstance(report, ReportGap):
                        break
            assert (report.reason, report.last_event_id) == ("unknown", sent["news"][0][0])

    run(body)


async def read_and_close(source: EventSource, count: int, into: list[tuple[str, str]]) -> None:
    """Read ``count`` events of ``source`` into ``into``, then close it."""
    async with source:
        await take(source, count, into)


def test_unknown_channels_are_404_and_each_channel_keeps_its_own_path_and_polls() -> None:
    """A request that names no channel gets 404 "no such event stream"; a channel under a
    path its server does not serve gets the server's own 404; with ``query_param=None``
    only the path picks; a long poll on ``/poll/news`` is news's, after its id."""

    async def body() -> None:
        async with router_of("news", options=ServerOptions(long_poll_path="/poll")) as router:
            for target in ("/events/sports", "/events?channel=sports", "/events", "/"):
                assert await fetch(router.address, target) == (404, b"no such event stream\n")
            assert await fetch(router.address, "/elsewhere/news") == (404, b"not found\n")
            news = [router.servers["news"].publish(Event(data=f"n{i}")) for i in range(3)]
            status, answer = await fetch(
                router.address, f"/poll/news?lastEventId={news[0].id}&timeout=0", is_poll=True
            )
            assert status == 200
            assert [e["id"] for e in json.loads(answer)["events"]] == [s.id for s in news[1:]]
        async with EventStreamRouter(
            {"news": EventStreamServer(config=QUIET)}, query_param=None
        ) as by_path:
            assert (await fetch(by_path.address, "/events?channel=news"))[0] == 404
            stream = await trio.open_tcp_stream(*by_path.address)
            async with stream:
                await stream.send_all(b"GET /events/news HTTP/1.0\r\n\r\n")
                head = b""
                while b"\r\n\r\n" not in head:
                    head += await stream.receive_some(65536)
                assert head.split(b" ", 2)[1] == b"200"

    run(body)


def test_closing_a_trio_router_ends_every_channel_and_lets_go_of_silent_connections() -> None:
    """``aclose`` ends the stream of every channel's clients (they read the end of the
    body), resets a connection that never sent its request, and stops listening; nothing
    is left open."""

    async def body() -> None:
        router = router_of("news", "alerts")
        async with trio.open_nursery() as nursery:
            address = await nursery.start(router.serve)
            streams = []
            for target in ("/events/news", "/events/alerts"):
                stream = await trio.open_tcp_stream(*address)
                await stream.send_all(f"GET {target} HTTP/1.0\r\n\r\n".encode())
                streams.append(stream)
            silent = await trio.open_tcp_stream(*address)
            for name in ("news", "alerts"):
                await router.servers[name].wait_for_subscribers()
            await router.aclose(grace=5.0)
            for stream in streams:
                whole = b""
                while chunk := await stream.receive_some(65536):
                    whole += chunk
                assert whole.startswith(b"HTTP/1.1 200 ") or whole.startswith(b"HTTP/1.0 200 ")
                await stream.aclose()
            with pytest.raises(trio.BrokenResourceError):  # let go with a reset
                await silent.receive_some(1)
            await silent.aclose()
        with pytest.raises(OSError):
            await trio.open_tcp_stream(*address)

    run(body)


def test_a_trio_router_is_checked_on_construction() -> None:
    """No servers, a server that is not the trio one, an empty name or query parameter,
    and servers whose connection timeouts differ are refused; other options may differ."""
    slow = ServerOptions(request_timeout=1.0)
    refused: list[tuple[dict[str, Any], str | None]] = [
        ({}, "channel"),
        ({"news": AsyncioServer()}, "channel"),
        ({"": EventStreamServer()}, "channel"),
        ({"news": EventStreamServer()}, ""),
        ({"news": EventStreamServer(), "alerts": EventStreamServer(options=slow)}, None),
    ]
    for servers, query_param in refused:
        with pytest.raises(InvalidConfigError):
            EventStreamRouter(servers, query_param=query_param)
    various = ServerOptions(max_subscribers=1, path="/a")
    router = EventStreamRouter({"news": EventStreamServer(), "alerts": EventStreamServer(
        options=various
    )})
    assert set(router.servers) == {"news", "alerts"}
