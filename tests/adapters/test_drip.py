"""A server that drips body bytes without ever ending a line, over real loopback sockets,
against the asyncio, trio and sync ``EventSource``: each reports the stall.

The server is our own, a few lines of raw sockets in threads: it answers every request with
a valid ``200 text/event-stream`` head and then sends one body byte every 0.2 s, forever,
as one-byte HTTP chunks (whose framing carries CRLF: it must not count), plain or gzip.
Bytes arrive five times per stall timeout, so only a client that asks for complete lines
notices; one that counts bytes streams on for ever.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import trio

import sse_core.adapters.asyncio as asyncio_adapter
import sse_core.adapters.sync as sync_adapter
import sse_core.adapters.trio as trio_adapter
from sse_core import ClientConfig, ClientState, ReportStatus
from sse_core.adapters import ClientOptions
from sse_core.state import BackoffConfig

STALL_TIMEOUT = 1.0
DRIP_INTERVAL = 0.2
#: Wall-clock seconds within which the stall must be reported (a loaded 2-core machine).
LIMIT = 8.0
SLOW_BACKOFF = BackoffConfig(base_delay=5.0)  # no second connection while the test looks


class DripServer:
    """Answers every request with an event-stream head, then drips one byte every
    ``DRIP_INTERVAL`` seconds in one-byte chunks (no line end ever), until the client goes
    or :meth:`stop` is called.

    Args:
        is_gzip: Send ``Content-Encoding: gzip`` and drip the compressed bytes of an
            endless line.
    """

    def __init__(self, *, is_gzip: bool) -> None:
        self.is_gzip = is_gzip
        self.sent: list[int] = []  # body bytes dripped, per connection
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept)]
        self._threads[0].start()

    @property
    def url(self) -> str:
        """The stream's URL."""
        host, port = self._listener.getsockname()[:2]
        return f"http://{host}:{port}/events"

    def stop(self) -> None:
        """Stop dripping, close every socket and join the threads."""
        self._stop.set()
        for thread in self._threads:
            thread.join(LIMIT)
            assert not thread.is_alive()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.sent.append(0)
            thread = threading.Thread(target=self._serve, args=(conn, len(self.sent) - 1))
            self._threads.append(thread)
            thread.start()

    def _body(self) -> Iterator[bytes]:
        """The body, one byte at a time: ``data: xxxx...`` without an end."""
        if not self.is_gzip:
            yield from (b"data: "[i : i + 1] for i in range(6))
            while True:
                yield b"x"
        compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
        pending = compressor.compress(b"data: ")
        while True:
            pending += compressor.compress(b"x" * 8) + compressor.flush(zlib.Z_SYNC_FLUSH)
            while pending:
                yield pending[:1]
                pending = pending[1:]

    def _serve(self, conn: socket.socket, index: int) -> None:
        with conn:
            conn.settimeout(LIMIT)
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                request += chunk
            head = (
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n"
            )
            if self.is_gzip:
                head += b"Content-Encoding: gzip\r\n"
            try:
                conn.sendall(head + b"\r\n")
                for byte in self._body():
                    if self._stop.wait(DRIP_INTERVAL):
                        return
                    conn.sendall(b"1\r\n" + byte + b"\r\n")
                    self.sent[index] += 1
            except OSError:  # the client went away
                return


@contextmanager
def drip_server(is_gzip: bool) -> Iterator[DripServer]:
    server = DripServer(is_gzip=is_gzip)
    try:
        yield server
    finally:
        server.stop()


class Statuses:
    """The statuses a client reported, with the wall-clock instant each arrived."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.seen: list[tuple[float, ReportStatus]] = []

    def __call__(self, status: ReportStatus) -> None:
        self.seen.append((time.monotonic() - self.started, status))

    def stall(self) -> ReportStatus | None:
        """The first report that left the stream, if any."""
        for _, status in self.seen:
            if status.state is ClientState.RECONNECTING:
                return status
        return None

    def check(self, server: DripServer) -> None:
        """The stream was open and fed, then reported stalled (not early, not late)."""
        states = [status.state for _, status in self.seen]
        assert states[:4] == [
            ClientState.CONNECTING, ClientState.CONNECTED, ClientState.STREAMING,
            ClientState.RECONNECTING,
        ], self.seen
        connecting, stall = self.seen[0][1], self.seen[3][1]
        assert stall.reason == f"stalled: no complete line for {STALL_TIMEOUT:g} s"
        assert stall.since - connecting.since >= STALL_TIMEOUT  # the client's own clock
        assert self.seen[3][0] < LIMIT
        assert server.sent[0] >= 2, "the server did not really drip"


def config(url: str) -> ClientConfig:
    return ClientConfig(url=url, stall_timeout=STALL_TIMEOUT, backoff=SLOW_BACKOFF)


def wait_for_stall(statuses: Statuses, sleep: Callable[[float], object]) -> None:
    """Poll (blocking) until a stall is reported or ``LIMIT`` passes."""
    while statuses.stall() is None and time.monotonic() - statuses.started < LIMIT:
        sleep(0.02)


GZIP = pytest.mark.parametrize("is_gzip", [False, True], ids=["plain", "gzip"])


@GZIP
def test_asyncio_client_reports_the_drip_as_a_stall(is_gzip: bool) -> None:
    """The asyncio EventSource reports a dripping stream stalled after stall_timeout."""

    async def main(server: DripServer, statuses: Statuses) -> None:
        source = asyncio_adapter.EventSource(
            config(server.url),
            on_status=statuses,
            options=ClientOptions(connect_timeout=None),
        )

        async def consume() -> None:
            async for _ in source:
                pass

        task = asyncio.create_task(consume())
        try:
            while statuses.stall() is None and time.monotonic() - statuses.started < LIMIT:
                await asyncio.sleep(0.02)
        finally:
            await source.aclose()
            await asyncio.wait_for(task, LIMIT)

    with drip_server(is_gzip) as server:
        statuses = Statuses()
        asyncio.run(main(server, statuses))
    statuses.check(server)


@GZIP
def test_trio_client_reports_the_drip_as_a_stall(is_gzip: bool) -> None:
    """The trio EventSource reports a dripping stream stalled after stall_timeout."""

    async def main(server: DripServer, statuses: Statuses) -> None:
        source = trio_adapter.EventSource(
            config(server.url),
            on_status=statuses,
            options=ClientOptions(connect_timeout=None),
        )

        async def consume() -> None:
            async for _ in source:
                pass

        with trio.fail_after(2 * LIMIT):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(consume)
                try:
                    while statuses.stall() is None and time.monotonic() - statuses.started < LIMIT:
                        await trio.sleep(0.02)
                finally:
                    await source.aclose()

    with drip_server(is_gzip) as server:
        statuses = Statuses()
        trio.run(main, server, statuses)
    statuses.check(server)


@GZIP
def test_sync_client_reports_the_drip_as_a_stall(is_gzip: bool) -> None:
    """The blocking EventSource reports a dripping stream stalled after stall_timeout."""
    with drip_server(is_gzip) as server:
        statuses = Statuses()
        source = sync_adapter.EventSource(
            config(server.url),
            on_status=statuses,
            options=ClientOptions(connect_timeout=None),
        )
        thread = threading.Thread(target=lambda: [None for _ in source])
        thread.start()
        try:
            wait_for_stall(statuses, time.sleep)
        finally:
            source.close()
            thread.join(LIMIT)
        assert not thread.is_alive()
    statuses.check(server)
