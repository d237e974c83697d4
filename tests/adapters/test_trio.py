"""The trio adapter's plumbing: our client against our server on loopback, against small
hand-written trio peers (204, redirect, stalled server, TLS handshake that never ends), and
against a real peer (sse-starlette under uvicorn).

Every test runs in ``run()``, which also checks that the process has exactly the file
descriptors it had before: no socket is left open. Each body runs under a generous
``trio.fail_after`` that only fires on failure.
"""

from __future__ import annotations

import ast
import functools
import os
import re
import socket
import ssl
import struct
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

import sse_core.adapters.trio as trio_adapter
from sse_core import (
    ClientConfig,
    ClientState,
    Deliver,
    Event,
    HTTPStatusError,
    InvalidConfigError,
    ReportStatus,
    ServerConfig,
)
from sse_core.adapters import ClientOptions, ServerOptions
from sse_core.adapters.trio import EventSource, EventStreamServer
from sse_core.state import BackoffConfig, Jitter, ReplayLog

LIMIT = 10.0  # seconds a test body may take before it counts as hung
FAST = BackoffConfig(base_delay=0.02, min_base_delay=0.01, max_delay=0.1, jitter=Jitter.NONE)
DOCS_PAGE = Path(__file__).resolve().parents[2] / "docs" / "adapters" / "trio.rst"


def open_fds() -> set[int]:
    return set(map(int, os.listdir("/proc/self/fd")))


def run(test: Callable[[], Awaitable[None]], *, is_fd_checked: bool = True) -> None:
    """Run a trio test body with a hang limit; no file descriptor may be left open."""

    async def main() -> None:
        with trio.fail_after(LIMIT):
            await test()

    before = open_fds()
    trio.run(main)
    if is_fd_checked:
        assert open_fds() - before == set()


def config(url: str, **kwargs: Any) -> ClientConfig:
    return ClientConfig(url=url, backoff=FAST, **kwargs)


async def until(predicate: Callable[[], bool]) -> None:
    """Wait for a condition on the server's side that no event announces (the test's
    fail_after bounds it)."""
    while not predicate():
        await trio.sleep(0.005)


async def read_head(stream: trio.SocketStream) -> bytes:
    """The request head a raw peer received (requests here have no body)."""
    head = b""
    while b"\r\n\r\n" not in head:
        data = await stream.receive_some(4096)
        if not data:
            break
        head += data
    return head


@asynccontextmanager
async def raw_peer(
    handler: Callable[[trio.SocketStream], Awaitable[None]],
) -> AsyncIterator[int]:
    """A hand-written peer on 127.0.0.1: ``handler`` runs per connection; yields the port."""
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, host="127.0.0.1"),
                                        handler, 0)
        yield listeners[0].socket.getsockname()[1]
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def serving(server: EventStreamServer, **kwargs: Any) -> AsyncIterator[str]:
    """Run ``server`` in a nursery; yields its events URL."""
    async with trio.open_nursery() as nursery:
        host, port = await nursery.start(functools.partial(server.serve, **kwargs))
        scheme = "https" if kwargs.get("ssl_context") else "http"
        yield f"{scheme}://{host}:{port}/events"
        await server.aclose()


def is_state(report: object, state: ClientState) -> bool:
    return isinstance(report, ReportStatus) and report.state is state


def states(reports: list[Any]) -> list[ClientState]:
    return [report.state for report in reports if isinstance(report, ReportStatus)]


# --- our client against our server ---------------------------------------------------------


def test_events_arrive_in_order_exactly_once_with_status_changes() -> None:
    """Events published after the client connects arrive once each, in order, with their
    ids; the status goes CONNECTING, CONNECTED, STREAMING (to on_status and reports())."""

    async def body() -> None:
        server = EventStreamServer()
        seen: list[ClientState] = []
        async with serving(server) as url:
            source = EventSource(config(url), on_status=lambda r: seen.append(r.state))
            async with source:
                reports: list[Any] = []
                async for report in source.reports():
                    reports.append(report)
                    if is_state(report, ClientState.STREAMING):
                        stored = [server.publish(Event(data=f"n{i}")) for i in range(20)]
                    if len(states(reports)) == 3 and sum(
                        isinstance(r, Deliver) for r in reports
                    ) == 20:
                        break
        events = [r.event for r in reports if isinstance(r, Deliver)]
        assert [e.data for e in events] == [f"n{i}" for i in range(20)]
        assert [e.id for e in events] == [s.id for s in stored]
        assert states(reports) == seen[:3] == [
            ClientState.CONNECTING, ClientState.CONNECTED, ClientState.STREAMING
        ]
        assert seen[-1] is ClientState.CLOSED  # aclose() at the end of the block
        assert source.metrics.messages_received == 20
        assert source.session.last_event_id == stored[-1].id

    run(body)


