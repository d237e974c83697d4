"""Tests of the long-polling fallback: the JSON wire record, the server's LongPollSession,
the client's transport switching, and an end-to-end run through a buffering proxy."""

from __future__ import annotations

import json
import random
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any
from urllib.parse import parse_qs, urlsplit

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
    Broadcaster,
    ClientConfig,
    ClientSession,
    ClientState,
    Connect,
    Deliver,
    Disconnect,
    Event,
    InvalidConfigError,
    InvalidFieldError,
    LimitExceeded,
    LocalProtocolError,
    RemoteProtocolError,
    ReportGap,
    ReportStatus,
    Request,
    Send,
    SendHead,
    ServerConfig,
    ServerSession,
    serialize_event,
)
from sse_core._actions import Action, ReportTransport, Transport
from sse_core._longpoll import (
    AnswerCache,
    LongPollConfig,
    LongPollResponse,
    LongPollSession,
    LongPollState,
)
from sse_core.state import (
    TRANSITIONS,
    AuditKind,
    BackoffConfig,
    Compressor,
    Jitter,
    ReplayConfig,
    ReplayLog,
    ServerMetrics,
)

URL = "https://example.test/stream"
POLL_URL = "https://example.test/poll"
SSE = [("Content-Type", "text/event-stream")]
JSON = [("Content-Type", "application/json")]
FIXED = BackoffConfig(base_delay=1.0, jitter=Jitter.NONE, max_delay=8.0, healthy_after=5.0)


# --- helpers ----------------------------------------------------------------------------------


def log_with(n: int, **config: Any) -> ReplayLog:
    log = ReplayLog(ReplayConfig(**config))
    for i in range(n):
        log.append(Event(data=f"e{i}"), float(i))
    return log


def answer_of(actions: list[Action]) -> dict[str, Any]:
    """The decoded JSON of a complete answer (head, body, disconnect), checked for shape."""
    assert [type(a) for a in actions] == [SendHead, Send, Disconnect]
    head, body = actions[0], actions[1]
    assert isinstance(head, SendHead) and isinstance(body, Send)
    headers = {name.lower(): value for name, value in head.headers}
    assert head.status == 200
    assert headers["content-type"] == "application/json"
    assert headers["content-length"] == str(len(body.data))
    document: dict[str, Any] = json.loads(body.data)
    return document


def datas(document: dict[str, Any]) -> list[str]:
    return [event["data"] for event in document["events"]]


def client(**overrides: Any) -> ClientSession:
    config = {
        "url": URL, "long_poll_url": POLL_URL, "backoff": FIXED, "stall_timeout": 30.0,
        "first_byte_timeout": 5.0, "switch_after": 2, "retry_streaming_after": 100.0,
        "long_poll_timeout": 20.0, "min_poll_interval": 1.0, **overrides,
    }
    return ClientSession(ClientConfig(**config), rng=random.Random(1))


def connects(actions: list[Action]) -> list[Request]:
    return [a.request for a in actions if isinstance(a, Connect)]


def is_poll(request: Request) -> bool:
    return request.url.startswith(POLL_URL)


def query(request: Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}


def delivered(actions: list[Action]) -> list[str]:
    return [a.event.data for a in actions if isinstance(a, Deliver)]


def statuses(actions: list[Action]) -> list[ClientState]:
    return [a.state for a in actions if isinstance(a, ReportStatus)]


def transports(actions: list[Action]) -> list[Transport]:
    return [a.transport for a in actions if isinstance(a, ReportTransport)]


def poll_body(events: list[Event], last_event_id: str, **extra: Any) -> bytes:
    return LongPollResponse(events=tuple(events), last_event_id=last_event_id, **extra).encode()


def switch_to_polling(c: ClientSession, now: float = 0.0) -> float:
    """Two blocked streams in a row; returns the instant of the first poll's Connect."""
    c.start(now)
    for _ in range(2):
        c.on_response(200, SSE, now)
        now += 5.0
        c.on_timer(now)  # first-byte timeout
        now = c.next_deadline() or now
        c.on_timer(now)  # reconnect (a stream, then a poll)
    assert c.transport is Transport.LONG_POLLING
    return now


def answer_poll(c: ClientSession, body: bytes, now: float) -> list[Action]:
    return c.on_response(200, JSON, now) + c.on_data(body, now) + c.on_eof(now)


# --- the wire record --------------------------------------------------------------------------

LINE = st.characters(codec="utf-8", exclude_characters="\r\n\x00")
event_ids = st.none() | st.text(LINE, max_size=8)
events_st = st.builds(
    Event,
    data=st.text(st.characters(codec="utf-8")),
    event=st.sampled_from(["message", "chat", "ping"]),
    id=event_ids,
)


@given(
    events=st.lists(events_st, max_size=5),
    cursor=st.text(LINE),
    gap=st.none() | st.builds(ReportGap, last_event_id=st.text(LINE, max_size=5),
                              reason=st.sampled_from(["unknown", "too_old"]),
                              missed=st.none() | st.integers(0, 10**12)),
    retry=st.none() | st.integers(0, 10**12),
)
def test_round_trip(events: list[Event], cursor: str, gap: ReportGap | None,
                    retry: int | None) -> None:
    """decode(encode(r)) gives r back: events (types, ids, data), cursor, gap and retry."""
    response = LongPollResponse(events=events, last_event_id=cursor, gap=gap, retry=retry)
    back = LongPollResponse.decode(response.encode())
    assert back.last_event_id == cursor and back.gap == gap and back.retry == retry
    assert [(e.data, e.event, e.id) for e in back.events] == [
        (e.data, e.event, e.id) for e in events
    ]


def test_decode_fills_last_event_id_as_a_stream_would() -> None:
    """Events without an id carry the running last event ID, seeded by the client's."""
    body = poll_body([Event(data="a"), Event(data="b", id="5"), Event(data="c")], "5")
    got = LongPollResponse.decode(body, last_event_id="4").events
    assert [e.last_event_id for e in got] == ["4", "5", "5"]


def test_decode_size_limit() -> None:
    """A body longer than max_size raises LimitExceeded naming max_response_size."""
    body = poll_body([Event(data="x" * 100)], "")
    with pytest.raises(LimitExceeded) as info:
        LongPollResponse.decode(body, max_size=50)
    assert (info.value.limit, info.value.value, info.value.maximum) == (
        "max_response_size", len(body), 50)
    assert LongPollResponse.decode(body, max_size=len(body)).events[0].data == "x" * 100


GOOD: dict[str, Any] = {"events": [], "last_event_id": "", "gap": None, "retry": None}


