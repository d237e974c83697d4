"""Tests of the sans-IO server session: head, replay, gap signal, heartbeats, compression."""

from __future__ import annotations

import json
import random
import zlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sse_core import (
    HEARTBEAT,
    Action,
    ClientConfig,
    ClientSession,
    Comment,
    Deliver,
    Disconnect,
    Event,
    InvalidConfigError,
    LocalProtocolError,
    Parser,
    ReportGap,
    Retry,
    Send,
    SendHead,
    ServerConfig,
    ServerSession,
    serialize,
)
from sse_core.state import (
    GAP_EVENT_TYPE,
    POSITION_EVENT_TYPE,
    Decompressor,
    ReplayConfig,
    ReplayLog,
    ServerState,
)


def body_of(actions: list[Action]) -> bytes:
    return b"".join(a.data for a in actions if isinstance(a, Send))


def head_of(actions: list[Action]) -> dict[str, str]:
    heads = [a for a in actions if isinstance(a, SendHead)]
    assert len(heads) == 1 and heads[0].status == 200
    return {name.lower(): value for name, value in heads[0].headers}


def log_with(n: int, **config: Any) -> ReplayLog:
    log = ReplayLog(ReplayConfig(**config))
    for i in range(n):
        log.append(Event(data=f"e{i}"), float(i))
    return log


def parse(data: bytes) -> list[Any]:
    parser = Parser()
    return parser.feed(data)


def test_head_keeps_proxies_from_buffering() -> None:
    """The head says text/event-stream, no-cache, and X-Accel-Buffering: no."""
    session = ServerSession(ServerConfig(heartbeat_interval=None))
    head = head_of(session.on_request("/events", [], 0.0))
    assert head["content-type"] == "text/event-stream; charset=utf-8"
    assert "no-cache" in head["cache-control"]
    assert head["x-accel-buffering"] == "no"
    assert "content-encoding" not in head
    assert session.state is ServerState.STREAMING


def test_padding_and_retry_hint() -> None:
    """Padding (exactly the configured size) and the retry hint come first, as comments and
    a retry field that dispatch nothing."""
    session = ServerSession(ServerConfig(padding=2048, retry=1500, heartbeat_interval=None))
    body = body_of(session.on_request("/", [], 0.0))
    assert body.startswith(b":" + b" " * 2045 + b"\n\n")
    items = parse(body)
    assert items == [Comment(text=" " * 2045), Retry(milliseconds=1500)]


def test_replay_after_last_event_id_header() -> None:
    """A client that sends Last-Event-ID gets exactly the events after it."""
    log = log_with(5)
    session = ServerSession(ServerConfig(heartbeat_interval=None), log)
    body = body_of(session.on_request("/", [("Last-Event-ID", "2")], 10.0))
    assert [e.data for e in parse(body)] == ["e3", "e4"]
    assert session.last_event_id == "2"


def test_replay_from_query_parameter() -> None:
    """Clients that cannot set headers pass the id in the query."""
    log = log_with(3)
    session = ServerSession(ServerConfig(heartbeat_interval=None), log)
    body = body_of(session.on_request("/events?x=1&lastEventId=0", [], 10.0))
    assert [e.data for e in parse(body)] == ["e1", "e2"]


def test_header_wins_over_query() -> None:
    """The Last-Event-ID header takes precedence over the query parameter."""
    session = ServerSession(ServerConfig(heartbeat_interval=None), log_with(3))
    body = body_of(session.on_request("/?lastEventId=0", [(b"last-event-id", b"1")], 10.0))
    assert [e.data for e in parse(body)] == ["e2"]


