"""The blocking-sockets adapter: plumbing between sockets, threads and the sans-IO core.

Our sync client against our sync server on loopback, against small scripted servers
(http.server, raw sockets) for refusals, redirects and stalls, and against real peers:
sse-starlette under uvicorn as the server, sseclient-py and httpx-sse as clients. Behaviour
is proven in the simulator; these tests check that the adapter carries it out. Every test
checks that it leaves no thread and no file descriptor behind.
"""

from __future__ import annotations

import ast
import contextlib
import http.client
import http.server
import os
import re
import socket
import ssl
import struct
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import sse_core.adapters.sync as sync_adapter
from sse_core import (
    ClientConfig,
    ClientState,
    Deliver,
    EndCause,
    Event,
    HTTPStatusError,
    InvalidConfigError,
    ReportStatus,
    ServerConfig,
    StreamError,
)
from sse_core.adapters import ClientOptions, ServerOptions
from sse_core.adapters.sync import EventSource, EventStreamServer
from sse_core.state import BackoffConfig, Jitter, ReplayLog, SequencerConfig
from tests._threads import ProxyThread

DOCS_PAGE = Path(__file__).resolve().parents[2] / "docs" / "adapters" / "sync.rst"
# Generous bounds: they only matter when something is broken (a loaded 2-core machine).
WATCHDOG = 10.0


def open_fds() -> set[int]:
    return {int(name) for name in os.listdir("/proc/self/fd")}


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Every test ends with no thread or file descriptor it did not start with (one an
    earlier test left to end on its own, such as an idle worker of trio's thread cache, may
    end meanwhile)."""
    threads, fds = set(threading.enumerate()), open_fds()
    yield
    assert set(threading.enumerate()) - threads == set()
    assert open_fds() - fds == set()


def fast(url: str, **kwargs: Any) -> ClientConfig:
    """A client config with quick reconnections (the defaults wait seconds)."""
    backoff = kwargs.pop(
        "backoff", BackoffConfig(base_delay=0.02, min_base_delay=0.01, max_delay=0.1)
    )
    return ClientConfig(url=url, backoff=backoff, **kwargs)


def url_of(server: EventStreamServer, path: str = "/events", scheme: str = "http") -> str:
    host, port = server.address
    return f"{scheme}://{host}:{port}{path}"


@contextlib.contextmanager
def watchdog(source: EventSource, seconds: float = WATCHDOG) -> Iterator[threading.Event]:
    """Close ``source`` from another thread if the test is still running after ``seconds``
    (so a broken adapter fails the test instead of hanging it)."""
    fired = threading.Event()

    def fire() -> None:
        fired.set()
        source.close()

    timer = threading.Timer(seconds, fire)
    timer.start()
    try:
        yield fired
    finally:
        timer.cancel()
        timer.join()


def states(reports: list[Any]) -> list[ClientState]:
    return [report.state for report in reports if isinstance(report, ReportStatus)]


def kinds(reports: list[Any]) -> list[str]:
    """Each report in short: a state's value, an event's data, or "gap"."""
    return [
        report.state.value if isinstance(report, ReportStatus)
        else report.event.data if isinstance(report, Deliver)
        else "gap"
        for report in reports
    ]


def events(reports: list[Any]) -> list[Event]:
    return [report.event for report in reports if isinstance(report, Deliver)]


def drive(
    source: EventSource,
    step: Callable[[Any, list[Any]], bool],
    seconds: float = WATCHDOG,
    *,
    failure: list[StreamError] | None = None,
) -> list[Any]:
    """Iterate ``source.reports()``, calling ``step(report, so_far)`` for each; stop when it
    returns True or the iteration ends. Returns every report seen; the StreamError the
    iteration raised at its end goes to ``failure`` when given (else it propagates)."""
    seen: list[Any] = []
    with watchdog(source, seconds) as fired:
        try:
            for report in source.reports():
                seen.append(report)
                if step(report, seen):
                    break
        except StreamError as error:
            if failure is None:
                raise
            failure.append(error)
    assert not fired.is_set(), f"timed out; reports so far: {seen}"
    return seen


def read_head(sock: socket.socket) -> bytes:
    """Read up to the end of an HTTP head from a blocking socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def read_to_eof(sock: socket.socket) -> bytes:
    data = bytearray()
    while chunk := sock.recv(1 << 20):
        data += chunk
    return bytes(data)


def read_to_reset(sock: socket.socket) -> bytes:
    """Read what arrived until the server's reset (it must reset, not end cleanly)."""
    data = bytearray()
    with pytest.raises(ConnectionResetError):
        while chunk := sock.recv(1 << 20):
            data += chunk
    return bytes(data)


# --- scripted servers -----------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        server: Any = self.server
        server.requests.append(dict(self.headers))
        server.answer(self)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def tiny_server(
    answer: Callable[[http.server.BaseHTTPRequestHandler], None],
    handler: type[_Handler] = _Handler,
) -> Iterator[Any]:
    """An http.server on 127.0.0.1 port 0 that answers every GET with ``answer``."""
    httpd: Any = http.server.HTTPServer(("127.0.0.1", 0), handler)
    httpd.requests = []
    httpd.answer = answer
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02})
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        thread.join()
        httpd.server_close()