@pytest.mark.parametrize(
    "body",
    [
        b"", b"\xff\xfe", b"[1]", b"{", b"[" * 100_000 + b"]" * 100_000,
        json.dumps({**GOOD, "extra": 1}).encode(),
        json.dumps({k: v for k, v in GOOD.items() if k != "gap"}).encode(),
        json.dumps({**GOOD, "events": {}}).encode(),
        json.dumps({**GOOD, "events": [{"id": None, "data": "x"}]}).encode(),
        json.dumps({**GOOD, "events": [{"id": None, "event": "", "data": "x"}]}).encode(),
        json.dumps({**GOOD, "events": [{"id": "a\nb", "event": "m", "data": "x"}]}).encode(),
        json.dumps({**GOOD, "events": [{"id": 3, "event": "m", "data": "x"}]}).encode(),
        json.dumps({**GOOD, "events": [{"id": None, "event": "m", "data": 1}]}).encode(),
        json.dumps({**GOOD, "events": ["x"]}).encode(),
        json.dumps({**GOOD, "last_event_id": 7}).encode(),
        json.dumps({**GOOD, "last_event_id": "a\rb"}).encode(),
        json.dumps({**GOOD, "retry": -1}).encode(),
        json.dumps({**GOOD, "retry": True}).encode(),
        json.dumps({**GOOD, "retry": 1.5}).encode(),
        json.dumps({**GOOD, "gap": {"last_event_id": "1", "reason": "lost"}}).encode(),
        json.dumps({**GOOD, "gap": "too_old"}).encode(),
        *(json.dumps({**GOOD, "gap": {"last_event_id": "1", "reason": "too_old", "missed": bad}})
          .encode() for bad in (-1, "3", True, 1.5)),
    ],
)
def test_decode_refuses_bad_answers(body: bytes) -> None:
    """Anything but the documented shape is a RemoteProtocolError (never another error)."""
    with pytest.raises(RemoteProtocolError):
        LongPollResponse.decode(body)


@pytest.mark.parametrize(
    "kwargs",
    [{"last_event_id": "a\nb"}, {"retry": -1}, {"events": ("x",)},
     {"gap": ReportGap(last_event_id="1", reason="other")}],
)
def test_record_refuses_unsendable_fields(kwargs: dict[str, Any]) -> None:
    """A LongPollResponse that could not be sent cannot be built."""
    with pytest.raises(InvalidFieldError):
        LongPollResponse(**kwargs)


def test_a_gap_says_how_many_were_missed_and_an_old_one_does_not() -> None:
    """``missed`` travels in the gap object; an answer without it (an older server) decodes
    as a gap of unknown size, and an explicit ``null`` as well."""
    gap = ReportGap(last_event_id="1", reason="too_old", missed=6)
    body = LongPollResponse(gap=gap).encode()
    assert json.loads(body)["gap"] == {"last_event_id": "1", "reason": "too_old", "missed": 6}
    assert LongPollResponse.decode(body).gap == gap
    unknown = ReportGap(last_event_id="1", reason="unknown")
    assert json.loads(LongPollResponse(gap=unknown).encode())["gap"] == {
        "last_event_id": "1", "reason": "unknown"}
    for old in ({"last_event_id": "1", "reason": "too_old"},
                {"last_event_id": "1", "reason": "too_old", "missed": None}):
        decoded = LongPollResponse.decode(json.dumps({**GOOD, "gap": old}).encode()).gap
        assert decoded == ReportGap(last_event_id="1", reason="too_old", missed=None)


def test_encode_refuses_lone_surrogates() -> None:
    """Text that is not encodable as UTF-8 is refused when encoding, as by the serializer."""
    with pytest.raises(InvalidFieldError):
        LongPollResponse(events=(Event(data="\ud800"),)).encode()


# --- the server session -----------------------------------------------------------------------


def test_answers_at_once_with_events_after_the_id() -> None:
    """Events after the client's id: answered at once, with the last one's id as cursor."""
    session = LongPollSession(LongPollConfig(retry=2000), log_with(5))
    document = answer_of(session.on_request("/poll?lastEventId=2&timeout=20", [], 10.0))
    assert datas(document) == ["e3", "e4"]
    assert [e["id"] for e in document["events"]] == ["3", "4"]
    assert document["last_event_id"] == "4"
    assert document["gap"] is None and document["retry"] == 2000
    assert session.state is LongPollState.ANSWERED and session.next_deadline() is None
    assert session.on_published(11.0) == [] and session.on_timer(100.0) == []


def test_holds_until_an_event_is_published() -> None:
    """Up to date: the request is held; a publish that concerns it wakes it."""
    log = log_with(3)
    session = LongPollSession(LongPollConfig(), log)
    assert session.on_request("/poll?lastEventId=2&timeout=20", [], 10.0) == []
    assert session.state is LongPollState.HOLDING
    assert session.next_deadline() == 30.0
    assert session.on_published(11.0) == []  # nothing new yet
    assert session.on_timer(29.9) == []
    log.append(Event(data="new"), 29.95)
    document = answer_of(session.on_published(29.95))
    assert datas(document) == ["new"] and document["last_event_id"] == "3"


def test_deadline_answers_empty_with_the_clients_id() -> None:
    """At the deadline the answer is empty and the cursor is the client's own id."""
    session = LongPollSession(LongPollConfig(), log_with(3))
    session.on_request("/poll?lastEventId=2&timeout=5", [], 10.0)
    document = answer_of(session.on_timer(15.0))
    assert document == {"events": [], "last_event_id": "2", "gap": None, "retry": None}


@pytest.mark.parametrize(
    ("timeout", "hold"),
    [("0", 0.0), ("5", 5.0), ("2.5", 2.5), ("99", 25.0), ("-1", 25.0), ("nan", 25.0),
     ("abc", 25.0), (None, 25.0)],
)
def test_hold_time_is_bounded(timeout: str | None, hold: float) -> None:
    """The client's timeout is cut to max_hold; absent or invalid means max_hold; 0 answers
    at once."""
    session = LongPollSession(LongPollConfig(max_hold=25.0), log_with(1))
    target = "/poll?lastEventId=0" + (f"&timeout={timeout}" if timeout is not None else "")
    actions = session.on_request(target, [], 100.0)
    if hold == 0:
        assert answer_of(actions)["events"] == []
    else:
        assert actions == [] and session.next_deadline() == 100.0 + hold


def test_header_wins_over_query() -> None:
    """Last-Event-ID in a header takes precedence over the lastEventId parameter."""
    session = LongPollSession(LongPollConfig(), log_with(5))
    document = answer_of(session.on_request("/poll?lastEventId=0", [(b"Last-Event-ID", b"3")],
                                            9.0))
    assert datas(document) == ["e4"]


@pytest.mark.parametrize(
    ("leid", "gap", "is_replayed", "kept"),
    [
        ("0", {"reason": "too_old", "missed": 2}, False, ["e3", "e4", "e5"]),  # 1, 2 evicted
        ("nope", {"reason": "unknown"}, False, []),
        ("nope", {"reason": "unknown"}, True, ["e3", "e4", "e5"]),
    ],
)
def test_gap_then_what_the_client_is_owed(
    leid: str, gap: dict[str, Any], is_replayed: bool, kept: list[str]
) -> None:
    """An id the log cannot resume from: the gap (with how many events were evicted after
    the id, when the log knows), then all the log still has when the id was ours (or
    is_unknown_id_replayed), else nothing; the cursor is the log's newest id."""
    config = LongPollConfig(is_unknown_id_replayed=is_replayed)
    session = LongPollSession(config, log_with(6, max_events=3))
    document = answer_of(session.on_request(f"/poll?lastEventId={leid}", [], 10.0))
    assert document["gap"] == {"last_event_id": leid, **gap}
    assert datas(document) == kept and document["last_event_id"] == "5"


