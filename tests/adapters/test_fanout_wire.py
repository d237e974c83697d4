"""The fan-out's hot path on real sockets: what the asyncio, trio and sync servers write
when every event is framed once, read back by h11 as a client.

Several HTTP/1.1 clients and an HTTP/1.0 one read as the events come, published in bursts;
one HTTP/1.1 client, with a small receive buffer, reads nothing until everything is
published (its socket fills: the server's writes to it then go out in part). Each must get
every event once, in order, in a body h11 reads without complaint; the chunked bodies are
byte for byte the same.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable

import h11
import pytest
import trio

from sse_core import Event, Parser, ServerConfig
from sse_core.adapters import ServerOptions
from sse_core.adapters import _sync_server as sync_server_module
from sse_core.adapters import asyncio as asyncio_adapter
from sse_core.adapters import sync as sync_adapter
from sse_core.adapters import trio as trio_adapter

TIMEOUT = 30.0
QUIET = ServerConfig(heartbeat_interval=None)
#: Room for the lagging client's whole backlog: it must not be dropped.
OPTIONS = ServerOptions(max_queued_bytes=16 << 20)
#: About 6 MB: more than the kernel takes for a client that does not read.
EVENTS = [Event(data=f"{n:04d} " + "x" * 30_000) for n in range(200)]
#: Events published together (the servers take them as several pieces at once).
BURST = 8


class Reader:
    """One raw client: its request, then h11 reads the response and sse_core's parser the
    body."""

    def __init__(self, address: tuple[str, int], version: bytes, *, is_lagging: bool) -> None:
        self.sock = socket.socket()
        if is_lagging:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(address)
        self.sock.sendall(b"GET /events HTTP/" + version + b"\r\nHost: t\r\n\r\n")
        self.h11 = h11.Connection(h11.CLIENT)
        self.h11.send(h11.Request(method="GET", target="/events", headers=[("Host", "t")]))
        self.h11.send(h11.EndOfMessage())
        self.parser = Parser()
        self.body = bytearray()
        self.datas: list[str] = []
        self.response: h11.Response | None = None

    def read_until(self, count: int) -> None:
        """Read until ``count`` events came (h11 raises on a malformed response)."""
        while len(self.datas) < count:
            data = self.sock.recv(1 << 16)
            assert data, f"the stream ended after {len(self.datas)} events"
            self.h11.receive_data(data)
            while True:
                event = self.h11.next_event()
                if event is h11.NEED_DATA:
                    break
                if isinstance(event, h11.Response):
                    self.response = event
                elif isinstance(event, h11.Data):
                    self.body += event.data
                    self.datas += [e.data for e in self.parser.feed(bytes(event.data))
                                   if isinstance(e, Event) and e.data]
                else:
                    raise AssertionError(f"unexpected {event!r}")


def exercise(
    address: tuple[str, int],
    wait_for: Callable[[int], None],
    publish: Callable[[Event], None],
) -> None:
    """Run the clients against a started server (in a thread of their own)."""
    readers = [Reader(address, b"1.1", is_lagging=False) for _ in range(3)]
    readers.append(Reader(address, b"1.0", is_lagging=False))
    lagging = Reader(address, b"1.1", is_lagging=True)
    try:
        wait_for(5)
        for reader in readers:
            reader.read_until(0)
        reading = [threading.Thread(target=reader.read_until, args=(len(EVENTS),))
                   for reader in readers]
        for thread in reading:
            thread.start()
        for start in range(0, len(EVENTS), BURST):
            for event in EVENTS[start : start + BURST]:
                publish(event)
            time.sleep(0.01)  # the server takes the burst meanwhile
        for thread in reading:
            thread.join(TIMEOUT)
        lagging.read_until(len(EVENTS))
        expected = [event.data for event in EVENTS]
        for reader in [*readers, lagging]:
            assert reader.datas == expected
            assert reader.response is not None and reader.response.status_code == 200
        chunked = [
            reader for reader in [*readers, lagging]
            if reader.response is not None
            and (b"transfer-encoding", b"chunked") in reader.response.headers
        ]
        assert len(chunked) == 4 and readers[3] not in chunked  # HTTP/1.0: close-delimited
        assert len({bytes(reader.body) for reader in [*readers, lagging]}) == 1
    finally:
        for reader in [*readers, lagging]:
            reader.sock.close()


def test_asyncio_server_fan_out_reads_back_with_h11() -> None:
    """The asyncio server: every client gets every event once, in order (see the module)."""

    async def scenario() -> None:
        async with asyncio_adapter.EventStreamServer(config=QUIET, options=OPTIONS) as server:
            loop = asyncio.get_running_loop()

            def wait_for(count: int) -> None:
                asyncio.run_coroutine_threadsafe(
                    server.wait_for_subscribers(count), loop
                ).result(TIMEOUT)

            def publish(event: Event) -> None:
                loop.call_soon_threadsafe(server.publish, event)

            await asyncio.to_thread(exercise, server.address, wait_for, publish)

    asyncio.run(asyncio.wait_for(scenario(), 2 * TIMEOUT))


def test_trio_server_fan_out_reads_back_with_h11() -> None:
    """The trio server: every client gets every event once, in order (see the module)."""

    async def scenario() -> None:
        async with trio_adapter.EventStreamServer(config=QUIET, options=OPTIONS) as server:

            def wait_for(count: int) -> None:
                trio.from_thread.run(server.wait_for_subscribers, count)

            def publish(event: Event) -> None:
                trio.from_thread.run_sync(server.publish, event)

            await trio.to_thread.run_sync(exercise, server.address, wait_for, publish)

    async def bounded() -> None:
        with trio.fail_after(2 * TIMEOUT):
            await scenario()

    trio.run(bounded)


@pytest.mark.parametrize("is_sendmsg", [True, False])
def test_sync_server_fan_out_reads_back_with_h11(
    is_sendmsg: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sync server: every client gets every event once, in order (see the module),
    with its pieces written by one sendmsg() each, or one send() a piece where the platform
    has no sendmsg()."""
    if not is_sendmsg:
        monkeypatch.setattr(sync_server_module, "_HAS_SENDMSG", False)
    with sync_adapter.EventStreamServer(config=QUIET, options=OPTIONS) as server:

        def wait_for(count: int) -> None:
            assert server.wait_for_subscribers(count, timeout=TIMEOUT)

        exercise(server.address, wait_for, server.publish)
