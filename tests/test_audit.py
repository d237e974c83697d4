"""The sessions' audit trails (sse_core._audit): what the client session notes, its bound,
the law that its state changes are the ReportStatus actions the session returned; and what a
server session (alone, or a broadcaster's subscriber) and a long-poll session note."""

from __future__ import annotations

import json
import random
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sse_core import (
    Action,
    AuditTrail,
    Broadcaster,
    ClientConfig,
    ClientSession,
    ClientState,
    ClockError,
    Connect,
    Disconnect,
    Event,
    InvalidConfigError,
    LongPollConfig,
    LongPollSession,
    ReportStatus,
    ServerConfig,
    ServerSession,
    Transport,
)
from sse_core.state import (
    DEFAULT_MAX_AUDIT_RECORDS,
    AuditKind,
    AuditRecord,
    BackoffConfig,
    Jitter,
    LongPollState,
    ReplayConfig,
    ReplayLog,
    SequencerConfig,
    ServerState,
)
from sse_core.testing import Offline, Partition, Scenario, simulate

URL = "http://example.test/events"
SSE = [(b"content-type", b"text/event-stream")]
S = ClientState
GAP_SIGNAL = b'event: sse-core-gap\ndata: {"last_event_id": "1", "reason": "unknown"}\n\n'


def session(**config: Any) -> ClientSession:
    backoff = BackoffConfig(base_delay=1.0, jitter=Jitter.NONE)
    defaults: dict[str, Any] = {"url": URL, "backoff": backoff}
    return ClientSession(ClientConfig(**{**defaults, **config}), rng=random.Random(1))


def streaming(**config: Any) -> ClientSession:
    client = session(**config)
    client.start(0.0)
    client.on_response(200, SSE, 0.1)
    client.on_data(b"id: 7\ndata: x\n\n", 0.2)
    return client


def kinds(trail: AuditTrail) -> list[AuditKind]:
    return [record.kind for record in trail.records]


def test_trail_notes_states_connects_and_the_id_resumed_from() -> None:
    """A stream that is lost and resumes: every state change with its reason and time, and
    each connection with the id it resumes from (none at first, then the last event id)."""
    client = streaming()
    client.on_connection_lost(3.0, "reset by peer")
    client.on_timer(4.0)
    trail = client.audit_trail
    assert kinds(trail) == [
        AuditKind.STATUS, AuditKind.CONNECT, AuditKind.STATUS, AuditKind.STATUS,
        AuditKind.STATUS, AuditKind.STATUS, AuditKind.CONNECT,
    ]
    statuses = trail.of_kind(AuditKind.STATUS)
    assert [(r.at, r.state, r.reason) for r in statuses] == [
        (0.0, S.CONNECTING, None), (0.1, S.CONNECTED, None), (0.2, S.STREAMING, None),
        (3.0, S.RECONNECTING, "reset by peer"), (4.0, S.CONNECTING, None),
    ]
    connects = trail.of_kind(AuditKind.CONNECT)
    assert [(r.at, r.last_event_id, r.transport) for r in connects] == [
        (0.0, "", Transport.STREAMING), (4.0, "7", Transport.STREAMING),
    ]
    assert trail.dropped == 0


def test_trail_is_bounded_and_counts_what_it_dropped() -> None:
    """With ``max_audit_records=3`` only the newest three records are kept; the rest are
    counted as dropped, and the events delivered meanwhile add nothing."""
    client = streaming(max_audit_records=3)
    for n in range(50):
        client.on_data(b"data: %d\n\n" % n, 1.0)
    client.on_connection_lost(2.0)
    client.on_timer(3.0)
    trail = client.audit_trail
    assert [(r.kind, r.at) for r in trail.records] == [
        (AuditKind.STATUS, 2.0), (AuditKind.STATUS, 3.0), (AuditKind.CONNECT, 3.0),
    ]
    assert trail.dropped == 4


def test_trail_off() -> None:
    """``max_audit_records=0`` keeps nothing (and counts nothing); a negative bound is
    refused; the default keeps ``DEFAULT_MAX_AUDIT_RECORDS``."""
    client = streaming(max_audit_records=0)
    client.on_connection_lost(2.0)
    assert client.audit_trail == AuditTrail()
    with pytest.raises(InvalidConfigError):
        ClientConfig(url=URL, max_audit_records=-1)
    assert ClientConfig(url=URL).max_audit_records == DEFAULT_MAX_AUDIT_RECORDS == 100