class StalledServer:
    """Accepts ``count`` connections. The first ``resets`` are reset (RST) once their
    request is read; on the others it sends a stream head and one event, then nothing (a
    stalled server). Records each request head."""

    def __init__(self, count: int, resets: int = 0) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(WATCHDOG)
        self.port = self.listener.getsockname()[1]
        self.count = count
        self.resets = resets
        self.requests: list[bytes] = []
        self.connections: list[socket.socket] = []
        self.all_in = threading.Event()
        self.thread = threading.Thread(target=self._serve)
        self.thread.start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            for n in range(self.count):
                sock, _ = self.listener.accept()
                self.requests.append(read_head(sock))
                if n < self.resets:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    sock.close()
                    continue
                self.connections.append(sock)
                body = f"id: s{n}\ndata: stalled {n}\n\n".encode()
                sock.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n"
                    + f"{len(body):x}\r\n".encode() + body + b"\r\n"
                )
        self.all_in.set()

    def close(self) -> None:
        self.thread.join()
        for sock in [*self.connections, self.listener]:
            sock.close()


# --- our client against our server ----------------------------------------------------------


@pytest.mark.parametrize("is_compressed", [True, False], ids=["gzip", "identity"])
def test_events_arrive_in_order_exactly_once(is_compressed: bool) -> None:
    """Fifty events published once the client streams arrive in order, each once, with the
    ids the log assigned; the statuses go CONNECTING, CONNECTED, STREAMING and, on close,
    CLOSED; the body is gzip when both sides allow it."""
    config = ServerConfig(is_compression_enabled=is_compressed)
    encodings: list[str | None] = []
    ids: list[str] = []
    with EventStreamServer(config=config) as server:
        source = EventSource(fast(url_of(server)))

        def step(report: Any, seen: list[Any]) -> bool:
            if isinstance(report, ReportStatus) and report.state is ClientState.STREAMING:
                encodings.extend(s.session.content_encoding for s in server.broadcaster)
                for n in range(50):
                    ids.append(server.publish(Event(data=f"event {n}", event="tick")).id)
            return len(events(seen)) == 50

        with source:
            seen = drive(source, step)
        assert states(seen) == [ClientState.CONNECTING, ClientState.CONNECTED,
                                ClientState.STREAMING]
        assert source.session.state is ClientState.CLOSED
    got = events(seen)
    assert [e.data for e in got] == [f"event {n}" for n in range(50)]
    assert [e.id for e in got] == ids
    assert len(set(ids)) == 50
    assert {e.event for e in got} == {"tick"}
    assert encodings == ["gzip" if is_compressed else None]
    assert source.metrics.connection_attempts == 1


def test_server_restart_client_resumes_with_exactly_the_missed_events() -> None:
    """The server ends the stream (it closes; a new one takes over with the same log, behind
    the same address); the client reconnects with Last-Event-ID and gets exactly what was
    published meanwhile, then the live events: every event once, in order."""
    log = ReplayLog()
    first = EventStreamServer(log)
    second = EventStreamServer(log)
    first.start()
    last_event_ids: list[str] = []
    reasons: list[str | None] = []
    try:
        with ProxyThread(first.address) as proxy:
            host, port = proxy.address
            source = EventSource(fast(f"http://{host}:{port}/events"))

            def step(report: Any, seen: list[Any]) -> bool:
                got = [e.data for e in events(seen)]
                if isinstance(report, ReportStatus):
                    if report.state is ClientState.STREAMING and not got:
                        first.publish(Event(data="e1"))
                        first.publish(Event(data="e2"))
                    elif report.state is ClientState.RECONNECTING:
                        reasons.append(report.reason)
                        second.publish(Event(data="e3"))  # while the client is away
                        second.publish(Event(data="e4"))
                        second.start()
                        proxy.upstream = second.address  # before the client reconnects
                elif got == ["e1", "e2"]:
                    first.close()  # ends the stream
                elif got == ["e1", "e2", "e3", "e4"]:
                    last_event_ids.extend(s.session.last_event_id for s in second.broadcaster)
                    second.publish(Event(data="e5"))
                return len(got) == 5

            with source:
                seen = drive(source, step)
    finally:
        first.close()
        second.close()
    assert [e.data for e in events(seen)] == ["e1", "e2", "e3", "e4", "e5"]
    assert [e.id for e in events(seen)] == ["0", "1", "2", "3", "4"]
    assert reasons == ["stream ended"]
    assert last_event_ids == ["1"]  # e2's id, sent on the reconnection
    assert source.metrics.reconnections == 1


