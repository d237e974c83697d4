"""Tests of the blocking httpx driver (``sse_core.adapters.httpx.SyncEventSource``) against
real servers: sse_core's own blocking ``EventStreamServer`` (in process), raw-socket
servers for what ours never does (an id hole), FastAPI's ``StreamResponse`` app under
uvicorn and under hypercorn over HTTP/2 (h2c), the project's ``FaultProxy`` for cuts, and a
real ``tinyproxy`` on loopback as the user's HTTP proxy. No mocks: every byte crosses a
socket. Every test ends with the threads and file descriptors it started with (the sync
adapter's fixture): no response thread and no connection outlives a source.
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sse_core import (
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
from sse_core.adapters.sync import EventStreamServer
from sse_core.state import BackoffConfig, SequencerConfig
from sse_core.testing import CutAfter, Pass
from tests import _processes

httpx = pytest.importorskip("httpx", reason="httpx is in the peers extra")

from sse_core.adapters.httpx import SyncEventSource  # noqa: E402

from . import httpx_support as _support  # noqa: E402
from . import test_response_servers as _servers  # noqa: E402
from . import test_sync as _sync  # noqa: E402
from .httpx_support import (  # noqa: E402
    WORDS,
    ProxyThread,
    assert_cut_once,
    chat_config,
    proxied_requests,
    recording,
)
from .test_asyncio import config  # noqa: E402
from .test_response_servers import Served  # noqa: E402
from .test_sync import (  # noqa: E402
    WATCHDOG,
    events,
    fast,
    kinds,
    read_head,
    states,
    tiny_server,
    url_of,
)

#: Fixtures: the real servers (uvicorn, hypercorn ...), a real tinyproxy, and the check that
#: a test leaves no thread and no file descriptor behind.
served = _servers.served
tinyproxy = _support.tinyproxy
no_leaks = _sync.no_leaks

QUIET = ServerConfig(heartbeat_interval=None, is_compression_enabled=False)
#: The name of the driver's response threads.
THREAD = "sse_core httpx response"


def response_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == THREAD]


def until(predicate: Callable[[], bool], what: str) -> None:
    """Wait for a condition nothing signals (server-side counters), checking every 5 ms."""
    deadline = time.monotonic() + WATCHDOG
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def drive(
    source: SyncEventSource,
    step: Callable[[Any, list[Any]], bool],
    *,
    failure: list[StreamError] | None = None,
) -> list[Any]:
    """The sync adapter's ``drive`` for this driver: iterate ``source.reports()`` under a
    watchdog, calling ``step(report, so_far)`` until it says stop or the iteration ends."""
    return _sync.drive(source, step, failure=failure)  # type: ignore[arg-type]


def connected_anew(client: Any, url: str) -> bool:
    """Whether a plain GET on ``client`` opens a new connection (``False``: the pool had
    one idle for it), as httpcore's ``trace`` extension tells."""
    traced: list[str] = []
    client.get(url, extensions={"trace": lambda name, info: traced.append(name)})
    return "connection.connect_tcp.complete" in traced


# --- sse_core's own server ----------------------------------------------------------------


def test_events_arrive_in_order_exactly_once_over_the_users_client() -> None:
    """Published events reach the driver in order, once each; the statuses go CONNECTING,
    CONNECTED, STREAMING, and CLOSED (seen by on_status) when the ``with`` block ends; the
    user's client's default headers reach the server; the client stays open for its owner,
    the response's thread is gone and the server sees the connection closed."""
    keys: list[str | None] = []
    key = recording("x-api-key", keys)
    statuses: list[ReportStatus] = []
    with EventStreamServer(options=ServerOptions(connection_key=key)) as server, \
            httpx.Client(headers={"X-Api-Key": "k1"}) as client:
        sent = [Event(data=f"event {i}\nline two", event="tick") for i in range(100)]
        stored: list[Any] = []

        def step(report: Any, seen: list[Any]) -> bool:
            if isinstance(report, ReportStatus) and report.state is ClientState.STREAMING:
                stored.extend(server.publish(event) for event in sent)
            return len(events(seen)) == 100

        with SyncEventSource(client, fast(url_of(server)), on_status=statuses.append) as source:
            seen = drive(source, step)
        assert [(e.data, e.event, e.id) for e in events(seen)] == [
            (e.data, e.event, s.id) for e, s in zip(sent, stored, strict=True)
        ]
        assert states(seen) == [ClientState.CONNECTING, ClientState.CONNECTED,
                                ClientState.STREAMING]
        assert [s.state for s in statuses][-1] is ClientState.CLOSED
        assert keys == ["k1"]
        assert not client.is_closed
        assert response_threads() == []
        until(lambda: server.connection_count == 0, "the server to see the close")