def test_gap_on_an_empty_log_moves_the_cursor_to_the_position() -> None:
    """A gap with nothing kept answers the log's position (its start marker) so the client
    resumes from there -- neither meeting the same gap again at once, forever, nor missing
    what is published before its next poll."""
    log = ReplayLog()
    session = LongPollSession(LongPollConfig(), log)
    document = answer_of(session.on_request("/poll?lastEventId=9", [], 0.0))
    assert document["gap"] == {"last_event_id": "9", "reason": "unknown"}
    assert document["last_event_id"] == log.position == "start"
    log.append(Event(data="meanwhile"), 1.0)
    again = LongPollSession(LongPollConfig(), log)
    assert datas(answer_of(again.on_request("/poll?lastEventId=start", [], 2.0))) == ["meanwhile"]


def test_new_client_starts_at_the_newest_event() -> None:
    """No id: nothing old is sent; the hold ends with the newest id as cursor, or with the
    first events published, including on an empty log."""
    log = log_with(3)
    session = LongPollSession(LongPollConfig(), log)
    assert session.on_request("/poll?timeout=5", [], 10.0) == []
    assert answer_of(session.on_timer(15.0))["last_event_id"] == "2"
    empty = ReplayLog()
    fresh = LongPollSession(LongPollConfig(), empty)
    assert fresh.on_request("/poll", [], 0.0) == []
    empty.append(Event(data="first"), 1.0)
    assert datas(answer_of(fresh.on_published(1.0))) == ["first"]


def test_eviction_while_held_is_a_gap() -> None:
    """Events evicted while a request was held are reported as a gap, not skipped."""
    log = log_with(2, max_events=2)
    session = LongPollSession(LongPollConfig(), log)
    session.on_request("/poll?lastEventId=1", [], 5.0)
    for i in range(3):
        log.append(Event(data=f"n{i}"), 6.0)
    document = answer_of(session.on_published(6.0))
    assert document["gap"] == {"last_event_id": "1", "reason": "too_old", "missed": 1}
    assert datas(document) == ["n1", "n2"]


@settings(deadline=None)
@given(n=st.integers(0, 30), start=st.integers(0, 30), max_events=st.integers(1, 10),
       max_bytes=st.none() | st.integers(1, 400), size=st.integers(0, 60))
def test_answer_bounds(n: int, start: int, max_events: int, max_bytes: int | None,
                       size: int) -> None:
    """An answer holds at most max_events events and (but for the first) at most max_bytes of
    event JSON; they are the next ones in order, and the cursor is the last one sent, so that
    repeated polls get every event exactly once."""
    log = ReplayLog()
    for i in range(n):
        log.append(Event(data="x" * size + str(i)), 0.0)
    config = LongPollConfig(max_events=max_events, max_bytes=max_bytes, max_hold=1.0)
    cursor, got = str(start - 1) if start else "", []
    if start > n or not n:
        return
    for _ in range(n + 1):
        session = LongPollSession(config, log)
        actions = session.on_request(f"/poll?lastEventId={cursor}&timeout=0", [], 1.0)
        document = answer_of(actions)
        events = document["events"]
        assert len(events) <= max_events
        sizes = [len(json.dumps(e, ensure_ascii=False, separators=(",", ":")).encode())
                 for e in events]
        if max_bytes is not None and len(events) > 1:
            assert sum(sizes) <= max_bytes
        got += [e["data"] for e in events]
        cursor = document["last_event_id"]
        if not events:
            break
    if not start:  # a new client starts after the newest event
        assert got == []
    else:
        assert got == ["x" * size + str(i) for i in range(start, n)]


def test_close() -> None:
    """close() answers a held request, disconnects an idle one, and then does nothing."""
    held = LongPollSession(LongPollConfig(), log_with(1))
    held.on_request("/poll?lastEventId=0", [], 0.0)
    assert answer_of(held.close(1.0))["events"] == []
    idle = LongPollSession(LongPollConfig(), log_with(1))
    assert idle.close(0.0) == [Disconnect(reason="closed by the server")]
    assert idle.close(1.0) == [] and held.close(2.0) == []
    with pytest.raises(LocalProtocolError):
        held.on_request("/poll", [], 3.0)


def test_server_misuse_is_sticky() -> None:
    """A second request fails the session for good: every later input raises
    LocalProtocolError that says it failed earlier and why (chained to the first), it holds
    nothing any more, and close() still answers the held request."""
    held = LongPollSession(LongPollConfig(max_hold=10.0), log_with(1))
    held.on_request("/poll?lastEventId=0", [], 0.0)
    assert held.next_deadline() == 10.0
    with pytest.raises(LocalProtocolError) as first:
        held.on_request("/poll?lastEventId=0", [], 1.0)
    for call in (lambda: held.on_published(2.0), lambda: held.on_timer(10.0),
                 lambda: held.on_request("/poll", [], 2.0)):
        with pytest.raises(LocalProtocolError, match="failed earlier") as later:
            call()
        assert later.value.__cause__ is first.value
        assert str(first.value) in str(later.value)
    assert held.next_deadline() is None and held.state is LongPollState.HOLDING
    assert answer_of(held.close(3.0))["events"] == []


@pytest.mark.parametrize(
    "kwargs",
    [{"max_hold": 0}, {"max_hold": float("inf")}, {"max_events": 0}, {"max_bytes": 0},
     {"retry": -1}, {"last_event_id_param": "a=b"}, {"timeout_param": ""},
     {"timeout_param": "lastEventId"}, {"headers": (("X-A", "b\nc"),)}, {"max_hold": True}],
)
def test_invalid_server_config(kwargs: dict[str, Any]) -> None:
    """Bad long-poll server configuration is refused up front."""
    with pytest.raises(InvalidConfigError):
        LongPollConfig(**kwargs)


def test_session_needs_a_config_and_a_log_or_none() -> None:
    """A LongPollSession needs its config, and a log or None (answers shared by a cache
    need the log they are about)."""
    with pytest.raises(InvalidConfigError):
        LongPollSession(ServerConfig(), ReplayLog())  # type: ignore[arg-type]
    with pytest.raises(InvalidConfigError):
        LongPollSession(LongPollConfig(), "log")  # type: ignore[arg-type]
    with pytest.raises(InvalidConfigError):
        LongPollSession(LongPollConfig(), None, answers=AnswerCache())


# --- a session without a log: the events come from the request's own stream ------------------


def test_without_a_log_the_session_holds_and_answers_with_the_events_given() -> None:
    """Without a log nothing is pending: the session holds, and on_events answers with
    exactly the events given (ids as they are), the cursor at the last id among them."""
    session = LongPollSession(LongPollConfig(max_bytes=10), None)
    headers = [("Last-Event-ID", "job-3")]
    assert session.on_request("/poll?timeout=5", headers, now=0.0) == []
    assert session.client_last_event_id == session.last_event_id == "job-3"
    assert session.next_deadline() == 5.0
    assert session.on_published(now=1.0) == []  # no log: nothing to look at
    assert session.on_events([], now=1.0) == []
    events = [
        Event(data="x" * 40, id="job-4"), Event(data="no id"), Event(data="y" * 40, id="job-5"),
    ]
    head, body, end = session.on_events(events, now=2.0)
    assert isinstance(head, SendHead) and isinstance(body, Send) and isinstance(end, Disconnect)
    answer = LongPollResponse.decode(body.data, last_event_id="job-3")
    # max_bytes does not cut these: they were taken from their source already.
    assert [e.data for e in answer.events] == [e.data for e in events]
    assert [e.id for e in answer.events] == ["job-4", None, "job-5"]
    assert answer.last_event_id == "job-5"
    assert session.state is LongPollState.ANSWERED
    assert session.on_events(events, now=3.0) == []