@pytest.mark.parametrize(
    ("leid", "signal", "is_replayed", "kept"),
    [
        # ours, evicted: how many were lost (e1, e2), then what the log still has
        ("0", {"reason": "too_old", "missed": 2}, False, ["e3", "e4", "e5"]),
        # unplaceable: nobody knows how many; the gap and the position only ...
        ("nope", {"reason": "unknown"}, False, []),
        ("nope", {"reason": "unknown"}, True, ["e3", "e4", "e5"]),  # ... unless asked
    ],
)
def test_gap_signal_then_what_the_client_is_owed(
    leid: str, signal: dict[str, object], is_replayed: bool, kept: list[str]
) -> None:
    """An id that cannot be resumed from gets the gap signal (with the number of events lost
    when the log knows it); then the log's events when the id was ours (or
    is_unknown_id_replayed), else only the log's position."""
    log = log_with(6, max_events=3)  # keeps e3..e5
    config = ServerConfig(heartbeat_interval=None, is_unknown_id_replayed=is_replayed)
    session = ServerSession(config, log)
    parser = Parser()
    items = parser.feed(body_of(session.on_request("/", [("Last-Event-ID", leid)], 10.0)))
    assert items[0].event == GAP_EVENT_TYPE
    assert json.loads(items[0].data) == {"last_event_id": leid, **signal}
    assert [e.data for e in items[1:] if e.event != POSITION_EVENT_TYPE] == kept
    assert parser.last_event_id == log.position  # the next resumption starts from here


def test_client_turns_gap_signal_into_report() -> None:
    """Server and client agree on the gap signal's format."""
    log = log_with(6, max_events=3)
    server = ServerSession(ServerConfig(heartbeat_interval=None), log)
    body = body_of(server.on_request("/", [("Last-Event-ID", "0")], 10.0))
    client = ClientSession(ClientConfig(url="http://x.test/", last_event_id="0"),
                           rng=random.Random(0))
    client.start(0.0)
    client.on_response(200, [("Content-Type", "text/event-stream")], 0.0)
    actions = client.on_data(body, 0.1)
    assert ReportGap(last_event_id="0", reason="too_old", missed=2) in actions
    assert [a.event.data for a in actions if isinstance(a, Deliver)] == ["e3", "e4", "e5"]
    assert client.last_event_id == "5"  # from the position after them, not delivered


def test_a_gap_report_says_its_size_one_way() -> None:
    """``count`` is the sequencer's range or the server's ``missed``; ``missed`` must be a
    count, and is not given with a range (which already says how many)."""
    assert ReportGap(reason="too_old", last_event_id="1", missed=7).count == 7
    assert ReportGap(reason="timeout", first=3, last=5).count == 3
    assert ReportGap(reason="unknown", last_event_id="x").count is None
    for bad in (-1, True, 1.0, "2"):
        with pytest.raises(ValueError, match="missed must be"):
            ReportGap(reason="too_old", missed=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="first and last already say"):
        ReportGap(reason="timeout", first=1, last=2, missed=2)


@given(
    size=st.integers(min_value=1, max_value=40),
    kept=st.integers(min_value=1, max_value=40),
    seen=st.integers(min_value=-1, max_value=39),
    step=st.integers(min_value=1, max_value=4),
)
def test_after_any_resumption_the_client_knows_what_it_was_sent(
    size: int, kept: int, seen: int, step: int
) -> None:
    """For any log (``size`` events, the newest ``kept`` kept), any id the client last saw
    (-1: the log's start) and any replay step: what the client delivers plus what the gap
    signal says it missed is every event after its id, so its completion rate is known and
    exact."""
    seen = min(seen, size - 1)
    log = log_with(size, max_events=kept)
    leid = str(seen) if seen >= 0 else "start"  # the log's start marker (no epoch)
    server = ServerSession(
        ServerConfig(heartbeat_interval=None, replay_chunk_size=step * 8), log
    )
    data = body_of(server.on_request("/", [("Last-Event-ID", leid)], 100.0))
    while server.is_replaying:
        data += body_of(server.continue_replay(100.0))
    client = ClientSession(ClientConfig(url="http://x.test/", last_event_id=leid),
                           rng=random.Random(0))
    client.start(0.0)
    client.on_response(200, [("Content-Type", "text/event-stream")], 0.0)
    actions = client.on_data(data, 0.1)
    owed = size - 1 - seen
    kept = min(kept, size)
    metrics = client.metrics
    assert metrics.messages_received + metrics.events_missed == owed
    assert metrics.gaps_of_unknown_size == 0
    gaps = [a for a in actions if isinstance(a, ReportGap)]
    assert [gap.missed for gap in gaps] == ([owed - kept] if owed > kept else [])
    if owed:
        assert metrics.stream_completion_rate == min(kept, owed) / owed


