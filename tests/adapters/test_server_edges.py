"""The edges of HTTP at the three socket servers (asyncio, trio, sync), over real sockets.

Each server runs in a thread of its own (its event loop, or its own selector thread) and is
driven from the test's thread through :class:`Served`; the clients are raw blocking sockets,
so that a test can send what no HTTP client would (another HTTP version, ambiguous framing)
or stop reading. What the kernel holds for a connection is read from ``/proc/net/tcp``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
import trio

import sse_core.adapters.asyncio as asyncio_adapter
import sse_core.adapters.sync as sync_adapter
import sse_core.adapters.trio as trio_adapter
from sse_core import Event, ServerConfig
from sse_core.adapters import ServerOptions

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads the kernel's tables in /proc/net"
)

BACKENDS = ("asyncio", "trio", "sync")
QUIET = ServerConfig(heartbeat_interval=None, is_compression_enabled=False)
# Generous: they only matter when something is broken (a loaded 2-core machine).
TIMEOUT = 10.0
# How soon the kernel must have forgotten a connection the server let go of.
RESET_WITHIN = 1.0
GET = b"GET /events HTTP/1.1\r\nHost: test\r\n\r\n"

T = TypeVar("T")


class Served:
    """A server of one adapter, serving in a thread of its own.

    Args:
        backend: ``"asyncio"``, ``"trio"`` or ``"sync"``.
        kwargs: For the adapter's ``EventStreamServer``.
    """

    def __init__(self, backend: str, **kwargs: Any) -> None:
        self.backend = backend
        kwargs.setdefault("config", QUIET)
        self._kwargs = kwargs
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._stop: Callable[[], None] = lambda: None
        self._call: Callable[[Callable[[], Any]], Any]
        self.server: Any = None
        if backend == "sync":
            self.server = sync_adapter.EventStreamServer(**kwargs)
            self.server.start()
            self._call = self._call_sync
        else:
            target = self._asyncio_thread if backend == "asyncio" else self._trio_thread
            self._thread = threading.Thread(target=target, name=f"served {backend}")
            self._thread.start()
            assert self._ready.wait(TIMEOUT), f"the {backend} server did not start"
        self.address: tuple[str, int] = self.call(lambda: self.server.address)

    def call(self, function: Callable[[], T]) -> T:
        """Run ``function`` where the server runs (its loop's thread), and return its value."""
        result: T = self._call(function)
        return result

    def publish(self, event: Event) -> None:
        """Publish an event, as the application would."""
        if self.backend == "sync":
            self.server.publish(event)  # from any thread (it takes the server's lock)
        else:
            self.call(lambda: self.server.publish(event))

    @property
    def subscribers(self) -> int:
        """The broadcaster's subscriber count."""
        return self.call(lambda: len(self.server.broadcaster))

    @property
    def dropped(self) -> int:
        """How many subscribers were dropped for falling behind."""
        return self.call(lambda: self.server.broadcaster.dropped)

    def close(self, grace: float = 1.0) -> None:
        """Close the server (ends every stream; after ``grace``, lets go of the rest)."""
        if self.backend == "sync":
            self.server.close(grace=grace)
            return
        assert self._thread is not None
        if not self._thread.is_alive():
            return  # closed already
        self._grace = grace
        self._stop()
        self._thread.join(3 * TIMEOUT)
        assert not self._thread.is_alive()

    # --- the three ways to serve ------------------------------------------------------------

    def _call_sync(self, function: Callable[[], T]) -> T:
        with self.server._lock:
            return function()

    def _asyncio_thread(self) -> None:
        async def main() -> None:
            loop = asyncio.get_running_loop()
            stop = loop.create_future()
            self.server = asyncio_adapter.EventStreamServer(**self._kwargs)
            await self.server.start()

            def call(function: Callable[[], T]) -> T:
                done: concurrent.futures.Future[T] = concurrent.futures.Future()

                def run() -> None:
                    try:
                        done.set_result(function())
                    except BaseException as error:  # handed to the caller
                        done.set_exception(error)

                loop.call_soon_threadsafe(run)
                return done.result(TIMEOUT)

            self._call = call
            self._stop = lambda: loop.call_soon_threadsafe(stop.set_result, None)
            self._ready.set()
            await stop
            await self.server.aclose(grace=self._grace)

        asyncio.run(main())

    def _trio_thread(self) -> None:
        async def main() -> None:
            stop = trio.Event()
            self.server = trio_adapter.EventStreamServer(**self._kwargs)
            async with trio.open_nursery() as nursery:
                await nursery.start(self.server.serve)
                token = trio.lowlevel.current_trio_token()
                self._call = lambda function: trio.from_thread.run_sync(
                    function, trio_token=token
                )
                self._stop = lambda: trio.from_thread.run_sync(stop.set, trio_token=token)
                self._ready.set()
                await stop.wait()
                await self.server.aclose(grace=self._grace)

        trio.run(main)


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Every test ends with no thread or file descriptor it did not start with (one an
    earlier test left to end on its own, such as an idle worker of trio's thread cache, may
    end meanwhile)."""
    threads, fds = set(threading.enumerate()), set(os.listdir("/proc/self/fd"))
    yield
    assert set(threading.enumerate()) - threads == set()
    assert set(os.listdir("/proc/self/fd")) - fds == set()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each socket server in turn."""
    return str(request.param)


@contextlib.contextmanager
def serving(backend: str, **kwargs: Any) -> Iterator[Served]:
    """A server of ``backend`` for the block; closed (quickly) afterwards."""
    served = Served(backend, **kwargs)
    try:
        yield served
    finally:
        served.close(grace=0.2)


def connect(served: Served, *, receive_buffer: int | None = None) -> socket.socket:
    """A blocking client socket connected to the server (a small receive buffer first, if
    asked: a client that does not read then fills up at once)."""
    sock = socket.socket()
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(TIMEOUT)
    sock.connect(served.address)
    return sock


def exchange(served: Served, request: bytes) -> bytes:
    """Send ``request`` and read until the server closes the connection."""
    with connect(served) as sock:
        sock.sendall(request)
        return read_to_eof(sock)


def read_to_eof(sock: socket.socket) -> bytes:
    """Everything until the end of the connection (fails on a timeout)."""
    data = bytearray()
    while chunk := sock.recv(1 << 20):
        data += chunk
    return bytes(data)


def read_to_reset(sock: socket.socket) -> bytes:
    """What arrived before the server's reset; the server must reset, not end cleanly."""
    data = bytearray()
    with pytest.raises(ConnectionResetError):
        while chunk := sock.recv(1 << 20):
            data += chunk
    return bytes(data)


# --- what the kernel holds ------------------------------------------------------------------

TCP_STATES = {
    "01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1",
    "05": "FIN_WAIT2", "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK",
    "0A": "LISTEN", "0B": "CLOSING",
}


def server_end(server_port: int, client_port: int) -> list[tuple[str, int, int]]:
    """The kernel's entries for the server's end of one connection: (state, bytes in its
    send queue, socket inode -- 0 once no descriptor holds it)."""
    entries = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                local, remote = fields[1].split(":")[-1], fields[2].split(":")[-1]
                if (int(local, 16), int(remote, 16)) == (server_port, client_port):
                    send_queue = int(fields[4].split(":")[0], 16)
                    entries.append((TCP_STATES[fields[3]], send_queue, int(fields[9])))
    return entries


def open_socket_inodes() -> set[int]:
    """The inodes of the sockets this process holds a descriptor for."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/self/fd/{fd}")
            if link.startswith("socket:["):
                inodes.add(int(link[len("socket:[") : -1]))
    return inodes


def assert_forgotten(served: Served, client: socket.socket, inode: int) -> None:
    """Within RESET_WITHIN: the server's descriptor for the connection is closed and the
    kernel holds nothing for its end (no FIN-WAIT-1 with a full send queue)."""
    server_port, client_port = served.address[1], client.getsockname()[1]
    deadline = time.monotonic() + RESET_WITHIN
    while True:
        entries = server_end(server_port, client_port)
        is_open = inode in open_socket_inodes()
        if not entries and not is_open:
            return
        assert time.monotonic() < deadline, (
            f"{RESET_WITHIN} s after it was let go, the server's end is {entries}"
            f" (state, send queue, inode); descriptor open: {is_open}"
        )
        time.sleep(0.01)


def subscribe(served: Served, client: socket.socket, expected: int = 1) -> int:
    """Send a request and wait until it is subscribed; the inode of the server's end."""
    client.sendall(GET)
    until(lambda: served.subscribers == expected, "the client to subscribe")
    ((state, _, inode),) = server_end(served.address[1], client.getsockname()[1])
    assert state == "ESTABLISHED" and inode != 0
    return inode


def until(predicate: Callable[[], bool], what: str) -> None:
    """Wait for a condition nothing signals."""
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


# --- HTTP versions --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /events HTTP/2.0\r\nHost: test\r\n\r\n",
        b"GET /events HTTP/1.2\r\nHost: test\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",  # the HTTP/2 connection preface
    ],
    ids=["HTTP/2.0", "HTTP/1.2", "h2-preface"],
)
def test_other_http_versions_get_505_then_close(backend: str, request_bytes: bytes) -> None:
    """A request in any version but HTTP/1.1 and HTTP/1.0 -- the HTTP/2 preface too -- is
    answered 505 HTTP Version Not Supported, then the connection is closed; no stream."""
    with serving(backend) as served:
        answer = exchange(served, request_bytes)
        assert served.subscribers == 0
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 505 HTTP Version Not Supported\r\n")
    assert b"\r\nConnection: close" in head
    assert body.endswith(b"this server speaks HTTP/1.1 and HTTP/1.0\n")