def test_without_a_log_ids_absent_leave_the_cursor_and_a_timeout_answers_empty() -> None:
    """Events without ids do not move the client; a new client stays at "" and the due
    timer answers with no events."""
    session = LongPollSession(LongPollConfig(), None)
    assert session.on_request("/poll?timeout=5", [], now=0.0) == []
    assert session.client_last_event_id == session.last_event_id == ""
    body = session.on_events([Event(data="a")], now=1.0)[1]
    assert isinstance(body, Send)
    assert LongPollResponse.decode(body.data).last_event_id == ""
    empty = LongPollSession(LongPollConfig(), None)
    empty.on_request("/poll?lastEventId=7&timeout=5", [], now=0.0)
    assert empty.on_timer(now=4.0) == []
    answer = empty.on_timer(now=5.0)[1]
    assert isinstance(answer, Send)
    assert answer.data == b'{"events":[],"last_event_id":"7","gap":null,"retry":null}'


def test_on_events_misuse_is_final() -> None:
    """on_events with a log, with more than max_events or with other records is misuse."""
    logged = LongPollSession(LongPollConfig(), log_with(1))
    logged.on_request("/poll?timeout=5", [], now=0.0)
    with pytest.raises(LocalProtocolError, match="on_published"):
        logged.on_events([Event(data="a")], now=1.0)
    with pytest.raises(LocalProtocolError, match="failed"):
        logged.on_timer(now=5.0)
    bounded = LongPollSession(LongPollConfig(max_events=1), None)
    bounded.on_request("/poll", [], now=0.0)
    with pytest.raises(LocalProtocolError, match="max_events=1"):
        bounded.on_events([Event(data="a"), Event(data="b")], now=1.0)
    typed = LongPollSession(LongPollConfig(), None)
    typed.on_request("/poll", [], now=0.0)
    with pytest.raises(LocalProtocolError, match="Event records"):
        typed.on_events(["a"], now=1.0)  # type: ignore[list-item]


# --- the client: configuration and detection -------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [{"long_poll_url": "/poll"}, {"long_poll_url": "https://x.test/a b"},
     {"initial_transport": Transport.LONG_POLLING},
     {"long_poll_url": POLL_URL, "initial_transport": "long polling"},
     {"first_byte_timeout": 0}, {"switch_after": 0}, {"switch_after": 1.0},
     {"retry_streaming_after": 0}, {"long_poll_timeout": -1}, {"min_poll_interval": 0},
     {"max_response_size": 0}],
)
def test_invalid_client_config(overrides: dict[str, Any]) -> None:
    """Bad fallback knobs are refused on construction."""
    with pytest.raises(InvalidConfigError):
        ClientConfig(url=URL, **overrides)


def test_off_by_default() -> None:
    """Without long_poll_url a silent 200 stream only meets the stall timeout, as before."""
    c = ClientSession(ClientConfig(url=URL, stall_timeout=30.0), rng=random.Random(1))
    c.start(0.0)
    c.on_response(200, SSE, 0.0)
    assert c.next_deadline() == 30.0
    actions = c.on_timer(30.0)
    assert transports(actions) == [] and c.transport is Transport.STREAMING
    assert statuses(actions) == [ClientState.RECONNECTING]


def test_switches_after_blocked_streams_in_a_row() -> None:
    """No body byte within first_byte_timeout of a 200, switch_after times in a row: the
    transport becomes LONG_POLLING (reported after the Disconnect) and the next connection is
    a poll."""
    c = client()
    c.start(0.0)
    c.on_response(200, SSE, 0.0)
    assert c.next_deadline() == 5.0
    first = c.on_timer(5.0)
    assert [type(a) for a in first] == [Disconnect, ReportStatus]
    assert "no body bytes" in (first[0].reason or "")  # type: ignore[union-attr]
    assert c.transport is Transport.STREAMING
    (request,) = connects(c.on_timer(6.0))
    assert not is_poll(request)
    c.on_response(200, SSE, 6.0)
    second = c.on_timer(11.0)
    assert [type(a) for a in second] == [Disconnect, ReportTransport, ReportStatus]
    assert transports(second) == [Transport.LONG_POLLING]
    assert c.transport.value == "long polling"
    deadline = c.next_deadline()
    assert deadline is not None
    (poll,) = connects(c.on_timer(deadline))
    assert is_poll(poll) and poll.method == "GET"
    assert ("Accept", "application/json") in poll.headers
    assert query(poll) == {"timeout": "20"}


def test_body_bytes_reset_the_count() -> None:
    """A stream that delivers any byte (a heartbeat) breaks the row of blocked ones."""
    c = client(switch_after=2)
    c.start(0.0)
    c.on_response(200, SSE, 0.0)
    c.on_timer(5.0)  # blocked 1
    c.on_timer(6.0)
    c.on_response(200, SSE, 6.0)
    c.on_data(b":\n\n", 7.0)  # bytes: the count starts again
    c.on_eof(8.0)
    now = c.next_deadline() or 0.0
    c.on_timer(now)
    c.on_response(200, SSE, now)
    actions = c.on_timer(now + 5.0)  # blocked 1 again
    assert transports(actions) == [] and c.transport is Transport.STREAMING


def test_stall_before_the_first_byte_counts_as_blocked() -> None:
    """A stall timeout that runs out first on a silent 200 counts like the first-byte one."""
    c = client(switch_after=1, stall_timeout=3.0, first_byte_timeout=10.0)
    c.start(0.0)
    c.on_response(200, SSE, 0.0)
    assert c.next_deadline() == 3.0
    assert transports(c.on_timer(3.0)) == [Transport.LONG_POLLING]


def test_failures_before_a_response_do_not_count() -> None:
    """Connection errors neither count towards the switch nor reset the row."""
    c = client(switch_after=2)
    c.start(0.0)
    c.on_response(200, SSE, 0.0)
    c.on_timer(5.0)  # blocked 1
    c.on_timer(6.0)
    c.on_connection_lost(6.5)  # refused
    assert c.transport is Transport.STREAMING
    now = c.next_deadline() or 0.0
    c.on_timer(now)
    c.on_response(200, SSE, now)
    assert transports(c.on_timer(now + 5.0)) == [Transport.LONG_POLLING]


# --- the client: polling ----------------------------------------------------------------------


def test_poll_cycle_delivers_and_polls_again_at_once() -> None:
    """An answer delivers its events, moves to STREAMING, and the next poll (from the new
    cursor) comes back from on_eof."""
    c = client(last_event_id="0")
    now = switch_to_polling(c)
    assert c.state is ClientState.CONNECTING
    accepted = c.on_response(200, JSON, now)
    assert statuses(accepted) == [ClientState.CONNECTED]
    assert c.on_data(poll_body([Event(data="a", id="1"), Event(data="b", id="2")], "2"),
                     now) == []
    actions = c.on_eof(now + 0.5)
    assert statuses(actions) == [ClientState.STREAMING]
    assert delivered(actions) == ["a", "b"]
    (request,) = connects(actions)
    assert query(request) == {"lastEventId": "2", "timeout": "20"}
    assert c.last_event_id == "2"
    # The following answers keep the state: no status reports while polls succeed.
    actions = answer_poll(c, poll_body([Event(data="c", id="3")], "3"), now + 1.0)
    assert statuses(actions) == [] and delivered(actions) == ["c"]
    assert c.metrics.messages_received == 3


