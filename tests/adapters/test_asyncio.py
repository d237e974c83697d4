"""Tests of the asyncio adapter over real loopback sockets: EventSource and EventStreamServer
against each other, against small scripted HTTP servers, and against real peers (httpx +
httpx-sse, sse-starlette under uvicorn, aiohttp-sse under aiohttp).

Each test runs its own event loop with ``asyncio.run`` and checks that nothing is left
behind: no task but the test's own, no unclosed transport (ResourceWarning).
"""

from __future__ import annotations

import asyncio
import gc
import socket
import ssl
import time
import warnings
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import h11
import pytest

from sse_core import (
    HEARTBEAT,
    ClientConfig,
    ClientState,
    Deliver,
    Event,
    HTTPStatusError,
    InvalidConfigError,
    Parser,
    ReportGap,
    ReportStatus,
    ServerConfig,
    StreamError,
)
from sse_core.adapters import ClientOptions, IncomingRequest, ServerConnection, ServerOptions
from sse_core.adapters.asyncio import EventSource, EventStreamServer
from sse_core.state import POSITION_EVENT_TYPE, BackoffConfig, ReplayLog
from sse_core.testing import FaultProxy, Refuse

#: Generous: only reached when a test fails.
TIMEOUT = 10.0
FAST_BACKOFF = BackoffConfig(base_delay=0.05, min_base_delay=0.01, max_delay=0.2)
QUIET = ServerConfig(heartbeat_interval=None)
EVENT_STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
)


def run(
    main: Callable[[], Coroutine[Any, Any, None]], *, foreign: frozenset[str] = frozenset()
) -> None:
    """Run ``main`` in a new loop; fail if a task or a transport outlives it.

    ``foreign`` names coroutines of a peer library that are allowed to outlive ``main``
    (``asyncio.run`` cancels them).
    """

    async def checked() -> None:
        await asyncio.wait_for(main(), 3 * TIMEOUT)  # after the waits' own timeouts
        leftover = {
            task for task in asyncio.all_tasks() - {asyncio.current_task()}
            if task.get_coro().__qualname__ not in foreign  # type: ignore[union-attr]
        }
        assert not leftover, leftover

    gc.collect()  # what earlier tests left is not this test's leak
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        asyncio.run(checked())
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert not leaks, leaks


async def until(predicate: Callable[[], bool], what: str) -> None:
    """Wait for a condition nothing signals (server-side counters), checking every 5 ms."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while not predicate():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


def config(url: str, **kwargs: Any) -> ClientConfig:
    kwargs.setdefault("backoff", FAST_BACKOFF)
    return ClientConfig(url=url, **kwargs)


class Watch:
    """Iterates an EventSource's reports in a task; tests await conditions on them."""

    def __init__(self, source: EventSource) -> None:
        self.source = source
        self.reports: list[object] = []
        self.is_ended = False
        self.error: StreamError | None = None  # what the iteration raised at its end
        self._changed = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            async for report in self.source.reports():
                self.reports.append(report)
                self._changed.set()
        except StreamError as error:
            self.error = error
        finally:
            self.is_ended = True
            self._changed.set()

    @property
    def events(self) -> list[Event]:
        return [r.event for r in self.reports if isinstance(r, Deliver)]

    @property
    def statuses(self) -> list[ReportStatus]:
        return [r for r in self.reports if isinstance(r, ReportStatus)]

    @property
    def states(self) -> list[ClientState]:
        return [r.state for r in self.statuses]

    async def until(self, predicate: Callable[[Watch], bool], what: str) -> None:
        async def wait() -> None:
            while not predicate(self):
                assert not self.is_ended, f"ended before {what}: {self.reports}"
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(wait(), TIMEOUT)
        except asyncio.TimeoutError:
            raise AssertionError(f"timed out waiting for {what}: {self.reports}") from None

    async def until_state(self, state: ClientState, count: int = 1) -> None:
        await self.until(lambda w: w.states.count(state) >= count, f"{state} x{count}")

    async def until_events(self, count: int) -> None:
        await self.until(lambda w: len(w.events) >= count, f"{count} events")

    async def end(self) -> None:
        """Wait for the iteration to end by itself (the session closed)."""
        await self.until(lambda w: w.is_ended, "the end of the iteration")
        await self.task

    async def aclose(self) -> None:
        """Close the source from outside; the iteration must end cleanly."""
        await self.source.aclose()
        await asyncio.wait_for(self.task, TIMEOUT)


Handler = Callable[["Scripted", int, IncomingRequest, asyncio.StreamWriter], Awaitable[None]]