def test_send_encoded_once() -> None:
    """send() passes a StoredEvent's bytes through unchanged (encode once, send to many)."""
    log = ReplayLog()
    stored = log.append(Event(data="hi"), 0.0)
    sessions = [ServerSession(ServerConfig(heartbeat_interval=None), log) for _ in range(3)]
    for session in sessions:
        session.on_request("/", [], 0.0)
    sent = [session.send(stored, 1.0) for session in sessions]
    assert all(actions == [Send(data=stored.encoded)] for actions in sent)


def test_heartbeat_when_idle_only() -> None:
    """A heartbeat goes out after interval seconds of silence; any send postpones it."""
    session = ServerSession(ServerConfig(heartbeat_interval=15.0))
    session.on_request("/", [], 0.0)
    assert session.next_deadline() == 15.0
    session.send(Event(data="x"), 10.0)
    assert session.next_deadline() == 25.0
    assert session.on_timer(24.0) == []
    assert session.on_timer(25.0) == [Send(data=HEARTBEAT)]
    assert session.next_deadline() == 40.0


def test_gzip_negotiated_and_flushed_per_event() -> None:
    """With Accept-Encoding: gzip every Send decodes at once to whole events."""
    session = ServerSession(ServerConfig(heartbeat_interval=None))
    head = head_of(session.on_request("/", [("Accept-Encoding", "br, gzip;q=0.8")], 0.0))
    assert head["content-encoding"] == "gzip"
    decoder = Decompressor("gzip")
    parser = Parser()
    for i in range(5):
        (send,) = session.send(Event(data=f"event {i}"), float(i))
        assert isinstance(send, Send)
        items = parser.feed(decoder.decompress(send.data))
        assert [e.data for e in items] == [f"event {i}"]
    trailer = session.close(9.0)
    assert isinstance(trailer[0], Send) and isinstance(trailer[-1], Disconnect)


def test_gzip_refused_with_q0() -> None:
    """gzip;q=0 means no gzip."""
    session = ServerSession(ServerConfig())
    head = head_of(session.on_request("/", [("Accept-Encoding", "gzip;q=0")], 0.0))
    assert "content-encoding" not in head


def test_compression_saves_bandwidth_on_chat() -> None:
    """On chat-like JSON events, per-event-flushed gzip still saves most of the bytes.

    (The figure for the full chat workload is printed by benchmarks/bench_compression.py.)
    """
    rng = random.Random(3)
    users = ["alice", "bob", "carol", "dave"]
    events = [
        Event(data=json.dumps({"user": rng.choice(users), "room": "general",
                               "text": " ".join(rng.choice(["hello", "ship", "it", "ok", "deploy",
                                                            "review", "please"])
                                                for _ in range(12))}),
              event="chat", id=str(i))
        for i in range(300)
    ]
    plain = ServerSession(ServerConfig(heartbeat_interval=None))
    gzipped = ServerSession(ServerConfig(heartbeat_interval=None))
    plain_body = body_of(plain.on_request("/", [], 0.0))
    gzip_body = body_of(gzipped.on_request("/", [("Accept-Encoding", "gzip")], 0.0))
    for event in events:
        plain_body += body_of(plain.send(event, 1.0))
        gzip_body += body_of(gzipped.send(event, 1.0))
    assert gzipped.bytes_sent == len(gzip_body) < 0.5 * len(plain_body)
    # ... and it is a valid gzip stream of exactly the plain bytes.
    assert zlib.decompressobj(31).decompress(gzip_body) == plain_body


def test_misuse() -> None:
    """send before the request, or a second request, is misuse; close is idempotent."""
    with pytest.raises(LocalProtocolError):
        ServerSession(ServerConfig()).send(Event(data="x"), 0.0)
    session = ServerSession(ServerConfig())
    session.on_request("/", [], 0.0)
    with pytest.raises(LocalProtocolError):
        session.on_request("/", [], 0.0)
    closing = ServerSession(ServerConfig())  # misuse fails a session: see test_misuse_is_sticky
    closing.on_request("/", [], 0.0)
    assert isinstance(closing.close(1.0)[-1], Disconnect)
    assert closing.close(2.0) == []
    assert closing.on_timer(100.0) == []
    assert closing.next_deadline() is None


