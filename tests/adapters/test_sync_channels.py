"""Channels on the blocking server without a shared log: a ``sync.EventStreamRouter`` of
in-memory threaded ``EventStreamServer`` objects on one loopback port, read by the blocking
``EventSource`` (in threads), by bare HTTP/1.0 readers that see every byte
(``StreamReader``, ``get``: statuses, long polls) and over TLS. The rule that picks the
channel is the other routers' (``channel_request`` in ``_server_base``). Every test leaves
no thread and no file descriptor behind. Redis-fed channels:
``test_redis_sync_channels.py``."""

from __future__ import annotations

import http.client
import io
import json
import socket
import threading
import time
from typing import Any

import pytest

from sse_core import Comment, Event, InvalidConfigError, Parser, ServerConfig
from sse_core.adapters import ClientOptions, ServerOptions
from sse_core.adapters.asyncio import EventStreamServer as AsyncioServer
from sse_core.adapters.sync import EventSource, EventStreamRouter, EventStreamServer
from sse_core.state import GAP_EVENT_TYPE, POSITION_EVENT_TYPE
from tests.adapters.test_sync import (
    fast,
    no_leaks,
    read_to_eof,
    read_to_reset,
    tls_contexts,
    watchdog,
)

__all__ = ["no_leaks"]  # the autouse fixture: no thread or descriptor left behind

QUIET = ServerConfig(heartbeat_interval=None)
#: Only a failure ever waits this long.
TIMEOUT = 15.0


def in_memory(*names: str, **kwargs: Any) -> EventStreamRouter:
    """A router of one in-memory threaded server per channel."""
    kwargs.setdefault("config", QUIET)
    return EventStreamRouter({name: EventStreamServer(**kwargs) for name in names})