def test_trail_notes_gaps_with_their_size() -> None:
    """A server's gap signal is noted with the id it could not replay from; a sequencer's
    gap with how many events it lost."""
    client = streaming()
    signal = b'event: sse-core-gap\ndata: {"last_event_id": "3", "reason": "too_old"}\n\n'
    client.on_data(signal, 1.0)
    [gap] = client.audit_trail.of_kind(AuditKind.GAP)
    assert (gap.at, gap.reason, gap.last_event_id, gap.count) == (1.0, "too_old", "3", None)
    signal = signal.replace(b'"too_old"', b'"too_old", "missed": 4')  # the log knew how many
    client.on_data(signal, 1.5)
    gap = client.audit_trail.of_kind(AuditKind.GAP)[-1]
    assert (gap.at, gap.last_event_id, gap.count) == (1.5, "3", 4)

    client = session(sequencer=SequencerConfig(gap_timeout=1.0))
    client.start(0.0)
    client.on_response(200, SSE, 0.0)
    client.on_data(b"id: 1\ndata: a\n\nid: 5\ndata: b\n\n", 0.5)
    client.on_timer(2.0)
    [gap] = client.audit_trail.of_kind(AuditKind.GAP)
    assert (gap.at, gap.reason, gap.count) == (2.0, "timeout", 3)


def test_trail_notes_a_refusal_as_a_failure_with_its_status() -> None:
    """A 401 closes the session: the failure (with the HTTP status) comes before the CLOSED
    state change, both at the time the response arrived."""
    client = session(max_error_body_size=0)
    client.start(0.0)
    client.on_response(401, [(b"content-type", b"text/plain")], 0.5)
    trail = client.audit_trail
    assert kinds(trail)[-2:] == [AuditKind.FAILURE, AuditKind.STATUS]
    failure, closed = trail.records[-2:]
    assert (failure.at, failure.status) == (0.5, 401)
    assert (closed.state, closed.reason) == (S.CLOSED, failure.reason)


def test_trail_notes_network_signals_and_staleness() -> None:
    """The platform's signals are noted (even one the session ignores) before the state
    changes they cause; staleness and freshness are noted too."""
    client = streaming(stale_after=1.0)
    client.on_timer(1.5)
    client.on_offline(2.0)
    client.on_offline(2.5)  # ignored: offline already
    client.on_online(3.0, "wifi is back")
    client.on_response(200, SSE, 3.1)
    client.on_data(b": hb\n", 3.2)
    trail = client.audit_trail
    assert [(r.kind, r.at) for r in trail.records][4:] == [
        (AuditKind.STALE, 1.5), (AuditKind.OFFLINE, 2.0), (AuditKind.STATUS, 2.0),
        (AuditKind.OFFLINE, 2.5), (AuditKind.ONLINE, 3.0), (AuditKind.STATUS, 3.0),
        (AuditKind.CONNECT, 3.0), (AuditKind.STATUS, 3.1), (AuditKind.STATUS, 3.2),
        (AuditKind.STALE, 3.2),
    ]
    stale = trail.of_kind(AuditKind.STALE)
    assert [r.is_stale for r in stale] == [True, False]
    assert trail.of_kind(AuditKind.ONLINE)[0].reason == "wifi is back"


def test_trail_notes_transport_switches() -> None:
    """A stream held back by a buffering intermediary switches to long-polling: the switch
    is noted with its reason, and the poll that follows as a long-polling connection."""
    client = session(long_poll_url="http://example.test/poll", first_byte_timeout=1.0,
                     switch_after=1)
    client.start(0.0)
    client.on_response(200, SSE, 0.1)
    client.on_timer(1.2)
    client.on_timer(2.5)
    trail = client.audit_trail
    [switch] = trail.of_kind(AuditKind.TRANSPORT)
    assert switch.transport is Transport.LONG_POLLING and switch.reason
    assert trail.of_kind(AuditKind.CONNECT)[-1].transport is Transport.LONG_POLLING


