"""The blocking server's loop costs what is due, not what is open.

Each turn of :class:`~sse_core.adapters.sync.EventStreamServer`'s loop (a wake-up: an
accept, a read, a publish, a timer) must look only at the clients that have something to
do; idle connections must not be asked for their deadline nor served. These tests count
the calls instead of timing them (the machine is shared), and check that heartbeats still
go out on time when many clients wait for them.
"""

from __future__ import annotations

import selectors
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sse_core import Event, ServerConfig
from sse_core.adapters import ServerOptions
from sse_core.adapters.sync import EventStreamServer
from sse_core.state import Subscriber
from tests.adapters.test_sync import read_head

WATCHDOG = 20.0
REQUEST = b"GET /events HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n\r\n"


def open_streams(server: EventStreamServer, count: int) -> list[socket.socket]:
    """``count`` raw streams, subscribed and their heads read."""
    socks = []
    for _ in range(count):
        sock = socket.create_connection(server.address, timeout=WATCHDOG)
        sock.sendall(REQUEST)
        socks.append(sock)
    assert server.wait_for_subscribers(count, timeout=WATCHDOG)
    for sock in socks:
        assert read_head(sock).startswith(b"HTTP/1.1 200 ")
    return socks


@pytest.fixture
def streams() -> Iterator[Callable[[EventStreamServer, int], list[socket.socket]]]:
    """Open streams on a server; closed at the end of the test."""
    opened: list[socket.socket] = []

    def make(server: EventStreamServer, count: int) -> list[socket.socket]:
        socks = open_streams(server, count)
        opened.extend(socks)
        return socks

    yield make
    for sock in opened:
        sock.close()


class Counts:
    """How many times the loop served a client, and asked a subscriber its deadline."""

    def __init__(self, server: EventStreamServer, monkeypatch: pytest.MonkeyPatch) -> None:
        self.services = 0
        self.deadlines = 0
        service = server._service
        next_deadline = Subscriber.next_deadline

        def counted_service(client: Any, now: float) -> None:
            self.services += 1
            service(client, now)

        def counted_deadline(subscriber: Subscriber) -> float | None:
            self.deadlines += 1
            return next_deadline(subscriber)

        monkeypatch.setattr(server, "_service", counted_service)
        monkeypatch.setattr(Subscriber, "next_deadline", counted_deadline)

    def reset(self) -> None:
        self.services = self.deadlines = 0


IDLE = 150  # idle streams; the old loop served every one of them on every wake-up


def test_one_wake_up_serves_only_the_clients_it_concerns(
    streams: Callable[[EventStreamServer, int], list[socket.socket]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With 150 idle streams open, a new stream (accept, read, subscribe), a publish that
    every stream keeps up with, and bytes from one client each cost a few services and
    deadline queries, not one per open connection."""
    config = ServerConfig(heartbeat_interval=60.0, is_compression_enabled=False)
    # No deadline of theirs comes during the test (an idle stream's first timer is its
    # request's, which the loop then moves to its heartbeat's).
    options = ServerOptions(request_timeout=120.0)
    with EventStreamServer(config=config, options=options) as server:
        idle = streams(server, IDLE)
        time.sleep(0.3)  # the loop has nothing left to do for them
        counts = Counts(server, monkeypatch)

        late = streams(server, 1)[0]  # one more: accept, read, subscribe, write the head
        time.sleep(0.2)
        assert counts.services <= 6 and counts.deadlines <= 6, vars(counts)

        counts.reset()
        server.publish(Event(data="to everyone"))
        for sock in [*idle, late]:  # every stream took it
            data = b""
            while b"to everyone" not in data:
                chunk = sock.recv(4096)
                assert chunk, "the stream ended"
                data += chunk
        time.sleep(0.2)
        # Written by the publish itself, one shared frame each: no stream was left to the loop.
        assert counts.services <= 2 and counts.deadlines <= 2, vars(counts)

        counts.reset()
        idle[0].sendall(b"ignored")  # a read on one stream wakes the loop for that one
        time.sleep(0.3)
        assert 1 <= counts.services <= 3 and counts.deadlines <= 3, vars(counts)


def test_heartbeats_of_many_clients_go_out_on_time(
    streams: Callable[[EventStreamServer, int], list[socket.socket]],
) -> None:
    """Two hundred idle streams with a 0.5 s heartbeat: each gets a heartbeat every half
    second or so, none waits longer than 2 s between two (wide: a loaded machine)."""
    interval, watched, count = 0.5, 3.0, 200
    config = ServerConfig(heartbeat_interval=interval, is_compression_enabled=False)
    with EventStreamServer(config=config) as server:
        socks = streams(server, count)
        selector = selectors.DefaultSelector()
        last: dict[socket.socket, float] = {}
        beats = dict.fromkeys(socks, 0)
        longest = 0.0
        start = time.monotonic()
        for sock in socks:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ, sock)
            last[sock] = start
        try:
            while (now := time.monotonic()) < start + watched:
                for key, _ in selector.select(0.1):
                    ready: socket.socket = key.data
                    data = ready.recv(65536)
                    assert data, "the stream ended"
                    beats[ready] += data.count(b":\n\n")
                    now = time.monotonic()
                    longest = max(longest, now - last[ready])
                    last[ready] = now
            longest = max(longest, *(now - at for at in last.values()))
        finally:
            selector.close()
    assert longest < 2.0
    assert min(beats.values()) >= 3  # about six each in 3 s


def test_the_timer_heap_stays_bounded_as_connections_come_and_go() -> None:
    """Connections that come and go (each with a request deadline in the heap, behind the
    earlier one of a connection that stays) leave the heap no bigger than a few entries
    per open connection."""
    options = ServerOptions(request_timeout=60.0)
    with EventStreamServer(options=options) as server:
        keeper = socket.create_connection(server.address, timeout=WATCHDOG)  # earliest timer
        try:
            for _ in range(300):
                with socket.create_connection(server.address, timeout=WATCHDOG):
                    pass
            deadline = time.monotonic() + WATCHDOG
            while server.connection_count != 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert server.connection_count == 1
            with server._lock:
                assert len(server._timers) <= 2 * 1 + 64
        finally:
            keeper.close()
