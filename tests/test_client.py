"""Tests of the sans-IO client session (WHATWG EventSource behaviour plus resilience)."""

from __future__ import annotations

import json
import random
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from sse_core import (
    Action,
    ClientConfig,
    ClientSession,
    ClientState,
    ClockError,
    Connect,
    Deliver,
    EndCause,
    Event,
    HTTPStatusError,
    InvalidConfigError,
    LocalProtocolError,
    ReportDropped,
    ReportFailure,
    ReportGap,
    ReportStatus,
    StreamError,
    Transport,
    serialize,
    serialize_event,
    serialize_many,
)
from sse_core.state import (
    GAP_EVENT_TYPE,
    POSITION_EVENT_TYPE,
    TRANSITIONS,
    BackoffConfig,
    ChunkConfig,
    ClientInput,
    Compressor,
    Jitter,
    ReadyState,
    SequencerConfig,
    split_message,
)

URL = "https://example.test/stream"
SSE_HEADERS = [("Content-Type", "text/event-stream; charset=utf-8")]
FIXED = BackoffConfig(base_delay=1.0, jitter=Jitter.NONE, max_delay=8.0, healthy_after=5.0)


def session(**overrides: Any) -> ClientSession:
    config = ClientConfig(**{"url": URL, "backoff": FIXED, **overrides})
    return ClientSession(config, rng=random.Random(1))


def kinds(actions: list[Action]) -> list[str]:
    return [type(action).__name__ for action in actions]


def statuses(actions: list[Action]) -> list[ClientState]:
    return [a.state for a in actions if isinstance(a, ReportStatus)]


def delivered(actions: list[Action]) -> list[str]:
    return [a.event.data for a in actions if isinstance(a, Deliver)]


def open_stream(client: ClientSession, now: float = 0.0) -> None:
    client.start(now)
    client.on_response(200, SSE_HEADERS, now)


def header(request_headers: tuple[tuple[str, str], ...], name: str) -> str | None:
    values = [v for n, v in request_headers if n.lower() == name.lower()]
    assert len(values) <= 1
    return values[0] if values else None


# --- the request ----------------------------------------------------------------------------


def test_start_connects_with_spec_headers() -> None:
    """start() reports CONNECTING and asks for a GET with Accept and Cache-Control."""
    client = session()
    actions = client.start(0.0)
    assert kinds(actions) == ["ReportStatus", "Connect"]
    assert statuses(actions) == [ClientState.CONNECTING]
    assert client.ready_state is ReadyState.CONNECTING
    connect = actions[1]
    assert isinstance(connect, Connect)
    request = connect.request
    assert (request.method, request.url, request.body) == ("GET", URL, None)
    assert header(request.headers, "Accept") == "text/event-stream"
    assert header(request.headers, "Cache-Control") == "no-cache"
    assert header(request.headers, "Accept-Encoding") == "gzip"
    assert header(request.headers, "Last-Event-ID") is None


def test_post_with_body_and_user_headers() -> None:
    """POST with a body is possible; user headers replace defaults of the same name."""
    client = session(
        method="POST", body=b'{"prompt": "hi"}',
        headers=(("Authorization", "Bearer x"), ("accept", "text/event-stream, */*")),
        is_gzip_accepted=False,
    )
    request = client.request()
    assert (request.method, request.body) == ("POST", b'{"prompt": "hi"}')
    assert header(request.headers, "Authorization") == "Bearer x"
    assert header(request.headers, "Accept") == "text/event-stream, */*"
    assert header(request.headers, "Accept-Encoding") is None


def test_last_event_id_header_from_config_and_stream() -> None:
    """Last-Event-ID is sent when known: from the config, then from the stream."""
    client = session(last_event_id="7")
    assert header(client.request().headers, "Last-Event-ID") == "7"
    open_stream(client)
    client.on_data(b"id: 8\ndata: x\n\n", 0.1)
    assert client.last_event_id == "8"
    assert header(client.request().headers, "Last-Event-ID") == "8"


def test_events_without_an_id_report_the_id_carried_over_connections() -> None:
    """Each connection's parser starts from the session's last event ID: an event without an
    ``id`` of its own on the resumed connection (and on the first, when the config gave one)
    has ``id is None`` and ``last_event_id`` set to the id it resumed from."""
    client = session(last_event_id="7")
    open_stream(client)
    (first,) = [a.event for a in client.on_data(b"data: a\n\n", 0.1) if isinstance(a, Deliver)]
    assert (first.id, first.last_event_id) == (None, "7")
    client.on_data(b"id: 8\ndata: b\n\n", 0.2)
    client.on_connection_lost(0.3)
    assert any(isinstance(a, Connect) for a in client.on_timer(2.0))
    client.on_response(200, SSE_HEADERS, 2.1)
    (resumed,) = [a.event for a in client.on_data(b"data: c\n\n", 2.2) if isinstance(a, Deliver)]
    assert (resumed.id, resumed.last_event_id) == (None, "8")


def test_cache_busting_param_is_per_session_and_seeded() -> None:
    """The cache-busting value is random per session, reproducible from the seed."""
    config = ClientConfig(url=URL + "?a=1", cache_bust_param="cb")
    first = ClientSession(config, rng=random.Random(5)).request().url
    again = ClientSession(config, rng=random.Random(5)).request().url
    other = ClientSession(config, rng=random.Random(6)).request().url
    assert first.startswith(URL + "?a=1&cb=")
    assert first == again != other


@pytest.mark.parametrize(
    "overrides",
    [
        {"url": "ftp://example.test/"},
        {"url": "/relative"},
        {"url": "https://example.test/a b"},
        {"method": "GET POST"},
        {"headers": (("X-Bad", "a\r\nInjected: 1"),)},
        {"headers": (("Bad Name", "v"),)},
        {"last_event_id": "a\nb"},
        {"retry_statuses": frozenset({200})},
        {"retry_statuses": {503}},
        {"stall_timeout": 0},
        {"max_line_length": 0},
        {"body": 42},
        {"body": "lone \ud800 surrogate"},
        {"headers": "Authorization: Bearer x"},
        {"headers": {"X-Bad": "a\r\nInjected: 1"}},
        {"json": {"a": float("nan")}},
        {"json": {"a": object()}},
        {"json": {"a": 1}, "body": b"{}"},
    ],
)
def test_invalid_config(overrides: dict[str, Any]) -> None:
    """Configuration that could produce a bad or injected request is refused."""
    with pytest.raises(InvalidConfigError):
        ClientConfig(**{"url": URL, **overrides})


