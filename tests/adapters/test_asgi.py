"""Tests of the ASGI adapter (EventStream).

Two layers: in-memory ASGI peers drive the app under both anyio backends (asyncio and trio)
for the plumbing -- message order, waking, heartbeats, disconnects, a write that never
returns; then a real uvicorn server on 127.0.0.1 with the app mounted in Starlette, read by
real clients (httpx + httpx-sse, sseclient-py, raw sockets).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import math
import socket
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

try:  # real peers (the peers extra), for the tests against a real server only
    import httptools  # noqa: F401  (uvicorn's other HTTP implementation)
    import httpx
    import sseclient
    import uvicorn
    from httpx_sse import aconnect_sse
    from starlette.applications import Starlette
    from starlette.routing import Mount, Route
except ModuleNotFoundError as error:
    MISSING_PEER: str | None = f"{error.name} is not installed (the peers extra)"
else:
    MISSING_PEER = None

from sse_core import (
    HEARTBEAT,
    Broadcaster,
    Comment,
    Event,
    InvalidConfigError,
    LocalProtocolError,
    Parser,
    Send,
    ServerConfig,
    serialize,
)
from sse_core.adapters import ServerOptions
from sse_core.adapters.asgi import EventStream
from sse_core.state import GAP_EVENT_TYPE, POSITION_EVENT_TYPE, ReplayConfig, ReplayLog
from tests.test_docs_examples import code_blocks

pytestmark = pytest.mark.anyio

QUIET = ServerConfig(heartbeat_interval=None)
TIMEOUT = 10.0  # only ever reached when a test fails
BOTH_BACKENDS = pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
ASYNCIO_ONLY = pytest.mark.parametrize("anyio_backend", ["asyncio"])
#: A test against a real server (uvicorn, Starlette, httpx, sseclient-py): skips without them.
REAL_PEERS = pytest.mark.skipif(MISSING_PEER is not None, reason=str(MISSING_PEER))


def position_block(id: str) -> bytes:
    """The bytes of the position block naming ``id``."""
    return serialize(Event(data="", event=POSITION_EVENT_TYPE, id=id))


async def until(predicate: Callable[[], bool], what: str) -> None:
    """Wait for a condition no event announces (a count in another task), failing after
    TIMEOUT."""
    with anyio.fail_after(TIMEOUT):
        while not predicate():
            await anyio.sleep(0.005)
    assert predicate(), what


# --- in-memory ASGI peers ------------------------------------------------------------------------


class Peer:
    """An ASGI client in memory: receive() gives the request, then waits for disconnect();
    send() hands each message over, or never returns once stall() was called."""

    def __init__(
        self,
        method: str = "GET",
        headers: list[tuple[bytes, bytes]] | None = None,
        query: bytes = b"",
    ) -> None:
        self.scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": "/events",
            "raw_path": b"/events",
            "root_path": "",
            "query_string": query,
            "headers": headers or [],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
        }
        self._requested = False
        self._gone = anyio.Event()
        self._outbox, self._inbox = anyio.create_memory_object_stream[dict[str, Any]](math.inf)
        self.is_stalled = False
        self.finished = anyio.Event()

    async def receive(self) -> dict[str, Any]:
        if not self._requested:
            self._requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self._gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Any) -> None:
        if self.is_stalled:
            await anyio.sleep_forever()
        await self._outbox.send(dict(message))

    def stall(self) -> None:
        """From now on every send() blocks, like a socket whose reader went to sleep."""
        self.is_stalled = True

    def disconnect(self) -> None:
        self._gone.set()

    async def next(self) -> dict[str, Any]:
        with anyio.fail_after(TIMEOUT):
            return await self._inbox.receive()

    async def body(self) -> bytes:
        message = await self.next()
        assert message["type"] == "http.response.body" and message["more_body"] is True
        return bytes(message["body"])

    async def run(self, app: EventStream) -> None:
        """Serve this peer (start it in a task group); sets :attr:`finished` on return."""
        try:
            await app(self.scope, self.receive, self.send)
        finally:
            self.finished.set()
            self._outbox.close()

    def close(self) -> None:
        self._outbox.close()
        self._inbox.close()


@contextlib.contextmanager
def peers(*items: Peer) -> Iterator[None]:
    try:
        yield
    finally:
        for peer in items:
            peer.close()


async def started(peer: Peer) -> bytes:
    """Read the head and the first body (the log's position); return the body."""
    start = await peer.next()
    assert start["type"] == "http.response.start" and start["status"] == 200
    assert (b"content-type", b"text/event-stream; charset=utf-8") in start["headers"]
    return await peer.body()


@BOTH_BACKENDS
async def test_plumbing_publish_heartbeat_disconnect() -> None:
    """Head, position, published events and heartbeats arrive as ASGI messages in order; a
    client's http.disconnect ends its task and unsubscribes it."""
    stream = EventStream(ReplayLog(ReplayConfig(epoch="t")),
                         config=ServerConfig(heartbeat_interval=0.05))
    peer = Peer()
    with peers(peer):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(peer.run, stream)
            assert await started(peer) == position_block("t-start")
            assert len(stream.broadcaster) == 1
            stored = [stream.publish(Event(data=f"e{i}")) for i in range(3)]
            received = b""
            while len(received) < sum(len(s.encoded) for s in stored):
                received += await peer.body()
            assert received == b"".join(s.encoded for s in stored)
            assert await peer.body() == HEARTBEAT  # 50 ms of silence
            peer.disconnect()
            with anyio.fail_after(TIMEOUT):
                await peer.finished.wait()
        assert len(stream.broadcaster) == 0


@BOTH_BACKENDS
async def test_query_parameter_resumes() -> None:
    """The target handed to the session includes the query string (lastEventId)."""
    stream = EventStream(ReplayLog(), config=QUIET)
    first = stream.publish(Event(data="a"))
    second = stream.publish(Event(data="b"))
    peer = Peer(query=f"lastEventId={first.id}".encode())
    with peers(peer):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(peer.run, stream)
            assert await started(peer) == second.encoded
            peer.disconnect()


@BOTH_BACKENDS
async def test_overflow_before_the_task_runs_ends_the_stream_cleanly() -> None:
    """Publishing past max_queued_bytes before the client's task could send anything drops
    it: the client gets its head, its position and a clean end of the response."""
    stream = EventStream(
        ReplayLog(ReplayConfig(epoch="t")),
        config=QUIET,
        options=ServerOptions(max_queued_bytes=100),
    )
    peer = Peer()
    with peers(peer):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(peer.run, stream)
            await until(lambda: len(stream.broadcaster) == 1, "subscribed")
            for _ in range(5):
                stream.publish(Event(data="x" * 30))
            assert await started(peer) == position_block("t-start")
            assert await peer.next() == {
                "type": "http.response.body", "body": b"", "more_body": False
            }
            with anyio.fail_after(TIMEOUT):
                await peer.finished.wait()
        assert stream.broadcaster.dropped == 1 and len(stream.broadcaster) == 0


@BOTH_BACKENDS
async def test_client_stalled_in_a_write_is_dropped_and_others_keep_everything() -> None:
    """A client whose send() never returns is dropped once its queue passes the bound: its
    task ends at once (no leak), publish never waited, and a reading client got every event."""
    stream = EventStream(ReplayLog(), config=QUIET, options=ServerOptions(max_queued_bytes=200))
    fast, slow = Peer(), Peer()
    with peers(fast, slow):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(fast.run, stream)
            tasks.start_soon(slow.run, stream)
            await started(fast)
            await started(slow)
            slow.stall()
            sent: list[bytes] = []
            received = b""
            for i in range(20):
                sent.append(stream.publish(Event(data=f"{i:040d}")).encoded)
                received += await fast.body()
                if slow.finished.is_set():
                    break
            with anyio.fail_after(TIMEOUT):
                await slow.finished.wait()
            assert stream.broadcaster.dropped == 1 and len(stream.broadcaster) == 1
            assert 4 <= len(sent) < 20  # 200 bytes hold four 50-byte events, not five
            assert received == b"".join(sent)
            fast.disconnect()


@BOTH_BACKENDS
async def test_aclose_ends_streams_and_cuts_stalled_clients() -> None:
    """aclose() ends a reading client's response cleanly, cuts off a stalled one after the
    timeout, returns only when every client's task is over, then refuses with 503."""
    stream = EventStream(ReplayLog(), config=QUIET, options=ServerOptions(busy_retry_delay=2.5))
    reading, stalled = Peer(), Peer()
    with peers(reading, stalled):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(reading.run, stream)
            tasks.start_soon(stalled.run, stream)
            await started(reading)
            await started(stalled)
            stalled.stall()
            stream.publish(Event(data="last"))
            await reading.body()
            await stream.aclose(timeout=0.1)
            assert reading.finished.is_set() and stalled.finished.is_set()
            assert stream.is_closed and len(stream.broadcaster) == 0
            assert await reading.next() == {
                "type": "http.response.body", "body": b"", "more_body": False
            }
        await stream.aclose()  # again: nothing left to wait for
        with pytest.raises(LocalProtocolError, match="aclose"):
            stream.publish(Event(data="late"))
        late = Peer()
        with peers(late):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(late.run, stream)
                start = await late.next()
                assert start["status"] == 503 and (b"retry-after", b"3") in start["headers"]


@BOTH_BACKENDS
async def test_head_other_methods_websocket_and_lifespan() -> None:
    """HEAD gets the stream's head and no body (nobody subscribes), POST gets 405 with Allow,
    a websocket is refused, lifespan startup/shutdown are answered (shutdown closes)."""
    stream = EventStream(config=QUIET)
    head, post = Peer("HEAD", [(b"accept-encoding", b"gzip")]), Peer("POST")
    with peers(head, post):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(head.run, stream)
            tasks.start_soon(post.run, stream)
            start = await head.next()
            assert start["status"] == 200 and (b"content-encoding", b"gzip") in start["headers"]
            assert await head.next() == {
                "type": "http.response.body", "body": b"", "more_body": False
            }
            refused = await post.next()
            assert refused["status"] == 405 and (b"allow", b"GET, HEAD") in refused["headers"]
    assert len(stream.broadcaster) == 0

    sent: list[dict[str, Any]] = []

    async def record(message: Any) -> None:
        sent.append(dict(message))

    async def never() -> dict[str, Any]:
        raise AssertionError("a websocket is refused without reading")

    await stream({"type": "websocket", "path": "/events", "headers": []}, never, record)
    assert sent == [{"type": "websocket.close", "code": 1008}]

    lifespan = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def lifespan_receive() -> dict[str, Any]:
        return next(lifespan)

    sent.clear()
    await stream({"type": "lifespan"}, lifespan_receive, record)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert stream.is_closed

    with pytest.raises(LocalProtocolError, match="http requests"):
        await stream({"type": "carrier-pigeon"}, never, record)


@BOTH_BACKENDS
async def test_send_raising_oserror_is_a_lost_connection() -> None:
    """A server whose send() raises OSError once the client is gone (ASGI 2.4): the task ends
    quietly and the subscriber is forgotten."""
    stream = EventStream(config=QUIET)
    peer = Peer()
    calls = 0

    async def send(message: Any) -> None:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise OSError("connection reset")

    await stream(peer.scope, peer.receive, send)
    peer.close()
    assert calls == 2 and len(stream.broadcaster) == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"options": {"busy_retry_delay": -1}},
        {"options": {"busy_retry_delay": math.inf}},
        {"options": {"busy_retry_delay": True}},
        {"config": "fast"},
        {"clock": 3.0},
        {"options": {"max_queued_bytes": 0}},
        {"options": {"max_subscribers": 0}},
        {"options": "fast"},
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, Any]) -> None:
    """Bad arguments are InvalidConfigError at construction (options: when the
    ServerOptions is built)."""
    with pytest.raises(InvalidConfigError):
        options = kwargs.pop("options", None)
        if isinstance(options, dict):
            options = ServerOptions(**options)
        EventStream(**kwargs, options=options)