def test_records_are_frozen_and_export_flat() -> None:
    """Records cannot be changed; ``as_dict`` gives JSON-ready flat keys (enums as values,
    unset fields left out)."""
    client = streaming()
    record = client.audit_trail.records[0]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        record.at = 5.0  # type: ignore[misc]
    assert record.as_dict() == {"at": 0.0, "kind": "status", "state": "connecting"}
    lines = [json.dumps(r.as_dict()) for r in client.audit_trail.records]
    assert json.loads(lines[1]) == {
        "at": 0.0, "kind": "connect", "last_event_id": "", "transport": "streaming",
    }
    assert AuditRecord(at=1.0, kind=AuditKind.GAP, count=2).as_dict()["count"] == 2


# --- the law ------------------------------------------------------------------------------

_STEPS = st.lists(
    st.tuples(
        st.sampled_from([
            "response", "refuse", "retry", "data", "gap", "eof", "lost", "timer", "offline",
            "online", "changed", "close", "start",
        ]),
        st.floats(min_value=0.0, max_value=5.0),
    ),
    max_size=40,
)


class _Driver:
    """Feeds a client session inputs that fit what it asked for, and keeps every action."""

    def __init__(self, client: ClientSession) -> None:
        self.client = client
        self.now = 0.0
        self.in_flight = False
        self.head_in = False
        self.actions: list[Action] = []

    def take(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Connect):
                self.in_flight, self.head_in = True, False
            elif isinstance(action, Disconnect):
                self.in_flight = False
        self.actions += actions

    def step(self, what: str, delay: float) -> None:
        self.now += delay
        c, now = self.client, self.now
        match what:
            case "response" | "refuse" | "retry" if self.in_flight and not self.head_in:
                status = {"response": 200, "refuse": 401, "retry": 503}[what]
                headers = SSE if status == 200 else [(b"content-type", b"text/plain")]
                self.head_in = True
                self.take(c.on_response(status, headers, now))
            case "data" | "gap" if self.in_flight and self.head_in:
                data = b"id: %d\ndata: x\n\n" % int(now * 10)
                if what == "gap":
                    data = GAP_SIGNAL
                self.take(c.on_data(data, now))
            case "eof" if self.in_flight and self.head_in:
                self.in_flight = False
                self.take(c.on_eof(now))
            case "lost" if self.in_flight:
                self.in_flight = False
                self.take(c.on_connection_lost(now, f"lost at {now:g}"))
            case "offline":
                self.take(c.on_offline(now))
            case "online":
                self.take(c.on_online(now))
            case "changed":
                self.take(c.on_network_changed(now))
            case "close":
                self.in_flight = False
                self.take(c.close(now, f"closed at {now:g}"))
            case "start" if c.state is S.CLOSED:
                self.take(c.start(now))
            case _:
                self.take(c.on_timer(now))


@settings(max_examples=150, deadline=None)
@given(steps=_STEPS, max_records=st.integers(min_value=1, max_value=200))
def test_trail_states_equal_the_status_actions(
    steps: list[tuple[str, float]], max_records: int
) -> None:
    """For any run of inputs, the trail's state changes are the ReportStatus actions the
    session returned (state, reason and time), the newest ``max_records`` records of them
    kept; its connections carry the Last-Event-ID each Connect sent."""
    client = session(
        max_audit_records=max_records, stale_after=1.0, stall_timeout=3.0,
        retry_statuses=frozenset({503}), max_error_body_size=0,
        backoff=BackoffConfig(base_delay=0.5, max_attempts=4, jitter=Jitter.NONE),
    )
    driver = _Driver(client)
    driver.take(client.start(0.0))
    for what, delay in steps:
        driver.step(what, delay)  # only fitting inputs: a LocalProtocolError fails the test
    trail = client.audit_trail
    unbounded = trail.dropped + len(trail.records)
    status = [(a.state, a.reason, a.since) for a in driver.actions if isinstance(a, ReportStatus)]
    noted = [(r.state, r.reason, r.at) for r in trail.of_kind(AuditKind.STATUS)]
    assert len(trail.records) == min(unbounded, max_records)
    if trail.dropped == 0:
        assert noted == status
        sent = [
            dict(a.request.headers).get("Last-Event-ID", "")
            for a in driver.actions if isinstance(a, Connect)
        ]
        assert [r.last_event_id for r in trail.of_kind(AuditKind.CONNECT)] == sent
    else:
        assert status[len(status) - len(noted):] == noted


# --- the simulator ------------------------------------------------------------------------