def test_dedup_across_transports() -> None:
    """An event already received on the stream is not delivered again by a poll."""
    c = client()
    c.start(0.0)
    c.on_response(200, SSE, 0.0)
    assert delivered(c.on_data(b"id: 1\ndata: a\n\n", 0.5)) == ["a"]
    c.on_eof(1.0)
    c.on_timer(2.0)
    for now in (2.0, 8.0):
        c.on_response(200, SSE, now)
        c.on_timer(now + 5.0)
        c.on_timer(c.next_deadline() or 0.0)
    assert c.transport is Transport.LONG_POLLING
    actions = answer_poll(c, poll_body([Event(data="a", id="1"), Event(data="b", id="2")], "2"),
                          30.0)
    assert delivered(actions) == ["b"]
    assert c.metrics.messages_deduplicated == 1


def test_a_gap_of_known_size_counts_in_the_completion_rate() -> None:
    """An answer's gap with ``missed`` reaches the application's ReportGap and the metrics:
    events_missed, so the completion rate is delivered / (delivered + missed)."""
    c = client(last_event_id="7")
    now = switch_to_polling(c)
    gap = ReportGap(last_event_id="7", reason="too_old", missed=3)
    body = poll_body([Event(data="x", id="11")], "11", gap=gap)
    actions = answer_poll(c, body, now)
    assert gap in actions
    metrics = c.metrics
    assert (metrics.gaps_reported, metrics.gaps_of_unknown_size, metrics.events_missed) == (
        1, 0, 3)
    received = metrics.messages_received
    assert metrics.stream_completion_rate == received / (received + 3)


def test_gap_and_retry_in_an_answer() -> None:
    """gap becomes ReportGap; retry sets the reconnection time used after failed polls."""
    c = client(last_event_id="7")
    now = switch_to_polling(c)
    body = poll_body([Event(data="x", id="9")], "9",
                     gap=ReportGap(last_event_id="7", reason="too_old"), retry=2500)
    actions = answer_poll(c, body, now)
    assert ReportGap(last_event_id="7", reason="too_old") in actions
    assert c.metrics.gaps_reported == c.metrics.gaps_of_unknown_size == 1  # no missed: unknown
    assert c.reconnection_time == 2.5
    c.on_connection_lost(now + 6.0)  # the polls were healthy: the schedule starts over
    assert c.next_deadline() == now + 6.0 + 2.5


@pytest.mark.parametrize(
    "body", [b"not json", b'{"events": []}', b"", b"x" * 2000],
)
def test_bad_answer_backs_off_and_polls_again(body: bytes) -> None:
    """A bad or oversized answer is a lost connection: backoff, then another poll."""
    c = client(max_response_size=1000)
    now = switch_to_polling(c)
    actions = c.on_response(200, JSON, now) + c.on_data(body, now)
    if len(body) > 1000:
        assert [type(a) for a in actions[-2:]] == [Disconnect, ReportStatus]
        assert "max_response_size" in (actions[-2].reason or "")  # type: ignore[union-attr]
    else:
        actions = c.on_eof(now)
    assert c.state is ClientState.RECONNECTING
    deadline = c.next_deadline()
    assert deadline is not None and deadline > now
    (request,) = connects(c.on_timer(deadline))
    assert is_poll(request) and c.transport is Transport.LONG_POLLING


def test_gzip_answer_is_decoded() -> None:
    """A gzip-encoded answer is decoded (within max_decompressed_size) before parsing."""
    c = client()
    now = switch_to_polling(c)
    body = Compressor().compress(poll_body([Event(data="z", id="1")], "1"))
    c.on_response(200, [*JSON, ("Content-Encoding", "gzip")], now)
    c.on_data(body, now)
    assert delivered(c.on_eof(now)) == ["z"]


def test_quick_empty_answer_waits_min_poll_interval() -> None:
    """An empty answer sooner than min_poll_interval delays the next poll until then; an
    answer with events does not."""
    c = client(min_poll_interval=2.0)
    now = switch_to_polling(c)
    actions = answer_poll(c, poll_body([], ""), now + 0.5)
    assert connects(actions) == [] and c.next_deadline() == now + 2.0
    assert c.state is ClientState.STREAMING
    assert c.on_timer(now + 1.9) == []
    (request,) = connects(c.on_timer(now + 2.0))
    assert is_poll(request)
    assert connects(answer_poll(c, poll_body([Event(data="a")], ""), now + 2.1)) != []


def test_unanswered_poll_is_given_up() -> None:
    """A poll with no answer within long_poll_timeout + stall_timeout is replaced."""
    c = client(long_poll_timeout=20.0, stall_timeout=30.0)
    now = switch_to_polling(c)
    assert c.next_deadline() == now + 50.0
    c.on_response(200, JSON, now + 1.0)
    assert c.on_timer(now + 49.0) == []
    actions = c.on_timer(now + 50.0)
    assert [type(a) for a in actions] == [Disconnect, ReportStatus]
    assert c.state is ClientState.RECONNECTING


def test_dripping_poll_answer_does_not_move_its_deadline() -> None:
    """A poll answer dripped a byte at a time is still given up at long_poll_timeout +
    stall_timeout after the poll started: that deadline is fixed, not moved by bytes."""
    c = client(long_poll_timeout=20.0, stall_timeout=30.0)
    now = switch_to_polling(c)
    c.on_response(200, JSON, now + 1.0)
    for step in range(98):
        assert c.on_data(b" ", now + 1.0 + step * 0.5) == []
        assert c.next_deadline() == now + 50.0
    actions = c.on_timer(now + 50.0)
    assert [type(a) for a in actions] == [Disconnect, ReportStatus]
    assert "long poll unanswered after 50 s" in (actions[-1].reason or "")  # type: ignore[union-attr]


def test_refused_poll_closes() -> None:
    """204 on a poll (or any status the stream would refuse) closes the session for good,
    from the first poll or a later one (after reading the first bytes of a refused body)."""
    c = client()
    now = switch_to_polling(c)
    answer_poll(c, poll_body([], "", retry=None), now + 5.0)
    actions = c.on_response(204, [], now + 6.0)
    assert [type(a) for a in actions] == [Disconnect, ReportStatus]
    assert c.state is ClientState.CLOSED and c.next_deadline() is None
    other = client()
    now = switch_to_polling(other)
    assert other.on_response(200, SSE, now) == []  # a refused answer's body is read first
    assert statuses(other.on_eof(now + 0.1)) == [ClientState.CLOSED]


def test_retry_status_on_a_later_poll_backs_off() -> None:
    """A retryable status on a poll reconnects with backoff, as on the stream."""
    c = client(retry_statuses=frozenset({503}))
    now = switch_to_polling(c)
    answer_poll(c, poll_body([Event(data="a")], ""), now)
    assert statuses(c.on_response(503, [], now + 1.0)) == [ClientState.RECONNECTING]