def test_server_close_then_resume_gets_exactly_the_missed_events() -> None:
    """The server ends the stream; the client reconnects with Last-Event-ID to a new server
    on the same port and log, gets the events published meanwhile (replayed) and then live
    ones, with no duplicates."""

    async def body() -> None:
        log = ReplayLog()
        first = EventStreamServer(log)
        second = EventStreamServer(log)
        async with trio.open_nursery() as nursery:
            host, port = await nursery.start(first.serve)
            source = EventSource(config(f"http://{host}:{port}/events"))
            async with source:
                data: list[str] = []
                streaming = 0
                resumed_from: list[str] = []
                async for report in source.reports():
                    if isinstance(report, ReportStatus):
                        if report.state is ClientState.STREAMING:
                            streaming += 1
                            if streaming == 1:
                                first.publish(Event(data="e1"))
                                e2 = first.publish(Event(data="e2"))
                            else:
                                resumed_from = [s.session.last_event_id for s in second.broadcaster]
                                second.publish(Event(data="e5"))
                        elif report.state is ClientState.RECONNECTING and not second._is_serving:
                            second.publish(Event(data="e3"))  # not serving yet: log only
                            second.publish(Event(data="e4"))
                            await nursery.start(second.serve, host, port)
                    elif isinstance(report, Deliver):
                        data.append(report.event.data)
                        if report.event.data == "e2":
                            await first.aclose()
                        if report.event.data == "e5":
                            break
            await second.aclose()
        assert data == ["e1", "e2", "e3", "e4", "e5"]
        assert resumed_from == [e2.id]
        assert source.metrics.reconnections == 1
        assert source.metrics.messages_deduplicated == 0

    run(body)


@pytest.mark.parametrize("is_accepted", [True, False])
def test_gzip_when_the_client_accepts_it(is_accepted: bool) -> None:
    """With gzip accepted the stream is compressed (and decoded: a large event arrives
    whole); a client that does not accept it gets plain bytes."""

    async def body() -> None:
        server = EventStreamServer()
        big = "0123456789" * 20_000
        async with (
            serving(server) as url,
            EventSource(config(url, is_gzip_accepted=is_accepted)) as source,
        ):
            async for report in source.reports():
                if is_state(report, ClientState.STREAMING):
                    encodings = [s.session.content_encoding for s in server.broadcaster]
                    server.publish(Event(data=big))
                if isinstance(report, Deliver):
                    assert report.event.data == big
                    break
        assert encodings == (["gzip"] if is_accepted else [None])

    run(body)


def test_heartbeats_keep_a_quiet_stream_alive() -> None:
    """With heartbeats every 0.1 s a client whose stall timeout is 0.6 s stays on its first
    connection through 1.5 s without events."""

    async def body() -> None:
        server = EventStreamServer(config=ServerConfig(heartbeat_interval=0.1))
        async with serving(server) as url, trio.open_nursery() as nursery:
            source = EventSource(config(url, stall_timeout=0.6))

            async def publish_later() -> None:
                await trio.sleep(1.5)  # the quiet period under test
                server.publish(Event(data="late"))

            reports: list[Any] = []
            async with source:
                async for report in source.reports():
                    reports.append(report)
                    if is_state(report, ClientState.STREAMING):
                        nursery.start_soon(publish_later)
                    if isinstance(report, Deliver):
                        break
        assert [r.event.data for r in reports if isinstance(r, Deliver)] == ["late"]
        assert ClientState.RECONNECTING not in states(reports)
        assert source.metrics.connection_attempts == 1

    run(body)