def test_simulated_outage_shows_in_the_trail() -> None:
    """A 20 s partition, then an announced offline spell: the trail shows the stream lost
    (with its reason), the attempts made into the partition, the resumption from the last
    event id once it heals, the offline signal and the return; the run is exactly-once."""
    sessions: list[ClientSession] = []

    def factory(config: ClientConfig, rng: random.Random) -> ClientSession:
        sessions.append(ClientSession(config, rng=rng))
        return sessions[-1]

    scenario = Scenario(
        seed=3, publish_at=tuple(0.5 * n for n in range(1, 100)),
        faults=(Partition(at=5.0, duration=20.0), Offline(at=35.0, duration=5.0)),
    )
    result = simulate(scenario, client_factory=factory)
    assert result.is_ok, result.violation
    trail = sessions[0].audit_trail
    states = [(r.at, r.state, r.reason) for r in trail.of_kind(AuditKind.STATUS)]
    lost = [s for s in states if s[1] is S.RECONNECTING]
    assert lost and 5.0 <= lost[0][0] <= 25.0 and lost[0][2]
    during = [r for r in trail.of_kind(AuditKind.CONNECT) if 5.0 <= r.at <= 25.0]
    assert during and all(r.last_event_id for r in during)  # resumed, never from scratch
    after = [s for s in states if 25.0 <= s[0] < 35.0]
    assert after and after[-1][1] is S.STREAMING
    [offline] = trail.of_kind(AuditKind.OFFLINE)
    [online] = trail.of_kind(AuditKind.ONLINE)
    assert (offline.at, online.at) == (35.0, 40.0)
    assert (S.OFFLINE in [s[1] for s in states if s[0] == 35.0])


# --- the server session's trail ---------------------------------------------------------


def server_log(count: int, kept: int) -> ReplayLog:
    log = ReplayLog(ReplayConfig(max_events=kept, epoch="b"))
    for n in range(count):
        log.append(Event(data=f"e{n}"), 0.0)
    return log


QUIET = ServerConfig(heartbeat_interval=None)


def test_server_trail_notes_request_status_gap_replay_and_close() -> None:
    """A client resuming from an evicted id: the request with its id, STREAMING, the gap
    signal with how many were lost, the replay's end with how many went, and CLOSED with
    its reason, each at the now of its input."""
    server = ServerSession(QUIET, server_log(6, kept=3))
    server.on_request("/", [("Last-Event-ID", "b-0")], 5.0)
    server.close(9.0)
    assert [(r.at, r.kind) for r in server.audit_trail.records] == [
        (5.0, AuditKind.REQUEST), (5.0, AuditKind.STATUS), (5.0, AuditKind.GAP),
        (5.0, AuditKind.REPLAYED), (9.0, AuditKind.STATUS),
    ]
    request, streaming_, gap, replayed, closed = server.audit_trail.records
    assert request.last_event_id == "b-0"
    assert (streaming_.state, closed.state) == (ServerState.STREAMING, ServerState.CLOSED)
    assert closed.reason == "closed by the server"
    assert (gap.reason, gap.last_event_id, gap.count) == ("too_old", "b-0", 2)
    assert replayed.count == 3
    assert closed.as_dict() == {"at": 9.0, "kind": "status", "state": "closed",
                                "reason": "closed by the server"}


def test_server_trail_of_a_new_client_and_of_an_unknown_id() -> None:
    """A new client resumes from nothing (``""``) and replays nothing; an id the log cannot
    place is a gap of unknown size, and only the position follows (no replay)."""
    server = ServerSession(QUIET, server_log(3, kept=3))
    server.on_request("/", [], 1.0)
    assert kinds(server.audit_trail) == [AuditKind.REQUEST, AuditKind.STATUS]
    assert server.audit_trail.records[0].last_event_id == ""

    server = ServerSession(QUIET, server_log(3, kept=3))
    server.on_request("/", [("Last-Event-ID", "elsewhere")], 1.0)
    [gap] = server.audit_trail.of_kind(AuditKind.GAP)
    assert (gap.reason, gap.last_event_id, gap.count) == ("unknown", "elsewhere", None)
    assert not server.audit_trail.of_kind(AuditKind.REPLAYED)