def test_initial_transport_long_polling() -> None:
    """initial_transport=LONG_POLLING starts with a poll."""
    c = client(initial_transport=Transport.LONG_POLLING)
    (request,) = connects(c.start(0.0))
    assert is_poll(request) and c.transport is Transport.LONG_POLLING
    assert c.request() == request


def test_close_between_polls_has_no_disconnect() -> None:
    """Closing while waiting for the next poll only reports CLOSED."""
    c = client(initial_transport=Transport.LONG_POLLING)
    c.start(0.0)
    answer_poll(c, poll_body([], ""), 0.1)
    assert [type(a) for a in c.close(0.2)] == [ReportStatus]


def test_long_poll_request_needs_a_url() -> None:
    """Asking for a poll request without a long_poll_url is misuse."""
    with pytest.raises(LocalProtocolError):
        client(long_poll_url=None).long_poll_request()


def test_misuse_while_polling() -> None:
    """Body before head, or a connection loss when none is in flight, is misuse (each on a
    fresh session: misuse fails a session for good)."""
    for misuse in (lambda c: c.on_data(b"{}", 0.0), lambda c: c.on_eof(0.0)):
        c = client(initial_transport=Transport.LONG_POLLING)
        c.start(0.0)
        with pytest.raises(LocalProtocolError):
            misuse(c)
    between_polls: list[Callable[[ClientSession], object]] = [
        lambda c: c.on_connection_lost(0.2),
        lambda c: c.on_response(200, JSON, 0.2),
        lambda c: c.on_data(b"x", 0.2),
    ]
    for misuse in between_polls:
        c = client(initial_transport=Transport.LONG_POLLING)
        c.start(0.0)
        answer_poll(c, poll_body([], ""), 0.1)  # waits for min_poll_interval
        with pytest.raises(LocalProtocolError):
            misuse(c)
        with pytest.raises(LocalProtocolError, match="failed earlier"):
            c.on_timer(1.1)  # the next poll would be due: the session failed instead


# --- the client: trying streaming again -------------------------------------------------------


def probe(c: ClientSession, now: float) -> Request:
    """Answer polls until the session tries the stream again; return that request."""
    actions = answer_poll(c, poll_body([Event(data="p")], ""), now)
    (request,) = connects(actions)
    return request


def test_streaming_is_tried_again_and_fails_back_at_once() -> None:
    """After retry_streaming_after the stream is tried between two polls; one silent 200 is
    enough to go back to polling, with no status change and no backoff."""
    c = client(retry_streaming_after=100.0)
    now = switch_to_polling(c)
    assert is_poll(probe(c, now + 50.0))  # not yet
    request = probe(c, now + 100.0)  # more than 100 s after the switch
    assert not is_poll(request)
    assert c.on_response(200, SSE, now + 100.0) == []
    assert c.state is ClientState.STREAMING
    assert c.next_deadline() == now + 105.0
    actions = c.on_timer(now + 105.0)
    assert [type(a) for a in actions] == [Disconnect, Connect]
    assert is_poll(actions[1].request)  # type: ignore[union-attr]
    assert c.transport is Transport.LONG_POLLING
    # The next try is retry_streaming_after later.
    assert is_poll(probe(c, now + 200.0))
    assert not is_poll(probe(c, now + 205.0))


@pytest.mark.parametrize("failure", ["status", "lost", "eof", "stall"])
def test_failed_try_goes_back_to_polling(failure: str) -> None:
    """A try that fails in any way (refused, lost, ended, no head) keeps polling."""
    c = client(retry_streaming_after=10.0, stall_timeout=30.0)
    now = switch_to_polling(c) + 10.0
    assert not is_poll(probe(c, now))
    if failure == "status":
        actions = c.on_response(503, [], now)
    elif failure == "lost":
        actions = c.on_connection_lost(now)
    elif failure == "eof":
        c.on_response(200, SSE, now)
        actions = c.on_eof(now)
    else:
        assert c.next_deadline() == now + 30.0
        actions = c.on_timer(now + 30.0)
    (request,) = connects(actions)
    assert is_poll(request) and statuses(actions) == []
    assert c.transport is Transport.LONG_POLLING


def test_streaming_comes_back() -> None:
    """A try whose stream delivers bytes switches back to STREAMING and keeps the stream."""
    c = client(retry_streaming_after=10.0)
    now = switch_to_polling(c) + 10.0
    probe(c, now)
    c.on_response(200, SSE, now)
    actions = c.on_data(b"id: 5\ndata: live\n\n", now + 1.0)
    assert transports(actions) == [Transport.STREAMING]
    assert delivered(actions) == ["live"]
    assert c.transport is Transport.STREAMING and c.state is ClientState.STREAMING
    assert delivered(c.on_data(b"data: more\n\n", now + 2.0)) == ["more"]
    assert c.last_event_id == "5"


def test_dripping_stream_try_streams_then_stalls() -> None:
    """A try whose stream drips bytes without a line end: the bytes got through, so the
    client streams again (no buffering intermediary holds everything back), and then the
    stall timeout replaces the connection, as for any stream that makes no progress."""
    c = client(retry_streaming_after=10.0, stall_timeout=30.0)
    now = switch_to_polling(c) + 10.0
    probe(c, now)
    c.on_response(200, SSE, now)
    assert transports(c.on_data(b"d", now + 1.0)) == [Transport.STREAMING]
    for step in range(1, 58):
        c.on_data(b"x", now + 1.0 + step * 0.5)
    assert c.next_deadline() == now + 30.0
    actions = c.on_timer(now + 30.0)
    assert [type(a) for a in actions] == [Disconnect, ReportStatus]
    assert actions[-1].reason == "stalled: no complete line for 30 s"  # type: ignore[union-attr]
    assert c.transport is Transport.STREAMING


# --- the switching logic, at random -----------------------------------------------------------