@pytest.mark.parametrize("status", [204, 404])
def test_refusal_closes_without_retry(status: int) -> None:
    """A 204 (the server's "stop") or a 404 closes the client for good: one attempt, status
    CLOSED with the HTTP status as the reason, the iteration ends by itself: quietly for
    204, raising HTTPStatusError for 404."""

    def answer(handler: http.server.BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    with tiny_server(answer) as httpd:
        source = EventSource(fast(f"http://127.0.0.1:{httpd.server_port}/events"))
        failure: list[StreamError] = []
        with source:
            seen = drive(source, lambda report, seen: False, failure=failure)
        assert len(httpd.requests) == 1
    assert states(seen) == [ClientState.CONNECTING, ClientState.CLOSED]
    assert f"HTTP {status}" in seen[-1].reason
    assert source.metrics.connection_attempts == 1
    if status == 204:  # the server's "stop": a quiet end
        assert failure == []
    else:  # an error status raises where the application iterates
        (error,) = failure
        assert isinstance(error, HTTPStatusError) and error.status == status


def test_our_server_answers_404_off_its_path() -> None:
    """Our server answers 404 off its path, and the client closes without retrying."""
    with EventStreamServer() as server:
        source = EventSource(fast(url_of(server, "/elsewhere")))
        failure: list[StreamError] = []
        with source:
            seen = drive(source, lambda report, seen: False, failure=failure)
        assert len(server.broadcaster) == 0
    assert states(seen) == [ClientState.CONNECTING, ClientState.CLOSED]
    assert seen[-1].reason == "HTTP 404"
    (error,) = failure
    assert isinstance(error, HTTPStatusError) and error.status == 404
    assert error.body == b"not found\n"  # our server's text, read before the close


def test_redirect_is_followed() -> None:
    """A 307 from another server is followed to the stream, on a new connection."""
    with EventStreamServer() as server:
        target = url_of(server)

        def answer(handler: http.server.BaseHTTPRequestHandler) -> None:
            handler.send_response(307)
            handler.send_header("Location", target)
            handler.send_header("Content-Length", "0")
            handler.end_headers()

        with tiny_server(answer) as httpd:
            def on_status(report: ReportStatus) -> None:
                if report.state is ClientState.STREAMING:
                    server.publish(Event(data="after the redirect"))

            url = f"http://127.0.0.1:{httpd.server_port}/start"
            source = EventSource(fast(url), on_status=on_status)
            got = []
            with source, watchdog(source) as fired:
                for event in source:  # the plain iteration: events only
                    got.append(event.data)
                    break
            assert not fired.is_set()
            assert len(httpd.requests) == 1
    assert got == ["after the redirect"]
    assert source.metrics.connection_attempts == 1


def test_heartbeats_keep_an_idle_stream_alive() -> None:
    """Heartbeats every 0.05 s keep a client whose stall timeout is 0.4 s on its first
    connection through a second of silence."""
    config = ServerConfig(heartbeat_interval=0.05)
    with EventStreamServer(config=config) as server:
        source = EventSource(fast(url_of(server), stall_timeout=0.4))
        timer = threading.Timer(1.0, server.publish, [Event(data="after the silence")])

        def step(report: Any, seen: list[Any]) -> bool:
            if isinstance(report, ReportStatus) and report.state is ClientState.STREAMING:
                timer.start()
            return bool(events(seen))

        try:
            with source:
                seen = drive(source, step)
        finally:
            timer.cancel()
            if timer.is_alive():
                timer.join()
    assert [e.data for e in events(seen)] == ["after the silence"]
    assert ClientState.RECONNECTING not in states(seen)
    assert source.metrics.connection_attempts == 1


def test_stalled_server_is_replaced_after_stall_timeout() -> None:
    """A server that sends a head and an event, then nothing, is dropped after the stall
    timeout; the client reconnects with the event's id as Last-Event-ID."""
    stalled = StalledServer(count=2)
    try:
        source = EventSource(fast(f"http://127.0.0.1:{stalled.port}/events", stall_timeout=0.3))
        instants: dict[str, float] = {}

        def step(report: Any, seen: list[Any]) -> bool:
            if isinstance(report, Deliver) and report.event.data == "stalled 0":
                instants["event"] = time.monotonic()
            if isinstance(report, ReportStatus) and report.state is ClientState.RECONNECTING:
                instants["lost"] = time.monotonic()
            return len(events(seen)) == 2

        with source:
            seen = drive(source, step)
        assert stalled.all_in.wait(WATCHDOG)
    finally:
        stalled.close()
    assert [e.data for e in events(seen)] == ["stalled 0", "stalled 1"]
    assert instants["lost"] - instants["event"] >= 0.3
    assert b"last-event-id: s0" in stalled.requests[1].lower()
    assert b"last-event-id" not in stalled.requests[0].lower()


def test_reset_connection_is_lost_and_replaced() -> None:
    """A connection reset (RST) while the client waits for the head is a lost connection:
    the client reconnects and streams from the next one."""
    scripted = StalledServer(count=2, resets=1)
    try:
        source = EventSource(fast(f"http://127.0.0.1:{scripted.port}/events"))
        with source:
            seen = drive(source, lambda report, seen: bool(events(seen)))
        assert scripted.all_in.wait(WATCHDOG)
    finally:
        scripted.close()
    lost = [s for s in seen if isinstance(s, ReportStatus) and s.state is ClientState.RECONNECTING]
    assert len(lost) == 1 and "ConnectionResetError" in (lost[0].reason or "")
    assert [e.data for e in events(seen)] == ["stalled 1"]


def test_large_request_body_goes_out_whole() -> None:
    """A POST body far larger than the socket buffers is written as the socket takes it
    (the client waits for writability), and arrives whole."""
    body = bytes(range(256)) * (32 * 1024)  # 8 MiB
    received: list[bytes] = []

    def answer(handler: http.server.BaseHTTPRequestHandler) -> None:
        received.append(handler.rfile.read(int(handler.headers["Content-Length"])))
        handler.send_response(204)
        handler.end_headers()

    class PostHandler(_Handler):
        def do_POST(self) -> None:
            self.do_GET()

    with tiny_server(answer, PostHandler) as httpd:
        config = fast(f"http://127.0.0.1:{httpd.server_port}/events", method="POST", body=body)
        source = EventSource(config)
        with source:
            seen = drive(source, lambda report, seen: False)
    assert received == [body]
    assert states(seen) == [ClientState.CONNECTING, ClientState.CLOSED]


def test_close_from_on_status_ends_the_iteration() -> None:
    """close() called by the on_status callback ends the iteration: no report after it."""
    with EventStreamServer() as server:
        source: EventSource

        def on_status(report: ReportStatus) -> None:
            if report.state is ClientState.CONNECTED:
                source.close()

        source = EventSource(fast(url_of(server)), on_status=on_status)
        with source:
            seen = drive(source, lambda report, seen: False)
    assert states(seen) == [ClientState.CONNECTING]
    assert source.session.state is ClientState.CLOSED


def test_slow_client_is_dropped_fast_client_gets_everything() -> None:
    """A client that never reads is dropped (its connection reset) once its queue passes
    max_queued_bytes, while a fast client gets every event, in order."""
    config = ServerConfig(is_compression_enabled=False, heartbeat_interval=None)
    payload = "x" * 16_000
    options = ServerOptions(max_queued_bytes=64 * 1024)
    with EventStreamServer(config=config, options=options) as server:
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.settimeout(WATCHDOG)
        try:
            slow.connect(server.address)
            slow.sendall(b"GET /events HTTP/1.1\r\nHost: test\r\n\r\n")
            source = EventSource(fast(url_of(server)))
            published: list[str] = []

            def publish_next() -> None:
                data = f"{len(published)} {payload}"
                published.append(data)
                server.publish(Event(data=data))

            def step(report: Any, seen: list[Any]) -> bool:
                # One event at a time, the next once the fast client has the previous one.
                if isinstance(report, ReportStatus) and report.state is ClientState.STREAMING:
                    publish_next()
                elif isinstance(report, Deliver):
                    if server.broadcaster.dropped == 0 and len(published) < 1000:
                        publish_next()
                    elif report.event.data == published[-1]:
                        # The server reset the slow connection: what it got ends there.
                        received.extend(read_to_reset(slow))
                        counts.append(server.connection_count)  # the fast client's
                        return True
                return False

            received = bytearray()
            counts: list[int] = []
            with source:
                assert server.broadcaster.dropped == 0
                seen = drive(source, step)
                assert server.broadcaster.dropped == 1
        finally:
            slow.close()
    assert [e.data for e in events(seen)] == published
    assert len(published) < 1000
    assert counts == [1]
    assert received.startswith(b"HTTP/1.1 200 ")
    assert len(received) < len(published) * len(payload)


def test_late_reader_gets_everything_and_close_cuts_a_client_that_never_reads() -> None:
    """Bytes a socket cannot take yet wait in the connection's buffer and go out once it can:
    a client that starts reading late gets every event. close() ends that stream cleanly
    and, after ``grace``, resets a client that never reads."""
    config = ServerConfig(is_compression_enabled=False, heartbeat_interval=None)
    markers = [f"event-{n:03d}-".encode() for n in range(64)]
    request = b"GET /events HTTP/1.1\r\nHost: test\r\n\r\n"
    server = EventStreamServer(config=config, options=ServerOptions(max_queued_bytes=32 << 20))
    server.start()
    late, never = socket.socket(), socket.socket()
    try:
        for sock, buffer_size in ((late, 64 << 10), (never, 4096)):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer_size)
            sock.settimeout(WATCHDOG)
            sock.connect(server.address)
            sock.sendall(request)
            assert read_head(sock).startswith(b"HTTP/1.1 200 ")  # subscribed
        for marker in markers:  # 8 MiB: more than the kernel buffers hold (about 3 MiB)
            server.publish(Event(data=marker.decode() + "x" * (128 << 10)))
        received = bytearray()
        while received.find(markers[-1], max(0, len(received) - (1 << 20))) == -1:
            chunk = late.recv(1 << 20)
            assert chunk, "the stream ended early"
            received += chunk
        start = time.monotonic()
        server.close(grace=0.3)
        elapsed = time.monotonic() - start
        received += read_to_eof(late)
        cut = read_to_reset(never)
    finally:
        late.close()
        never.close()
        server.close()
    positions = [received.find(marker) for marker in markers]
    assert -1 not in positions and positions == sorted(positions)
    assert received.endswith(b"\r\n0\r\n\r\n")  # the end of the chunked body
    assert not cut.endswith(b"\r\n0\r\n\r\n")
    assert 0.25 <= elapsed < 5.0
    assert server.connection_count == 0