def test_server_trail_notes_a_long_replay_once_when_it_ends() -> None:
    """A replay in steps is noted once, when its last step goes, with every event it sent;
    a replay put off for the budget is not noted as a replay but as the reason it closed."""
    config = ServerConfig(heartbeat_interval=None, replay_chunk_size=1)  # one event a step
    server = ServerSession(config, server_log(5, kept=5))
    server.on_request("/", [("Last-Event-ID", "b-0")], 1.0)
    at = 1.0
    while server.is_replaying:
        assert not server.audit_trail.of_kind(AuditKind.REPLAYED)
        at += 1.0
        server.continue_replay(at)
    [replayed] = server.audit_trail.of_kind(AuditKind.REPLAYED)
    assert (replayed.at, replayed.count) == (at, 4)

    server = ServerSession(config, server_log(5, kept=5))
    server.on_request("/", [("Last-Event-ID", "b-0")], 1.0, is_long_replay_allowed=False)
    assert not server.audit_trail.of_kind(AuditKind.REPLAYED)
    closed = server.audit_trail.records[-1]
    assert closed.state is ServerState.CLOSED
    assert closed.reason is not None and "replay put off" in closed.reason


def test_server_trail_notes_why_a_broadcaster_let_the_client_go() -> None:
    """A subscriber dropped for falling behind closes with the drop's reason; a send timeout
    the adapter counts with the subscriber is noted as a failure at its time (never before
    the session's latest time); a time earlier than the hub's is refused, uncounted."""
    hub = Broadcaster(ReplayLog(), config=QUIET, max_queued_bytes=50)
    slow = hub.subscribe("/", [], 1.0)
    hub.publish(Event(data="x" * 100), 2.0)
    closed = slow.session.audit_trail.records[-1]
    assert (closed.at, closed.state) == (2.0, ServerState.CLOSED)
    assert closed.reason == slow.dropped_reason
    assert closed.reason is not None and "max_queued_bytes=50" in closed.reason

    hub = Broadcaster(ReplayLog(), config=QUIET)
    stuck = hub.subscribe("/", [], 2.0)
    stuck.session.on_timer(8.0)  # the session's clock is ahead of the hub's
    hub.count_send_timeout(stuck, 7.0)
    hub.count_send_timeout(stuck)  # at the hub's latest time, 7.0: noted at the session's
    hub.count_send_timeout()  # no subscriber: only counted
    assert hub.metrics.send_timeouts == 3
    failures = stuck.session.audit_trail.of_kind(AuditKind.FAILURE)
    assert [(r.at, r.reason) for r in failures] == [(8.0, "send timeout"), (8.0, "send timeout")]
    hub.count_send_timeout(stuck, 9.0)
    assert stuck.session.audit_trail.records[-1].at == 9.0
    with pytest.raises(ClockError):
        hub.count_send_timeout(stuck, 6.0)
    assert hub.metrics.send_timeouts == 4


def test_server_trail_is_bounded_and_can_be_off() -> None:
    """max_audit_records keeps the newest records and counts the rest; 0 keeps nothing; a
    negative bound is refused; the default is the client's."""
    server = ServerSession(ServerConfig(heartbeat_interval=None, max_audit_records=2),
                           server_log(6, kept=3))
    server.on_request("/", [("Last-Event-ID", "b-0")], 1.0)
    trail = server.audit_trail
    assert kinds(trail) == [AuditKind.GAP, AuditKind.REPLAYED]
    assert trail.dropped == 2
    server = ServerSession(ServerConfig(max_audit_records=0), server_log(1, kept=1))
    server.on_request("/", [], 1.0)
    server.close(2.0)
    assert server.audit_trail == AuditTrail()
    with pytest.raises(InvalidConfigError):
        ServerConfig(max_audit_records=-1)
    assert ServerConfig().max_audit_records == DEFAULT_MAX_AUDIT_RECORDS


# --- a long poll's trail ----------------------------------------------------------------------


def polled(log: ReplayLog | None, target: str, now: float, **config: Any) -> LongPollSession:
    """A long-poll session on ``log`` that took ``target`` at ``now``."""
    session = LongPollSession(LongPollConfig(**config), log)
    session.on_request(target, [], now)
    return session