@pytest.mark.parametrize("is_gzip_accepted", [True, False], ids=["gzip", "identity"])
@pytest.mark.parametrize("is_body_decoded", [False, True], ids=["session-decodes",
                                                               "httpx-decodes"])
def test_the_request_asks_for_what_the_session_decodes(
    is_gzip_accepted: bool, is_body_decoded: bool
) -> None:
    """Accept-Encoding is gzip when the config accepts it and identity otherwise, never
    httpx's own list (br, zstd ...); the gzip body is decoded once: by the session (read
    as sent) or, with ``is_body_decoded``, by httpx (read decoded)."""
    asked: list[str | None] = []
    key = recording("accept-encoding", asked)
    sent = [f"{i} " + "compressible " * 50 for i in range(50)]
    with EventStreamServer(options=ServerOptions(connection_key=key)) as server, \
            httpx.Client() as client:

        def step(report: Any, seen: list[Any]) -> bool:
            if isinstance(report, ReportStatus) and report.state is ClientState.STREAMING:
                for data in sent:
                    server.publish(Event(data=data))
            return len(events(seen)) == 50

        config = fast(url_of(server), is_gzip_accepted=is_gzip_accepted,
                      is_body_decoded=is_body_decoded)
        with SyncEventSource(client, config) as source:
            seen = drive(source, step)
            reconnections = source.metrics.reconnections
        encodings = {s.session.content_encoding for s in server.broadcaster}
    assert asked == ["gzip" if is_gzip_accepted else "identity"]
    assert [e.data for e in events(seen)] == sent
    assert reconnections == 0  # never a bad gzip body (decoded twice) or gzip as text
    assert encodings <= {"gzip" if is_gzip_accepted else None}


def test_a_cut_stream_resumes_with_last_event_id() -> None:
    """The fault proxy cuts the first connection after three events: the response's thread
    reports the broken body, the driver sends a new request on the same client with the
    last id it got, and every event arrives exactly once (dedup off, so a duplicate would
    show)."""
    ids: list[str] = []
    resumed_with: list[str | None] = []
    with EventStreamServer(config=QUIET) as server, ProxyThread(server.address) as running, \
            httpx.Client() as client:
        host, port = running.address
        source = SyncEventSource(client, fast(f"http://{host}:{port}/events", dedup=None))

        def step(report: Any, seen: list[Any]) -> bool:
            got = events(seen)
            if states(seen) == [ClientState.CONNECTING, ClientState.CONNECTED,
                                ClientState.STREAMING] and not got:
                ids.extend(server.publish(Event(data=f"e{i}")).id for i in range(3))
            elif states(seen).count(ClientState.CONNECTED) == 2 and report is seen[-1] \
                    and isinstance(report, ReportStatus) \
                    and report.state is ClientState.CONNECTED:
                until(lambda: len(server.broadcaster) == 1, "the cut subscriber to go")
                resumed_with.extend(s.session.last_event_id for s in server.broadcaster)
                ids.extend(server.publish(Event(data=f"e{i}")).id for i in range(3, 6))
            elif len(got) == 3 and isinstance(report, Deliver):
                assert running.cut_all() == 1
            return len(got) == 6

        with source:
            seen = drive(source, step)
    assert [e.data for e in events(seen)] == [f"e{i}" for i in range(6)]
    assert [e.id for e in events(seen)] == ids
    assert resumed_with == [ids[2]]
    reasons = [s.reason for s in seen if isinstance(s, ReportStatus)
               and s.state is ClientState.RECONNECTING]
    assert len(reasons) == 1 and "incomplete chunked read" in str(reasons[0]), reasons
    assert source.metrics.reconnections == 1