def test_many_clients_one_thread() -> None:
    """Two hundred clients are served by the server's one thread: each gets every event,
    in order, and no thread is started per client."""
    config = ServerConfig(is_compression_enabled=False, heartbeat_interval=None)
    threads_before = threading.active_count()
    clients: list[socket.socket] = []
    with EventStreamServer(config=config) as server:
        try:
            for _ in range(200):
                sock = socket.create_connection(server.address, timeout=WATCHDOG)
                clients.append(sock)
                sock.sendall(b"GET /events HTTP/1.1\r\nHost: test\r\n\r\n")
            for sock in clients:
                assert read_head(sock).startswith(b"HTTP/1.1 200 ")  # subscribed
            assert threading.active_count() == threads_before + 1
            for n in range(20):
                server.publish(Event(data=f"event-{n:02d}"))
            for sock in clients:
                received = bytearray()
                while b"event-19" not in received:
                    chunk = sock.recv(65536)
                    assert chunk, "the stream ended early"
                    received += chunk
                positions = [received.find(f"event-{n:02d}".encode()) for n in range(20)]
                assert -1 not in positions and positions == sorted(positions)
            assert server.connection_count == 200
        finally:
            for sock in clients:
                sock.close()


def test_close_from_another_thread_stops_a_blocked_iteration() -> None:
    """close() from another thread wakes an iteration blocked on an idle stream: it ends
    at once, and the session is CLOSED when close() returns."""
    with EventStreamServer(config=ServerConfig(heartbeat_interval=None)) as server:
        source = EventSource(fast(url_of(server)))
        streaming = threading.Event()
        timings: dict[str, float] = {}

        def closer() -> None:
            streaming.wait(WATCHDOG)
            time.sleep(0.1)  # let the iteration block (both orders must work anyway)
            timings["close"] = time.monotonic()
            source.close()
            timings["closed"] = time.monotonic()

        thread = threading.Thread(target=closer)
        thread.start()
        seen: list[Any] = []
        try:
            for report in source.reports():
                seen.append(report)
                if isinstance(report, ReportStatus) and report.state is ClientState.STREAMING:
                    streaming.set()
            timings["ended"] = time.monotonic()
        finally:
            thread.join()
        assert source.session.state is ClientState.CLOSED
    assert states(seen) == [ClientState.CONNECTING, ClientState.CONNECTED,
                            ClientState.STREAMING]
    assert timings["ended"] - timings["close"] < 2.0
    assert timings["closed"] - timings["close"] < 2.0