def test_http_1_0_is_served_close_delimited(backend: str) -> None:
    """An HTTP/1.0 client gets the stream without chunking, ended by the close."""
    with serving(backend) as served, connect(served) as client:
        client.sendall(b"GET /events HTTP/1.0\r\n\r\n")
        until(lambda: served.subscribers == 1, "the client to subscribe")
        served.publish(Event(data="one point oh"))
        served.close(grace=TIMEOUT)
        answer = read_to_eof(client)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and b"chunked" not in head.lower()
    assert body.endswith(b"data: one point oh\n\n")


# --- framing a proxy could read differently -------------------------------------------------


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"POST /events HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n"
         b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        (b"GET /events HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n"
         b"Content-Length: 0\r\n\r\n0\r\n\r\n", 400),
        (b"POST /events HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        (b"POST /events HTTP/1.1\r\nHost: test\r\nContent-Length: 2\r\n"
         b"Content-Length: 3\r\n\r\nabc", 400),
        (b"POST /events HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    ],
    ids=["TE+CL", "CL-after-TE", "TE-in-1.0", "two-CLs", "TE-gzip"],
)
def test_ambiguous_framing_is_refused_then_closed(
    backend: str, request_bytes: bytes, status: int
) -> None:
    """Transfer-Encoding with Content-Length (or in an HTTP/1.0 request), and conflicting
    Content-Length values, get 400 and a close (RFC 9112 section 6.1); a transfer coding the
    server cannot read gets 501. No stream."""
    with serving(backend) as served:
        answer = exchange(served, request_bytes)
        assert served.subscribers == 0
    assert answer.startswith(b"HTTP/1.1 %d " % status)
    assert b"\r\nConnection: close" in answer