def test_misuse_is_sticky() -> None:
    """After an input raised LocalProtocolError the session has failed for good (h11's ERROR
    state): every later input raises LocalProtocolError that says it failed earlier and why,
    chained to the first error; no heartbeat is due; close() still ends the stream."""
    session = ServerSession(ServerConfig(heartbeat_interval=5.0))
    session.on_request("/", [], 0.0)
    assert session.next_deadline() == 5.0
    with pytest.raises(LocalProtocolError) as first:
        session.on_request("/", [], 1.0)  # a second request
    later_inputs = [
        lambda: session.send(Event(data="x"), 2.0),
        lambda: session.on_timer(100.0),
        lambda: session.continue_replay(2.0),
        lambda: session.on_request("/", [], 2.0),
    ]
    for call in later_inputs:
        with pytest.raises(LocalProtocolError, match="failed earlier") as later:
            call()
        assert later.value.__cause__ is first.value
        assert str(first.value) in str(later.value)
    assert session.next_deadline() is None and not session.is_heartbeat_due(100.0)
    assert session.state is ServerState.STREAMING  # the misuse changed nothing else
    assert session.close(3.0) == [Disconnect(reason="closed by the server")]


@pytest.mark.parametrize(
    "kwargs",
    [{"heartbeat_interval": 0}, {"retry": -1}, {"padding": -1}, {"compression_level": 0},
     {"headers": (("X-A", "b\r\nc"),)}],
)
def test_invalid_config(kwargs: dict[str, Any]) -> None:
    """Bad server configuration is refused up front."""
    with pytest.raises(InvalidConfigError):
        ServerConfig(**kwargs)


def test_new_client_gets_the_log_position() -> None:
    """A client without Last-Event-ID gets the log's position: an event of the reserved
    position type with empty data, whose id moves its last event ID (every client applies an
    id from a block that dispatches), and a reconnection from it misses nothing published in
    between (a connection lost before the first event loses nothing)."""
    log = log_with(2, epoch="b1")
    session = ServerSession(ServerConfig(heartbeat_interval=None), log)
    body = body_of(session.on_request("/", [], 5.0))
    assert body == b"id: b1-1\nevent: sse-core-position\ndata: \n\n"
    assert body == serialize(Event(data="", event=POSITION_EVENT_TYPE, id="b1-1"))
    parser = Parser()
    assert parser.feed(body) == [
        Event(data="", event=POSITION_EVENT_TYPE, id="b1-1", last_event_id="b1-1")
    ]
    assert parser.last_event_id == "b1-1"
    log.append(Event(data="meanwhile"), 6.0)
    again = ServerSession(ServerConfig(heartbeat_interval=None), log)
    replayed = parse(body_of(again.on_request("/", [("Last-Event-ID", "b1-1")], 7.0)))
    assert [e.data for e in replayed] == ["meanwhile"]


# --- replay in steps ------------------------------------------------------------------------


def long_log(n: int, size: int = 100, **config: Any) -> ReplayLog:
    log = ReplayLog(ReplayConfig(max_bytes=None, **config))
    for i in range(n):
        log.append(Event(data=f"{i:04d}" + "x" * (size - 4)), float(i))
    return log


def test_long_replay_comes_in_steps_of_at_most_the_chunk_size() -> None:
    """A replay longer than replay_chunk_size goes out one step per continue_replay(), each
    at most one chunk (plus one event), in order, without a copy of the rest."""
    log = long_log(50)
    size = len(log.events()[-1].encoded)  # the largest: the longest id
    config = ServerConfig(heartbeat_interval=None, replay_chunk_size=5 * size)
    session = ServerSession(config, log)
    parser = Parser()
    first = body_of(session.on_request("/", [("Last-Event-ID", log.events()[9].id)], 50.0))
    datas = [e.data[:4] for e in parser.feed(first)]
    assert datas == [f"{i:04d}" for i in range(10, 15)] and session.is_replaying
    steps = 0
    while session.is_replaying:
        step = body_of(session.continue_replay(50.0))
        assert 0 < len(step) <= 5 * size
        datas += [e.data[:4] for e in parser.feed(step)]
        steps += 1
    assert datas == [f"{i:04d}" for i in range(10, 50)] and steps == 7
    assert session.continue_replay(50.0) == []
    assert parser.last_event_id == log.position