def test_poll_trail_notes_request_gap_answer_and_why_it_closed() -> None:
    """A poll from an evicted id is answered at once: the request with its id, the gap with
    how many were lost, the answer with how many events it carried, and ANSWERED, all at the
    request's time; nothing more afterwards (close does nothing)."""
    session = polled(server_log(6, kept=3), "/poll?lastEventId=b-0&timeout=20", 5.0)
    session.close(9.0)
    assert [(r.at, r.kind) for r in session.audit_trail.records] == [
        (5.0, AuditKind.REQUEST), (5.0, AuditKind.GAP), (5.0, AuditKind.REPLAYED),
        (5.0, AuditKind.STATUS),
    ]
    request, gap, answer, answered = session.audit_trail.records
    assert request.last_event_id == "b-0"
    assert (gap.reason, gap.last_event_id, gap.count) == ("too_old", "b-0", 2)
    assert answer.count == 3 == session.events_sent
    assert (answered.state, answered.reason) == (LongPollState.ANSWERED, "answered")
    assert answered.as_dict() == {"at": 5.0, "kind": "status", "state": "answered",
                                  "reason": "answered"}


def test_poll_trail_of_a_held_poll_answered_timed_out_or_closed() -> None:
    """A held poll notes HOLDING at its request; then the answer and why: events published
    (answered), the hold ran out (timed out, an empty answer), the server closed it."""
    log = server_log(2, kept=5)
    session = polled(log, "/poll?lastEventId=b-1&timeout=20", 1.0)
    log.append(Event(data="new"), 3.0)
    session.on_published(3.0)
    assert [(r.at, r.kind, r.state, r.reason, r.count) for r in session.audit_trail.records] == [
        (1.0, AuditKind.REQUEST, None, None, None),
        (1.0, AuditKind.STATUS, LongPollState.HOLDING, None, None),
        (3.0, AuditKind.REPLAYED, None, None, 1),
        (3.0, AuditKind.STATUS, LongPollState.ANSWERED, "answered", None),
    ]
    session = polled(log, "/poll?lastEventId=b-2&timeout=4", 4.0)
    session.on_timer(8.0)
    assert [(r.at, r.kind, r.reason, r.count) for r in session.audit_trail.records[2:]] == [
        (8.0, AuditKind.REPLAYED, None, 0), (8.0, AuditKind.STATUS, "timed out", None),
    ]
    session = polled(log, "/poll?lastEventId=b-2&timeout=4", 9.0)
    session.close(10.0)
    assert session.audit_trail.records[-1].reason == "closed by the server"
    idle = LongPollSession(LongPollConfig(), log)
    idle.close(10.0)
    [closed] = idle.audit_trail.records
    assert (closed.at, closed.state, closed.reason) == (
        10.0, LongPollState.ANSWERED, "closed by the server"
    )


def test_poll_trail_of_a_new_client_an_unknown_id_and_a_zero_timeout() -> None:
    """A new client resumes from nothing (``""``); an id the log cannot place is a gap of
    unknown size; a poll that waits 0 s for nothing times out at once."""
    log = server_log(3, kept=3)
    session = polled(log, "/poll?timeout=0", 1.0)
    assert session.audit_trail.records[0].last_event_id == ""
    assert session.audit_trail.records[-1].reason == "timed out"
    session = polled(log, "/poll?lastEventId=elsewhere&timeout=20", 1.0)
    [gap] = session.audit_trail.of_kind(AuditKind.GAP)
    assert (gap.reason, gap.last_event_id, gap.count) == ("unknown", "elsewhere", None)
    assert [r.count for r in session.audit_trail.of_kind(AuditKind.REPLAYED)] == [0]
    assert session.audit_trail.records[-1].reason == "answered"


def test_poll_trail_without_a_log_notes_the_events_given() -> None:
    """A session fed by its caller (a per-request response) notes the answer's events."""
    session = polled(None, "/poll?lastEventId=7&timeout=20", 1.0)
    session.on_events([Event(data="a", id="8"), Event(data="b", id="9")], 2.0)
    assert kinds(session.audit_trail) == [
        AuditKind.REQUEST, AuditKind.STATUS, AuditKind.REPLAYED, AuditKind.STATUS,
    ]
    assert session.audit_trail.of_kind(AuditKind.REPLAYED)[0].count == 2