class Scripted:
    """A tiny HTTP server: the n-th connection's request is read, then ``handler`` writes
    the answer; the connection closes when the handler returns. :meth:`hold` waits until
    the end of the test (a server that stalls)."""

    def __init__(self, handler: Handler, *, is_request_read: bool = True) -> None:
        self.handler = handler
        self.is_request_read = is_request_read
        self.requests: list[IncomingRequest] = []
        self.connections = 0
        self._done = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def url(self, path: str = "/events") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def hold(self) -> None:
        await self._done.wait()

    async def __aenter__(self) -> Scripted:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        self._done.set()
        for writer in list(self._writers):
            writer.transport.abort()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        index = self.connections
        self.connections += 1
        try:
            if not self.is_request_read:
                await self.hold()
                return
            connection = ServerConnection()
            request = None
            while request is None:
                data = await reader.read(65536)
                request = connection.receive(data)
            self.requests.append(request)
            await self.handler(self, index, request, writer)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()


def field(request: IncomingRequest, name: str) -> str | None:
    return next((value for key, value in request.headers if key == name), None)


async def no_content(
    peer: Scripted, index: int, request: IncomingRequest, writer: asyncio.StreamWriter
) -> None:
    writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")


async def started_server(**kwargs: Any) -> tuple[EventStreamServer, str]:
    kwargs.setdefault("config", QUIET)
    server = EventStreamServer(**kwargs)
    await server.start()
    host, port = server.address
    return server, f"http://{host}:{port}/events"


# --- our client against our server -----------------------------------------------------------


def test_events_arrive_in_order_exactly_once() -> None:
    """Published events reach the client in order, once each; the status goes CONNECTING,
    CONNECTED, STREAMING; closing both leaves no task, connection or subscriber."""

    async def main() -> None:
        server, url = await started_server()
        statuses: list[ReportStatus] = []
        source = EventSource(config(url), on_status=statuses.append)
        watch = Watch(source)
        await watch.until_state(ClientState.STREAMING)
        assert len(server.broadcaster) == 1
        sent = [Event(data=f"event {i}\nline two", event="tick") for i in range(200)]
        stored = [server.publish(event) for event in sent]
        await watch.until_events(200)
        assert [(e.data, e.event, e.id) for e in watch.events] == [
            (e.data, e.event, s.id) for e, s in zip(sent, stored, strict=True)
        ]
        assert len({s.id for s in stored}) == 200
        assert watch.states == [
            ClientState.CONNECTING, ClientState.CONNECTED, ClientState.STREAMING
        ]
        assert [s.state for s in statuses] == watch.states  # on_status sees the same
        assert source.metrics.messages_received == 200
        assert source.session.last_event_id == stored[-1].id
        await watch.aclose()
        assert statuses[-1].state is ClientState.CLOSED
        await until(lambda: len(server.broadcaster) == 0, "the server to see the close")
        await server.aclose()

    run(main)


def test_server_restart_client_resumes_with_exactly_the_missed_events() -> None:
    """The server goes away (its streams end) and a new one comes back behind the same
    address with the same replay log: the client reconnects with Last-Event-ID and gets
    exactly what it missed, then live events (dedup off, so a duplicate would show)."""

    async def main() -> None:
        log = ReplayLog()
        server, _ = await started_server(replay_log=log)
        async with FaultProxy(server.address) as proxy:  # an address that outlives servers
            host, port = proxy.address
            source = EventSource(config(f"http://{host}:{port}/events", dedup=None))
            watch = Watch(source)
            await watch.until_state(ClientState.STREAMING)
            ids = [server.publish(Event(data=f"e{i}")).id for i in range(5)]
            await watch.until_events(5)
            await server.aclose()
            await watch.until_state(ClientState.RECONNECTING)
            assert watch.statuses[-1].reason == "stream ended"
            # Missed while the server is down:
            # (with the server's clock: the log refuses a now that goes backwards)
            ids += [log.append(Event(data=f"e{i}"), time.monotonic()).id for i in range(5, 10)]
            server, _ = await started_server(replay_log=log)
            proxy.upstream = server.address
            await watch.until_events(10)
            (subscriber,) = server.broadcaster
            assert subscriber.session.last_event_id == ids[4]  # what the request carried
            ids.append(server.publish(Event(data="e10")).id)
            await watch.until_events(11)
            assert [e.data for e in watch.events] == [f"e{i}" for i in range(11)]
            assert [e.id for e in watch.events] == ids
            assert not [r for r in watch.reports if isinstance(r, ReportGap)]
            assert source.metrics.reconnections == 1
            assert watch.states.count(ClientState.STREAMING) == 2
            await watch.aclose()
        await server.aclose()

    run(main)