# --- the response ---------------------------------------------------------------------------


def test_open_then_streaming_then_events() -> None:
    """200 + text/event-stream opens (CONNECTED); first bytes make it STREAMING."""
    client = session()
    client.start(0.0)
    actions = client.on_response(200, [(b"content-type", b"text/event-stream")], 0.5)
    assert statuses(actions) == [ClientState.CONNECTED]
    assert client.ready_state is ReadyState.OPEN
    actions = client.on_data(b"data: a\n\ndata: b\n", 1.0)
    assert statuses(actions) == [ClientState.STREAMING]
    assert delivered(actions) == ["a"]
    assert delivered(client.on_data(b"\n", 1.1)) == ["b"]
    assert client.metrics.messages_received == 2


def test_204_closes_for_good() -> None:
    """HTTP 204 closes the session: no reconnection is scheduled."""
    client = session()
    client.start(0.0)
    actions = client.on_response(204, [], 0.1)
    assert kinds(actions) == ["Disconnect", "ReportStatus"]
    assert client.state is ClientState.CLOSED
    assert client.next_deadline() is None
    assert client.on_timer(100.0) == []


@pytest.mark.parametrize(
    ("status", "headers"),
    [(500, SSE_HEADERS), (404, SSE_HEADERS), (200, [("Content-Type", "text/plain")]),
     (200, []), (200, [("Content-Type", "text/event-streamx")])],
)
def test_failures_close_by_default(status: int, headers: list[tuple[str, str]]) -> None:
    """Any other status, or a wrong content type, fails the connection (spec default), once
    the body's end came: the failure reports the status, the headers and the body."""
    client = session()
    client.start(0.0)
    assert client.on_response(status, headers, 0.1) == []  # the body is read first
    assert client.on_data(b'{"error": "no"}', 0.2) == []
    actions = client.on_eof(0.3)
    assert kinds(actions) == ["ReportFailure", "ReportStatus"]
    failure = actions[0]
    assert isinstance(failure, ReportFailure)
    assert (failure.cause, failure.status, failure.body) == (
        EndCause.REFUSED, status, b'{"error": "no"}'
    )
    assert list(failure.headers) == headers
    assert statuses(actions) == [ClientState.CLOSED]
    assert client.next_deadline() is None


def test_refused_body_is_bounded() -> None:
    """Only the first max_error_body_size bytes are read: then the connection is closed."""
    client = session(max_error_body_size=10)
    client.start(0.0)
    client.on_response(401, [("Content-Type", "application/json")], 0.0)
    assert client.on_data(b"0123", 0.1) == []
    actions = client.on_data(b"456789abcdef", 0.2)
    assert kinds(actions) == ["Disconnect", "ReportFailure", "ReportStatus"]
    failure = actions[1]
    assert isinstance(failure, ReportFailure) and failure.body == b"0123456789"
    assert failure.reason == "HTTP 401"
    error = failure.error()
    assert isinstance(error, HTTPStatusError)
    assert (error.status, error.body, error.headers) == (
        401, b"0123456789", (("Content-Type", "application/json"),)
    )
    assert str(error) == "HTTP 401: '0123456789'" and error.reason == "HTTP 401"
    long = attrs.evolve(failure, body=b"x" * 300).error()
    assert str(long) == f"HTTP 401: {'x' * 200!r}..."


def test_refused_body_ends_with_a_lost_connection_or_a_stall() -> None:
    """A refused response's body read ends on a lost connection, on the stall timeout, or
    at once when max_error_body_size is 0; the application may close it meanwhile."""
    lost = session()
    lost.start(0.0)
    lost.on_response(500, [], 0.0)
    lost.on_data(b"partial", 0.1)
    actions = lost.on_connection_lost(0.2)
    assert kinds(actions) == ["ReportFailure", "ReportStatus"]
    assert isinstance(actions[0], ReportFailure) and actions[0].body == b"partial"

    stalled = session(stall_timeout=5.0)
    stalled.start(0.0)
    stalled.on_response(500, [], 1.0)
    assert stalled.on_timer(2.0) == []
    assert stalled.next_deadline() == pytest.approx(5.0)
    assert kinds(stalled.on_timer(5.0)) == ["Disconnect", "ReportFailure", "ReportStatus"]

    at_once = session(max_error_body_size=0)
    at_once.start(0.0)
    actions = at_once.on_response(404, [(b"X-Why", b"gone")], 0.0)
    assert kinds(actions) == ["Disconnect", "ReportFailure", "ReportStatus"]
    assert isinstance(actions[1], ReportFailure) and actions[1].headers == (("X-Why", "gone"),)

    closed = session()
    closed.start(0.0)
    closed.on_response(500, [], 0.0)
    actions = closed.close(0.5)
    assert kinds(actions) == ["Disconnect", "ReportStatus"]  # asked for: no failure
    assert statuses(actions) == [ClientState.CLOSED]


def test_204_is_a_quiet_end() -> None:
    """204 is the server's "stop reconnecting": CLOSED at once, with no failure to report."""
    client = session()
    client.start(0.0)
    actions = client.on_response(204, [], 0.0)
    assert kinds(actions) == ["Disconnect", "ReportStatus"]


def test_retry_statuses_reconnect() -> None:
    """Statuses chosen in retry_statuses reconnect with backoff instead of failing."""
    client = session(retry_statuses=frozenset({502, 503}))
    client.start(0.0)
    actions = client.on_response(503, SSE_HEADERS, 0.0)
    assert kinds(actions) == ["Disconnect", "ReportStatus"]
    assert statuses(actions) == [ClientState.RECONNECTING]
    assert client.next_deadline() == pytest.approx(1.0)


