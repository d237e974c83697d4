"""What the sessions record into their metrics: failed attempts, buffers, completion, the
latency of server-stamped events, and a broadcaster's server-side counters."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sse_core import (
    Broadcaster,
    ClientConfig,
    ClientSession,
    Deliver,
    DeliverBatch,
    Event,
    LocalProtocolError,
    Parser,
    ReportGap,
    Send,
    ServerConfig,
    ServerSession,
)
from sse_core._serializer import serialize_stamp
from sse_core.state import (
    GAP_EVENT_TYPE,
    LATENCY_BOUNDS,
    BatchConfig,
    ReplayConfig,
    ReplayLog,
    SequencerConfig,
)
from sse_core.testing.strategies import chunkings, events

SSE = [("content-type", "text/event-stream")]
URL = "http://example.test/events"


def client(**options: object) -> ClientSession:
    session = ClientSession(ClientConfig(url=URL, **options), rng=random.Random(1))  # type: ignore[arg-type]
    session.start(0.0)
    return session


def delivered(actions: list[object]) -> list[Event]:
    out: list[Event] = []
    for action in actions:
        if isinstance(action, Deliver):
            out.append(action.event)
        elif isinstance(action, DeliverBatch):
            out.extend(action.events)
    return out


def body(actions: list[object]) -> bytes:
    return b"".join(action.data for action in actions if isinstance(action, Send))


# --- connection failure rate ----------------------------------------------------------------


def test_failed_attempts_are_counted_and_give_the_failure_rate() -> None:
    """An attempt lost before its response, and one refused with a retryable status, fail;
    one answered with a stream does not; the rate is failures / attempts."""
    session = client(retry_statuses=frozenset({503}))
    session.on_connection_lost(1.0)  # attempt 1: failed
    session.on_timer(100.0)  # attempt 2
    session.on_response(503, [], 101.0)  # failed (retryable)
    session.on_timer(200.0)  # attempt 3
    session.on_response(200, SSE, 201.0)  # up
    metrics = session.metrics
    assert (metrics.connection_attempts, metrics.connection_failures) == (3, 2)
    assert metrics.connection_failure_rate == pytest.approx(2 / 3)
    session.on_eof(300.0)  # a connection that was up and ended is no failed attempt
    assert session.metrics.connection_failures == 2


def test_an_attempt_in_flight_or_closed_by_the_application_is_not_a_failure() -> None:
    """A snapshot during an attempt counts it as not failed, and so does closing it."""
    session = client()
    assert session.metrics.connection_failure_rate == 0.0
    session.close(1.0)
    assert session.metrics.connection_failures == 0


def test_a_refusal_is_a_failed_attempt() -> None:
    """A 204 (the server says stop) ends the attempt before a stream opened: failed."""
    session = client()
    session.on_response(204, [], 1.0)
    assert session.metrics.connection_failures == 1


# --- buffers, completion --------------------------------------------------------------------


def test_buffer_gauges_show_what_the_sequencer_and_the_batcher_hold() -> None:
    """An event waiting for a hole and events waiting for their batch show in the gauges,
    and leave them when released."""
    session = client(sequencer=SequencerConfig(max_buffered=8, gap_timeout=2.0),
                     batching=BatchConfig(max_events=10, max_delay=1.0))
    session.on_response(200, SSE, 0.0)
    session.on_data(b"id: 0\ndata: a\n\nid: 2\ndata: c\n\n", 0.1)
    metrics = session.metrics
    assert (metrics.buffered_in_sequencer, metrics.buffered_in_batcher) == (1, 1)
    assert metrics.buffer_size == 2
    session.on_data(b"id: 1\ndata: b\n\n", 0.2)
    assert session.metrics.buffered_in_sequencer == 0
    assert session.metrics.buffered_in_batcher == 3
    session.on_timer(1.1)  # the batch is due
    assert session.metrics.buffer_size == 0


def test_completion_rate_from_a_sequencer_skip_and_unknown_after_a_server_gap() -> None:
    """A hole never filled is one missed event: 2 of 3; the server's gap signal does not
    say how many: unknown."""
    session = client(sequencer=SequencerConfig(max_buffered=8, gap_timeout=2.0))
    session.on_response(200, SSE, 0.0)
    session.on_data(b"id: 0\ndata: a\n\nid: 2\ndata: c\n\n", 0.1)
    session.on_timer(2.2)
    metrics = session.metrics
    assert (metrics.messages_received, metrics.events_missed) == (2, 1)
    assert metrics.stream_completion_rate == pytest.approx(2 / 3)
    signal = json.dumps({"last_event_id": "2", "reason": "too_old"})
    session.on_data(f"event: {GAP_EVENT_TYPE}\ndata: {signal}\n\n".encode(), 2.3)
    assert session.metrics.gaps_of_unknown_size == 1
    assert session.metrics.stream_completion_rate is None


def gap_signal(**body: object) -> bytes:
    return f"event: {GAP_EVENT_TYPE}\ndata: {json.dumps(body)}\n\n".encode()


def test_completion_rate_after_a_too_old_gap_that_says_how_many() -> None:
    """A too-old gap signal that carries ``missed`` is a gap of known size: 2 delivered
    after 3 lost is a completion rate of 2 / 5, and the report says 3."""
    session = client()
    session.on_response(200, SSE, 0.0)
    actions = session.on_data(
        gap_signal(last_event_id="1", reason="too_old", missed=3)
        + b"id: 5\ndata: e\n\nid: 6\ndata: f\n\n", 0.1
    )
    assert [a for a in actions if isinstance(a, ReportGap)] == [
        ReportGap(last_event_id="1", reason="too_old", missed=3)
    ]
    metrics = session.metrics
    assert (metrics.gaps_reported, metrics.events_missed, metrics.gaps_of_unknown_size) == (
        1, 3, 0)
    assert metrics.stream_completion_rate == pytest.approx(2 / 5)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=5,
)


@given(missed=JSON)
def test_any_missed_value_is_read_only_when_it_is_a_count(missed: object) -> None:
    """Whatever a server puts under ``missed`` (old servers put nothing), the session does
    not fail: a non-negative int becomes the report's ``missed`` and ``events_missed``;
    anything else leaves the gap's size unknown (``None``, completion rate unknown)."""
    session = client()
    session.on_response(200, SSE, 0.0)
    actions = session.on_data(gap_signal(last_event_id="1", reason="too_old", missed=missed), 0.1)
    [gap] = [a for a in actions if isinstance(a, ReportGap)]
    is_count = type(missed) is int and missed >= 0
    assert gap.missed == (missed if is_count else None)
    assert gap.count == gap.missed
    metrics = session.metrics
    assert metrics.events_missed == (missed if is_count else 0)
    assert metrics.gaps_of_unknown_size == (0 if is_count else 1)
    assert (metrics.stream_completion_rate is None) == (not is_count or missed == 0)