def test_a_quiet_stream_outlives_the_clients_read_timeout() -> None:
    """A client with a 0.2 s timeout and a stream quiet for 1 s (no heartbeats, no stall
    timeout): the response's thread waits in its read the whole time and the connection is
    kept (reads have no timeout; the session's stall timeout is what replaces a silent
    connection)."""
    with EventStreamServer(config=QUIET) as server, httpx.Client(timeout=0.2) as client:

        def step(report: Any, seen: list[Any]) -> bool:
            if isinstance(report, ReportStatus) and report.state is ClientState.STREAMING:
                time.sleep(1.0)
                server.publish(Event(data="after the silence"))
            return len(events(seen)) == 1

        with SyncEventSource(client, fast(url_of(server), stall_timeout=None)) as source:
            seen = drive(source, step)
    assert [e.data for e in events(seen)] == ["after the silence"]
    assert source.metrics.reconnections == 0


def test_a_stalled_stream_is_replaced_and_its_blocked_read_let_go() -> None:
    """With a 0.5 s stall timeout and a silent server, the session replaces the connection
    while its read is blocked: the driver shuts the socket down, the old response's thread
    ends and closes it (the server sees one connection, not two), and the new request goes
    out on the same client."""
    with EventStreamServer(config=QUIET) as server, httpx.Client() as client:
        alive: list[int] = []

        def step(report: Any, seen: list[Any]) -> bool:
            if states(seen).count(ClientState.CONNECTED) < 2:
                return False
            until(lambda: len(response_threads()) == 1, "the stalled response's thread to end")
            until(lambda: server.connection_count == 1, "the stalled connection to close")
            alive.append(len(response_threads()))
            return True

        with SyncEventSource(client, fast(url_of(server), stall_timeout=0.5)) as source:
            seen = drive(source, step)
    reasons = [s.reason for s in seen if isinstance(s, ReportStatus)
               and s.state is ClientState.RECONNECTING]
    assert reasons and "stall" in str(reasons[0]), reasons
    assert alive == [1]