def test_unsupported_content_encoding_fails() -> None:
    """A body in a coding we cannot decode fails the connection."""
    client = session()
    client.start(0.0)
    client.on_response(200, [*SSE_HEADERS, ("Content-Encoding", "br")], 0.0)
    actions = client.on_eof(0.1)
    assert statuses(actions) == [ClientState.CLOSED]
    failure = actions[0]
    assert isinstance(failure, ReportFailure) and "unsupported Content-Encoding" in failure.reason
    assert type(failure.error()) is StreamError  # a 200: not an HTTP status error


# --- reconnection -----------------------------------------------------------------------------


def _answer(tokens: list[str], *, with_ids: bool) -> bytes:
    """An LLM-style answer: one ``data:`` event per token, ids when asked."""
    return b"".join(
        serialize_event(token, id=str(n) if with_ids else None) for n, token in enumerate(tokens)
    )


@pytest.mark.parametrize("cut", ["eof", "lost", "stall", "retryable status"])
def test_a_post_without_ids_is_never_sent_twice(cut: str) -> None:
    """The LLM case: a POST stream with no event ids cut mid-answer ends the session with a
    NOT_RESUMABLE failure instead of running the request again: no token twice."""
    client = session(
        method="POST", body=b'{"prompt": "hi"}', stall_timeout=10.0,
        retry_statuses=frozenset({503}),
    )
    (connect,) = [a for a in client.start(0.0) if isinstance(a, Connect)]
    assert connect.request.method == "POST"
    if cut == "retryable status":
        actions = client.on_response(503, [], 1.0)
        tokens: list[str] = []
    else:
        client.on_response(200, SSE_HEADERS, 0.0)
        actions = client.on_data(_answer(["Hello", ", w", "örld"], with_ids=False), 1.0)
        tokens = delivered(actions)
        if cut == "eof":
            actions = client.on_eof(2.0)
        elif cut == "lost":
            actions = client.on_connection_lost(2.0, "connection reset")
        else:
            actions = client.on_timer(11.0)
    assert not any(isinstance(a, Connect) for a in actions)
    failure = next(a for a in actions if isinstance(a, ReportFailure))
    assert failure.cause is EndCause.NOT_RESUMABLE
    assert "POST request is not sent again" in failure.reason
    assert statuses(actions) == [ClientState.CLOSED]
    assert type(failure.error()) is StreamError
    assert client.next_deadline() is None
    assert "".join(tokens) in ("", "Hello, wörld")


def test_a_post_with_ids_resumes_with_last_event_id() -> None:
    """A POST stream that carried event ids is resumable: after a cut the request is made
    again, with Last-Event-ID, and the replayed tokens are not delivered twice."""
    client = session(method="POST", body=b'{"prompt": "hi"}')
    open_stream(client)
    first = delivered(client.on_data(_answer(["Hello", ", w"], with_ids=True), 0.5))
    actions = client.on_eof(1.0)
    assert statuses(actions) == [ClientState.RECONNECTING]
    (connect,) = [a for a in client.on_timer(2.0) if isinstance(a, Connect)]
    assert connect.request.method == "POST" and connect.request.body == b'{"prompt": "hi"}'
    assert header(connect.request.headers, "Last-Event-ID") == "1"
    client.on_response(200, SSE_HEADERS, 2.0)
    # The server replays from its log (id 1 again) and goes on.
    rest = delivered(client.on_data(_answer(["Hello", ", w", "\u00f6rld"], with_ids=True), 2.5))
    assert "".join(first + rest) == "Hello, w\u00f6rld"


def test_resend_opt_in_and_idempotent_methods_reconnect() -> None:
    """is_resend_allowed re-sends a POST that cannot resume; PUT, like GET, is idempotent
    (RFC 9110 9.2.2) and reconnects as EventSource does; the method is case-sensitive."""
    for config in ({"method": "POST", "is_resend_allowed": True}, {"method": "PUT"}, {}):
        client = session(**config)
        open_stream(client)
        client.on_data(_answer(["a"], with_ids=False), 0.5)
        assert statuses(client.on_eof(1.0)) == [ClientState.RECONNECTING], config
        assert any(isinstance(a, Connect) for a in client.on_timer(2.0)), config
    assert session(method="DELETE").config.is_idempotent
    assert not session(method="get").config.is_idempotent
    assert not session(method="PATCH").config.is_idempotent
    with pytest.raises(InvalidConfigError):
        ClientConfig(url=URL, is_resend_allowed=1)  # type: ignore[arg-type]
    with pytest.raises(InvalidConfigError):
        ClientConfig(url=URL, max_error_body_size=-1)


def test_a_post_given_a_last_event_id_may_resume() -> None:
    """A POST started with a last_event_id carries Last-Event-ID: it is resumable at once."""
    client = session(method="POST", last_event_id="7")
    open_stream(client)
    assert statuses(client.on_connection_lost(1.0)) == [ClientState.RECONNECTING]


def test_giving_up_reports_a_failure() -> None:
    """When the backoff gives up, a GAVE_UP failure comes before the CLOSED status."""
    client = session(backoff=BackoffConfig(base_delay=1.0, jitter=Jitter.NONE, max_attempts=0))
    open_stream(client)
    actions = client.on_eof(1.0)
    assert kinds(actions) == ["ReportFailure", "ReportStatus"]
    assert isinstance(actions[0], ReportFailure) and actions[0].cause is EndCause.GAVE_UP
    assert statuses(actions) == [ClientState.CLOSED]



def test_eof_reconnects_after_delay_with_last_event_id() -> None:
    """End of body reconnects after the reconnection time, sending Last-Event-ID."""
    client = session()
    open_stream(client)
    client.on_data(b"id: 1\ndata: a\n\n", 0.5)
    actions = client.on_eof(0.6)
    assert kinds(actions) == ["ReportStatus"]
    assert statuses(actions) == [ClientState.RECONNECTING]
    assert actions[0].reason == "stream ended"  # type: ignore[union-attr]
    deadline = client.next_deadline()
    assert deadline == pytest.approx(1.6)
    assert client.on_timer(1.5) == []
    actions = client.on_timer(1.6)
    assert statuses(actions) == [ClientState.CONNECTING]
    connect = actions[-1]
    assert isinstance(connect, Connect)
    assert header(connect.request.headers, "Last-Event-ID") == "1"
    assert client.metrics.connection_attempts == 2