def test_the_old_form_of_the_gap_signal_is_a_gap_of_unknown_size() -> None:
    """A server that predates ``missed`` sends the signal without it: the gap is reported
    all the same, of unknown size."""
    session = client()
    session.on_response(200, SSE, 0.0)
    actions = session.on_data(gap_signal(last_event_id="1", reason="too_old"), 0.1)
    assert ReportGap(last_event_id="1", reason="too_old") in actions
    assert session.metrics.gaps_of_unknown_size == 1


# --- latency from the server's send-time stamps ---------------------------------------------


def stamped_server() -> ServerSession:
    server = ServerSession(ServerConfig(is_send_time_stamped=True, heartbeat_interval=None))
    server.on_request("/events", [], 0.0)
    return server


def test_a_stamped_event_gives_one_latency_sample() -> None:
    """The server stamps the event with its wall clock; the client, given its own wall clock
    with the bytes, records the difference (50 ms here) in the latency histogram."""
    server = stamped_server()
    data = body(server.send(Event(data="x"), 1.0, wall_now=1_700_000_000.0))
    assert data.startswith(b":t=1700000000000\n")
    session = client(is_latency_measured=True)
    session.on_response(200, SSE, 0.1)
    actions = session.on_data(data, 0.2, wall_now=1_700_000_000.05)
    assert [e.data for e in delivered(actions)] == ["x"]
    latency = session.metrics.latency
    assert latency.count == 1
    assert latency.total == pytest.approx(0.05)
    assert latency.counts[LATENCY_BOUNDS.index(0.05)] == 1