def test_default_log_ids_carry_a_random_epoch() -> None:
    """Without a log, ids carry a per-instance epoch: a restart does not reuse them."""
    one, two = EventStream(), EventStream()
    id_one = one.publish(Event(data="a")).id
    id_two = two.publish(Event(data="a")).id
    assert id_one != id_two and id_one.endswith("-0") and id_two.endswith("-0")


# --- a real server: uvicorn, Starlette, real clients ----------------------------------------------


@contextlib.asynccontextmanager
async def serving(
    app: Any, *, send_buffer: int | None = None, http: str = "h11"
) -> AsyncIterator[str]:
    """Run ``app`` under uvicorn on 127.0.0.1, port 0, in this event loop, with uvicorn's
    ``http`` implementation (``h11`` or ``httptools``); yield its URL.

    ``send_buffer`` shrinks the kernel send buffer of every accepted socket, so that a client
    that does not read makes the server's writes block after a few kilobytes.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if send_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, http=http, lifespan="on", log_config=None, log_level="critical",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(server.serve, [sock])
            await until(lambda: server.started, "uvicorn started")
            try:
                yield f"http://127.0.0.1:{port}"
            finally:
                server.should_exit = True
    finally:
        sock.close()


def starlette_app(stream: EventStream) -> Starlette:
    """The stream on /events (a Route) and /mounted/ (a Mount)."""
    return Starlette(routes=[Route("/events", stream), Mount("/mounted", app=stream)])


async def sse_events(events: AsyncIterator[Any], count: int) -> list[tuple[str, str, str]]:
    """The next ``count`` events with data from httpx-sse's ``aiter_sse()``, as (type, id,
    data); fewer when the stream ends first.

    httpx-sse yields every event whatever its type, the position block (empty data)
    included, and also dispatches a heartbeat after an id (the spec does not): events
    without data are skipped.
    """
    out: list[tuple[str, str, str]] = []
    with anyio.fail_after(TIMEOUT):
        while len(out) < count:
            try:
                sse = await events.__anext__()
            except StopAsyncIteration:
                break
            if sse.data:
                out.append((sse.event, sse.id, sse.data))
    return out


@REAL_PEERS
@ASYNCIO_ONLY
async def test_events_arrive_in_order_exactly_once() -> None:
    """httpx + httpx-sse through Starlette and uvicorn: every published event arrives once,
    in order, gzip-compressed (httpx accepts gzip), and aclose() ends the response."""
    stream = EventStream(config=QUIET)
    async with serving(starlette_app(stream)) as url, httpx.AsyncClient() as client, \
            aconnect_sse(client, "GET", url + "/events") as source:
        assert source.response.headers["content-encoding"] == "gzip"
        assert source.response.headers["x-accel-buffering"] == "no"
        events = source.aiter_sse()
        published = [stream.publish(Event(data=f"event {i}")) for i in range(50)]
        got = await sse_events(events, 50)
        assert got == [("message", s.id, s.event.data) for s in published]
        await stream.aclose()
        assert await sse_events(events, 1) == []  # the stream ended, nothing more
    assert len(stream.broadcaster) == 0


@REAL_PEERS
@ASYNCIO_ONLY
async def test_mount_and_reconnect_with_last_event_id_replays_exactly_the_missed() -> None:
    """sseclient-py over http.client: a client that reconnects with Last-Event-ID gets
    exactly the events it missed, then the live ones."""
    stream = EventStream(config=QUIET)
    ids = [stream.publish(Event(data=f"e{i}")).id for i in range(5)]

    def read(url: str, last_event_id: str, count: int) -> list[tuple[str, str | None, str]]:
        host, port = url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=TIMEOUT)
        try:
            connection.request("GET", "/mounted/", headers={"Last-Event-ID": last_event_id})
            response = connection.getresponse()
            assert response.status == 200
            assert response.getheader("content-encoding") is None  # identity asked
            out = []
            for event in sseclient.SSEClient(response).events():
                out.append((event.event, event.id, event.data))
                if len(out) == count:
                    return out
            raise AssertionError(f"the stream ended after {out}")
        finally:
            connection.close()

    async with serving(starlette_app(stream)) as url, anyio.create_task_group() as tasks:
        results: list[list[tuple[str, str | None, str]]] = []

        async def client() -> None:
            results.append(await anyio.to_thread.run_sync(read, url, ids[1], 4))

        tasks.start_soon(client)
        await until(lambda: len(stream.broadcaster) == 1, "the client subscribed")
        live = stream.publish(Event(data="live", event="tick"))
    assert results == [
        [("message", ids[2], "e2"), ("message", ids[3], "e3"), ("message", ids[4], "e4"),
         ("tick", live.id, "live")]
    ]
    await until(lambda: len(stream.broadcaster) == 0, "the client's task ended")
    await stream.aclose()


@REAL_PEERS
@ASYNCIO_ONLY
async def test_id_older_than_the_log_gets_the_gap_signal_then_the_log() -> None:
    """A Last-Event-ID that fell out of the log: the gap event first (with the 2 events
    lost), then what the log has."""
    stream = EventStream(ReplayLog(ReplayConfig(max_events=3, epoch="boot")), config=QUIET)
    ids = [stream.publish(Event(data=f"e{i}")).id for i in range(6)]
    async with serving(starlette_app(stream)) as url, httpx.AsyncClient() as client:
        headers = {"Last-Event-ID": ids[0]}
        async with aconnect_sse(client, "GET", url + "/events", headers=headers) as source:
            got = await sse_events(source.aiter_sse(), 4)
        await stream.aclose()
    kind, _, data = got[0]
    assert kind == GAP_EVENT_TYPE
    assert json.loads(data) == {"last_event_id": ids[0], "reason": "too_old", "missed": 2}
    assert got[1:] == [("message", ids[i], f"e{i}") for i in (3, 4, 5)]


@REAL_PEERS
@ASYNCIO_ONLY
async def test_gzip_body_decodes_event_by_event_and_identity_is_plain() -> None:
    """With Accept-Encoding: gzip the raw body is gzip that decodes to whole events as they
    are published (a flush per write) and ends with a valid trailer; without it, plain."""
    stream = EventStream(ReplayLog(ReplayConfig(epoch="z")), config=QUIET)
    async with serving(starlette_app(stream)) as url, httpx.AsyncClient() as client:
        request = client.build_request("GET", url + "/events",
                                       headers={"Accept-Encoding": "gzip"})
        response = await client.send(request, stream=True)
        plain = await client.send(
            client.build_request("GET", url + "/events", headers={"Accept-Encoding": "identity"}),
            stream=True,
        )
        try:
            assert response.headers["content-encoding"] == "gzip"
            assert "content-encoding" not in plain.headers
            inflater = zlib.decompressobj(wbits=31)
            parser = Parser()
            chunks = response.aiter_raw()
            for i in range(3):
                stored = stream.publish(Event(data=f"zipped {i}"))
                events: list[Any] = []
                with anyio.fail_after(TIMEOUT):
                    while not events:
                        raw = await chunks.__anext__()
                        events = [item for item in parser.feed(inflater.decompress(raw))
                                  if isinstance(item, Event)
                                  and item.event != POSITION_EVENT_TYPE]
                assert events == [stored.event]
            raw_plain = b""
            plain_chunks = plain.aiter_raw()
            with anyio.fail_after(TIMEOUT):
                while raw_plain.count(b"\n\n") < 4:  # the position, then three events
                    raw_plain += await plain_chunks.__anext__()
            assert raw_plain.startswith(position_block("z-start"))
            assert b"data: zipped 2" in raw_plain
            await stream.aclose()
            with anyio.fail_after(TIMEOUT):
                async for raw in chunks:
                    inflater.decompress(raw)
            assert inflater.eof  # the gzip trailer arrived: a complete member
        finally:
            await response.aclose()
            await plain.aclose()


def dechunked(response: bytes) -> bytes:
    """The body of a whole HTTP/1.1 response with chunked framing (RFC 9112 section 7.1)."""
    head, _, rest = response.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower(), head
    body = []
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return b"".join(body)
        assert rest[size : size + 2] == b"\r\n"
        body.append(rest[:size])
        rest = rest[size + 2 :]


async def whole_response(port: int, extra_headers: bytes) -> bytes:
    """A raw client's GET /events (identity, the connection closed after the response):
    the body it read until the server closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            b"GET /events HTTP/1.1\r\nHost: x\r\nAccept-Encoding: identity\r\n"
            b"Connection: close\r\n" + extra_headers + b"\r\n"
        )
        with anyio.fail_after(TIMEOUT):
            return dechunked(await reader.read())
    finally:
        writer.close()