def request(
    address: tuple[str, int], target: str, accept: str = "text/event-stream",
    last_event_id: str | None = None,
) -> socket.socket:
    """A blocking connection that sent one HTTP/1.0 GET (the body is then close-delimited)."""
    sock = socket.create_connection(address, timeout=TIMEOUT)
    lines = [f"GET {target} HTTP/1.0", f"Accept: {accept}"]
    if last_event_id is not None:
        lines.append(f"Last-Event-ID: {last_event_id}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    return sock


def get(
    address: tuple[str, int], target: str, accept: str = "text/event-stream"
) -> tuple[int, bytes]:
    """One HTTP/1.0 request, read to its end: its status and body."""
    with request(address, target, accept) as sock:
        response = read_to_eof(sock)
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


class Stream:
    """A bare blocking event-stream reader that sees every byte: the head, then the events
    parsed by sse_core's parser."""

    def __init__(
        self, address: tuple[str, int], target: str, last_event_id: str | None = None
    ) -> None:
        self.sock = request(address, target, last_event_id=last_event_id)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(65536)
            assert chunk, f"no head: {data!r}"
            data += chunk
        self.head, _, rest = data.partition(b"\r\n\r\n")
        status_line, _, fields = self.head.partition(b"\r\n")
        #: The response's status code and header fields.
        self.status = int(status_line.split(b" ", 2)[1])
        self.fields = http.client.parse_headers(io.BytesIO(fields + b"\r\n\r\n"))
        self._parser = Parser()
        self._items: list[Any] = self._parser.feed(rest)

    def read_data(self, count: int) -> list[Event]:
        """The next ``count`` events that are not position events (gap events count).

        Raises:
            AssertionError: the stream ended first.
        """
        events: list[Event] = []
        while len(events) < count:
            while self._items and len(events) < count:
                item = self._items.pop(0)
                if isinstance(item, Event) and item.event != POSITION_EVENT_TYPE:
                    events.append(item)
                assert isinstance(item, (Event, Comment))
            if len(events) < count:
                chunk = self.sock.recv(65536)
                assert chunk, f"the stream ended after {events}"
                self._items += self._parser.feed(chunk)
        return events

    def rest(self) -> list[Event]:
        """The events left up to the end of the stream, position events apart."""
        while chunk := self.sock.recv(65536):
            self._items += self._parser.feed(chunk)
        rest = [item for item in self._items if isinstance(item, Event)]
        self._items = []
        return [event for event in rest if event.event != POSITION_EVENT_TYPE]

    def close(self) -> None:
        """Close the connection."""
        self.sock.close()


def assert_streams(router: EventStreamRouter, target: str, name: str) -> None:
    """A new client of ``target`` gets 200, then the next event published on channel
    ``name`` (and nothing before it)."""
    reader = Stream(router.address, target)
    try:
        assert reader.status == 200, reader.head
        subscribed(router, name)
        sent = router.servers[name].publish(Event(data=f"for {target}"))
        assert [(e.id, e.data) for e in reader.read_data(1)] == [(sent.id, sent.event.data)]
    finally:
        reader.close()


def subscribed(router: EventStreamRouter, name: str, count: int = 1) -> None:
    """Block until channel ``name`` has ``count`` streams open."""
    assert router.servers[name].wait_for_subscribers(count, timeout=TIMEOUT), name


def read_in_thread(
    source: EventSource, count: int, into: list[tuple[str, str]]
) -> threading.Thread:
    """Iterate ``source`` in a new thread until ``count`` events are in ``into``."""

    def take() -> None:
        with watchdog(source, TIMEOUT):
            for event in source:
                into.append((event.id or "", event.data))
                if len(into) == count:
                    break

    thread = threading.Thread(target=take)
    thread.start()
    return thread


def test_channels_on_one_port_each_client_gets_its_own_events_once_in_order() -> None:
    """Two in-memory channels behind one router, published to through their servers,
    interleaved: each blocking client (picking its channel by path or by query) gets its
    channel's events once, in order, and nothing of the other's; a client resumes within its
    channel by ``Last-Event-ID``, and an id of the other channel reads there as the explicit
    "unknown" gap."""
    with in_memory("news", "alerts") as router:
        host, port = router.address
        base = f"http://{host}:{port}"
        urls = {"news": [f"{base}/events/news", f"{base}/events?channel=news"],
                "alerts": [f"{base}/events/alerts/"]}
        sources = {name: [EventSource(fast(url)) for url in group] for name, group in urls.items()}
        got: dict[str, list[list[tuple[str, str]]]] = {
            name: [[] for _ in group] for name, group in sources.items()
        }
        threads = [
            read_in_thread(source, 5, into)
            for name in sources
            for source, into in zip(sources[name], got[name], strict=True)
        ]
        subscribed(router, "news", 2)
        subscribed(router, "alerts", 1)
        sent: dict[str, list[tuple[str, str]]] = {"news": [], "alerts": []}
        for i in range(5):
            for name in ("news", "alerts"):
                stored = router.servers[name].publish(Event(data=f"{name} {i}"))
                sent[name].append((stored.id, stored.event.data))
        for thread in threads:
            thread.join()
        for name, lists in got.items():
            for into in lists:
                assert into == sent[name]
        for group in sources.values():
            for source in group:
                source.close()
        news_ids = [event_id for event_id, _ in sent["news"]]
        for target in ("/events/news", "/events?channel=news"):
            again = Stream((host, port), target, last_event_id=news_ids[1])
            assert [e.id for e in again.read_data(len(news_ids) - 2)] == news_ids[2:]
            last = router.servers["news"].publish(Event(data="last"))
            # Nothing twice, nothing of the other channel: the next event is the new one.
            assert [e.id for e in again.read_data(1)] == [last.id]
            news_ids.append(last.id)
            again.close()
        crossed = Stream((host, port), "/events/alerts", last_event_id=news_ids[0])
        (signal,) = crossed.read_data(1)
        assert signal.event == GAP_EVENT_TYPE
        assert json.loads(signal.data)["reason"] == "unknown"
        crossed.close()


def test_unknown_channels_and_paths_are_404_and_each_channel_keeps_its_own_path() -> None:
    """A request that names no channel gets 404 "no such event stream"; a channel named
    under a path its server does not serve gets the server's own 404; with
    ``query_param=None`` only the path picks."""
    with in_memory("news") as router:
        for target in ("/events/sports", "/events?channel=sports", "/events", "/",
                       "/events/news?channel=sports"):
            assert get(router.address, target) == (404, b"no such event stream\n"), target
        assert get(router.address, "/elsewhere/news") == (404, b"not found\n")
    by_path = EventStreamRouter({"news": EventStreamServer(config=QUIET)}, query_param=None)
    with by_path:
        assert get(by_path.address, "/events?channel=news")[0] == 404
        assert_streams(by_path, "/events/news", "news")


def test_long_polls_pick_their_channel_on_their_own_path_or_by_negotiation() -> None:
    """With ``long_poll_path`` apart (``/poll``), ``/poll/news`` and ``/poll?channel=news``
    are polls of ``news``; with one path for both, ``Accept: application/json`` on
    ``/events/news`` is. Each answer holds that channel's events after the id, nothing of the
    other's; an id of the other channel is a gap."""

    for options, targets in [
        (ServerOptions(long_poll_path="/poll"), ("/poll/news", "/poll?channel=news")),
        (ServerOptions(long_poll_path="/events"), ("/events/news", "/events?channel=news")),
    ]:
        with in_memory("news", "alerts", options=options) as router:
            news = [router.servers["news"].publish(Event(data=f"n{i}")) for i in range(3)]
            other = router.servers["alerts"].publish(Event(data="a"))
            for target in targets:
                joiner = "&" if "?" in target else "?"
                status, body = get(
                    router.address, f"{target}{joiner}lastEventId={news[0].id}&timeout=0",
                    "application/json",
                )
                answer = json.loads(body)
                assert status == 200 and answer["gap"] is None, body
                assert [e["id"] for e in answer["events"]] == [s.id for s in news[1:]]
                status, body = get(
                    router.address, f"{target}{joiner}lastEventId={other.id}&timeout=0",
                    "application/json",
                )
                assert status == 200 and json.loads(body)["gap"] is not None, body



def test_a_held_poll_of_a_channel_is_answered_by_that_channels_publish() -> None:
    """A long poll of ``news`` held by its server is answered by the next event published
    on ``news``; one published on ``alerts`` meanwhile does not answer it."""
    with in_memory("news", "alerts", options=ServerOptions(long_poll_path="/poll")) as router:
        news = router.servers["news"]
        first = news.publish(Event(data="first"))
        sock = request(
            router.address, f"/poll/news?lastEventId={first.id}&timeout=10", "application/json"
        )
        deadline = time.monotonic() + TIMEOUT
        while not news.broadcaster.held_polls:  # held once its server counts it
            assert time.monotonic() < deadline, "the poll was never held"
            time.sleep(0.02)
        router.servers["alerts"].publish(Event(data="not for news"))
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(1)  # no answer yet
        sock.settimeout(TIMEOUT)
        second = news.publish(Event(data="second"))
        head, _, body = read_to_eof(sock).partition(b"\r\n\r\n")
        sock.close()
        assert head.split(b"\r\n")[0].endswith(b" 200 OK"), head
        assert [(e["id"], e["data"]) for e in json.loads(body)["events"]] == [
            (second.id, "second")
        ]


def test_closing_the_router_ends_every_channel_and_lets_go_of_silent_connections() -> None:
    """``close`` ends the stream of every channel's clients (the end of the body), resets a
    connection that never sent its request, stops listening and joins every thread (the
    autouse fixture checks threads and descriptors)."""
    router = in_memory("news", "alerts")
    router.start()
    address = router.address
    streams = []
    for target in ("/events/news", "/events/alerts"):
        sock = socket.create_connection(address, timeout=TIMEOUT)
        sock.sendall(f"GET {target} HTTP/1.0\r\n\r\n".encode())
        streams.append(sock)
    silent = socket.create_connection(address, timeout=TIMEOUT)
    subscribed(router, "news")
    subscribed(router, "alerts")
    # The kernel completes the silent connection's handshake before the router's loop
    # accepts it: wait for the loop to count it.
    deadline = time.monotonic() + TIMEOUT
    while router.connection_count < 3:
        assert time.monotonic() < deadline, f"{router.connection_count} of 3 connections"
        time.sleep(0.005)
    assert router.connection_count == 3
    threads = {thread.name for thread in threading.enumerate()}
    assert sum("sse_core sync channel" in name for name in threads) == 2
    router.close(grace=5.0)
    for sock in streams:
        whole = b""
        while chunk := sock.recv(65536):  # to the end: no hang
            whole += chunk
        assert whole.split(b"\r\n")[0].endswith(b" 200 OK"), whole
        sock.close()
    read_to_reset(silent)
    silent.close()
    assert router.connection_count == 0
    with pytest.raises(OSError):
        socket.create_connection(address, timeout=TIMEOUT).close()
    router.close()  # again: nothing happens


def test_a_closed_channel_answers_503_while_the_others_are_served() -> None:
    """A channel whose server was closed on its own is refused with 503 and
    ``Retry-After`` by the router, while the other channel still streams."""
    with in_memory("news", "alerts") as router:
        router.servers["alerts"].close()
        refused = Stream(router.address, "/events/alerts")
        assert refused.status == 503 and refused.fields["Retry-After"] is not None
        refused.close()
        assert_streams(router, "/events?channel=news", "news")


def test_channels_over_tls() -> None:
    """Over TLS the router shakes hands and reads the request; the channel's server goes on
    on the same TLS connection (a trustme CA; the blocking client reads a big event, which
    leaves decrypted bytes in the TLS layer between reads)."""
    server_context, client_context = tls_contexts()
    client_options = ClientOptions(ssl_context=client_context, read_size=1000)
    router = in_memory("news", "alerts")
    router.start(ssl_context=server_context)
    try:
        port = router.address[1]
        config = fast(f"https://localhost:{port}/events/news", is_gzip_accepted=False)
        source = EventSource(config, options=client_options)
        got: list[tuple[str, str]] = []
        thread = read_in_thread(source, 2, got)
        subscribed(router, "news")
        big = "y" * 50_000
        router.servers["alerts"].publish(Event(data="not for news"))
        sent = [router.servers["news"].publish(Event(data=data)) for data in ("secret", big)]
        thread.join()
        source.close()
    finally:
        router.close()
    assert got == [(s.id, s.event.data) for s in sent]


def test_a_router_is_checked_on_construction_and_start() -> None:
    """No servers, a server that is not the blocking one, an empty query parameter, and
    servers whose connection timeouts differ (they apply before the channel is known) are
    refused; so are a router started twice and a server already started on its own."""
    bad: list[tuple[Any, str | None]] = [
        ({}, "channel"), ({"news": AsyncioServer()}, "channel"), ({"": EventStreamServer()}, None),
        ({"news": EventStreamServer()}, ""),
        ({"news": EventStreamServer(),
          "alerts": EventStreamServer(options=ServerOptions(request_timeout=5.0))}, "channel"),
    ]
    for servers, query_param in bad:
        with pytest.raises(InvalidConfigError):
            EventStreamRouter(servers, query_param=query_param)
    alone = EventStreamServer()
    alone.start()
    try:
        router = EventStreamRouter({"news": EventStreamServer(), "alone": alone})
        with pytest.raises(RuntimeError, match="alone"):
            router.start()
        with pytest.raises(RuntimeError):
            _ = router.address
    finally:
        alone.close()
    router = in_memory("news")
    with router:
        with pytest.raises(RuntimeError, match="started once"):
            router.start()
        with pytest.raises(RuntimeError):
            router.servers["news"].start()
        assert router.servers["news"].address == router.address