def test_latency_needs_both_the_option_and_the_wall_clock() -> None:
    """Without ``is_latency_measured``, or without ``wall_now``, stamps are ignored; a stamp
    ahead of the client's clock is counted as skew."""
    data = body(stamped_server().send(Event(data="x"), 1.0, wall_now=1000.0))
    for options, wall_now in (({}, 1000.1), ({"is_latency_measured": True}, None)):
        session = client(**options)
        session.on_response(200, SSE, 0.1)
        session.on_data(data, 0.2, wall_now=wall_now)
        assert session.metrics.latency.count == 0
    session = client(is_latency_measured=True)
    session.on_response(200, SSE, 0.1)
    session.on_data(data, 0.2, wall_now=999.0)
    assert (session.metrics.latency.count, session.metrics.latency_skewed) == (0, 1)
    with pytest.raises(LocalProtocolError):
        session.on_data(data, 0.3, wall_now=float("nan"))


def test_the_server_stamps_only_when_asked_and_only_events() -> None:
    """No flag or no wall clock: no stamp; raw bytes are never stamped."""
    plain = ServerSession(ServerConfig(heartbeat_interval=None))
    plain.on_request("/events", [], 0.0)
    assert body(plain.send(Event(data="x"), 1.0, wall_now=5.0)) == b"data: x\n\n"
    server = stamped_server()
    assert body(server.send(Event(data="x"), 1.0)) == b"data: x\n\n"
    assert body(server.send(b": raw\n\n", 1.0, wall_now=5.0)) == b": raw\n\n"
    with pytest.raises(LocalProtocolError):
        server.send(Event(data="x"), 1.0, wall_now=-1.0)


@settings(max_examples=150)
@given(st.lists(events(), min_size=1, max_size=6), st.floats(0, 4e9), st.data())
def test_stamps_never_alter_the_delivered_events(
    sent: list[Event], wall_now: float, data: st.DataObject
) -> None:
    """For any events and any split of the bytes, a stamped stream gives a WHATWG parser
    (any client) and a latency-measuring client session exactly the events of the unstamped
    stream."""
    stamped, plain = stamped_server(), ServerSession(ServerConfig(heartbeat_interval=None))
    plain.on_request("/events", [], 0.0)
    stamped_bytes = b"".join(body(stamped.send(e, 1.0, wall_now=wall_now)) for e in sent)
    plain_bytes = b"".join(body(plain.send(e, 1.0)) for e in sent)
    assert stamped_bytes != plain_bytes

    def parsed(stream: bytes) -> list[object]:
        parser = Parser()
        return [i for i in parser.feed(stream) if isinstance(i, Event)]

    assert parsed(stamped_bytes) == parsed(plain_bytes)
    session = client(is_latency_measured=True, dedup=None)
    session.on_response(200, SSE, 0.0)
    got: list[Event] = []
    for chunk in data.draw(chunkings(stamped_bytes)):
        got += delivered(session.on_data(chunk, 0.1, wall_now=wall_now + 0.01))
    assert got == parsed(plain_bytes)
    assert session.metrics.latency.count + session.metrics.latency_skewed == len(sent)


# --- the server side ------------------------------------------------------------------------