@contextlib.contextmanager
def unanswered_port() -> Iterator[int]:
    """A loopback port where a connect hangs: its listener's accept queue is full (backlog 0,
    one connection waiting), so the kernel drops further SYNs."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    port = listener.getsockname()[1]
    fillers: list[socket.socket] = []
    try:
        for _ in range(8):
            filler = socket.socket()
            fillers.append(filler)
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            time.sleep(0.1)
            try:
                filler.getpeername()
            except OSError:  # still connecting: the queue is full
                break
        else:
            pytest.skip("the kernel kept accepting connections into a full queue")
        yield port
    finally:
        for sock in [*fillers, listener]:
            sock.close()


@pytest.mark.parametrize("step", ["connect", "handshake", "read", "backoff"])
def test_close_from_another_thread_wakes_each_blocking_step(step: str) -> None:
    """The client blocks in plain socket calls whose timeout is the time to the session's
    next deadline, here none at all (no connect or stall timeout, a 60 s backoff).
    close() from another thread shuts the socket down, or ends the wait between
    connections: an iteration blocked in a connect (SYNs dropped), a TLS handshake (the peer
    never answers), a read (an idle stream) or a backoff ends at once, with CLOSED last."""
    options = ClientOptions(connect_timeout=None)
    ready = threading.Event()
    with contextlib.ExitStack() as stack:
        if step == "connect":
            url = f"http://127.0.0.1:{stack.enter_context(unanswered_port())}/events"
        elif step == "handshake":
            silent = stack.enter_context(socket.create_server(("127.0.0.1", 0), backlog=4))
            url = f"https://127.0.0.1:{silent.getsockname()[1]}/events"
        elif step == "read":
            server = stack.enter_context(
                EventStreamServer(config=ServerConfig(heartbeat_interval=None))
            )
            url = url_of(server)
        else:
            refused = stack.enter_context(socket.socket())
            refused.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
            url = f"http://127.0.0.1:{refused.getsockname()[1]}/events"
        backoff = BackoffConfig(base_delay=60.0, max_delay=60.0, jitter=Jitter.NONE)
        config = ClientConfig(url=url, stall_timeout=None, backoff=backoff)
        waited_for = {"read": ClientState.STREAMING, "backoff": ClientState.RECONNECTING}

        statuses: list[ClientState] = []

        def on_status(report: ReportStatus) -> None:
            statuses.append(report.state)
            if report.state is waited_for.get(step, ClientState.CONNECTING):
                ready.set()

        source = EventSource(config, options=options, on_status=on_status)
        seen: list[Any] = []
        ended = threading.Event()

        def iterate() -> None:
            seen.extend(source.reports())
            ended.set()

        worker = threading.Thread(target=iterate, daemon=True)
        worker.start()
        assert ready.wait(WATCHDOG)
        time.sleep(0.3)  # let the iteration block in the step
        assert not ended.is_set()
        start = time.monotonic()
        # From another thread: close() returns once the iteration let go of the socket.
        closer = threading.Thread(target=source.close, daemon=True)
        closer.start()
        assert ended.wait(5.0), f"close() did not wake the {step}"
        took = time.monotonic() - start
        closer.join(WATCHDOG)
        worker.join(WATCHDOG)
    assert took < 2.0
    assert source.session.state is ClientState.CLOSED
    assert statuses[-1] is ClientState.CLOSED and statuses.count(ClientState.CLOSED) == 1


def test_a_session_deadline_inside_a_hanging_connect_keeps_the_attempt() -> None:
    """A deadline of the session's own that falls inside a connect (a sequencer hole times
    out while the server's full queue drops the reconnection's SYNs) does not end the
    attempt: the connect starts again on a new socket and goes on. The hole's reports come
    out of the connect phase, before the new connection is CONNECTED; one reconnection."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    listener.settimeout(WATCHDOG)
    port = listener.getsockname()[1]
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
    fillers: list[socket.socket] = []
    requests: list[bytes] = []

    def serve() -> None:
        first, _ = listener.accept()
        with first:
            requests.append(read_head(first))
            for _ in range(2):  # the first waits in the full queue, the second's SYN is dropped
                filler = socket.socket()
                filler.setblocking(False)
                filler.connect_ex(("127.0.0.1", port))
                fillers.append(filler)
            first.sendall(head + b"id: 1\ndata: a\n\nid: 3\ndata: c\n\n")
        # The client reconnects at once; its SYNs are dropped until the queue has room,
        # past the hole's timeout (0.3 s after "c"), when the client wakes the session.
        time.sleep(1.2)
        for filler in fillers:
            filler.close()
        while True:  # the fillers' queued connection, then the client's
            sock, _ = listener.accept()
            with sock:
                request = read_head(sock)
                if request:
                    requests.append(request)
                    sock.sendall(head + b"id: 4\ndata: d\n\n")
                    read_to_eof(sock)
                    return

    thread = threading.Thread(target=serve)
    thread.start()
    config = fast(
        f"http://127.0.0.1:{port}/events",
        stall_timeout=None,
        sequencer=SequencerConfig(gap_timeout=0.3),
    )
    # The connect timeout is the connect's next deadline after the hole's: the connect goes
    # on with a timeout (a socket connect cannot be resumed after one times out).
    source = EventSource(config, options=ClientOptions(connect_timeout=WATCHDOG / 2))
    try:
        with source:
            seen = drive(
                source,
                lambda report, seen: [e.data for e in events(seen)] == ["a", "c", "d"],
                seconds=20.0,
            )
    finally:
        thread.join(WATCHDOG)
        listener.close()
    assert kinds(seen) == ["connecting", "connected", "streaming", "a", "reconnecting",
                           "connecting", "gap", "c", "connected", "streaming", "d"]
    assert b"last-event-id: 3" in requests[1].lower()
    assert source.metrics.connection_attempts == 2