def test_a_deadline_that_does_not_end_the_attempt_keeps_the_connection() -> None:
    """The server sends ids 1 and 3, then nothing until the client reported the hole: the
    sequencer's 0.3 s hole timeout fires while the read is blocked, the gap and "c" come
    out, and the same connection goes on to carry "d" (one connection attempt)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(WATCHDOG)
    port = listener.getsockname()[1]
    gapped = threading.Event()

    def serve() -> None:
        sock, _ = listener.accept()
        with sock:
            read_head(sock)
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                         b"Connection: close\r\n\r\nid: 1\ndata: a\n\nid: 3\ndata: c\n\n")
            gapped.wait(WATCHDOG)
            sock.sendall(b"id: 4\ndata: d\n\n")

    thread = threading.Thread(target=serve)
    thread.start()
    config = fast(f"http://127.0.0.1:{port}/events", stall_timeout=None,
                  sequencer=SequencerConfig(gap_timeout=0.3))
    try:
        with httpx.Client() as client, SyncEventSource(client, config) as source:

            def step(report: Any, seen: list[Any]) -> bool:
                if not isinstance(report, (Deliver, ReportStatus)):
                    gapped.set()
                return [e.data for e in events(seen)] == ["a", "c", "d"]

            seen = drive(source, step)
    finally:
        gapped.set()
        thread.join(WATCHDOG)
        listener.close()
    assert kinds(seen) == ["connecting", "connected", "streaming", "a", "gap", "c", "d"]
    assert source.metrics.connection_attempts == 1


def test_an_http_error_raises_http_status_error_and_the_connection_goes_back_to_the_pool(
) -> None:
    """A 404 (kept alive by the server) ends the iteration with HTTPStatusError carrying
    the status, the headers and the first bytes of the body; nothing is retried; the
    response, read to its end, leaves its connection idle in the client's pool (the next
    request on the client reuses it)."""

    def answer(handler: http.server.BaseHTTPRequestHandler) -> None:
        body = b"no stream here"
        handler.send_response(404)
        handler.send_header("Content-Type", "text/plain")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    with tiny_server(answer) as httpd, httpx.Client() as client:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/events"
        source = SyncEventSource(client, fast(url))
        with pytest.raises(HTTPStatusError) as caught:
            for _ in source:
                raise AssertionError("no event expected")
        assert caught.value.status == 404
        assert caught.value.body == b"no stream here"
        assert ("content-type", "text/plain") in [
            (name.lower(), value) for name, value in caught.value.headers
        ]
        assert source.session.state is ClientState.CLOSED
        assert source.metrics.reconnections == 0
        assert response_threads() == []
        assert not connected_anew(client, url)
        assert len(httpd.requests) == 2


def test_a_refused_connection_is_retried_then_given_up_with_stream_error() -> None:
    """A refused port: each request's thread reports httpx's ConnectError, the session
    tries twice more with backoff and gives up; the plain loop raises StreamError (GAVE_UP)
    naming the cause, and no thread is left."""
    port = _processes.free_port()  # bound, then let go: refused
    backoff = BackoffConfig(base_delay=0.02, min_base_delay=0.01, max_attempts=2)
    with httpx.Client() as client:
        source = SyncEventSource(client, fast(f"http://127.0.0.1:{port}/events",
                                              backoff=backoff))
        with pytest.raises(StreamError) as caught:
            for _ in source:
                raise AssertionError("no event expected")
    assert caught.value.report.cause is EndCause.GAVE_UP
    assert "ConnectError" in caught.value.reason
    assert source.metrics.connection_attempts == 3
    assert response_threads() == []


def test_close_from_another_thread_wakes_a_blocked_iteration() -> None:
    """close() from another thread wakes an iteration blocked on an idle stream: it ends
    at once and quietly; when close() returns the response's thread is gone, on_status saw
    CLOSED last, and the server sees the connection closed."""
    statuses: list[ClientState] = []
    timings: dict[str, float] = {}
    with EventStreamServer(config=QUIET) as server, httpx.Client() as client:
        source = SyncEventSource(client, fast(url_of(server), stall_timeout=None),
                                 on_status=lambda report: statuses.append(report.state))
        streaming = threading.Event()
        threads: list[list[threading.Thread]] = []

        def closer() -> None:
            streaming.wait(WATCHDOG)
            time.sleep(0.3)  # let the iteration block
            timings["close"] = time.monotonic()
            source.close()
            timings["closed"] = time.monotonic()
            threads.append(response_threads())

        thread = threading.Thread(target=closer)
        thread.start()
        try:
            for report in source.reports():
                if isinstance(report, ReportStatus) and report.state is ClientState.STREAMING:
                    streaming.set()
            timings["ended"] = time.monotonic()
        finally:
            thread.join()
        until(lambda: server.connection_count == 0, "the server to see the close")
    assert statuses == [ClientState.CONNECTING, ClientState.CONNECTED,
                        ClientState.STREAMING, ClientState.CLOSED]
    assert threads == [[]]
    assert timings["ended"] - timings["close"] < 2.0
    assert timings["closed"] - timings["close"] < 2.0


def test_client_options_timeout_ends_the_iteration_quietly() -> None:
    """``ClientOptions(timeout=0.5)`` on an idle stream: the plain loop ends by itself,
    without an exception, after about that long, with CLOSED (naming the timeout) last."""
    statuses: list[ReportStatus] = []
    with EventStreamServer(config=QUIET) as server, httpx.Client() as client:
        source = SyncEventSource(client, fast(url_of(server), stall_timeout=None),
                                 options=ClientOptions(timeout=0.5),
                                 on_status=statuses.append)
        start = time.monotonic()
        with _sync.watchdog(source) as fired:  # type: ignore[arg-type]
            assert list(source) == []
        took = time.monotonic() - start
        assert not fired.is_set()
    assert 0.5 <= took < 5.0
    assert statuses[-1].state is ClientState.CLOSED
    assert "ClientOptions.timeout" in str(statuses[-1].reason)
    assert response_threads() == []


def test_a_slow_application_holds_the_reader_back() -> None:
    """While the application holds one event, the server publishes 2 MiB: the response's
    thread reads at most a few chunks ahead (bounded memory) and everything still arrives,
    in order, once the application goes on."""
    options = ServerOptions(max_queued_bytes=16 * 1024 * 1024)  # the server must not give up
    with EventStreamServer(config=QUIET, options=options) as server, httpx.Client() as client:
        ahead: list[int] = []
        big = "x" * 16384

        def step(report: Any, seen: list[Any]) -> bool:
            got = events(seen)
            if isinstance(report, ReportStatus) and report.state is ClientState.STREAMING:
                server.publish(Event(data="first"))
            elif len(got) == 1:
                for n in range(128):
                    server.publish(Event(data=f"{n} {big}"))
                time.sleep(0.5)  # the reader fills its queue and waits
                response = source._response  # the plumbing under test
                assert response is not None
                ahead.append(len(response.items))
            return len(got) == 129

        with SyncEventSource(client, fast(url_of(server))) as source:
            seen = drive(source, step)
    assert [e.data.split()[0] for e in events(seen)[1:]] == [str(n) for n in range(128)]
    assert 1 <= ahead[0] <= 4, ahead


def test_an_error_that_is_not_httpx_s_is_raised_where_the_user_iterates() -> None:
    """A client closed by its owner makes ``send`` raise RuntimeError in the response's
    thread: the iteration raises it (as the asyncio driver does), it is not retried."""
    client = httpx.Client()
    client.close()
    source = SyncEventSource(client, "http://127.0.0.1:9/events")
    with pytest.raises(RuntimeError, match="closed"):
        list(source)
    assert response_threads() == []


def test_the_client_must_be_an_httpx_client() -> None:
    """An httpx.AsyncClient (or anything else) is refused at construction."""
    with pytest.raises(InvalidConfigError, match=r"httpx\.Client"):
        SyncEventSource(httpx.AsyncClient(), "http://127.0.0.1:1/events")  # type: ignore[arg-type]


# --- real ASGI servers ------------------------------------------------------------------------


def _chat(client: Any, url: str, **kwargs: Any) -> tuple[list[str], StreamError | None]:
    """POST the chat request through the driver's plain loop; the words it got, and what
    it raised."""
    words: list[str] = []
    failure: StreamError | None = None
    try:
        with SyncEventSource(client, chat_config(config, url, **kwargs)) as source:
            for event in source:
                if event.event == "done":
                    break
                words.append(json.loads(event.data)["delta"])
    except StreamError as error:
        failure = error
    return words, failure


@pytest.mark.parametrize(
    "served", ["uvicorn-fastapi", "hypercorn-h2c-fastapi"], indirect=True
)
def test_post_streams_each_word_over_http1_and_http2(served: Served) -> None:
    """The chat POST through a blocking client gets each word once over the protocol the
    client speaks (HTTP/2 with prior knowledge to hypercorn), gzip-compressed by the server
    and decoded by the session; leaving the loop at "done" leaves no thread behind."""
    versions: list[tuple[str, str | None]] = []

    def seen(response: Any) -> None:
        versions.append((response.http_version, response.headers.get("content-encoding")))

    kwargs: dict[str, Any] = {"event_hooks": {"response": [seen]}}
    if served.is_http2:
        kwargs.update(http1=False, http2=True)
    with httpx.Client(**kwargs) as client:
        words, error = _chat(client, served.url + "/chat")
    assert error is None
    assert words == WORDS
    assert versions == [("HTTP/2" if served.is_http2 else "HTTP/1.1", "gzip")]
    assert response_threads() == []


@pytest.mark.parametrize("served", ["uvicorn-fastapi"], indirect=True)
def test_a_post_without_ids_cut_mid_stream_is_not_sent_again(served: Served) -> None:
    """The LLM case, blocking: the proxy measures a whole answer, then cuts the next one
    20 bytes short, after its words and before ``[DONE]``. The plain loop raises
    StreamError (NOT_RESUMABLE) with every word seen once, and the POST is not sent a third
    time."""
    host, port = served.url.removeprefix("http://").split(":")
    with ProxyThread((host, int(port)), [Pass()]) as proxy:
        url = "http://{}:{}/chat".format(*proxy.address)
        with httpx.Client() as client:
            whole, error = _chat(client, url, is_gzip_accepted=False)
        assert (whole, error) == (WORDS, None)
        total = proxy.stats.bytes_downstream
        proxy.schedule(CutAfter(after_bytes=total - 20))
        with httpx.Client() as client:  # a new connection (the first went back to a pool)
            words, error = _chat(client, url, is_gzip_accepted=False)
            assert_cut_once(words, error)
            time.sleep(0.5)  # the time a re-send that should not happen would take
        assert proxy.stats.accepted == 2  # the cut POST was not sent again


# --- a real HTTP proxy ------------------------------------------------------------------------


def test_the_driver_goes_through_the_users_http_proxy(tinyproxy: tuple[str, Path]) -> None:
    """With ``httpx.Client(proxy=...)`` the request goes through tinyproxy (its log shows
    the stream's absolute-form request) and events stream through it live."""
    proxy_url, log = tinyproxy
    with EventStreamServer() as server, httpx.Client(proxy=proxy_url) as client:
        url = url_of(server)

        def step(report: Any, seen: list[Any]) -> bool:
            if isinstance(report, ReportStatus) and report.state is ClientState.STREAMING:
                server.publish(Event(data="through the proxy"))
            return len(events(seen)) == 1

        with SyncEventSource(client, fast(url)) as source:
            seen = drive(source, step)
    assert [e.data for e in events(seen)] == ["through the proxy"]
    assert proxied_requests(log) == [f"GET {url} HTTP/1.1"]



# --- where a blocked request is woken, and where it cannot be ---------------------------------


def test_a_request_whose_head_never_comes_is_let_go_at_the_stall_timeout() -> None:
    """The server takes each connection and never answers: at the 0.5 s stall timeout the
    session drops the request while its thread waits for the head; the socket, known from
    httpcore's ``trace`` extension, is shut down, so that thread ends at once (the server
    still holds the connection) and the next request goes out."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(WATCHDOG)
    held: list[socket.socket] = []

    def serve() -> None:  # the first connection (later ones wait in the backlog)
        sock, _ = listener.accept()
        held.append(sock)

    thread = threading.Thread(target=serve)
    thread.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/events"
    ended: list[int] = []
    try:
        with httpx.Client() as client:
            source = SyncEventSource(client, fast(url, stall_timeout=0.5))

            def step(report: Any, seen: list[Any]) -> bool:
                if states(seen).count(ClientState.CONNECTING) < 2:
                    return False
                # CONNECTING comes out before the new request goes: no thread should be left
                until(lambda: response_threads() == [], "the first request's thread to end")
                ended.append(len(held))
                return True

            with source:
                seen = drive(source, step)
    finally:
        listener.close()
        thread.join(WATCHDOG)
        for sock in held:
            sock.close()
    assert ended == [1]  # the first connection was still open on the server
    reasons = [s.reason for s in seen if isinstance(s, ReportStatus)
               and s.state is ClientState.RECONNECTING]
    assert "stall" in str(reasons[0]), reasons


def test_close_during_a_hanging_connect_returns_and_the_thread_ends_by_itself() -> None:
    """The server's full accept queue drops the SYNs, so the request's thread hangs in the
    TCP connect, where no socket is known yet. close() from another thread returns at once
    without waiting for it; the thread ends by itself at the client's connect timeout
    (2 s) and leaves nothing behind."""
    with _sync.unanswered_port() as port, httpx.Client(timeout=2.0) as client:
        source = SyncEventSource(client, fast(f"http://127.0.0.1:{port}/events"))
        timings: dict[str, float] = {}

        def closer() -> None:
            time.sleep(0.5)  # the request is in its connect
            timings["close"] = time.monotonic()
            source.close()
            timings["closed"] = time.monotonic()

        thread = threading.Thread(target=closer)
        thread.start()
        try:
            assert list(source) == []
        finally:
            thread.join()
        took = timings["closed"] - timings["close"]
        assert took < 1.0, took
        assert len(response_threads()) == 1  # still in its connect
        until(lambda: response_threads() == [], "the connect to time out")