class SwitchingMachine(RuleBasedStateMachine):
    """Random networks and servers: the transport changes only as the rules say (a switch to
    polling only after switch_after silent 200 streams in a row, tries of the stream only
    retry_streaming_after after the switch or the last try, back to streaming only when a
    try's bytes arrive); status changes follow TRANSITIONS; ids are delivered once, in order;
    a live session always has a deadline."""

    def __init__(self) -> None:
        super().__init__()
        self.c = client(switch_after=2, retry_streaming_after=10.0, first_byte_timeout=5.0,
                        stall_timeout=30.0, retry_statuses=frozenset({503}))
        self.now = 0.0
        self.state = ClientState.CLOSED
        self.transport = Transport.STREAMING
        self.pending: Request | None = None
        self.head_in = False
        self.got_bytes = False
        self.row = 0
        self.probe_allowed_at = 0.0
        self.published = 0
        self.delivered: list[int] = []
        self.is_network_buffering = True  # stream bodies never arrive while set

    # -- applying actions ---------------------------------------------------------------

    def apply(self, actions: list[Action], *, timer_on_silent_stream: bool = False) -> None:
        was_probe = self.pending is not None and not is_poll(self.pending) and (
            self.transport is Transport.LONG_POLLING)
        for action in actions:
            if isinstance(action, ReportStatus):
                assert (self.state, action.state) in {(s, t) for (s, _), t in TRANSITIONS.items()}
                self.state = action.state
            elif isinstance(action, ReportTransport):
                assert action.transport is not self.transport
                if action.transport is Transport.LONG_POLLING:
                    assert timer_on_silent_stream and self.row + 1 >= 2
                    self.row = -1  # counted below, then reset
                    self.probe_allowed_at = self.now + 10.0
                else:
                    assert was_probe and self.got_bytes
                    self.row = 0
                self.transport = action.transport
            elif isinstance(action, Disconnect):
                self.pending = None
            elif isinstance(action, Connect):
                request = action.request
                if self.transport is Transport.STREAMING:
                    assert not is_poll(request)
                elif not is_poll(request):
                    assert self.now >= self.probe_allowed_at
                self.pending, self.head_in, self.got_bytes = request, False, False
            elif isinstance(action, Deliver):
                assert action.event.id is not None
                self.delivered.append(int(action.event.id))
        if timer_on_silent_stream:
            self.row += 1
            if was_probe:
                self.probe_allowed_at = self.now + 10.0
        assert self.c.state is self.state and self.c.transport is self.transport

    def events_after(self, request: Request, replay: bool) -> list[int]:
        if is_poll(request):
            leid = query(request).get("lastEventId", "")
        else:
            leid = dict((n.lower(), v) for n, v in request.headers).get("last-event-id", "")
        first = int(leid) + 1 if leid else 0
        return list(range(max(0, first - replay), self.published))

    # -- rules -------------------------------------------------------------------------------

    @initialize()
    def begin(self) -> None:
        self.apply(self.c.start(self.now))

    @precondition(lambda self: self.state is ClientState.CLOSED)
    @rule()
    def start(self) -> None:
        self.apply(self.c.start(self.now))

    @precondition(lambda self: self.pending is not None and not self.head_in)
    @rule(ok=st.sampled_from([True, True, True, True, False]))
    def head(self, ok: bool) -> None:
        assert self.pending is not None
        headers = JSON if is_poll(self.pending) else SSE
        was_probe = self.transport is Transport.LONG_POLLING and not is_poll(self.pending)
        actions = self.c.on_response(200 if ok else 503, headers if ok else [], self.now)
        if ok:
            self.head_in = True
        elif was_probe:
            self.probe_allowed_at = self.now + 10.0
        self.apply(actions)

    @precondition(lambda self: self.pending is not None and self.head_in
                  and not is_poll(self.pending) and not self.is_network_buffering)
    @rule(replay=st.booleans(), new=st.integers(0, 2))
    def stream_bytes(self, replay: bool, new: int) -> None:
        assert self.pending is not None
        self.published += new
        ids = self.events_after(self.pending, replay)
        body = b"".join(serialize_event("x", id=str(i)) for i in ids) or b":\n\n"
        self.got_bytes = True
        if self.transport is Transport.STREAMING:
            self.row = 0
        self.apply(self.c.on_data(body, self.now))

    @precondition(lambda self: self.pending is not None and self.head_in
                  and is_poll(self.pending))
    @rule(replay=st.booleans(), new=st.integers(0, 2),
          bad=st.sampled_from([False, False, False, True]))
    def poll_answer(self, replay: bool, new: int, bad: bool) -> None:
        assert self.pending is not None
        self.published += new
        ids = self.events_after(self.pending, replay)
        leid = str(ids[-1]) if ids else query(self.pending).get("lastEventId", "")
        events = [Event(data="x", id=str(i)) for i in ids]
        body = b"garbage" if bad else poll_body(events, leid)
        self.pending = None
        actions = self.c.on_data(body, self.now) + self.c.on_eof(self.now)
        self.apply(actions)

    @precondition(lambda self: self.pending is not None)
    @rule()
    def lost(self) -> None:
        assert self.pending is not None
        if self.transport is Transport.LONG_POLLING and not is_poll(self.pending):
            self.probe_allowed_at = self.now + 10.0
        self.pending = None
        self.apply(self.c.on_connection_lost(self.now))

    @rule(to_deadline=st.booleans(), delay=st.floats(0, 20),
          network_changes=st.sampled_from([False] * 5 + [True]))
    def wait(self, to_deadline: bool, delay: float, network_changes: bool) -> None:
        if network_changes:
            self.is_network_buffering = not self.is_network_buffering
        deadline = self.c.next_deadline()
        if to_deadline and deadline is not None:
            self.now = max(self.now, deadline)
        else:
            self.now += delay
        silent = (self.pending is not None and not is_poll(self.pending) and self.head_in
                  and not self.got_bytes)
        actions = self.c.on_timer(self.now)
        ended = any(isinstance(a, Disconnect) for a in actions)
        if deadline is None or self.now < deadline:
            assert actions == []
        if silent and ended and self.transport is Transport.STREAMING:
            self.apply(actions, timer_on_silent_stream=True)
        elif silent and ended:  # a failed try while polling
            self.probe_allowed_at = self.now + 10.0
            self.apply(actions)
        else:
            self.apply(actions)

    @rule(really=st.integers(0, 4))
    def close(self, really: int) -> None:
        if really:  # closing ends everything: keep it rare
            return
        self.pending = None
        self.apply(self.c.close(self.now))

    # -- invariants ----------------------------------------------------------------------------

    @invariant()
    def delivered_once_in_order(self) -> None:
        assert self.delivered == sorted(set(self.delivered))

    @invariant()
    def live_session_has_a_deadline(self) -> None:
        if self.state is ClientState.CLOSED:
            assert self.c.next_deadline() is None
        else:
            assert self.c.next_deadline() is not None or self.pending is not None


TestSwitchingMachine = SwitchingMachine.TestCase
TestSwitchingMachine.settings = settings(stateful_step_count=50, deadline=None)


# --- end to end: a buffering proxy ------------------------------------------------------------