def test_close_while_connecting_and_before_iterating() -> None:
    """close() before the iteration makes it end at once; close() while a connection is
    being opened (the peer never answers) ends it well before any timeout."""
    early = EventSource("http://127.0.0.1:9/events")
    early.close()
    assert list(early) == []

    listener = socket.create_server(("127.0.0.1", 0), backlog=1)  # accepts nothing
    try:
        port = listener.getsockname()[1]
        statuses: list[ReportStatus] = []
        source = EventSource(fast(f"http://127.0.0.1:{port}/events"), on_status=statuses.append)
        timer = threading.Timer(0.2, source.close)
        start = time.monotonic()
        timer.start()
        try:
            with source:
                assert list(source) == []
        finally:
            timer.join()
        assert time.monotonic() - start < 5.0
    finally:
        listener.close()
    assert [s.state for s in statuses] == [ClientState.CONNECTING, ClientState.CLOSED]


@pytest.mark.parametrize("peer", ["accepted", "dropped"])
def test_connect_timeout_replaces_a_server_that_never_answers(peer: str) -> None:
    """A peer that accepts the connection but never answers, or whose full queue drops the
    SYNs (the connect itself hangs, with the time to that deadline as its socket timeout),
    is given up after connect_timeout, as a lost connection: the client reconnects."""
    with contextlib.ExitStack() as stack:
        if peer == "accepted":
            listener = stack.enter_context(socket.create_server(("127.0.0.1", 0), backlog=4))
            port = listener.getsockname()[1]  # the kernel accepts
        else:
            port = stack.enter_context(unanswered_port())
        source = EventSource(
            fast(f"http://127.0.0.1:{port}/events", stall_timeout=None),
            options=ClientOptions(connect_timeout=0.2),
        )
        with source:
            seen = drive(
                source,
                lambda report, seen: states(seen).count(ClientState.CONNECTING) == 2,
            )
    assert states(seen) == [ClientState.CONNECTING, ClientState.RECONNECTING,
                            ClientState.CONNECTING]
    assert seen[1].reason == "no response within 0.2 s"
    assert seen[1].since - seen[0].since >= 0.2


def test_close_leaves_no_connection_thread_or_socket() -> None:
    """After the client's and the server's close(), the server has no connection, its thread
    is gone and every socket is closed (the autouse fixture checks threads and fds)."""
    server = EventStreamServer()
    server.start()
    sources = [EventSource(fast(url_of(server))) for _ in range(3)]
    iterators = [source.reports() for source in sources]
    for iterator in iterators:
        for report in iterator:
            if isinstance(report, ReportStatus) and report.state is ClientState.STREAMING:
                break
    assert server.connection_count == 3
    server.close()
    assert server.connection_count == 0
    for source, iterator in zip(sources, iterators, strict=True):
        with watchdog(source) as fired:
            for report in iterator:  # the stream ended: the client will reconnect
                if isinstance(report, ReportStatus):
                    assert report.state is ClientState.RECONNECTING
                    break
        assert not fired.is_set()
        source.close()
        assert list(iterator) == []
    assert all(source.session.state is ClientState.CLOSED for source in sources)