def test_truncated_stream_is_reported_in_reason() -> None:
    """A body that ends mid-event reconnects, saying the stream was cut."""
    client = session()
    open_stream(client)
    client.on_data(b"data: half", 0.1)
    actions = client.on_eof(0.2)
    assert actions[-1].reason == "stream ended mid-event"  # type: ignore[union-attr]


def test_server_retry_sets_reconnection_time() -> None:
    """retry: changes the reconnection delay (WHATWG reconnection time)."""
    client = session()
    open_stream(client)
    client.on_data(b"retry: 250\n\n", 0.1)
    assert client.reconnection_time == pytest.approx(0.25)
    client.on_connection_lost(0.2)
    assert client.next_deadline() == pytest.approx(0.45)


def test_backoff_grows_while_connections_fail() -> None:
    """Failed attempts back off exponentially up to the cap."""
    client = session()
    client.start(0.0)
    now, delays = 0.0, []
    for _ in range(6):
        client.on_connection_lost(now, "refused")
        deadline = client.next_deadline()
        assert deadline is not None
        delays.append(deadline - now)
        now = deadline
        client.on_timer(now)
    assert delays == pytest.approx([1.0, 2.0, 4.0, 8.0, 8.0, 8.0])


def test_give_up_closes() -> None:
    """When the backoff gives up the session closes, saying why."""
    client = session(backoff=BackoffConfig(base_delay=1.0, max_attempts=1, jitter=Jitter.NONE))
    client.start(0.0)
    client.on_connection_lost(0.0)
    client.on_timer(1.0)
    actions = client.on_connection_lost(1.0)
    assert statuses(actions) == [ClientState.CLOSED]
    assert "gave up" in (actions[-1].reason or "")  # type: ignore[union-attr]


def test_stall_replaces_connection() -> None:
    """No bytes (heartbeats included) within stall_timeout: disconnect and reconnect."""
    client = session(stall_timeout=10.0)
    open_stream(client)
    client.on_data(b": ping\n\n", 5.0)
    assert client.next_deadline() == pytest.approx(15.0)
    assert client.on_timer(14.9) == []
    actions = client.on_timer(15.0)
    assert kinds(actions) == ["Disconnect", "ReportStatus"]
    assert statuses(actions) == [ClientState.RECONNECTING]


def test_stall_while_waiting_for_response_head() -> None:
    """The stall timeout also bounds the wait for the response head."""
    client = session(stall_timeout=3.0)
    client.start(0.0)
    assert client.next_deadline() == pytest.approx(3.0)
    assert statuses(client.on_timer(3.0)) == [ClientState.RECONNECTING]


# --- stall detection: progress is a complete line, not a byte -------------------------------


def drip(client: ClientSession, data: bytes, start: float, interval: float) -> float:
    """Feed ``data`` one byte at a time, ``interval`` seconds apart; returns the last instant."""
    now = start
    for offset in range(len(data)):
        now = start + offset * interval
        client.on_data(data[offset : offset + 1], now)
    return now


def test_drip_without_line_end_stalls() -> None:
    """A server dripping one byte every 0.5 s and never ending a line stalls at stall_timeout
    after the last complete line; the reason says what was missing."""
    client = session(stall_timeout=10.0)
    open_stream(client)
    client.on_data(b"data: a\n\n", 1.0)  # the last progress
    last = drip(client, b"data: " + b"x" * 12, 2.0, 0.5)
    assert last == 10.5  # bytes kept coming until just before the deadline
    assert client.state is ClientState.STREAMING
    assert client.next_deadline() == pytest.approx(11.0)
    actions = client.on_timer(11.0)
    assert kinds(actions) == ["Disconnect", "ReportStatus"]
    assert statuses(actions) == [ClientState.RECONNECTING]
    assert actions[-1].reason == "stalled: no complete line for 10 s"  # type: ignore[union-attr]


def test_drip_from_the_first_byte_stalls_from_the_connect() -> None:
    """Bytes without a line end from the start: the clock started at the connect still runs
    (the first byte makes the stream STREAMING but is no progress)."""
    client = session(stall_timeout=5.0)
    open_stream(client)
    client.on_data(b"d", 1.0)
    assert client.state is ClientState.STREAMING
    assert client.next_deadline() == pytest.approx(5.0)
    drip(client, b"ata: x", 2.0, 0.5)
    assert statuses(client.on_timer(5.0)) == [ClientState.RECONNECTING]


@pytest.mark.parametrize("end", [b"\n", b"\r", b"\r\n"], ids=["LF", "CR", "CRLF"])
def test_line_end_resets_the_stall_timeout(end: bytes) -> None:
    """A chunk that completes a line (with LF, CR or CRLF) is progress: the deadline moves to
    stall_timeout after it."""
    client = session(stall_timeout=10.0)
    open_stream(client)
    drip(client, b"data: slow", 1.0, 0.5)
    assert client.next_deadline() == pytest.approx(10.0)
    client.on_data(b" line" + end, 7.0)
    assert client.next_deadline() == pytest.approx(17.0)
    assert client.on_timer(10.0) == []
    actions = client.on_data(end, 10.0)  # the blank line dispatches the event
    assert delivered(actions) == ["slow line"]


def test_heartbeat_comment_resets_the_stall_timeout() -> None:
    """A heartbeat comment (":\\n\\n", dispatching nothing) is progress like any line."""
    client = session(stall_timeout=10.0)
    open_stream(client)
    for now in (8.0, 16.0, 24.0):
        assert delivered(client.on_data(b":\n\n", now)) == []
        assert client.next_deadline() == pytest.approx(now + 10.0)
    assert client.on_timer(33.9) == []
    assert client.state is ClientState.STREAMING