def test_slow_client_is_dropped_while_a_fast_one_gets_everything() -> None:
    """A client that never reads is disconnected once its queue passes max_queued_bytes (its
    socket closes, it is unsubscribed); a fast client on the same server gets every event."""

    async def body() -> None:
        server = EventStreamServer(
            config=ServerConfig(
            heartbeat_interval=None, is_compression_enabled=False,
        ),
            options=ServerOptions(max_queued_bytes=256 * 1024),
        )
        payload = "x" * (64 * 1024)
        async with serving(server) as url, trio.open_nursery() as nursery:
            host, port = server.address
            slow = trio.socket.socket()
            slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            await slow.connect((host, port))
            await slow.send(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")  # and never read
            await until(lambda: len(server.broadcaster) == 1)

            send_event, receive_event = trio.open_memory_channel[str](1)
            streaming = trio.Event()

            async def fast() -> None:
                async with EventSource(config(url)) as source:
                    async for report in source.reports():
                        if is_state(report, ClientState.STREAMING):
                            streaming.set()
                        if isinstance(report, Deliver):
                            await send_event.send(report.event.data)

            nursery.start_soon(fast)
            await streaming.wait()
            published = 0
            while not server.broadcaster.dropped and published < 1000:
                server.publish(Event(data=payload + str(published)))
                published += 1
                assert await receive_event.receive() == payload + str(published - 1)
            for extra in range(3):  # the fast client goes on
                server.publish(Event(data=f"after {extra}"))
                assert await receive_event.receive() == f"after {extra}"
            await until(lambda: len(server.broadcaster) == 1)  # the slow one is gone
            with slow:
                received = 0
                while True:
                    try:
                        chunk = await slow.recv(1 << 20)
                    except ConnectionResetError:
                        break
                    if not chunk:
                        break
                    received += len(chunk)
            nursery.cancel_scope.cancel()
        assert server.broadcaster.dropped == 1
        assert published < 1000
        assert received < published * len(payload)  # the server gave up on the rest

    run(body)


def test_wrong_path_gets_404_and_the_client_closes_without_retry() -> None:
    """A 404 fails the connection for good: state CLOSED, one attempt, no reconnection, and
    the iteration raises HTTPStatusError once the CLOSED status was handed out."""

    async def body() -> None:
        server = EventStreamServer()
        async with serving(server) as url:
            source = EventSource(config(url.replace("/events", "/nope")))
            reports: list[object] = []
            async with source:
                with pytest.raises(HTTPStatusError) as raised:
                    async for report in source.reports():
                        reports.append(report)
        assert raised.value.status == 404
        assert states(reports) == [ClientState.CONNECTING, ClientState.CLOSED]
        assert source.session.state is ClientState.CLOSED
        assert source.metrics.connection_attempts == 1

    run(body)


def test_server_answers_bad_requests() -> None:
    """400 for bytes that are not HTTP, 405 for another method, 503 with Retry-After when
    max_subscribers is reached, and a connection that sends nothing is reset after
    request_timeout."""

    async def exchange(port: int, request: bytes) -> bytes:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(request)
            answer = b""
            while chunk := await stream.receive_some(4096):
                answer += chunk
        return answer

    async def body() -> None:
        server = EventStreamServer(
            options=ServerOptions(max_subscribers=1, request_timeout=0.2),
        )
        async with serving(server) as url:
            port = server.address[1]
            assert (await exchange(port, b"\x00garbage\r\n\r\n")).startswith(b"HTTP/1.1 400 ")
            delete = await exchange(port, b"DELETE /events HTTP/1.1\r\nHost: x\r\n\r\n")
            assert delete.startswith(b"HTTP/1.1 405 ") and b"allow: get, post" in delete.lower()
            async with EventSource(config(url)) as source:
                async for report in source.reports():
                    if is_state(report, ClientState.STREAMING):
                        break
                busy = await exchange(port, b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
            assert busy.startswith(b"HTTP/1.1 503 ") and b"retry-after: 5" in busy.lower()
            with pytest.raises(trio.BrokenResourceError):  # reset after request_timeout
                await exchange(port, b"")

    run(body)


async def closed_from_another_task(source: Any, server: EventStreamServer) -> list[Event]:
    """Iterate ``source`` in a task; once it streams, close it from this one and publish an
    event; wait until the server saw the connection go. What the loop delivered."""
    streaming = trio.Event()
    events: list[Event] = []

    async def consume() -> None:
        async for report in source.reports():
            if is_state(report, ClientState.STREAMING):
                streaming.set()
            if isinstance(report, Deliver):
                events.append(report.event)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        await streaming.wait()
        await source.aclose()
        assert source.session.state is ClientState.CLOSED
        server.publish(Event(data="too late"))
        await until(lambda: len(server.broadcaster) == 0)
    return events


def test_aclose_from_another_task_ends_the_iteration() -> None:
    """aclose() while another task waits for the next event ends that task's loop at once;
    the server sees the connection go."""

    async def body() -> None:
        server = EventStreamServer()
        async with serving(server) as url:
            assert await closed_from_another_task(EventSource(config(url)), server) == []

    run(body)


def test_a_cancelled_wait_for_the_next_event_keeps_the_connection() -> None:
    """``move_on_after`` around one step of the loop gives up waiting, not the stream: the
    next step gets the next event on the same connection."""

    async def body() -> None:
        server = EventStreamServer()
        async with serving(server) as url, EventSource(config(url)) as source:
            reports = source.reports()
            while not is_state(await reports.__anext__(), ClientState.STREAMING):
                pass
            with trio.move_on_after(0.05) as scope:
                await reports.__anext__()
            assert scope.cancelled_caught
            server.publish(Event(data="still here"))
            report = await reports.__anext__()
            assert isinstance(report, Deliver) and report.event.data == "still here"
            assert source.metrics.connection_attempts == 1
            assert len(server.broadcaster) == 1

    run(body)


def test_cancelling_a_running_server_closes_every_connection() -> None:
    """Cancelling the scope around ``async with EventStreamServer()`` while a client is
    streaming ends the server's tasks and closes its sockets; the client sees the
    connection go and tries to reconnect."""

    async def body() -> None:
        async with trio.open_nursery() as nursery:
            lost = trio.Event()
            with trio.CancelScope() as scope:
                async with EventStreamServer() as server:
                    host, port = server.address
                    source = EventSource(config(f"http://{host}:{port}/events"))
                    streaming = trio.Event()

                    async def consume() -> None:
                        async with source:
                            async for report in source.reports():
                                if is_state(report, ClientState.STREAMING):
                                    streaming.set()
                                if is_state(report, ClientState.RECONNECTING):
                                    lost.set()
                                    return

                    nursery.start_soon(consume)
                    await streaming.wait()
                    scope.cancel()
                    await trio.sleep_forever()
            assert scope.cancelled_caught
            await lost.wait()
        assert len(server.broadcaster) == 0

    run(body)


# --- our client against hand-written peers -------------------------------------------------


async def answered_204(make_source: Callable[[str], Any]) -> None:
    """A peer answers 204: a source (``make_source(url)``) ends its loop quietly, CLOSED
    after one request."""
    requests: list[bytes] = []

    async def handler(stream: trio.SocketStream) -> None:
        requests.append(await read_head(stream))
        await stream.send_all(b"HTTP/1.1 204 No Content\r\n\r\n")

    async with raw_peer(handler) as port:
        source = make_source(f"http://127.0.0.1:{port}/events")
        async with source:
            reports = [report async for report in source.reports()]
    assert states(reports) == [ClientState.CONNECTING, ClientState.CLOSED]
    assert len(requests) == 1
    assert source.metrics.connection_attempts == 1


def test_204_closes_the_client_without_retry() -> None:
    """HTTP 204 tells an EventSource to stop: CLOSED after one request."""
    run(functools.partial(answered_204, lambda url: EventSource(config(url))))


def test_redirect_is_followed_to_the_stream() -> None:
    """A 307 from another server is followed; the events come from the stream it points to."""
    asked: list[bytes] = []

    async def body() -> None:
        server = EventStreamServer()
        async with serving(server) as url:

            async def redirect(stream: trio.SocketStream) -> None:
                asked.append(await read_head(stream))
                await stream.send_all(
                    f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {url}\r\n"
                    "Content-Length: 0\r\n\r\n".encode()
                )

            async with raw_peer(redirect) as port:
                source = EventSource(config(f"http://127.0.0.1:{port}/start"))
                async with source:
                    async for report in source.reports():
                        if is_state(report, ClientState.STREAMING):
                            server.publish(Event(data="via redirect"))
                        if isinstance(report, Deliver):
                            assert report.event.data == "via redirect"
                            break
        assert len(asked) == 1 and asked[0].startswith(b"GET /start HTTP/1.1")
        assert source.metrics.connection_attempts == 1

    run(body)


async def replaced_after_a_stall(make_source: Callable[[str], Any]) -> list[Any]:
    """A peer sends the head and one event (id 1), then nothing: a source
    (``make_source(url)``, with a short stall timeout) takes it for dead and resumes with
    Last-Event-ID on a new connection, dropping the replayed duplicate. Its reports, up to
    its second STREAMING."""
    heads: list[bytes] = []

    async def stall(stream: trio.SocketStream) -> None:
        heads.append(await read_head(stream))
        await stream.send_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\nid: 1\ndata: x\n\n"
        )
        await trio.sleep_forever()

    reports: list[Any] = []
    async with raw_peer(stall) as port:
        source = make_source(f"http://127.0.0.1:{port}/events")
        async with source:
            async for report in source.reports():
                reports.append(report)
                if states(reports).count(ClientState.STREAMING) == 2:
                    break
    assert len(heads) == 2
    assert b"last-event-id: 1\r\n" not in heads[0].lower()
    assert b"last-event-id: 1\r\n" in heads[1].lower()
    assert ClientState.RECONNECTING in states(reports)
    assert [r.event.data for r in reports if isinstance(r, Deliver)] == ["x"]
    return reports


def test_stalled_server_is_replaced_after_stall_timeout() -> None:
    """A server that sends the head and one event, then nothing, is taken for dead after
    stall_timeout: the client reconnects with Last-Event-ID and drops the replayed
    duplicate."""

    async def body() -> None:
        await replaced_after_a_stall(lambda url: EventSource(config(url, stall_timeout=0.3)))

    run(body)


def test_cancellation_closes_the_socket() -> None:
    """Cancelling the scope around the loop closes the connection, whether the client was
    reading (after an event) or in the middle of a TLS handshake (the peer got the
    ClientHello and answers nothing): the peer sees the connection closed."""
    scopes: list[trio.CancelScope] = []
    closed: list[trio.Event] = []

    async def hold(stream: trio.SocketStream) -> None:
        first = await stream.receive_some(4096)
        if first.startswith(b"GET"):
            await stream.send_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: one\n\n"
            )
        else:  # a TLS ClientHello: the client is inside its handshake now
            scopes[-1].cancel()
        while await stream.receive_some(4096):  # until the client closes
            pass
        closed[-1].set()

    async def body() -> None:
        async with raw_peer(hold) as port:
            for scheme in ("http", "https"):
                closed.append(trio.Event())
                source = EventSource(config(f"{scheme}://127.0.0.1:{port}/events"))
                with trio.CancelScope() as scope:
                    scopes.append(scope)
                    async with source:
                        async for report in source.reports():
                            if isinstance(report, Deliver):
                                scope.cancel()
                        raise AssertionError("the loop ended without being cancelled")
                assert scope.cancelled_caught
                await closed[-1].wait()
                assert source.session.state is ClientState.CLOSED

    run(body)


