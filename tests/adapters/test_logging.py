"""The adapters' standard logging (sse_core.adapters._logging) on real sockets: the client's
lifecycle at INFO with its structured keys, refusals and send timeouts at WARNING, nothing
per event above DEBUG -- for the asyncio, trio and sync clients (one shared dispatch), the
httpx driver, the servers and the per-request responses."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from sse_core import ClientConfig, ServerConfig, serialize_event
from sse_core.adapters import ClientOptions, ServerOptions
from sse_core.state import GAP_EVENT_TYPE, BackoffConfig, Jitter, SequencerConfig

from .test_iteration import NO_CONTENT, Scripted, chunk, plain_loop, stream_head
from .test_server_limits import under_uvicorn

KINDS = ["asyncio", "trio", "sync"]
DELAY = 0.05  # the reconnection delay of these tests (no jitter)
BACKOFF = BackoffConfig(base_delay=DELAY, min_base_delay=DELAY, max_delay=DELAY,
                        jitter=Jitter.NONE)
#: Every client record carries these keys (None when they do not apply).
CLIENT_KEYS = {
    "sse_event", "sse_adapter", "sse_url", "sse_state", "sse_reason", "sse_last_event_id",
    "sse_delay", "sse_status", "sse_gap_size", "sse_transport", "sse_is_stale",
}


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "trio":
        pytest.importorskip("trio")
    yield request.param


@pytest.fixture
def captured(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every record of the sse_core loggers, DEBUG and up."""
    with caplog.at_level(logging.DEBUG, logger="sse_core"):
        yield caplog


def client_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "sse_core.client"]


def field(record: logging.LogRecord, name: str) -> Any:
    return record.__dict__[name]


def events(count: int, first_id: int = 1) -> bytes:
    return b"".join(
        chunk(serialize_event(f"event {n}", id=str(n))) for n in range(first_id, first_id + count)
    )


def test_a_reconnection_logs_reason_delay_and_the_id_resumed_from(
    kind: str, captured: pytest.LogCaptureFixture
) -> None:
    """The stream ends after event 7: INFO "reconnecting" with the reason, the backoff's
    delay and the last event id; then INFO "connecting" resuming from 7; the 204 that
    answers closes at INFO. Every record carries every key of the scheme."""
    answer = stream_head() + events(1, first_id=7) + b"0\r\n\r\n"
    with Scripted([answer, NO_CONTENT]) as server:
        url = server.url
        outcome = plain_loop(kind, ClientConfig(url=url, backoff=BACKOFF))
    assert [e.id for e in outcome.events] == ["7"]
    records = client_records(captured)
    assert all(r.__dict__.keys() >= CLIENT_KEYS for r in records)
    assert {field(r, "sse_adapter") for r in records} == {kind}
    [lost] = [r for r in records if field(r, "sse_event") == "reconnecting"]
    assert lost.levelno == logging.INFO
    assert field(lost, "sse_reason") == "stream ended"
    assert field(lost, "sse_delay") == pytest.approx(DELAY)
    assert field(lost, "sse_last_event_id") == "7"
    assert field(lost, "sse_url") == url
    connecting = [r for r in records if field(r, "sse_event") == "connecting"]
    assert [field(r, "sse_last_event_id") for r in connecting] == ["", "7"]
    assert "resuming from id '7'" in connecting[1].getMessage()
    assert [r.levelno for r in connecting] == [logging.INFO, logging.INFO]
    [connected] = [r for r in records if field(r, "sse_event") == "connected"]
    assert connected.levelno == logging.INFO
    closed = records[-1]
    assert (field(closed, "sse_event"), closed.levelno) == ("closed", logging.INFO)