def test_broadcaster_metrics_count_the_stream_and_its_clients() -> None:
    """Publishes, connected clients, bytes, replays served, too-old and unknown resumptions,
    drops and send timeouts are counted; a departed client's counts stay."""
    hub = Broadcaster(ReplayLog(ReplayConfig(max_events=2, epoch="m")),
                      config=ServerConfig(heartbeat_interval=None), max_queued_bytes=64)
    ids = [hub.publish(Event(data=f"e{i}"), now=0.0).id for i in range(4)]  # keeps e2, e3
    fresh = hub.subscribe("/events", [], now=1.0)
    resumed = hub.subscribe("/events", [("Last-Event-ID", ids[2])], now=1.0)
    old = hub.subscribe("/events", [("Last-Event-ID", ids[0])], now=1.0)
    hub.subscribe("/events", [("Last-Event-ID", "nowhere-1")], now=1.0)
    taken = sum(len(a.data) for sub in hub for a in sub.take() if isinstance(a, Send))
    metrics = hub.metrics
    assert (metrics.connected_clients, metrics.events_published) == (4, 4)
    assert (metrics.replays_served, metrics.too_old_resumes, metrics.unknown_id_resumes) == (
        1, 1, 1)
    assert metrics.bytes_sent == taken
    hub.publish(Event(data="y" * 100), now=2.0)  # past every queue's bound: all dropped
    assert hub.metrics.queue_drops == 4
    hub.unsubscribe(resumed)
    hub.unsubscribe(old)
    hub.count_send_timeout()
    after = hub.metrics
    assert after.connected_clients == 2
    assert (after.replays_served, after.too_old_resumes, after.send_timeouts) == (1, 1, 1)
    assert after.bytes_sent >= taken
    assert list(after.as_dict()) == [
        "connected_clients", "events_published", "bytes_sent", "queue_drops", "replays_served",
        "too_old_resumes", "unknown_id_resumes", "replays_put_off", "send_timeouts"]
    assert fresh.session.bytes_sent <= after.bytes_sent


def test_broadcaster_stamps_live_events_but_not_the_log() -> None:
    """With stamping, a live subscriber gets the stamp before the event; the log keeps the
    event as it is, so a replay carries no stamp."""
    hub = Broadcaster(ReplayLog(), config=ServerConfig(is_send_time_stamped=True,
                                                      heartbeat_interval=None))
    live = hub.subscribe("/events", [], now=0.0)
    live.take()
    stored = hub.publish(Event(data="x"), now=1.0, wall_now=2.5)
    assert body(live.take()) == b":t=2500\n" + stored.encoded
    later = hub.subscribe("/events", [("Last-Event-ID", "start")], now=2.0)
    assert b":t=" not in body(later.take())


def test_comments_that_are_no_stamps_give_no_sample() -> None:
    """Heartbeats, padding and look-alike comments (``:t=``, ``:t=12a``, ``:t=-5``, 17
    digits) are not stamps: no latency sample, no skew, the events still delivered."""
    session = client(is_latency_measured=True)
    session.on_response(200, SSE, 0.1)
    data = b":\n\n:   \n\n:t=\n:t=12a\n:t=-5\n:t=12345678901234567\n:x=1\ndata: e\n\n"
    actions = session.on_data(data, 0.2, wall_now=5.0)
    assert [e.data for e in delivered(actions)] == ["e"]
    assert (session.metrics.latency.count, session.metrics.latency_skewed) == (0, 0)


@given(st.floats(0, 4e9, allow_nan=False))
def test_a_stamp_is_never_later_than_the_send(wall_now: float) -> None:
    """The stamp rounds down to whole milliseconds: read back on the same clock it is not
    after ``wall_now`` (a client on that clock would count it as skew; a float's last bit
    aside), and less than 1 ms before it."""
    stamp = int(serialize_stamp(wall_now).decode().removeprefix(":t=")) / 1000
    assert stamp - wall_now <= 1e-9
    assert wall_now - stamp < 0.001 + 1e-9