def test_connect_timeout_covers_a_tls_handshake_that_never_ends() -> None:
    """A peer that takes the TCP connection and the ClientHello but never answers is given
    up after connect_timeout, each time: the client reconnects and closes every abandoned
    connection."""
    closed = [trio.Event(), trio.Event()]
    accepted: list[trio.SocketStream] = []

    async def mute(stream: trio.SocketStream) -> None:
        accepted.append(stream)
        n = len(accepted) - 1
        while await stream.receive_some(4096):  # the ClientHello, then nothing until closed
            pass
        closed[n].set()

    async def body() -> None:
        async with raw_peer(mute) as port:
            source = EventSource(
                config(f"https://127.0.0.1:{port}/events"),
                options=ClientOptions(connect_timeout=0.2),
            )
            reasons: list[str] = []
            async with source:
                async for report in source.reports():
                    if is_state(report, ClientState.RECONNECTING):
                        reasons.append(report.reason or "")
                        if len(reasons) == 2:
                            break
            for event in closed:
                await event.wait()
        assert reasons == ["no response within 0.2 s"] * 2
        assert source.metrics.connection_attempts == 2

    run(body)


def test_reset_connection_is_reported_and_replaced() -> None:
    """A peer that resets the connection mid-stream: the client reports the error as the
    reason and reconnects with Last-Event-ID."""
    heads: list[bytes] = []

    async def reset(stream: trio.SocketStream) -> None:
        heads.append(await read_head(stream))
        await stream.send_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\nid: 7\ndata: a\n\n"
        )
        if len(heads) == 1:
            stream.socket.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            stream.socket.close()  # RST
        else:
            await trio.sleep_forever()

    async def body() -> None:
        async with raw_peer(reset) as port:
            source = EventSource(config(f"http://127.0.0.1:{port}/events"))
            reasons: list[str] = []
            async with source:
                async for report in source.reports():
                    if is_state(report, ClientState.RECONNECTING):
                        reasons.append(report.reason or "")
                    if states([report]) == [ClientState.CONNECTED] and len(heads) == 2:
                        break
        assert len(reasons) == 1 and "ConnectionResetError" in reasons[0]
        assert b"last-event-id: 7\r\n" in heads[1].lower()

    run(body)