def test_an_http_401_logs_a_warning_with_its_status(
    kind: str, captured: pytest.LogCaptureFixture
) -> None:
    """A wrong API key: one WARNING record, "refused", with the status 401; the CLOSED
    record follows at INFO."""
    body = json.dumps({"error": "bad key"}).encode()
    answer = (b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    with Scripted([answer]) as server:
        plain_loop(kind, ClientConfig(url=server.url, backoff=BACKOFF))
    records = client_records(captured)
    warnings = [r for r in records if r.levelno >= logging.WARNING]
    assert [(field(r, "sse_event"), field(r, "sse_status")) for r in warnings] == [
        ("refused", 401)
    ]
    assert "401" in warnings[0].getMessage()
    assert field(records[-1], "sse_event") == "closed"


def test_a_gap_logs_info_with_its_size(kind: str, captured: pytest.LogCaptureFixture) -> None:
    """The sequencer gives up on ids 2 to 4: INFO "gap" with its size 3 and its reason; a
    server's gap signal logs INFO with the id it could not replay from, and its size when
    the signal says how many were lost (unknown without ``missed``)."""
    body = events(1, first_id=1) + events(1, first_id=5)
    answer = (stream_head() + body, True)  # held open: the gap timeout releases it
    with Scripted([answer]) as server:
        config = ClientConfig(url=server.url, backoff=BACKOFF,
                              sequencer=SequencerConfig(gap_timeout=0.1))
        outcome = plain_loop(kind, config, options=ClientOptions(timeout=2.0))
    assert [g.count for g in outcome.gaps] == [3]
    [gap] = [r for r in client_records(captured) if field(r, "sse_event") == "gap"]
    assert gap.levelno == logging.INFO
    assert (field(gap, "sse_gap_size"), field(gap, "sse_reason")) == (3, "timeout")
    assert "3 events lost" in gap.getMessage()

    captured.clear()
    signal = serialize_event(json.dumps({"last_event_id": "e-5", "reason": "too_old"}),
                             event=GAP_EVENT_TYPE)
    with Scripted([stream_head() + chunk(signal) + b"0\r\n\r\n", NO_CONTENT]) as server:
        plain_loop(kind, ClientConfig(url=server.url, backoff=BACKOFF))
    [gap] = [r for r in client_records(captured) if field(r, "sse_event") == "gap"]
    assert (field(gap, "sse_gap_size"), field(gap, "sse_last_event_id")) == (None, "e-5")

    captured.clear()  # a server that says how many were lost
    signal = serialize_event(
        json.dumps({"last_event_id": "e-5", "reason": "too_old", "missed": 4}),
        event=GAP_EVENT_TYPE,
    )
    with Scripted([stream_head() + chunk(signal) + b"0\r\n\r\n", NO_CONTENT]) as server:
        plain_loop(kind, ClientConfig(url=server.url, backoff=BACKOFF))
    [gap] = [r for r in client_records(captured) if field(r, "sse_event") == "gap"]
    assert (field(gap, "sse_gap_size"), field(gap, "sse_last_event_id")) == (4, "e-5")
    assert "4 events lost (too_old)" in gap.getMessage()


def test_nothing_per_event_above_debug(kind: str, captured: pytest.LogCaptureFixture) -> None:
    """Streams of 10 and of 100 events give the same records at INFO and above: the count
    does not grow with the events."""
    counts = []
    for count in (10, 100):
        captured.clear()
        answer = stream_head() + events(count) + b"0\r\n\r\n"
        with Scripted([answer, NO_CONTENT]) as server:
            outcome = plain_loop(kind, ClientConfig(url=server.url, backoff=BACKOFF))
        assert len(outcome.events) == count
        loud = [r for r in client_records(captured) if r.levelno >= logging.INFO]
        counts.append([field(r, "sse_event") for r in loud])
    assert counts[0] == counts[1]
    assert counts[0] == ["connecting", "connected", "reconnecting", "connecting", "closed"]


# --- the httpx driver and the servers ---------------------------------------------------------


def test_a_404_logs_a_warning_on_both_sides(captured: pytest.LogCaptureFixture) -> None:
    """The httpx driver asks the asyncio server for a path it does not serve: the server
    logs the refused request at WARNING (404, the path), the driver the refused response."""
    pytest.importorskip("httpx", reason="httpx is in the peers extra")
    from sse_core.adapters.httpx import EventSource

    from .httpx_support import raises_for_404
    from .test_asyncio import run, started_server

    async def main() -> None:
        server, url = await started_server()
        await raises_for_404(EventSource, url)
        await server.aclose()

    run(main)
    warnings = [r for r in captured.records if r.levelno >= logging.WARNING]
    by_logger = {r.name: r for r in warnings}
    assert len(warnings) == 2, [r.getMessage() for r in warnings]
    server_side, client_side = by_logger["sse_core.server"], by_logger["sse_core.client"]
    assert (field(server_side, "sse_event"), field(server_side, "sse_status")) == ("refused", 404)
    assert field(server_side, "sse_path") == "/nowhere"
    assert field(server_side, "sse_peer") == "127.0.0.1"
    assert field(server_side, "sse_adapter") == "asyncio"
    assert (field(client_side, "sse_event"), field(client_side, "sse_status")) == ("refused", 404)
    assert field(client_side, "sse_adapter") == "httpx"


def test_a_server_logs_clients_coming_and_going_at_debug(
    captured: pytest.LogCaptureFixture,
) -> None:
    """The sync server: a client that subscribes and leaves gives DEBUG records only,
    with the id it resumed from."""
    from sse_core.adapters import sync as sse_sync

    with sse_sync.EventStreamServer(config=ServerConfig(heartbeat_interval=None)) as server:
        host, port = server.address
        with socket.create_connection((host, port), timeout=10) as sock:
            sock.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\nLast-Event-ID: abc\r\n\r\n")
            sock.recv(1024)
        deadline = time.monotonic() + 10
        while not any(field(r, "sse_event") == "left" for r in captured.records
                      if r.name == "sse_core.server"):
            assert time.monotonic() < deadline, "the server did not notice the client left"
            time.sleep(0.02)
    records = [r for r in captured.records if r.name == "sse_core.server"]
    assert {r.levelno for r in records} == {logging.DEBUG}
    [subscribed] = [r for r in records if field(r, "sse_event") == "subscribed"]
    assert field(subscribed, "sse_last_event_id") == "abc"
    assert field(subscribed, "sse_path") == "/events"


@contextlib.contextmanager
def uvicorn_serving(app: Any) -> Iterator[tuple[str, int]]:
    """``app`` under a real uvicorn on loopback, on an event loop in a thread of its own."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        with under_uvicorn(app, loop) as address:
            yield address
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_a_send_timeout_logs_a_warning(captured: pytest.LogCaptureFixture) -> None:
    """The ASGI StreamResponse under uvicorn floods a client that reads nothing: once the
    buffers are full its send waits, and after send_timeout the response lets go with one
    WARNING record naming the timeout."""
    from sse_core.adapters.asgi import StreamResponse

    async def flood() -> AsyncIterator[str]:
        while True:
            yield "x" * 1000

    async def app(scope: Any, receive: Any, send: Any) -> None:
        response = StreamResponse(flood(), config=ServerConfig(heartbeat_interval=None),
                                  options=ServerOptions(send_timeout=0.5))
        await response(scope, receive, send)

    with uvicorn_serving(app) as (host, port), socket.socket() as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.connect((host, port))
        client.sendall(b"GET /flood HTTP/1.1\r\nHost: x\r\n\r\n")
        deadline = time.monotonic() + 20
        while not [r for r in captured.records if r.levelno >= logging.WARNING]:
            assert time.monotonic() < deadline, "no send timeout logged"
            time.sleep(0.05)
    [record] = [r for r in captured.records if r.levelno >= logging.WARNING]
    assert record.name == "sse_core.server"
    assert (field(record, "sse_event"), field(record, "sse_timeout")) == ("send_timeout", 0.5)
    assert field(record, "sse_adapter") == "asgi"