def test_events_published_during_a_replay_come_through_it_in_order() -> None:
    """While replaying, send() of a stored event sends nothing: the replay reads it from the
    log after what came before it, so the client gets each event once, in order."""
    log = long_log(10)
    config = ServerConfig(heartbeat_interval=None, replay_chunk_size=1)  # one event a step
    session = ServerSession(config, log)
    parser = Parser()
    datas = [e.data[:4] for e in parser.feed(
        body_of(session.on_request("/", [("Last-Event-ID", log.events()[0].id)], 10.0)))]
    stored = log.append(Event(data="live"), 11.0)
    assert session.send(stored, 11.0) == []
    while session.is_replaying:
        datas += [e.data[:4] for e in parser.feed(body_of(session.continue_replay(11.0)))]
    assert datas == [f"{i:04d}" for i in range(1, 10)] + ["live"]
    after = log.append(Event(data="next"), 12.0)  # caught up: live again
    assert session.send(after, 12.0) == [Send(data=after.encoded)]


def test_events_evicted_during_a_replay_give_a_gap_then_the_rest() -> None:
    """When the log evicts what a slow replay has not sent yet, the client gets the gap
    signal (too_old, naming the last id it was sent) and the replay goes on from the oldest
    event kept: never a silent skip."""
    log = long_log(10, max_events=10)
    config = ServerConfig(heartbeat_interval=None, replay_chunk_size=1)
    session = ServerSession(config, log)
    parser = Parser()
    items = parser.feed(body_of(session.on_request("/", [("Last-Event-ID", "0")], 10.0)))
    assert [e.data[:4] for e in items] == ["0001"]
    for i in range(10, 20):  # the log turns over: 0002..0009 are evicted
        log.append(Event(data=f"{i:04d}"), 11.0)
    while session.is_replaying:
        items += parser.feed(body_of(session.continue_replay(11.0)))
    gap = items[1]
    assert gap.event == GAP_EVENT_TYPE
    assert json.loads(gap.data) == {"last_event_id": "1", "reason": "too_old", "missed": 8}
    assert [e.data[:4] for e in items[2:]] == [f"{i:04d}" for i in range(10, 20)]


def test_a_long_replay_can_be_put_off() -> None:
    """With is_long_replay_allowed=False, a replay longer than one step is not started: the
    client gets busy_retry and the end of the stream, and keeps its id; a short replay goes
    ahead."""
    log = long_log(20)
    size = len(log.events()[0].encoded)
    config = ServerConfig(heartbeat_interval=None, replay_chunk_size=5 * size, busy_retry=7000)
    busy = ServerSession(config, log)
    actions = busy.on_request("/", [("Last-Event-ID", "0")], 20.0, is_long_replay_allowed=False)
    assert isinstance(actions[-1], Disconnect) and busy.state is ServerState.CLOSED
    parser = Parser(last_event_id="0")
    assert parser.feed(body_of(actions)) == [Retry(milliseconds=7000)]
    assert parser.last_event_id == "0"
    short = ServerSession(config, log)
    actions = short.on_request("/", [("Last-Event-ID", "16")], 20.0, is_long_replay_allowed=False)
    assert [e.data[:4] for e in parse(body_of(actions))] == ["0017", "0018", "0019"]
    assert short.state is ServerState.STREAMING and not short.is_replaying


@pytest.mark.parametrize(
    "kwargs",
    [{"replay_chunk_size": 0}, {"replay_chunk_size": 1.5}, {"is_unknown_id_replayed": 1},
     {"busy_retry": -1}, {"busy_retry": 1.0}],
)
def test_replay_knobs_are_checked(kwargs: dict[str, Any]) -> None:
    """The replay knobs refuse values of the wrong type or range."""
    with pytest.raises(InvalidConfigError):
        ServerConfig(**kwargs)