def test_cr_at_chunk_end_then_lf() -> None:
    """A CRLF split across two chunks: the CR completes the line, the LF alone is counted
    too (harmless: a lone LF would be a line of its own), and each event comes out once."""
    client = session(stall_timeout=10.0)
    open_stream(client)
    client.on_data(b"data: a\r", 2.0)
    assert client.next_deadline() == pytest.approx(12.0)
    assert client.on_data(b"\n", 4.0) == []
    assert client.next_deadline() == pytest.approx(14.0)
    assert delivered(client.on_data(b"\r", 5.0)) == ["a"]
    assert delivered(client.on_data(b"\ndata: b\r", 6.0)) == []
    assert delivered(client.on_data(b"\n\r\n", 7.0)) == ["b"]
    assert client.next_deadline() == pytest.approx(17.0)


def test_gzip_drip_is_judged_on_the_decoded_stream() -> None:
    """A gzip body dripped one compressed byte at a time: CR and LF bytes inside the gzip
    data are no progress, only a line end in the decoded text is."""
    client = session(stall_timeout=10.0)
    client.start(0.0)
    client.on_response(200, [*SSE_HEADERS, ("Content-Encoding", "gzip")], 0.0)
    compressor = Compressor()
    compressed = compressor.compress(b"data: " + bytes(range(32, 127)) * 2)
    assert b"\n" in compressed and b"\r" in compressed  # the trap is really there
    last = drip(client, compressed, 0.5, 0.05)
    assert last > 6.0
    assert client.next_deadline() == pytest.approx(10.0)
    actions = client.on_data(compressor.compress(b"\n"), 9.0)  # the decoded line ends
    assert client.next_deadline() == pytest.approx(19.0)
    actions = client.on_data(compressor.compress(b"\n"), 10.0)
    assert [len(data) for data in delivered(actions)] == [190]
    drip(client, compressor.compress(b": no end"), 11.0, 0.5)
    assert client.next_deadline() == pytest.approx(20.0)
    assert "no complete line" in (client.on_timer(20.0)[-1].reason or "")  # type: ignore[union-attr]


def test_long_line_progresses_every_4_kib() -> None:
    """A line longer than 4 KiB coming slowly (a big event on a slow link) is progress every
    4 KiB of it, so it is not replaced again and again before it can arrive."""
    client = session(stall_timeout=10.0)
    open_stream(client)
    client.on_data(b"data: ", 1.0)
    now = 1.0
    for _ in range(8):  # 32 KiB over 72 s, no line end
        now += 9.0
        client.on_data(b"x" * 4096, now)
        assert client.next_deadline() == pytest.approx(now + 10.0)
    client.on_data(b"x" * 4095, now + 9.0)  # not 4 KiB yet: no progress
    assert client.next_deadline() == pytest.approx(now + 10.0)
    actions = client.on_data(b"\n\n", now + 9.5)
    assert [len(data) for data in delivered(actions)] == [9 * 4096 - 1]


# --- delivery -------------------------------------------------------------------------------


def test_replayed_events_are_not_delivered_twice() -> None:
    """Events replayed after a reconnection are dropped by id."""
    client = session()
    open_stream(client)
    first = client.on_data(b"id: 1\ndata: a\n\nid: 2\ndata: b\n\n", 0.1)
    client.on_connection_lost(0.2)
    client.on_timer(5.0)
    client.on_response(200, SSE_HEADERS, 5.0)
    again = client.on_data(b"id: 2\ndata: b\n\nid: 3\ndata: c\n\n", 5.1)
    assert delivered(first) + delivered(again) == ["a", "b", "c"]
    assert client.metrics.messages_deduplicated == 1


def test_limit_exceeded_delivers_earlier_events_and_reconnects() -> None:
    """A stream that breaks a limit: earlier events delivered, connection replaced."""
    client = session(max_line_length=20)
    open_stream(client)
    actions = client.on_data(b"data: ok\n\ndata: " + b"x" * 50 + b"\n\n", 0.1)
    assert delivered(actions) == ["ok"]
    assert kinds(actions)[-2:] == ["Disconnect", "ReportStatus"]
    assert client.state is ClientState.RECONNECTING


def test_gap_signal_is_reported_not_delivered() -> None:
    """The server's gap signal becomes ReportGap, not an application event."""
    client = session(last_event_id="3")
    open_stream(client)
    signal = serialize_event(
        json.dumps({"last_event_id": "3", "reason": "too_old"}), event=GAP_EVENT_TYPE
    )
    actions = client.on_data(signal + b"data: live\n\n", 0.1)
    assert [a for a in actions if isinstance(a, ReportGap)] == [
        ReportGap(last_event_id="3", reason="too_old")
    ]
    assert delivered(actions) == ["live"]
    assert client.metrics.gaps_reported == 1


def position(id: str) -> bytes:
    return serialize(Event(data="", event=POSITION_EVENT_TYPE, id=id))


def test_position_moves_the_last_event_id_and_is_not_delivered() -> None:
    """A new client's position block (the server's log position) becomes its last event ID,
    sent on the next connection; it is neither delivered nor counted, and the sequencer
    does not wait for the numbers up to it."""
    client = seq_client()
    actions = client.on_data(position("b1-3"), 0.1)
    assert [a for a in actions if not isinstance(a, ReportStatus)] == []
    assert client.last_event_id == "b1-3"
    assert delivered(client.on_data(sends(("b1-4", "e")), 0.2)) == ["e"]
    assert client.metrics.messages_received == 1
    client.on_connection_lost(0.3)
    (connect,) = [a for a in client.on_timer(5.0) if isinstance(a, Connect)]
    assert header(connect.request.headers, "Last-Event-ID") == "b1-4"


def test_position_after_a_gap_is_not_taken_for_a_duplicate() -> None:
    """After a gap the server sends what it kept, then its position, which repeats the id of
    the last event kept: dedup does not count it and nothing is delivered twice."""
    client = session(last_event_id="0")
    open_stream(client)
    signal = serialize_event(
        json.dumps({"last_event_id": "0", "reason": "too_old"}), event=GAP_EVENT_TYPE
    )
    actions = client.on_data(signal + sends(("5", "e5"), ("6", "e6")) + position("6"), 0.1)
    assert delivered(actions) == ["e5", "e6"]
    assert client.metrics.messages_deduplicated == 0
    assert client.metrics.messages_received == 2
    assert client.last_event_id == "6"