def test_a_refused_head_request_gets_a_head_without_a_body(backend: str) -> None:
    """HEAD, which the servers do not stream, gets 405 with no body (RFC 9110 section 9.3.2:
    a response to HEAD has none), then a close -- not a crash writing the refusal's text
    (``sse-core check`` found that)."""
    with serving(backend) as served:
        answer = exchange(served, b"HEAD /events HTTP/1.1\r\nHost: test\r\n\r\n")
        assert served.subscribers == 0
    assert answer.startswith(b"HTTP/1.1 405 ")
    assert answer.endswith(b"\r\n\r\n")
    assert b"\r\nAllow: GET, POST" in answer


# --- letting go of a client: a reset --------------------------------------------------------


def test_a_dropped_non_reader_is_reset_and_forgotten_at_once(backend: str) -> None:
    """A client that never reads fills the kernel's buffers, then its queue: when the server
    drops it, it resets the connection, so that within a second the server's descriptor is
    closed and the kernel holds nothing for it (instead of FIN-WAIT-1 with a full send queue
    for as long as it retransmits); the client sees the reset."""
    with serving(backend, options=ServerOptions(max_queued_bytes=64 * 1024)) as served:
        with connect(served, receive_buffer=4096) as client:
            inode = subscribe(served, client)
            data = "x" * 16_000
            published = 0
            while served.dropped == 0:
                assert published < 2000, "32 MB published and the client was not dropped"
                served.publish(Event(data=data))
                published += 1
            assert_forgotten(served, client, inode)
            received = read_to_reset(client)
        assert received.startswith(b"HTTP/1.1 200 ")
        assert served.subscribers == 0