def test_restart_without_the_log_is_reported_as_a_gap() -> None:
    """A server that restarts with a new default log cannot resume the client's id: the
    client reports a gap (instead of silently missing events) and streams on."""

    async def main() -> None:
        server, _ = await started_server()
        async with FaultProxy(server.address) as proxy:
            host, port = proxy.address
            watch = Watch(EventSource(config(f"http://{host}:{port}/events")))
            await watch.until_state(ClientState.STREAMING)
            before = server.publish(Event(data="before")).id
            await watch.until_events(1)
            await server.aclose()
            server, _ = await started_server()
            proxy.upstream = server.address
            await watch.until(
                lambda w: any(isinstance(r, ReportGap) for r in w.reports), "a gap report"
            )
            (gap,) = [r for r in watch.reports if isinstance(r, ReportGap)]
            assert (gap.last_event_id, gap.reason) == (before, "unknown")
            await watch.until_state(ClientState.STREAMING, count=2)
            server.publish(Event(data="after"))
            await watch.until_events(2)
            assert [e.data for e in watch.events] == ["before", "after"]
            await watch.aclose()
        await server.aclose()

    run(main)


def test_reconnection_sends_last_event_id() -> None:
    """After the body ends, the next request carries the last event ID received; a 204
    then closes the client for good."""

    async def handler(
        peer: Scripted, index: int, request: IncomingRequest, writer: asyncio.StreamWriter
    ) -> None:
        if index == 0:
            writer.write(EVENT_STREAM_HEAD + b"Connection: close\r\n\r\nid: 42\ndata: a\n\n")
        else:
            await no_content(peer, index, request, writer)

    async def main() -> None:
        async with Scripted(handler) as peer:
            watch = Watch(EventSource(config(peer.url())))
            await watch.end()
            assert [e.data for e in watch.events] == ["a"]
            assert [field(r, "last-event-id") for r in peer.requests] == [None, "42"]
            assert watch.states[-1] is ClientState.CLOSED

    run(main)


@pytest.mark.parametrize("status", [204, 404])
def test_refusal_closes_without_retry(status: int) -> None:
    """204 or 404: the client closes and the iteration ends, quietly for 204, raising
    HTTPStatusError for 404; no second request is made."""

    async def handler(
        peer: Scripted, index: int, request: IncomingRequest, writer: asyncio.StreamWriter
    ) -> None:
        writer.write(b"HTTP/1.1 %d X\r\nContent-Length: 0\r\n\r\n" % status)

    async def main() -> None:
        async with Scripted(handler) as peer:
            watch = Watch(EventSource(config(peer.url())))
            await watch.end()
            assert watch.states == [ClientState.CONNECTING, ClientState.CLOSED]
            assert watch.statuses[-1].reason is not None
            assert str(status) in watch.statuses[-1].reason
            if status == 204:
                assert watch.error is None
            else:
                assert isinstance(watch.error, HTTPStatusError)
                assert watch.error.status == 404
            await asyncio.sleep(0.1)  # a retry (50 ms backoff) would have come by now
            assert peer.connections == 1

    run(main)


def test_our_server_answers_404_off_its_path() -> None:
    """The server serves one path: another gets 404, and the client closes."""

    async def main() -> None:
        server, url = await started_server()
        watch = Watch(EventSource(config(url.replace("/events", "/other"))))
        await watch.end()
        assert watch.statuses[-1].reason == "HTTP 404"
        assert len(server.broadcaster) == 0
        await server.aclose()

    run(main)


def test_redirect_is_followed() -> None:
    """A 307 with Location sends the client to our server, which streams."""

    async def main() -> None:
        server, url = await started_server()

        async def handler(
            peer: Scripted, index: int, request: IncomingRequest, writer: asyncio.StreamWriter
        ) -> None:
            writer.write(
                b"HTTP/1.1 307 Temporary Redirect\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n"
                % url.encode()
            )

        async with Scripted(handler) as redirector:
            watch = Watch(EventSource(config(redirector.url("/old?x=1"))))
            await watch.until_state(ClientState.STREAMING)
            server.publish(Event(data="moved"))
            await watch.until_events(1)
            assert watch.events[0].data == "moved"
            assert [r.target for r in redirector.requests] == ["/old?x=1"]
            await watch.aclose()
        await server.aclose()

    run(main)


@pytest.mark.parametrize("is_gzip_accepted", [True, False])
def test_gzip(is_gzip_accepted: bool) -> None:
    """The stream is gzip when the client accepts it (identity otherwise); events are the
    same either way."""

    async def main() -> None:
        server, url = await started_server()
        watch = Watch(EventSource(config(url, is_gzip_accepted=is_gzip_accepted)))
        await watch.until_state(ClientState.STREAMING)
        (subscriber,) = server.broadcaster
        assert subscriber.session.content_encoding == ("gzip" if is_gzip_accepted else None)
        sent = [f"{i} " + "compressible " * 50 for i in range(50)]
        for data in sent:
            server.publish(Event(data=data))
        await watch.until_events(50)
        assert [e.data for e in watch.events] == sent
        await watch.aclose()
        await server.aclose()

    run(main)