@REAL_PEERS
@ASYNCIO_ONLY
@pytest.mark.parametrize("http", ["h11", "httptools"])
async def test_every_client_of_a_broadcast_gets_the_bytes_its_session_sends(http: str) -> None:
    """The fan-out's hot path (the broadcaster's bytes handed to the ASGI server as they
    are) under a real uvicorn, both of its HTTP implementations: 40 raw clients, a quarter
    resuming with Last-Event-ID (a replay first), each get exactly the body that the sans-IO
    broadcaster's take() gives the same client -- events published one per turn (one piece
    per send) and in bursts (pieces joined), a large one, and the stream's end."""
    config = ServerConfig(heartbeat_interval=None)
    stream = EventStream(ReplayLog(ReplayConfig(epoch="e")), config=config)
    oracle = Broadcaster(ReplayLog(ReplayConfig(epoch="e")), config=config)
    clock = iter(range(1, 1_000_000))

    def publish(data: str) -> str:
        oracle.publish(Event(data=data), next(clock))
        return stream.publish(Event(data=data)).id

    resume_from = [publish(f"before {i}") for i in range(5)][1]
    resumed_header = b"Last-Event-ID: " + resume_from.encode() + b"\r\n"
    bodies: dict[int, bytes] = {}
    async with serving(stream, http=http) as url:
        port = int(url.rsplit(":", 1)[1])

        async def client(number: int) -> None:
            bodies[number] = await whole_response(port, resumed_header if number % 4 == 0
                                                  else b"")

        async with anyio.create_task_group() as tasks:
            for number in range(40):
                tasks.start_soon(client, number)
            await until(lambda: len(stream.broadcaster) == 40, "every client subscribed")
            identity = [("accept-encoding", "identity")]
            live = oracle.subscribe("/events", identity, next(clock))
            resumed = oracle.subscribe(
                "/events", [*identity, ("last-event-id", resume_from)], next(clock)
            )
            def drained() -> bool:
                return not any(s.has_pending for s in stream.broadcaster)

            for i in range(20):
                publish(f"live {i}")
                await until(drained, "every task sent the event")
            for i in range(20):
                publish(f"burst {i}")
            await until(drained, "every task sent the burst")
            publish("large " + "x" * 50_000)
            await until(drained, "every task sent the large event")
            publish("last")  # left for the stream's end to carry
            await stream.aclose()
    oracle.close(next(clock))

    def body_of(subscriber: Any) -> bytes:
        sent = []
        while subscriber.has_pending:
            sent += [a.data for a in subscriber.take(next(clock)) if isinstance(a, Send)]
        return b"".join(sent)

    expected_live, expected_resumed = body_of(live), body_of(resumed)
    assert b"data: live 19\n" in expected_live and b"data: burst 19\n" in expected_live
    assert b"data: before 2\n" in expected_resumed and b"before 1" not in expected_resumed
    assert len(bodies) == 40
    for number, body in bodies.items():
        assert body == (expected_resumed if number % 4 == 0 else expected_live), number