class BufferingProxyNet:
    """A client, a proxy and a server on a simulated clock, with no latency.

    The proxy passes response heads at once. While ``is_buffering`` it holds a response's body
    until the server ends the response (what breaks streaming and not long-polling); a client
    disconnect drops what it held. The server keeps one ReplayLog; stream requests get a
    ServerSession, poll requests a LongPollSession.
    """

    def __init__(self, client_session: ClientSession, log: ReplayLog) -> None:
        self.client = client_session
        self.log = log
        self.is_buffering = True
        self.now = 0.0
        self.server: ServerSession | LongPollSession | None = None
        self.held = bytearray()
        self.delivered: list[str] = []
        self.transports: list[Transport] = []
        self.queue: deque[Callable[[], list[Action]]] = deque()

    def run_client(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Connect):
                self.connect(action.request)
            elif isinstance(action, Disconnect):
                self.server, self.held = None, bytearray()
            elif isinstance(action, Deliver):
                self.delivered.append(action.event.data)
            elif isinstance(action, ReportTransport):
                self.transports.append(action.transport)

    def connect(self, request: Request) -> None:
        parts = urlsplit(request.url)
        target = parts.path + ("?" + parts.query if parts.query else "")
        if parts.path == "/poll":
            server: ServerSession | LongPollSession = LongPollSession(
                LongPollConfig(max_hold=20.0, max_events=7), self.log)
        else:
            server = ServerSession(ServerConfig(heartbeat_interval=10.0, padding=2048), self.log)
        self.server, self.held = server, bytearray()
        self.run_server(server, server.on_request(target, request.headers, self.now))

    def run_server(self, server: object, actions: list[Action]) -> None:
        for action in actions:
            if server is not self.server:
                return  # the client went away
            now = self.now
            if isinstance(action, SendHead):
                self.queue.append(
                    partial(self.client.on_response, action.status, action.headers, now))
            elif isinstance(action, Send):
                if self.is_buffering:
                    self.held += action.data
                else:
                    self.queue.append(partial(self.client.on_data, action.data, now))
            elif isinstance(action, Disconnect):
                held = bytes(self.held)
                if held:
                    self.queue.append(partial(self.client.on_data, held, now))
                self.queue.append(partial(self.client.on_eof, now))
                self.server = None
        self.drain()

    def drain(self) -> None:
        while self.queue:
            self.run_client(self.queue.popleft()())

    def publish(self, data: str) -> None:
        stored = self.log.append(Event(data=data), self.now)
        server = self.server
        if isinstance(server, ServerSession):
            self.run_server(server, server.send(stored, self.now))
        elif isinstance(server, LongPollSession):
            self.run_server(server, server.on_published(self.now))

    def advance(self, until: float) -> None:
        """Run every timer due up to ``until``."""
        while True:
            server = self.server
            deadlines = [d for d in (self.client.next_deadline(),
                                     server.next_deadline() if server else None)
                         if d is not None and d <= until]
            if not deadlines:
                break
            self.now = max(self.now, min(deadlines))
            if server is not None and (server.next_deadline() or until + 1) <= self.now:
                self.run_server(server, server.on_timer(self.now))
            if (self.client.next_deadline() or until + 1) <= self.now:
                self.run_client(self.client.on_timer(self.now))
                self.drain()
        self.now = until


def test_end_to_end_through_a_buffering_proxy() -> None:
    """Behind a proxy that holds stream bodies, the client switches to long-polling and gets
    every event exactly once, in order; the stream is tried again (and fails back) while the
    proxy buffers; once it stops buffering the client streams again, still exactly once."""
    log = ReplayLog(ReplayConfig(max_events=500, epoch="b1"))
    snapshot = log.append(Event(data="snapshot"), 0.0)
    config = ClientConfig(
        url="https://example.test/stream", long_poll_url="https://example.test/poll",
        last_event_id=snapshot.id, backoff=FIXED, stall_timeout=30.0,
        first_byte_timeout=5.0, switch_after=2, retry_streaming_after=60.0,
        long_poll_timeout=15.0,
    )
    net = BufferingProxyNet(ClientSession(config, rng=random.Random(7)), log)
    net.run_client(net.client.start(0.0))
    rng = random.Random(11)
    published = []
    t = 0.0
    for i in range(400):
        t += rng.expovariate(1.0)  # about one event a second, some in bursts
        net.advance(t)
        if i == 250:
            net.is_buffering = False  # the network changes: streaming would work now
        published.append(f"m{i}")
        net.publish(f"m{i}")
    net.advance(t + 200.0)
    assert net.delivered == published
    assert net.transports[0] is Transport.LONG_POLLING
    assert net.transports[-1] is Transport.STREAMING
    assert net.client.transport is Transport.STREAMING
    metrics = net.client.metrics
    assert metrics.messages_received == len(published)
    assert metrics.gaps_reported == 0


# --- what a poll counts in a broadcaster's metrics --------------------------------------------

COUNTED = ("replays_served", "too_old_resumes", "unknown_id_resumes")


def counting_hub() -> Broadcaster:
    """A broadcaster whose log kept b-3, b-4, b-5 of six events (b-0 .. b-2 evicted)."""
    hub = Broadcaster(
        ReplayLog(ReplayConfig(max_events=3, epoch="b")),
        config=ServerConfig(heartbeat_interval=None, is_compression_enabled=False),
    )
    for n in range(6):
        hub.publish(Event(data=f"e{n}"), 1.0)
    return hub


def counted(metrics: ServerMetrics) -> tuple[int, ...]:
    return tuple(getattr(metrics, name) for name in COUNTED)


@pytest.mark.parametrize(("last_event_id", "expected"), [
    ("b-0", (0, 1, 0)),  # evicted: too old
    ("elsewhere", (0, 0, 1)),  # an id the log cannot place
    ("b-3", (1, 0, 0)),  # b-4 and b-5 wait: answered from the log, a replay
    ("b-5", (0, 0, 0)),  # the log's end: held, nothing to replay
    ("", (0, 0, 0)),  # a new client
])
def test_a_poll_counts_its_resume_as_a_stream_does(
    last_event_id: str, expected: tuple[int, int, int]
) -> None:
    """A poll from an id counts in the broadcaster's metrics what a stream from the same id
    counts (replays served, too-old and unknown-id resumes), while it is open and once it
    is gone (not twice: forgetting it again changes nothing)."""
    target = f"/poll?lastEventId={last_event_id}&timeout=20"
    hub = counting_hub()
    poller = hub.hold(target, [], 2.0)
    assert counted(hub.metrics) == expected
    hub.unsubscribe(poller)
    hub.unsubscribe(poller)
    assert counted(hub.metrics) == expected
    streams = counting_hub()
    streams.subscribe(f"/events?lastEventId={last_event_id}", [], 2.0)
    assert counted(streams.metrics) == expected


def test_a_held_poll_answered_on_publish_is_no_replay_and_its_bytes_count() -> None:
    """A poll held at the log's end and answered by a publish is live, not a replay; the
    answer's body bytes count in ``bytes_sent`` (with the streams'), open or gone."""
    hub = counting_hub()
    before = hub.metrics
    poller = hub.hold("/poll?lastEventId=b-5&timeout=20", [], 2.0)
    assert poller.is_holding and hub.metrics.bytes_sent == before.bytes_sent
    hub.publish(Event(data="live"), 3.0)
    body = b"".join(a.data for a in poller.take(3.0) if isinstance(a, Send))
    assert json.loads(body)["events"][0]["data"] == "live"
    assert poller.session.bytes_sent == len(body)
    assert hub.metrics.bytes_sent == before.bytes_sent + len(body)
    assert counted(hub.metrics) == (0, 0, 0)
    hub.unsubscribe(poller)
    assert hub.metrics.bytes_sent == before.bytes_sent + len(body)
    assert hub.metrics.events_published == 7


def test_a_poll_gap_found_while_held_is_counted() -> None:
    """A held poll whose place the log evicts before it is answered gets a too-old gap when
    its hold runs out: counted then, and noted in its trail at that time."""
    log = log_with(3, max_events=3)
    session = LongPollSession(LongPollConfig(), log)
    session.on_request(f"/poll?lastEventId={log.position}&timeout=5", [], 3.0)
    for i in range(4):  # the client's successor goes too
        log.append(Event(data=f"n{i}"), 4.0)  # nobody tells the session: it finds out late
    answer = answer_of(session.on_timer(8.0))
    assert answer["gap"]["reason"] == "too_old"
    assert (session._too_old_resumes, session._replays_served) == (1, 0)
    [gap] = session.audit_trail.of_kind(AuditKind.GAP)
    assert gap.at == 8.0