def test_heartbeats_keep_an_idle_stream_alive() -> None:
    """An idle stream gets heartbeat comments; a client whose stall timeout is shorter than
    the idle time but longer than the heartbeat interval stays on one connection."""

    async def main() -> None:
        server, url = await started_server(config=ServerConfig(heartbeat_interval=0.05))
        host, port = server.address
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while received.count(HEARTBEAT) < 3:
            chunk = await asyncio.wait_for(reader.read(4096), TIMEOUT)
            assert chunk, "the server closed"
            received += chunk
        writer.transport.abort()

        source = EventSource(config(url, stall_timeout=0.5))
        watch = Watch(source)
        await watch.until_state(ClientState.STREAMING)
        await asyncio.sleep(1.2)  # more than two stall timeouts of silence but heartbeats
        assert ClientState.RECONNECTING not in watch.states
        assert source.metrics.connection_attempts == 1
        await watch.aclose()
        await server.aclose()

    run(main)


def test_stalled_server_is_replaced_after_stall_timeout() -> None:
    """A server that sends the head and an event, then nothing: after stall_timeout the
    client drops it and connects again."""

    async def handler(
        peer: Scripted, index: int, request: IncomingRequest, writer: asyncio.StreamWriter
    ) -> None:
        if index == 0:
            writer.write(EVENT_STREAM_HEAD + b"\r\ndata: first\n\n")
            await peer.hold()
        else:
            await no_content(peer, index, request, writer)

    async def main() -> None:
        async with Scripted(handler) as peer:
            watch = Watch(
                EventSource(
                    config(peer.url(), stall_timeout=0.3),
                    options=ClientOptions(connect_timeout=None),
                )
            )
            await watch.until_state(ClientState.RECONNECTING)
            streaming, reconnecting = watch.statuses[-2:]
            assert (streaming.state, reconnecting.state) == (
                ClientState.STREAMING, ClientState.RECONNECTING
            )
            assert reconnecting.since - streaming.since >= 0.3  # the client's own clock
            assert reconnecting.reason == "stalled: no complete line for 0.3 s"
            await watch.end()
            assert [e.data for e in watch.events] == ["first"]
            assert peer.connections == 2

    run(main)


def test_server_that_never_answers_hits_connect_timeout() -> None:
    """A server that reads the request and never answers: the attempt fails after
    connect_timeout and the client connects again."""

    async def handler(
        peer: Scripted, index: int, request: IncomingRequest, writer: asyncio.StreamWriter
    ) -> None:
        if index == 0:
            await peer.hold()
        else:
            await no_content(peer, index, request, writer)

    async def main() -> None:
        async with Scripted(handler) as peer:
            watch = Watch(EventSource(
                config(peer.url(), stall_timeout=None),
                options=ClientOptions(connect_timeout=0.3),
            ))
            await watch.end()
            assert watch.states == [
                ClientState.CONNECTING, ClientState.RECONNECTING, ClientState.CONNECTING,
                ClientState.CLOSED,
            ]
            assert watch.statuses[1].reason == "no response within 0.3 s"
            assert peer.connections == 2

    run(main)


def test_connection_refused_then_the_server_comes_up() -> None:
    """Nothing listens: the client backs off and retries, and streams once a server is up
    on that port."""

    async def main() -> None:
        server, url = await started_server()
        port = server.address[1]
        await server.aclose()  # the port is free again, and known
        source = EventSource(config(url))
        watch = Watch(source)
        await watch.until_state(ClientState.RECONNECTING, count=2)
        reason = watch.statuses[-1].reason
        assert reason is not None and "connect failed" in reason
        server = EventStreamServer(config=QUIET)
        await server.start(port=port)
        await watch.until_state(ClientState.STREAMING)
        server.publish(Event(data="up"))
        await watch.until_events(1)
        assert source.metrics.connection_attempts >= 3
        assert source.metrics.reconnections == 1
        await watch.aclose()
        await server.aclose()

    run(main)