@REAL_PEERS
@ASYNCIO_ONLY
@pytest.mark.parametrize("http", ["h11", "httptools"])
async def test_heartbeats_arrive_while_idle(http: str) -> None:
    """With a short heartbeat_interval, an idle stream carries the position, then heartbeat
    comments only (under each of uvicorn's HTTP implementations)."""
    stream = EventStream(config=ServerConfig(heartbeat_interval=0.1))
    async with serving(starlette_app(stream), http=http) as url, httpx.AsyncClient() as client:
        headers = {"Accept-Encoding": "identity"}
        async with client.stream("GET", url + "/events", headers=headers) as response:
            parser = Parser()
            items: list[Any] = []
            with anyio.fail_after(TIMEOUT):
                async for raw in response.aiter_raw():
                    items += parser.feed(raw)
                    if sum(isinstance(item, Comment) for item in items) >= 3:
                        break
        await stream.aclose()
    position, *rest = items
    assert position == Event(data="", event=POSITION_EVENT_TYPE, id=parser.last_event_id,
                             last_event_id=parser.last_event_id)
    assert all(isinstance(item, Comment) and item.text == "" for item in rest)
    assert parser.last_event_id.endswith("-start")


@REAL_PEERS
@ASYNCIO_ONLY
@pytest.mark.parametrize("http", ["h11", "httptools"])
async def test_heartbeats_wait_while_events_flow_and_resume_after_them(http: str) -> None:
    """The heartbeat's timer is armed once and outlives publishes: while events come more
    often than heartbeat_interval no heartbeat is sent, and once they stop heartbeats come
    again, an interval after the last event (wide margins: the machine is shared)."""
    interval = 1.0
    stream = EventStream(config=ServerConfig(heartbeat_interval=interval))
    async with serving(stream, http=http) as url, httpx.AsyncClient() as client:
        headers = {"Accept-Encoding": "identity"}
        async with client.stream("GET", url + "/events", headers=headers) as response:
            parser = Parser()
            arrivals: list[tuple[float, Any]] = []
            publishing = True

            async def publish() -> None:
                nonlocal publishing
                for i in range(25):
                    stream.publish(Event(data=f"e{i}"))
                    await anyio.sleep(interval / 10)
                publishing = False

            with anyio.fail_after(TIMEOUT):
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(publish)
                    async for raw in response.aiter_raw():
                        arrivals += [(anyio.current_time(), item) for item in parser.feed(raw)]
                        if not publishing and sum(
                            isinstance(item, Comment) for _, item in arrivals
                        ) >= 2:
                            break
        await stream.aclose()
    kinds = ["comment" if isinstance(item, Comment) else "event" for _, item in arrivals]
    last_event = max(i for i, kind in enumerate(kinds) if kind == "event")
    assert kinds[: last_event + 1] == ["event"] * (last_event + 1)  # the position, e0..e24
    assert last_event == 25 and kinds[last_event + 1 :] == ["comment"] * 2, kinds
    assert arrivals[last_event + 1][0] - arrivals[last_event][0] >= interval / 2