def test_gzip_body_is_decoded() -> None:
    """A gzip body, flushed per event by the server's compressor, decodes event by event."""
    client = session()
    client.start(0.0)
    client.on_response(200, [*SSE_HEADERS, ("Content-Encoding", "gzip")], 0.0)
    compressor = Compressor()
    got = []
    for i in range(3):
        got += delivered(client.on_data(compressor.compress(serialize(Event(data=str(i)))), 0.1))
    assert got == ["0", "1", "2"]


def test_decompression_bomb_is_stopped() -> None:
    """A small body that would inflate past max_decompressed_size replaces the connection."""
    client = session(max_decompressed_size=1 << 16)
    client.start(0.0)
    client.on_response(200, [*SSE_HEADERS, ("Content-Encoding", "gzip")], 0.0)
    bomb = Compressor(level=9).compress(b":" + b"a" * (8 << 20) + b"\n")
    assert len(bomb) < 20_000
    actions = client.on_data(bomb, 0.1)
    assert client.state is ClientState.RECONNECTING
    assert "max_decompressed_size" in (actions[-1].reason or "")  # type: ignore[union-attr]


@settings(max_examples=50, deadline=None)
@given(
    data=st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",),
                                                 blacklist_characters="\r\n\x00"),
                          max_size=20), min_size=1, max_size=5),
    encoding=st.sampled_from(["gzip", "x-gzip", "deflate", "br", "zstd", "compress"]),
)
def test_a_body_decoded_by_the_http_client_ignores_content_encoding(
    data: list[str], encoding: str
) -> None:
    """With ``is_body_decoded``, plain event bytes under any Content-Encoding header (one
    the session could decode or not) parse as the events they are: the HTTP client decoded
    them already. Without it the same response fails: a coding it decodes reports the plain
    bytes as a bad body, one it cannot decode is refused."""
    body = serialize_many([Event(data=text) for text in data])
    head = [*SSE_HEADERS, ("Content-Encoding", encoding)]

    decoded = session(is_body_decoded=True)
    decoded.start(0.0)
    decoded.on_response(200, head, 0.0)
    assert delivered(decoded.on_data(body, 0.1)) == data
    assert decoded.state is ClientState.STREAMING

    plain = session()
    plain.start(0.0)
    plain.on_response(200, head, 0.0)
    actions = plain.on_data(body, 0.1)
    if plain.state is not ClientState.RECONNECTING:  # a refused body is read to its end
        actions += plain.on_eof(0.2)
    assert delivered(actions) == []
    reasons = " ".join(a.reason or "" for a in actions if isinstance(a, ReportStatus))
    if encoding in ("gzip", "x-gzip", "deflate"):
        assert "invalid compressed body" in reasons, reasons
        assert plain.state is ClientState.RECONNECTING
    else:
        assert "unsupported Content-Encoding" in reasons, reasons
        assert plain.state is ClientState.CLOSED


def test_a_decoded_body_is_handed_on_as_it_is_for_a_poll_too() -> None:
    """The long-poll answer follows the same rule: with ``is_body_decoded`` its JSON is
    read as it came, whatever Content-Encoding says."""
    config = {"long_poll_url": "https://example.test/poll",
              "initial_transport": Transport.LONG_POLLING, "is_body_decoded": True}
    client = session(**config)
    client.start(0.0)
    answer = json.dumps({"events": [{"id": "1", "event": "message", "data": "polled"}],
                         "last_event_id": "1", "gap": None, "retry": None}).encode()
    client.on_response(
        200, [("Content-Type", "application/json"), ("Content-Encoding", "gzip")], 0.0
    )
    assert delivered(client.on_data(answer, 0.1) + client.on_eof(0.2)) == ["polled"]


@pytest.mark.parametrize("value", [1, "yes", None])
def test_is_body_decoded_is_checked(value: object) -> None:
    """The option takes a bool and nothing else."""
    with pytest.raises(InvalidConfigError, match="is_body_decoded"):
        ClientConfig(url=URL, is_body_decoded=value)


# --- closing and misuse ---------------------------------------------------------------------


def test_close_is_final() -> None:
    """close() disconnects and nothing reconnects afterwards."""
    client = session()
    open_stream(client)
    actions = client.close(1.0)
    assert kinds(actions) == ["Disconnect", "ReportStatus"]
    assert client.state is ClientState.CLOSED
    assert client.next_deadline() is None
    assert client.on_timer(100.0) == []
    assert client.close(101.0) == []
    with pytest.raises(LocalProtocolError):
        client.on_data(b"data: x\n\n", 102.0)


def test_close_while_reconnecting_has_no_disconnect() -> None:
    """Closing while waiting to reconnect only reports CLOSED (no connection is open)."""
    client = session()
    open_stream(client)
    client.on_connection_lost(0.1)
    assert kinds(client.close(0.2)) == ["ReportStatus"]


def test_a_backwards_clock_is_refused_up_front_and_the_session_carries_on() -> None:
    """A ``now`` earlier than the session's clock is refused (ClockError) before anything
    changes -- not half-way, after the connection was dropped -- so the session is not
    failed: the same input with a good clock works, and close() ends it cleanly."""
    client = session()
    open_stream(client, now=10.0)
    client.on_data(b"data: x\n\n", 11.0)
    client.on_eof(20.0)
    deadline = client.next_deadline()
    assert deadline is not None
    assert kinds(client.on_timer(deadline)) == ["ReportStatus", "Connect"]
    with pytest.raises(ClockError, match="backwards"):
        client.on_connection_lost(3.0)
    assert client.state is ClientState.CONNECTING
    assert kinds(client.on_connection_lost(deadline + 1.0)) == ["ReportStatus"]
    assert client.state is ClientState.RECONNECTING
    assert client.close(30.0) == [
        ReportStatus(state=ClientState.CLOSED, since=30.0, reason=None)
    ]