def test_slow_client_is_dropped_fast_client_gets_everything() -> None:
    """A client that never reads fills the kernel buffers and then its bounded queue: it is
    dropped, while a client that keeps up gets every event on one connection."""

    async def main() -> None:
        server, url = await started_server(options=ServerOptions(max_queued_bytes=64 * 1024))
        host, port = server.address
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(slow, (host, port))
            slow.send(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")  # then never reads
            fast_source = EventSource(config(url))
            fast = Watch(fast_source)
            await fast.until_state(ClientState.STREAMING)
            await until(lambda: len(server.broadcaster) == 2, "both subscribed")
            data = "x" * 8000
            published = 0
            while server.broadcaster.dropped == 0:
                assert published < 4000, "32 MB published and nobody was dropped"
                for _ in range(25):
                    server.publish(Event(data=f"{published} {data}"))
                    published += 1
                await fast.until_events(published)  # the fast client keeps up
            for _ in range(25):  # the stream goes on for the others
                server.publish(Event(data=f"{published} {data}"))
                published += 1
            await fast.until_events(published)
            assert published * 8000 > 2_000_000
            assert server.broadcaster.dropped == 1
            assert [e.data for e in fast.events] == [f"{i} {data}" for i in range(published)]
            assert fast_source.metrics.connection_attempts == 1
            assert len(server.broadcaster) == 1  # the slow one is gone
            await fast.aclose()
        finally:
            slow.close()
        await server.aclose()

    run(main)


def test_max_subscribers_answers_503() -> None:
    """Past max_subscribers a new client gets 503 (and, not retrying 503, closes)."""

    async def main() -> None:
        server, url = await started_server(options=ServerOptions(max_subscribers=1))
        first = Watch(EventSource(config(url)))
        await first.until_state(ClientState.STREAMING)
        second = Watch(EventSource(config(url)))
        await second.end()
        assert second.statuses[-1].reason == "HTTP 503"
        assert len(server.broadcaster) == 1
        await first.aclose()
        await server.aclose()

    run(main)


def test_tls_with_custom_contexts() -> None:
    """https with a test CA: the server's and the client's ssl_context are used; a client
    that does not trust the CA fails the handshake and keeps retrying."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)

    async def main() -> None:
        server = EventStreamServer(config=QUIET)
        await server.start(ssl_context=server_context)
        url = f"https://127.0.0.1:{server.address[1]}/events"
        watch = Watch(EventSource(
            config(url),
            options=ClientOptions(ssl_context=client_context),
        ))
        await watch.until_state(ClientState.STREAMING)
        server.publish(Event(data="secret"))
        await watch.until_events(1)
        assert watch.events[0].data == "secret"

        untrusting = Watch(EventSource(config(url)))  # the system store lacks the test CA
        await untrusting.until_state(ClientState.RECONNECTING)
        reason = untrusting.statuses[-1].reason
        assert reason is not None and "CERTIFICATE_VERIFY_FAILED" in reason
        await untrusting.aclose()
        await watch.aclose()
        await server.aclose()

    run(main)


def test_event_source_api() -> None:
    """A URL string is enough; ``async for`` yields events only; a source is iterated once;
    aclose() twice is fine; a bad read_size is refused."""
    with pytest.raises(InvalidConfigError):
        EventSource("http://127.0.0.1:1/events", options=ClientOptions(read_size=0))

    async def main() -> None:
        server, url = await started_server()
        statuses: list[ReportStatus] = []

        def on_status(report: ReportStatus) -> None:
            statuses.append(report)
            if report.state is ClientState.STREAMING:
                server.publish(Event(data="a"))
                server.publish(Event(data="b"))

        source = EventSource(url, on_status=on_status)
        received: list[str] = []
        async for event in source:
            assert isinstance(event, Event)
            received.append(event.data)
            if len(received) == 2:
                break
        assert received == ["a", "b"]
        with pytest.raises(RuntimeError):
            await source.reports().__anext__()
        await source.aclose()
        await source.aclose()
        assert [s.state for s in statuses][-1] is ClientState.CLOSED
        await server.aclose()

    run(main)


def test_connection_reset_is_a_lost_connection() -> None:
    """A connection reset (here before the first byte) counts as lost: the client reconnects
    and streams."""

    async def main() -> None:
        server, _ = await started_server()
        async with FaultProxy(server.address) as proxy:
            proxy.schedule(Refuse())
            host, port = proxy.address
            watch = Watch(EventSource(config(f"http://{host}:{port}/events")))
            await watch.until_state(ClientState.STREAMING)
            reasons = [s.reason for s in watch.statuses if s.state is ClientState.RECONNECTING]
            assert len(reasons) == 1 and reasons[0] is not None
            assert reasons[0].startswith("connection error: ConnectionResetError")
            server.publish(Event(data="after the reset"))
            await watch.until_events(1)
            await watch.aclose()
        await server.aclose()

    run(main)


def test_connect_timeout_during_a_hanging_tls_handshake() -> None:
    """A TLS handshake the server never answers is bounded by connect_timeout."""

    async def main() -> None:
        async with Scripted(no_content, is_request_read=False) as peer:
            url = peer.url().replace("http:", "https:")
            source = EventSource(
                config(url, stall_timeout=None),
                options=ClientOptions(
                    connect_timeout=0.3, ssl_context=ssl.create_default_context()
                ),
            )
            watch = Watch(source)
            await watch.until_state(ClientState.RECONNECTING)
            assert watch.statuses[-1].reason == "no response within 0.3 s"
            await watch.aclose()

    run(main)


def test_a_client_that_reads_late_gets_everything() -> None:
    """Backpressure: a client that does not read for a while (the server's socket pauses
    and its queue grows within max_queued_bytes) gets every event once it reads again."""

    async def main() -> None:
        server, _ = await started_server(options=ServerOptions(max_queued_bytes=16 << 20))
        late = socket.socket()
        late.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        late.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            await loop.sock_connect(late, server.address)
            await loop.sock_sendall(late, b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
            await until(lambda: len(server.broadcaster) == 1, "the subscription")
            data = "y" * 8000
            (subscriber,) = server.broadcaster
            published = 0
            while subscriber.queued_bytes == 0:  # until the socket is full and pauses
                assert published < 1000, "8 MB published and the socket never filled"
                server.publish(Event(data=f"{published} {data}"))
                published += 1
            for _ in range(50):  # these wait in the queue
                server.publish(Event(data=f"{published} {data}"))
                published += 1
            connection = h11.Connection(h11.CLIENT)
            connection.send(h11.Request(method="GET", target="/events", headers=[("Host", "x")]))
            parser = Parser()
            received: list[str] = []
            while len(received) < published:
                chunk = await asyncio.wait_for(loop.sock_recv(late, 65536), TIMEOUT)
                assert chunk, "the server closed"
                connection.receive_data(chunk)
                while (item := connection.next_event()) is not h11.NEED_DATA:
                    if isinstance(item, h11.Data):
                        received += [e.data for e in parser.feed(bytes(item.data))
                                     if isinstance(e, Event)
                                     and e.event != POSITION_EVENT_TYPE]
            assert received == [f"{i} {data}" for i in range(published)]
            assert server.broadcaster.dropped == 0
        finally:
            late.close()
        await server.aclose()

    run(main)


# --- closing ---------------------------------------------------------------------------------


def test_closed_before_iterating_never_connects() -> None:
    """A source closed before it is iterated yields nothing and opens no connection."""

    async def main() -> None:
        async with Scripted(no_content) as peer:
            source = EventSource(config(peer.url()))
            await source.aclose()
            assert [report async for report in source.reports()] == []
            assert source.session.state is ClientState.CLOSED
            assert peer.connections == 0

    run(main)


def test_aclose_while_connecting_ends_the_iteration() -> None:
    """aclose() from another task while a TLS handshake hangs: the iteration ends without
    an exception and the connect task is gone."""

    async def main() -> None:
        async with Scripted(no_content, is_request_read=False) as peer:
            url = peer.url().replace("http:", "https:")
            watch = Watch(EventSource(
                config(url),
                options=ClientOptions(ssl_context=ssl.create_default_context()),
            ))
            await until(lambda: peer.connections == 1, "the connection")
            assert watch.states == [ClientState.CONNECTING]
            await watch.aclose()
            assert watch.states == [ClientState.CONNECTING]

    run(main)


def test_aclose_while_streaming_ends_the_iteration() -> None:
    """aclose() from another task while the client waits for bytes: the iteration ends
    without an exception and the server sees the connection go."""

    async def main() -> None:
        server, url = await started_server()
        watch = Watch(EventSource(config(url)))
        await watch.until_state(ClientState.STREAMING)
        await watch.aclose()
        await until(lambda: len(server.broadcaster) == 0, "the server to see the close")
        await server.aclose()

    run(main)


def test_aclose_while_reconnecting_ends_the_iteration_at_once() -> None:
    """aclose() during a long backoff wait ends the iteration now, not when the wait ends."""

    async def main() -> None:
        server, url = await started_server()
        await server.aclose()
        slow_backoff = BackoffConfig(base_delay=30.0, max_delay=30.0)
        watch = Watch(EventSource(config(url, backoff=slow_backoff)))
        await watch.until_state(ClientState.RECONNECTING)
        loop = asyncio.get_running_loop()
        closing_at = loop.time()
        await watch.aclose()
        assert loop.time() - closing_at < 5.0

    run(main)


def test_async_with_closes_when_the_loop_is_left_early() -> None:
    """Leaving ``async for`` early inside ``async with`` closes the connection."""

    async def main() -> None:
        server, url = await started_server()
        async with EventSource(config(url)) as source:
            server.publish(Event(data="a"))  # a new client starts after what was published
            async for report in source.reports():
                if isinstance(report, ReportStatus) and report.state is ClientState.STREAMING:
                    server.publish(Event(data="b"))
                if isinstance(report, Deliver):
                    assert report.event.data == "b"
                    break
        assert source.session.state is ClientState.CLOSED
        await until(lambda: len(server.broadcaster) == 0, "the server to see the close")
        await server.aclose()

    run(main)


def test_server_aclose_ends_every_stream() -> None:
    """Server aclose(): clients see the end of their stream (and start reconnecting), a
    connection that never sent its request is cut, and the port stops listening."""

    async def main() -> None:
        server, url = await started_server()
        host, port = server.address
        watches = [Watch(EventSource(config(url))) for _ in range(3)]
        for watch in watches:
            await watch.until_state(ClientState.STREAMING)
        _, idle_writer = await asyncio.open_connection(host, port)  # sends nothing
        await server.aclose(grace=2.0)
        for watch in watches:
            await watch.until_state(ClientState.RECONNECTING)
            assert watch.statuses[-1].reason == "stream ended"
        assert len(server.broadcaster) == 0
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection(host, port)
        idle_writer.transport.abort()
        for watch in watches:
            await watch.aclose()

    run(main)


def test_server_aclose_aborts_what_cannot_take_the_end_within_grace() -> None:
    """A client that never reads cannot take the end of its stream: aclose() aborts it when
    the grace period ends instead of waiting for it."""

    async def main() -> None:
        server, _ = await started_server(options=ServerOptions(max_queued_bytes=16 << 20))
        stuck = socket.socket()
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            await loop.sock_connect(stuck, server.address)
            await loop.sock_sendall(stuck, b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
            await until(lambda: len(server.broadcaster) == 1, "the subscription")
            (subscriber,) = server.broadcaster
            for i in range(1000):  # until the socket is full and pauses
                server.publish(Event(data=f"{i} " + "z" * 8000))
                if subscriber.queued_bytes:
                    break
            assert subscriber.queued_bytes > 0, "8 MB published and the socket never filled"
            closing_at = loop.time()
            await server.aclose(grace=0.2)
            assert 0.15 <= loop.time() - closing_at < 5.0
            assert len(server.broadcaster) == 0
        finally:
            stuck.close()

    run(main)


def test_server_as_a_context_manager() -> None:
    """``async with EventStreamServer()`` starts it (address known) and closes it."""

    async def main() -> None:
        unstarted = EventStreamServer()
        with pytest.raises(RuntimeError):
            unstarted.address  # noqa: B018 - the property raises
        await unstarted.aclose()  # closing a server never started is fine
        async with EventStreamServer(config=QUIET) as server:
            host, port = server.address
            assert (host, port > 0) == ("127.0.0.1", True)
            watch = Watch(EventSource(config(f"http://{host}:{port}/events")))
            await watch.until_state(ClientState.STREAMING)
        await watch.until_state(ClientState.RECONNECTING)  # the server ended the stream
        await watch.aclose()

    run(main)


def test_request_timeout_cuts_a_silent_connection() -> None:
    """A connection that sends no request within request_timeout is reset by the server."""

    async def main() -> None:
        server, _ = await started_server(options=ServerOptions(request_timeout=0.1))
        reader, writer = await asyncio.open_connection(*server.address)
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(), TIMEOUT)
        writer.transport.abort()
        await server.aclose()

    run(main)


def test_garbage_request_gets_400_and_bad_method_405() -> None:
    """The server answers bytes that are not HTTP with 400, and a PUT with 405."""

    async def exchange(address: tuple[str, int], data: bytes) -> bytes:
        reader, writer = await asyncio.open_connection(*address)
        writer.write(data)
        answer = await asyncio.wait_for(reader.read(), TIMEOUT)
        writer.transport.abort()
        return answer

    async def main() -> None:
        server, _ = await started_server()
        answer = await exchange(server.address, b"NOT HTTP AT ALL\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 400 ")
        answer = await exchange(server.address, b"PUT /events HTTP/1.1\r\nHost: x\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 405 ") and b"Allow: GET, POST" in answer
        await server.aclose()

    run(main)


# --- real peers ------------------------------------------------------------------------------


def test_httpx_sse_reads_our_server() -> None:
    """httpx + httpx-sse (gzip accepted by httpx) get the events our server publishes. It
    yields every event whatever its type, so first the position block (its own type, empty
    data, the log's position as id), which an application reading its own types skips."""
    httpx = pytest.importorskip("httpx")
    httpx_sse = pytest.importorskip("httpx_sse")

    async def main() -> None:
        server, url = await started_server()
        sent = [Event(data=f"line {i}\nsecond", event="update") for i in range(20)]
        ids: list[str] = []
        received: list[tuple[str, str, str]] = []
        position = server.broadcaster.replay_log.position
        async with (
            httpx.AsyncClient(timeout=TIMEOUT) as client,
            httpx_sse.aconnect_sse(client, "GET", url) as event_source,
        ):
            assert event_source.response.headers["content-encoding"] == "gzip"
            await until(lambda: len(server.broadcaster) == 1, "httpx to subscribe")
            ids += [server.publish(event).id for event in sent]
            async for sse in event_source.aiter_sse():
                received.append((sse.data, sse.event, sse.id))
                if len(received) == len(sent) + 1:
                    break
        assert received[0] == ("", POSITION_EVENT_TYPE, position)
        assert received[1:] == [(e.data, e.event, id) for e, id in zip(sent, ids, strict=True)]
        await until(lambda: len(server.broadcaster) == 0, "the server to see the close")
        await server.aclose()

    run(main)


def resume_from(last_event_id: str | None) -> int:
    return int(last_event_id) + 1 if last_event_id else 0


def test_our_client_against_sse_starlette() -> None:
    """sse-starlette under uvicorn: our client gets its events, reconnects with
    Last-Event-ID when the stream ends, and stops on its 204."""
    pytest.importorskip("sse_starlette")
    uvicorn = pytest.importorskip("uvicorn")
    from sse_starlette.sse import EventSourceResponse
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    seen_ids: list[str | None] = []

    async def stream(request: Request) -> Response:
        last = request.headers.get("last-event-id")
        seen_ids.append(last)
        start = resume_from(last)
        if start >= 6:
            return Response(status_code=204)

        async def events() -> Any:
            for i in range(start, start + 3):
                yield {"id": str(i), "event": "n", "data": f"starlette {i}"}

        return EventSourceResponse(events())

    app = Starlette(routes=[Route("/events", stream)])

    async def main() -> None:
        server = uvicorn.Server(uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"
        ))
        serving = asyncio.create_task(server.serve())
        try:
            await until(lambda: server.started, "uvicorn to start")
            port = server.servers[0].sockets[0].getsockname()[1]
            watch = Watch(EventSource(config(f"http://127.0.0.1:{port}/events")))
            await watch.end()
            assert [(e.data, e.event, e.id) for e in watch.events] == [
                (f"starlette {i}", "n", str(i)) for i in range(6)
            ]
            assert seen_ids == [None, "2", "5"]
            assert watch.states[-1] is ClientState.CLOSED
        finally:
            server.should_exit = True
            await serving

    # sse-starlette starts a shutdown watcher per event loop that polls forever.
    run(main, foreign=frozenset({"_shutdown_watcher"}))


def test_our_client_against_aiohttp_sse() -> None:
    """aiohttp-sse under aiohttp: our client gets its events, reconnects with Last-Event-ID
    when the stream ends, and stops on its 204."""
    web = pytest.importorskip("aiohttp.web")
    aiohttp_sse = pytest.importorskip("aiohttp_sse")

    seen_ids: list[str | None] = []

    async def stream(request: Any) -> Any:
        last = request.headers.get("Last-Event-ID")
        seen_ids.append(last)
        start = resume_from(last)
        if start >= 6:
            return web.Response(status=204)
        async with aiohttp_sse.sse_response(request) as response:
            for i in range(start, start + 3):
                await response.send(f"aiohttp {i}\nmore", id=str(i), event="n")
        return response

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/events", stream)
        runner = web.AppRunner(app)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            watch = Watch(EventSource(config(f"http://127.0.0.1:{port}/events")))
            await watch.end()
            assert [(e.data, e.event, e.id) for e in watch.events] == [
                (f"aiohttp {i}\nmore", "n", str(i)) for i in range(6)
            ]
            assert seen_ids == [None, "2", "5"]
        finally:
            await runner.cleanup()

    run(main)


def test_stamped_events_give_the_client_its_latency() -> None:
    """ServerConfig.is_send_time_stamped on the server and ClientConfig.is_latency_measured
    on the client: the server stamps each published event with its wall clock, the client
    reads them with its own, and the latency histogram counts every event (loopback: well
    under a second); the events are the ones published, stamps unseen."""

    async def main() -> None:
        server, url = await started_server(
            config=ServerConfig(heartbeat_interval=None, is_send_time_stamped=True)
        )
        source = EventSource(config(url, is_latency_measured=True))
        watch = Watch(source)
        await watch.until_state(ClientState.STREAMING)
        for n in range(20):
            server.publish(Event(data=f"e{n}"))
        await watch.until_events(20)
        assert [e.data for e in watch.events] == [f"e{n}" for n in range(20)]
        latency = source.metrics.latency
        assert latency.count == 20 and 0.0 <= latency.maximum < 1.0
        await watch.aclose()
        await server.aclose()

    run(main)