def test_a_connection_without_a_request_is_reset_after_request_timeout(backend: str) -> None:
    """A connection that sends nothing is reset after request_timeout (slowloris): the
    kernel keeps nothing of it (no FIN-WAIT-2 waiting for the client's close)."""
    options = ServerOptions(request_timeout=0.2)
    with serving(backend, options=options) as served, connect(served) as client:
        # One read of the kernel's table: with tens of thousands of sockets on the machine a
        # second read can come after request_timeout, when the server's end is gone.
        seen: list[list[tuple[str, int, int]]] = []
        until(lambda: bool(seen.append(server_end(served.address[1], client.getsockname()[1]))
                           or seen[-1]), "the server to accept")
        ((_, _, inode),) = seen[-1]
        assert read_to_reset(client) == b""
        assert_forgotten(served, client, inode)


def test_close_resets_what_cannot_take_the_end_within_grace(backend: str) -> None:
    """close() ends every stream; a client that does not read its end within ``grace`` is
    reset, and the kernel forgets it at once."""
    served = Served(backend, options=ServerOptions(max_queued_bytes=32 << 20))
    try:
        with connect(served, receive_buffer=4096) as client:
            inode = subscribe(served, client)
            for _ in range(64):  # 4 MiB: more than the kernel buffers hold
                served.publish(Event(data="y" * (64 << 10)))
            ends = lambda: server_end(served.address[1], client.getsockname()[1])  # noqa: E731
            until(lambda: ends()[0][1] > 0, "the server's send queue to fill")
            assert ends()[0][0] == "ESTABLISHED"  # stuck
            start = time.monotonic()
            served.close(grace=0.2)
            assert time.monotonic() - start < TIMEOUT
            assert_forgotten(served, client, inode)
            read_to_reset(client)
    finally:
        served.close(grace=0.0)


# --- asyncio only ---------------------------------------------------------------------------


def test_asyncio_stream_ended_while_paused_is_closed_once() -> None:
    """A stream whose end is queued while its socket is full, then taken once the client
    reads, is closed once: asyncio's write callback resumes the protocol and then finishes a
    close itself, so closing from resume_writing would run ``_call_connection_lost`` twice
    (an AttributeError in the loop's exception handler, as seen once under attack)."""
    problems: list[dict[str, Any]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _, context: problems.append(context))
        server = asyncio_adapter.EventStreamServer(
            config=QUIET,
            options=ServerOptions(max_queued_bytes=32 << 20),
        )
        await server.start()
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.setblocking(False)
        try:
            await loop.sock_connect(client, server.address)
            await loop.sock_sendall(client, GET)
            while len(server.broadcaster) == 0:
                await asyncio.sleep(0.005)
            (protocol,) = server._protocols
            while not protocol._is_paused:  # fill the socket and the transport's buffer
                server.publish(Event(data="z" * (64 << 10)))
                await asyncio.sleep(0)
            closing = asyncio.ensure_future(server.aclose(grace=TIMEOUT))
            await asyncio.sleep(0.05)  # the end of the stream is queued behind a full socket
            received = bytearray()
            while chunk := await asyncio.wait_for(loop.sock_recv(client, 1 << 20), TIMEOUT):
                received += chunk
            await closing
            await asyncio.sleep(0.05)  # a second _call_connection_lost would run now
        finally:
            client.close()
        assert received.endswith(b"\r\n0\r\n\r\n")  # the whole stream, ended

    asyncio.run(main())
    assert problems == []