def test_server_copes_with_clients_that_leave() -> None:
    """A client that connects and leaves at once, one that resets after sending more than
    its request, and one still sending its request when the server closes (reset): each
    connection ends at once, nothing stays subscribed."""

    async def body() -> None:
        server = EventStreamServer()  # request_timeout 30 s: nothing below waits for it
        async with serving(server):
            host, port = server.address
            leaving = await trio.open_tcp_stream(host, port)
            await leaving.aclose()

            rude = await trio.open_tcp_stream(host, port)
            await rude.send_all(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\nand more bytes")
            await until(lambda: len(server.broadcaster) == 1)
            await rude.send_all(b"and even more")
            rude.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            await rude.aclose()
            await until(lambda: len(server.broadcaster) == 0)

            async with await trio.open_tcp_stream(host, port) as slowpoke:
                await slowpoke.send_all(b"GET /events HTTP/1.1\r\n")
                await until(lambda: len(server._connections) == 1)
                await server.aclose()
                with pytest.raises(trio.BrokenResourceError):  # let go of: reset
                    await slowpoke.receive_some(4096)
        unserved = EventStreamServer()
        await unserved.aclose()  # never served: nothing to wait for
        with pytest.raises(RuntimeError):
            await unserved.serve()

    run(body)


def test_aclose_right_after_serve_started_ends_it() -> None:
    """aclose() right after serve() started (perhaps before it listens) ends it."""

    async def body() -> None:
        server = EventStreamServer()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.serve)
            await until(lambda: server._is_serving)  # started; maybe listening already
            await server.aclose()
        assert server._stopped.is_set()

    run(body)