@REAL_PEERS
@ASYNCIO_ONLY
@pytest.mark.parametrize("http", ["h11", "httptools"])
async def test_slow_socket_is_dropped_while_a_fast_client_gets_everything(http: str) -> None:
    """A raw socket that never reads stalls the server's writes; once its queue passes
    max_queued_bytes it is dropped and its task ends, while an httpx client reading at full
    speed receives every event, in order, once (under each of uvicorn's HTTP implementations)."""
    stream = EventStream(config=QUIET, options=ServerOptions(max_queued_bytes=16 * 1024))
    async with serving(starlette_app(stream), send_buffer=4096, http=http) as url:
        async with httpx.AsyncClient() as client, aconnect_sse(
            client, "GET", url + "/events", headers={"Accept-Encoding": "identity"}
        ) as source, anyio.create_task_group() as tasks:
            fast = next(iter(stream.broadcaster))
            received: list[tuple[str, str, str]] = []
            done = anyio.Event()
            expected: list[str] = []

            async def read_fast() -> None:
                async for sse in source.aiter_sse():
                    if sse.data:
                        received.append((sse.event, sse.id, sse.data))
                        if sse.data == "end":
                            done.set()
                            return

            tasks.start_soon(read_fast)
            slow = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
                port = int(url.rsplit(":", 1)[1])
                await anyio.to_thread.run_sync(slow.connect, ("127.0.0.1", port))
                slow.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
                await until(lambda: len(stream.broadcaster) == 2, "the slow client subscribed")
                for i in range(3000):
                    expected.append(stream.publish(Event(data=f"{i:05d}" + "x" * 1000)).id)
                    # Let the fast client's task drain before the next one: no sleeping
                    # needed, only a turn of the loop until its queue is empty.
                    await until(lambda: not fast.has_pending, "the fast task drained")
                    if stream.broadcaster.dropped:
                        break
                assert stream.broadcaster.dropped == 1, "the slow client was never dropped"
                assert len(expected) < 3000
                await until(lambda: len(stream.broadcaster) == 1, "the slow task ended")
                assert next(iter(stream.broadcaster)) is fast
                for _ in range(5):
                    expected.append(stream.publish(Event(data="after the drop")).id)
                expected.append(stream.publish(Event(data="end")).id)
                with anyio.fail_after(TIMEOUT):
                    await done.wait()
            finally:
                slow.close()
            assert [item[1] for item in received] == expected
            assert not fast.is_dropped
        await stream.aclose()