def test_poll_trail_notes_a_failure_the_io_layer_reports() -> None:
    """note_failure adds a FAILURE at its time and changes nothing else; a time earlier than
    the session's is refused, unnoted; a broadcaster's send timeout with the poll notes one
    at the poll's latest time."""
    session = polled(server_log(1, kept=1), "/poll?timeout=20", 1.0)
    session.note_failure("send timeout", 2.0)
    failure = session.audit_trail.records[-1]
    assert (failure.at, failure.kind, failure.reason) == (2.0, AuditKind.FAILURE, "send timeout")
    assert session.state is LongPollState.HOLDING
    with pytest.raises(ClockError):
        session.note_failure("late", 1.5)
    assert len(session.audit_trail.of_kind(AuditKind.FAILURE)) == 1

    hub = Broadcaster(ReplayLog(), config=QUIET)
    poller = hub.hold("/poll?timeout=20", [], 3.0)
    poller.poll(4.0)  # the poll's clock is ahead of the hub's
    hub.count_send_timeout(poller, 3.5)
    [failure] = poller.session.audit_trail.of_kind(AuditKind.FAILURE)
    assert (failure.at, failure.reason) == (4.0, "send timeout")
    assert hub.metrics.send_timeouts == 1


def test_poll_trail_is_bounded_and_can_be_off() -> None:
    """LongPollConfig.max_audit_records keeps the newest records and counts the rest; 0
    keeps nothing; a negative bound is refused; the default is the streams'."""
    session = polled(server_log(6, kept=3), "/poll?lastEventId=b-0", 1.0, max_audit_records=2)
    trail = session.audit_trail
    assert kinds(trail) == [AuditKind.REPLAYED, AuditKind.STATUS]
    assert trail.dropped == 2
    session = polled(server_log(6, kept=3), "/poll?lastEventId=b-0", 1.0, max_audit_records=0)
    session.note_failure("stuck", 2.0)
    assert session.audit_trail == AuditTrail()
    with pytest.raises(InvalidConfigError):
        LongPollConfig(max_audit_records=-1)
    assert LongPollConfig().max_audit_records == DEFAULT_MAX_AUDIT_RECORDS


_POLL_STEPS = st.lists(
    st.tuples(
        st.sampled_from(["publish", "timer", "close", "failure", "evict"]),
        st.floats(min_value=0.0, max_value=5.0),
    ),
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(
    kept=st.integers(min_value=1, max_value=4),
    start=st.sampled_from(["", "b-0", "b-2", "elsewhere"]),
    timeout=st.sampled_from(["0", "1.5", "20", "x"]),
    bound=st.integers(min_value=0, max_value=6),
    steps=_POLL_STEPS,
)
def test_poll_trail_is_bounded_ordered_by_time_and_the_tail_of_the_whole(
    kept: int, start: str, timeout: str, bound: int,
    steps: list[tuple[str, float]],
) -> None:
    """Whatever a poll goes through, its trail holds at most ``max_audit_records`` records,
    their times never go back and lie within the inputs' times, it starts with the request
    (when kept) and notes the answer at most once, and it is the newest part of the trail an
    unbounded session notes for the same inputs (``dropped`` counts the rest; a bound of 0
    keeps and counts nothing)."""
    bounded_log, whole_log = server_log(3, kept=kept), server_log(3, kept=kept)
    target = f"/poll?lastEventId={start}&timeout={timeout}"
    bounded = LongPollSession(LongPollConfig(max_audit_records=bound), bounded_log)
    whole = LongPollSession(LongPollConfig(max_audit_records=1000), whole_log)
    now = 1.0
    for session in (bounded, whole):
        session.on_request(target, [], now)
    for step, wait in steps:
        now += wait
        for session, log in ((bounded, bounded_log), (whole, whole_log)):
            match step:
                case "publish":
                    log.append(Event(data="x"), now)
                    session.on_published(now)
                case "timer":
                    session.on_timer(now)
                case "close":
                    session.close(now)
                case "failure":
                    session.note_failure("stuck", now)
                case "evict":
                    for _ in range(kept):
                        log.append(Event(data="y"), now)
    records = whole.audit_trail.records
    trail = bounded.audit_trail
    assert len(trail.records) <= bound
    assert trail.records == records[len(records) - len(trail.records):]
    assert trail.dropped == (len(records) - len(trail.records) if bound else 0)  # 0: off
    times = [record.at for record in records]
    assert times == sorted(times) and all(1.0 <= at <= now for at in times)
    assert records[0].kind is AuditKind.REQUEST and records[0].at == 1.0
    assert len(whole.audit_trail.of_kind(AuditKind.REPLAYED)) <= 1
    closes = [r for r in records if r.state is LongPollState.ANSWERED]
    assert len(closes) == (whole.state is LongPollState.ANSWERED)