# --- TLS -----------------------------------------------------------------------------------


def test_tls_with_a_custom_context() -> None:
    """Over TLS (a trustme CA) the client gets the events when its SSLContext trusts the CA;
    with the default context (system trust store) the handshake fails and it reconnects."""
    trustme = pytest.importorskip("trustme", reason="trustme is not installed (the peers extra)")
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)

    async def body() -> None:
        server = EventStreamServer()
        async with serving(server, ssl_context=server_context) as url:
            assert url.startswith("https://")
            async with EventSource(
                config(url),
                options=ClientOptions(ssl_context=client_context),
            ) as source:
                async for report in source.reports():
                    if is_state(report, ClientState.STREAMING):
                        server.publish(Event(data="secret"))
                    if isinstance(report, Deliver):
                        assert report.event.data == "secret"
                        break
            async with EventSource(config(url)) as untrusting:
                async for report in untrusting.reports():
                    if is_state(report, ClientState.RECONNECTING):
                        assert "CERTIFICATE_VERIFY_FAILED" in (report.reason or "")
                        break
                    assert not isinstance(report, Deliver)

    run(body)


# --- a real peer ---------------------------------------------------------------------------


def test_against_sse_starlette_under_uvicorn() -> None:
    """sse-starlette (under uvicorn, in a thread) is a server nobody here wrote: the client
    gets its events, with their ids and types."""
    import anyio
    uvicorn = pytest.importorskip("uvicorn", reason="uvicorn is not installed (the peers extra)")
    pytest.importorskip("sse_starlette", reason="sse-starlette is not installed (the peers extra)")
    from sse_starlette.sse import EventSourceResponse
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.routing import Route

    async def events(request: Request) -> EventSourceResponse:
        async def stream() -> AsyncIterator[dict[str, str]]:
            for n in range(3):
                yield {"id": str(n), "event": "tick", "data": f"peer {n}"}
            await anyio.sleep_forever()  # until the client goes (sse-starlette cancels)

        return EventSourceResponse(stream())

    app = Starlette(routes=[Route("/events", events)])
    server = uvicorn.Server(uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan="off",
        timeout_graceful_shutdown=2,
    ))
    before = open_fds()
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        give_up = time.monotonic() + LIMIT
        while not server.started and thread.is_alive() and time.monotonic() < give_up:
            time.sleep(0.01)  # uvicorn offers a flag, not an event
        assert server.started
        port = server.servers[0].sockets[0].getsockname()[1]
        received: list[Event] = []

        async def body() -> None:
            async with EventSource(config(f"http://127.0.0.1:{port}/events")) as source:
                async for event in source:
                    received.append(event)
                    if len(received) == 3:
                        break

        run(body, is_fd_checked=False)  # uvicorn's thread holds sockets meanwhile
    finally:
        server.should_exit = True
        thread.join(timeout=LIMIT)
    assert not thread.is_alive()
    assert open_fds() - before == set()
    assert [(e.id, e.event, e.data) for e in received] == [
        (str(n), "tick", f"peer {n}") for n in range(3)
    ]