def test_server_answers_bad_requests() -> None:
    """400 for bytes that are not HTTP, 405 with Allow for another method, 503 with
    Retry-After when max_subscribers is reached, and a silent connection is reset after
    request_timeout."""
    with EventStreamServer(options=ServerOptions(max_subscribers=1, request_timeout=0.2)) as server:
        host, port = server.address
        with socket.create_connection((host, port), timeout=WATCHDOG) as garbage:
            garbage.sendall(b"\x00\x01 not http\r\n\r\n")
            assert read_to_eof(garbage).startswith(b"HTTP/1.1 400 ")

        connection = http.client.HTTPConnection(host, port, timeout=WATCHDOG)
        try:
            connection.request("DELETE", "/events")
            response = connection.getresponse()
            assert (response.status, response.getheader("Allow")) == (405, "GET, POST")
            response.read()
        finally:
            connection.close()

        with socket.create_connection((host, port), timeout=WATCHDOG) as first:
            first.sendall(b"GET /events HTTP/1.1\r\nHost: test\r\n\r\n")
            assert read_head(first).startswith(b"HTTP/1.1 200 ")
            connection = http.client.HTTPConnection(host, port, timeout=WATCHDOG)
            try:
                connection.request("GET", "/events")
                response = connection.getresponse()
                assert (response.status, response.getheader("Retry-After")) == (503, "5")
                response.read()
            finally:
                connection.close()

        with socket.create_connection((host, port), timeout=WATCHDOG) as silent:
            start = time.monotonic()
            assert read_to_reset(silent) == b""
            assert 0.15 < time.monotonic() - start < 5.0


def tls_contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a certificate for ``localhost`` from a new trustme CA, and a
    client context that trusts that CA."""
    trustme = pytest.importorskip("trustme", reason="trustme is not installed (the peers extra)")
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    return server_context, client_context


def test_tls_with_custom_contexts() -> None:
    """Over TLS (a trustme CA): a client given a context that trusts the CA streams from our
    server; one with the default trust store fails the handshake and, with no retries
    allowed, closes with the verification error as the reason (a StreamError)."""
    server_context, client_context = tls_contexts()
    server = EventStreamServer()
    server.start(ssl_context=server_context)
    try:
        url = f"https://localhost:{server.address[1]}/events"
        # A small read_size leaves decrypted bytes inside the TLS layer after each read
        # (no gzip, which would shrink the big event to a few bytes).
        source = EventSource(
            fast(url, is_gzip_accepted=False),
            options=ClientOptions(ssl_context=client_context, read_size=1000),
        )
        big = "y" * 50_000

        def step(report: Any, seen: list[Any]) -> bool:
            if isinstance(report, ReportStatus) and report.state is ClientState.STREAMING:
                server.publish(Event(data="secret"))
                server.publish(Event(data=big))
            return len(events(seen)) == 2

        with source:
            seen = drive(source, step)
        assert [e.data for e in events(seen)] == ["secret", big]

        untrusting = EventSource(fast(url, backoff=BackoffConfig(max_attempts=0)))
        failure: list[StreamError] = []
        with untrusting:
            refused = drive(untrusting, lambda report, seen: False, failure=failure)
    finally:
        server.close()
    assert states(refused) == [ClientState.CONNECTING, ClientState.CLOSED]
    assert "CERTIFICATE_VERIFY_FAILED" in refused[-1].reason
    (error,) = failure  # given up: raised where the application iterates
    assert error.report.cause is EndCause.GAVE_UP and "CERTIFICATE_VERIFY_FAILED" in str(error)


def test_connection_refused_is_retried() -> None:
    """Connection refused (a port bound but not listening) is a lost connection: the client
    backs off and tries again."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))  # holds the port; connections to it are refused
        port = bound.getsockname()[1]
        source = EventSource(fast(f"http://127.0.0.1:{port}/events"))
        with source:
            seen = drive(
                source,
                lambda report, seen: states(seen).count(ClientState.RECONNECTING) == 2,
            )
    lost = [s for s in seen if isinstance(s, ReportStatus) and s.state is ClientState.RECONNECTING]
    assert all("ConnectionRefusedError" in (s.reason or "") for s in lost)
    assert source.metrics.connection_attempts == 2


def test_misuse_and_bad_arguments() -> None:
    """Bad arguments raise InvalidConfigError; a source iterates once; the server starts
    once and has no address before; publish before start only fills the log."""
    with pytest.raises(InvalidConfigError):
        EventSource("http://127.0.0.1:9/", options=ClientOptions(read_size=0))
    with pytest.raises(InvalidConfigError):
        EventSource("ftp://127.0.0.1/")
    with pytest.raises(InvalidConfigError):
        EventSource("https://127.0.0.1/", options=ClientOptions(ssl_context="no"))  # type: ignore[arg-type]
    with pytest.raises(InvalidConfigError):
        EventStreamServer(options=ServerOptions(path="events"))
    with pytest.raises(InvalidConfigError):
        EventStreamServer(options=ServerOptions(request_timeout=0))
    with pytest.raises(InvalidConfigError):
        EventStreamServer(options=ServerOptions(send_timeout=float("inf")))
    source = EventSource("http://127.0.0.1:9/")
    source.reports()
    with pytest.raises(RuntimeError):
        source.reports()
    source.close()

    server = EventStreamServer()
    with pytest.raises(RuntimeError):
        server.address  # noqa: B018
    stored = server.publish(Event(data="kept"))
    assert len(server.broadcaster.replay_log) == 1
    # The default log's ids carry an epoch of this server start: another start differs.
    assert stored.id.endswith("-0")
    assert EventStreamServer().publish(Event(data="kept")).id != stored.id
    with server, pytest.raises(RuntimeError):
        server.start()
    server.close()  # twice is fine


# --- real peers --------------------------------------------------------------------------