def test_inputs_out_of_order_are_misuse() -> None:
    """Inputs that cannot happen in the current state raise LocalProtocolError (each on a
    fresh session: misuse fails a session for good, see test_misuse_is_sticky)."""
    with pytest.raises(LocalProtocolError):
        session().on_response(200, SSE_HEADERS, 0.0)
    with pytest.raises(LocalProtocolError):
        session().on_eof(0.0)
    with pytest.raises(LocalProtocolError):
        session().on_connection_lost(0.0)
    client = session()
    client.start(0.0)
    with pytest.raises(LocalProtocolError):
        client.start(0.0)
    client = session()
    client.start(0.0)
    with pytest.raises(LocalProtocolError):
        client.on_data(b"x", 0.0)


def test_misuse_is_sticky() -> None:
    """After an input raised LocalProtocolError the session has failed for good (h11's ERROR
    state): every later input raises LocalProtocolError that says it failed earlier and why,
    chained to the first error; nothing is scheduled; close() still ends the connection."""
    client = session()
    open_stream(client)
    assert client.next_deadline() is not None
    with pytest.raises(LocalProtocolError) as first:
        client.start(1.0)  # already started
    later_inputs = [
        lambda: client.on_data(b"data: x\n\n", 2.0),
        lambda: client.on_eof(2.0),
        lambda: client.on_connection_lost(2.0),
        lambda: client.on_response(200, SSE_HEADERS, 2.0),
        lambda: client.on_timer(100.0),
        lambda: client.start(2.0),
    ]
    for call in later_inputs:
        with pytest.raises(LocalProtocolError, match="failed earlier") as later:
            call()
        assert later.value.__cause__ is first.value
        assert str(first.value) in str(later.value)
    assert client.next_deadline() is None
    assert client.state is ClientState.CONNECTED  # the misuse changed nothing else
    assert kinds(client.close(3.0)) == ["Disconnect", "ReportStatus"]
    with pytest.raises(LocalProtocolError, match="failed earlier"):
        client.start(4.0)


# --- the state machine ----------------------------------------------------------------------


class ClientMachine(RuleBasedStateMachine):
    """Random inputs: every state change follows TRANSITIONS and is reported exactly once;
    every published event is delivered at most once; deadlines never lie; a failure is
    reported only right before a CLOSED the application did not ask for; and a POST is
    never made again unless the request carries Last-Event-ID."""

    def __init__(self) -> None:
        super().__init__()
        self.method = "GET"
        self.now = 0.0
        self.state = ClientState.CLOSED
        self.next_id = 0
        self.delivered: list[str] = []
        self.refusing = False  # a refused response's body is being read
        self.connects = 0  # requests made since the last start

    @initialize(method=st.sampled_from(["GET", "POST"]))
    def make(self, method: str) -> None:
        self.method = method
        self.client = ClientSession(
            ClientConfig(url=URL, backoff=FIXED, stall_timeout=20.0, method=method,
                         retry_statuses=frozenset({503})),
            rng=random.Random(0),
        )

    def apply(
        self, actions: list[Action], expected_input: ClientInput | None, *, is_close: bool = False
    ) -> None:
        reported = statuses(actions)
        if expected_input is None:
            assert reported == []
        else:
            for new in reported:
                assert (self.state, new) in {
                    (old, target) for (old, _), target in TRANSITIONS.items()
                }
                self.state = new
        assert self.client.state is self.state
        self.delivered += [a.event.id or "" for a in actions if isinstance(a, Deliver)]
        failures = [i for i, a in enumerate(actions) if isinstance(a, ReportFailure)]
        if failures:
            assert not is_close and failures == [len(actions) - 2]
            assert statuses(actions[-1:]) == [ClientState.CLOSED]
        for action in actions:
            if isinstance(action, Connect):
                if self.connects and self.method == "POST":
                    assert header(action.request.headers, "Last-Event-ID")
                self.connects += 1
        if self.state is ClientState.CLOSED:
            self.refusing = False

    @rule(delay=st.floats(0, 30))
    def wait(self, delay: float) -> None:
        self.now += delay
        deadline = self.client.next_deadline()
        actions = self.client.on_timer(self.now)
        if deadline is None or self.now < deadline:
            assert actions == []
        self.apply(actions, ClientInput.RECONNECT_DUE)

    @precondition(lambda self: self.state is ClientState.CLOSED)
    @rule()
    def start(self) -> None:
        self.connects = 0
        self.apply(self.client.start(self.now), ClientInput.START)

    @precondition(lambda self: self.state is ClientState.CONNECTING and not self.refusing)
    @rule(status=st.sampled_from([200, 200, 200, 503, 204, 500]))
    def respond(self, status: int) -> None:
        self.apply(self.client.on_response(status, SSE_HEADERS, self.now), ClientInput.ACCEPTED)
        self.refusing = status == 500 and self.state is ClientState.CONNECTING

    @precondition(lambda self: self.refusing)
    @rule(size=st.integers(1, 5000))
    def refused_body(self, size: int) -> None:
        self.apply(self.client.on_data(b"e" * size, self.now), ClientInput.REFUSED)

    @precondition(lambda self: self.state in (ClientState.CONNECTED, ClientState.STREAMING))
    @rule(replay=st.integers(0, 3), new=st.integers(0, 3), has_ids=st.booleans())
    def data(self, replay: int, new: int, has_ids: bool) -> None:
        if has_ids:  # numbered ids: ``replay`` of those already sent, then ``new`` ones
            ids = [str(i) for i in range(max(0, self.next_id - replay), self.next_id + new)]
            self.next_id += new
            stream = b"".join(serialize_event("x", id=i) for i in ids)
        else:  # events without ids: they use up no number, and stay out of the order check
            stream = b"".join(serialize_event("x") for _ in range(new))
        self.apply(self.client.on_data(stream, self.now), ClientInput.FIRST_BYTES)

    @precondition(lambda self: self.state in (ClientState.CONNECTED, ClientState.STREAMING)
                  or self.refusing)
    @rule()
    def eof(self) -> None:
        self.apply(self.client.on_eof(self.now), ClientInput.LOST)

    @precondition(lambda self: self.state in (ClientState.CONNECTING, ClientState.CONNECTED,
                                              ClientState.STREAMING))
    @rule()
    def lost(self) -> None:
        self.apply(self.client.on_connection_lost(self.now), ClientInput.LOST)

    @rule()
    def close(self) -> None:
        self.apply(self.client.close(self.now), ClientInput.CLOSE, is_close=True)

    @rule(signal=st.sampled_from(["offline", "online", "network_changed"]))
    def network(self, signal: str) -> None:
        """A platform signal, in any state (one that changes nothing is no misuse)."""
        actions = getattr(self.client, f"on_{signal}")(self.now)
        self.apply(actions, ClientInput(signal.replace("_", " ")))

    @invariant()
    def delivered_once_in_order(self) -> None:
        numbers = [int(i) for i in self.delivered if i]
        assert numbers == sorted(set(numbers))

    @invariant()
    def deadline_matches_state(self) -> None:
        deadline = self.client.next_deadline()
        if self.state in (ClientState.CLOSED, ClientState.OFFLINE):
            assert deadline is None  # offline: nothing is tried until "online"
        else:
            assert deadline is not None