@REAL_PEERS
@ASYNCIO_ONLY
async def test_max_subscribers_answers_503_and_frees_the_slot_on_disconnect() -> None:
    """At max_subscribers a client gets 503 with Retry-After; when the subscribed client
    disconnects (http.disconnect), its slot is free again. POST is 405, HEAD a bare head."""
    stream = EventStream(
        config=QUIET,
        options=ServerOptions(max_subscribers=1, busy_retry_delay=7),
    )
    async with serving(starlette_app(stream)) as url, httpx.AsyncClient() as client:
        async with client.stream("GET", url + "/events") as first:
            assert first.status_code == 200
            busy = await client.get(url + "/events")
            assert busy.status_code == 503 and busy.headers["retry-after"] == "7"
        await until(lambda: len(stream.broadcaster) == 0, "the disconnect was noticed")
        async with client.stream("GET", url + "/events") as again:
            assert again.status_code == 200
        post = await client.post(url + "/events", content=b"x")
        assert post.status_code == 405 and post.headers["allow"] == "GET, HEAD"
        head = await client.head(url + "/events")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-type"] == "text/event-stream; charset=utf-8"
        await stream.aclose()


@REAL_PEERS
@ASYNCIO_ONLY
async def test_aclose_ends_every_stream_and_leaves_no_tasks() -> None:
    """aclose() ends every client's response (the gzip one with a valid trailer), returns
    when every client's task is over; afterwards the server answers 503, and once it stops
    no task is left in the loop."""
    before = asyncio.all_tasks()
    stream = EventStream(config=QUIET)
    async with serving(starlette_app(stream)) as url, httpx.AsyncClient() as client:
        async with aconnect_sse(client, "GET", url + "/events") as zipped, aconnect_sse(
            client, "GET", url + "/events", headers={"Accept-Encoding": "identity"}
        ) as plain:
            stored = stream.publish(Event(data="bye"))
            await stream.aclose()
            assert len(stream.broadcaster) == 0
            for source in (zipped, plain):
                assert await sse_events(source.aiter_sse(), 2) == [
                    ("message", stored.id, "bye")
                ]
        refused = await client.get(url + "/events")
        assert refused.status_code == 503
    with anyio.fail_after(TIMEOUT):
        while asyncio.all_tasks() - before:  # uvicorn's own tasks finish as it stops
            await asyncio.sleep(0.01)
    assert asyncio.all_tasks() == before


@REAL_PEERS
@ASYNCIO_ONLY
async def test_docs_example_runs_under_uvicorn() -> None:
    """The Starlette example of docs/adapters/asgi.rst, served for real: a POSTed message
    reaches a subscribed client, and the app's lifespan shutdown closes the stream."""
    page = Path(__file__).resolve().parents[2] / "docs" / "adapters" / "asgi.rst"
    blocks = code_blocks(page)
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    exec(compile(blocks[0][1], f"{page}:{blocks[0][0]}", "exec"), namespace)
    app, stream = namespace["app"], namespace["stream"]
    async with serving(app) as url, httpx.AsyncClient() as client, \
            aconnect_sse(client, "GET", url + "/events") as source:
        posted = await client.post(url + "/messages", content=b"hello")
        assert posted.status_code == 200
        assert await sse_events(source.aiter_sse(), 1) == [("chat", posted.text, "hello")]
    assert stream.is_closed  # the lifespan shutdown ran aclose()