# --- configuration, docs, architecture -----------------------------------------------------


def test_bad_arguments_and_misuse_are_refused() -> None:
    """Bad arguments raise InvalidConfigError; a second iteration, an address before
    serving and a second serve() raise RuntimeError."""
    with pytest.raises(InvalidConfigError):
        EventSource("http://127.0.0.1:1/events", options=ClientOptions(read_size=0))
    with pytest.raises(InvalidConfigError):
        EventSource("ftp://127.0.0.1/events")
    with pytest.raises(InvalidConfigError):
        EventSource("https://127.0.0.1/events", options=ClientOptions(ssl_context="strict"))  # type: ignore[arg-type]
    with pytest.raises(InvalidConfigError):
        EventStreamServer(options=ServerOptions(request_timeout=0))
    with pytest.raises(InvalidConfigError):
        EventStreamServer(options=ServerOptions(path="events"))
    source = EventSource("http://127.0.0.1:1/events")
    source.reports()
    with pytest.raises(RuntimeError):
        aiter(source)
    with pytest.raises(RuntimeError):
        _ = EventStreamServer().address

    async def body() -> None:
        async with EventStreamServer() as server:
            with pytest.raises(RuntimeError):
                await server.serve()

    run(body)


def test_docs_example_runs() -> None:
    """The worked example on docs/adapters/trio.rst runs as written."""
    text = DOCS_PAGE.read_text(encoding="utf-8")
    match = re.search(r"^\.\. code-block:: python\n\n((?:    .*\n|\n)+)", text, re.M)
    assert match is not None
    before = open_fds()
    exec(compile(textwrap.dedent(match.group(1)), str(DOCS_PAGE), "exec"), {"__name__": "doc"})
    assert open_fds() - before == set()


def test_adapter_does_not_import_asyncio() -> None:
    """The trio adapter (its client modules and its server module) does not import asyncio
    (that adapters never import each other is checked for all of them in
    tests/test_architecture.py)."""
    path = Path(trio_adapter.__file__)
    modules: set[str] = set()
    for source in (path, path.with_name("_trio_server.py"), path.with_name("_trio_client.py")):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                modules.add("." * node.level + (node.module or ""))
    assert "._trio_server" in modules and "trio" in modules
    assert "asyncio" not in modules