def test_sync_client_against_sse_starlette_under_uvicorn() -> None:
    """Our client streams from sse-starlette (uvicorn, in a thread): the stream ends twice,
    the client reconnects with Last-Event-ID each time and gets 1..5 exactly once."""
    uvicorn = pytest.importorskip("uvicorn", reason="uvicorn is not installed (the peers extra)")
    pytest.importorskip("sse_starlette", reason="sse-starlette is not installed (the peers extra)")
    from sse_starlette.sse import EventSourceResponse
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.routing import Route

    last_ids: list[str | None] = []

    async def stream(request: Request) -> EventSourceResponse:
        last = request.headers.get("last-event-id")
        last_ids.append(last)
        first = int(last) + 1 if last else 1

        async def items() -> Any:
            for n in range(first, min(first + 3, 6)):
                yield {"id": str(n), "data": f"event {n}"}

        return EventSourceResponse(items())

    app = Starlette(routes=[Route("/events", stream)])
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    # log_config=None: uvicorn's logging setup would close pytest's log handlers' files.
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]})
    thread.start()  # the listening socket queues our connection until uvicorn is up
    try:
        source = EventSource(fast(f"http://127.0.0.1:{port}/events"))
        with source:
            seen = drive(source, lambda report, seen: len(events(seen)) == 5)
    finally:
        server.should_exit = True
        thread.join()
        listener.close()
    assert [e.data for e in events(seen)] == [f"event {n}" for n in range(1, 6)]
    assert last_ids[:2] == [None, "3"]


def test_sseclient_py_against_our_server_with_resumption() -> None:
    """sseclient-py (over http.client) reads our stream, and resumes from Last-Event-ID
    with exactly the events after it."""
    sseclient = pytest.importorskip(
        "sseclient", reason="sseclient-py is not installed (the peers extra)"
    )

    def read(last_event_id: str, count: int, live: tuple[str, ...] = ()) -> list[Any]:
        connection = http.client.HTTPConnection(host, port, timeout=WATCHDOG)
        try:
            connection.request("GET", "/events", headers={
                "Accept": "text/event-stream", "Last-Event-ID": last_event_id,
            })
            response = connection.getresponse()
            assert response.status == 200
            for data in live:  # the head came after our subscription
                server.publish(Event(data=data, event="tick"))
            got = []
            chunks = iter(lambda: response.read1(65536), b"")
            for event in sseclient.SSEClient(chunks).events():
                got.append(event)
                if len(got) == count:
                    break
            return got
        finally:
            connection.close()

    config = ServerConfig(is_compression_enabled=False)
    with EventStreamServer(ReplayLog(), config=config) as server:  # ids 0, 1, 2 ...
        host, port = server.address
        for n in range(3):
            server.publish(Event(data=f"stored {n}\nline two", event="tick"))
        replayed = read("0", 2)
        live = read("2", 3, ("live 3", "live 4", "live 5"))
    assert [(e.id, e.event, e.data) for e in replayed] == [
        ("1", "tick", "stored 1\nline two"), ("2", "tick", "stored 2\nline two")
    ]
    assert [(e.id, e.event, e.data) for e in live] == [
        ("3", "tick", "live 3"), ("4", "tick", "live 4"), ("5", "tick", "live 5")
    ]


def test_httpx_sse_against_our_server_with_gzip() -> None:
    """httpx + httpx-sse read our gzip stream: the events published after the head, in
    order."""
    httpx = pytest.importorskip("httpx", reason="httpx is not installed (the peers extra)")
    pytest.importorskip("httpx_sse", reason="httpx-sse is not installed (the peers extra)")
    from httpx_sse import connect_sse

    with (
        EventStreamServer() as server,
        httpx.Client(timeout=WATCHDOG) as client,
        connect_sse(client, "GET", url_of(server)) as source,
    ):
        assert source.response.headers["content-encoding"] == "gzip"
        for n in range(5):
            server.publish(Event(data=f"event {n}", id=f"id-{n}"))
        got = []
        for sse in source.iter_sse():
            if sse.data:  # httpx-sse also yields the position block (empty data)
                got.append((sse.id, sse.data))
            if len(got) == 5:
                break
    assert got == [(f"id-{n}", f"event {n}") for n in range(5)]


# --- docs and architecture --------------------------------------------------------------------


def code_blocks(text: str) -> list[str]:
    """The bodies of the ``.. code-block:: python`` directives of an rst page."""
    blocks = []
    for match in re.finditer(r"^\.\. code-block:: python\n((?:\n|   .*\n)+)", text, re.M):
        blocks.append(textwrap.dedent(match.group(1)))
    return blocks


def test_docs_example_runs() -> None:
    """The worked example on docs/adapters/sync.rst runs as written."""
    blocks = code_blocks(DOCS_PAGE.read_text(encoding="utf-8"))
    assert blocks
    namespace: dict[str, object] = {"__name__": "docs_sync"}
    for block in blocks:
        exec(compile(block, str(DOCS_PAGE), "exec"), namespace)


def test_adapter_imports_no_async_framework() -> None:
    """The sync adapter (its client module and its server module) imports no async
    framework (that adapters never import each other is checked for all of them in
    tests/test_architecture.py)."""
    path = Path(sync_adapter.__file__)
    modules: set[str] = set()
    for source in (path, path.with_name("_sync_server.py")):
        modules |= imported_modules(ast.parse(source.read_text(encoding="utf-8")))
    assert "._sync_server" in modules
    assert not modules & {"asyncio", "trio", "anyio"}


def imported_modules(tree: ast.Module) -> set[str]:
    """The modules a module's code imports (relative ones with their leading dots)."""
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            modules.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
    return modules