TestClientMachine = ClientMachine.TestCase
TestClientMachine.settings = settings(stateful_step_count=40, deadline=None)


def test_docs_transition_table_is_the_real_one() -> None:
    """The table on docs/client.rst is exactly TRANSITIONS."""
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "client.rst").read_text()
    table = text.split(".. list-table:: Transitions", 1)[1].split("Reference", 1)[0]
    cells = [line.split("- ", 1)[1] for line in table.splitlines() if "- " in line]
    rows = {(cells[i], cells[i + 1]): cells[i + 2] for i in range(3, len(cells), 3)}
    assert rows == {(s.value, i.value): t.value for (s, i), t in TRANSITIONS.items()}


# --- optional pipeline stages: sequencing and chunk assembly ---------------------------------


def seq_client(**overrides: Any) -> ClientSession:
    client = session(sequencer=SequencerConfig(max_buffered=8, gap_timeout=2.0), **overrides)
    open_stream(client)
    client.on_data(b": hi\n\n", 0.0)
    return client


def sends(*pairs: tuple[str, str]) -> bytes:
    return b"".join(serialize_event(data, id=id) for id, data in pairs)


def test_sequencer_reorders_by_id_number() -> None:
    """With a sequencer, events are delivered in the order of the number in their id."""
    client = seq_client()
    first = client.on_data(sends(("b1-0", "a"), ("b1-2", "c")), 0.1)
    assert delivered(first) == ["a"]  # b1-2 waits for b1-1
    assert client.next_deadline() == pytest.approx(2.1)
    assert delivered(client.on_data(sends(("b1-1", "b")), 0.5)) == ["b", "c"]


def test_sequencer_reports_a_hole_that_never_fills() -> None:
    """A hole not filled within gap_timeout is skipped and reported, never waited for
    forever."""
    client = seq_client()
    client.on_data(sends(("b1-0", "a"), ("b1-2", "c")), 0.1)
    assert client.on_timer(2.0) == []
    actions = client.on_timer(2.1)
    assert [a for a in actions if isinstance(a, ReportGap)] == [
        ReportGap(first=1, last=1, reason="timeout")
    ]
    assert delivered(actions) == ["c"]
    assert client.metrics.events_missed == 1


def test_sequencer_restarts_with_a_new_epoch() -> None:
    """A restarted server numbers from 0 under a new epoch: what the old one held is
    released (its holes reported) and the new numbering is followed."""
    client = seq_client()
    client.on_data(sends(("b1-0", "a"), ("b1-2", "c")), 0.1)
    actions = client.on_data(sends(("b2-0", "x"), ("b2-1", "y")), 0.2)
    assert delivered(actions) == ["c", "x", "y"]
    assert ReportGap(first=1, last=1, reason="flush") in actions


def test_sequencer_lets_unnumbered_events_through() -> None:
    """Events whose id carries no number are delivered as they come."""
    client = seq_client()
    actions = client.on_data(sends(("abc", "a"), ("x-y", "b")) + b"data: c\n\n", 0.1)
    assert delivered(actions) == ["a", "b", "c"]


def test_close_releases_what_the_sequencer_holds() -> None:
    """Closing delivers held events (their holes reported) rather than dropping them."""
    client = seq_client()
    client.on_data(sends(("b1-0", "a"), ("b1-3", "d")), 0.1)
    actions = client.close(0.2)
    assert delivered(actions) == ["d"]
    assert ReportGap(first=1, last=2, reason="flush") in actions


def test_chunked_messages_are_assembled() -> None:
    """With chunking on, a message split into chunk events arrives as one event."""
    client = session(chunking=ChunkConfig())
    open_stream(client)
    payload = "large payload é" * 50
    chunks = split_message(payload, message_id="m1", max_chunk_size=64, event="doc", id="9")
    actions = client.on_data(serialize_many(chunks) + b"data: after\n\n", 0.1)
    events = [a.event for a in actions if isinstance(a, Deliver)]
    assert [(e.event, e.data, e.id) for e in events] == [("doc", payload, "9"),
                                                         ("message", "after", None)]


def test_abandoned_chunked_message_is_reported() -> None:
    """A message whose chunks stop coming is reported when it expires."""
    client = session(chunking=ChunkConfig(timeout=5.0), stall_timeout=None)
    open_stream(client)
    chunks = split_message("x" * 200, message_id="m2", max_chunk_size=64)
    client.on_data(serialize_many(chunks[:2]), 0.1)
    assert client.next_deadline() == pytest.approx(5.1)
    actions = client.on_timer(5.1)
    dropped = [a for a in actions if isinstance(a, ReportDropped)]
    assert [(d.message_id, d.reason) for d in dropped] == [("m2", "expired")]


def test_chunk_limit_reports_and_keeps_the_stream() -> None:
    """A message over the assembler's limits is dropped and reported; the stream goes on."""
    client = session(chunking=ChunkConfig(max_chunks=2))
    open_stream(client)
    chunks = split_message("y" * 300, message_id="m3", max_chunk_size=64)
    actions = client.on_data(serialize_many(chunks) + b"data: next\n\n", 0.1)
    dropped = [(a.message_id, a.reason) for a in actions if isinstance(a, ReportDropped)]
    assert dropped[:1] == [("m3", "limit")]
    assert delivered(actions) == ["next"]
    assert client.state is ClientState.STREAMING
