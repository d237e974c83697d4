"""Tests of the Broadcaster: fan-out, bounded per-subscriber queues, drops, heartbeats, close."""

from __future__ import annotations

import json
import math
import zlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)

from sse_core import (
    HEARTBEAT,
    Action,
    Broadcaster,
    Comment,
    Disconnect,
    Event,
    InvalidConfigError,
    LocalProtocolError,
    Parser,
    Retry,
    Send,
    SendHead,
    ServerConfig,
    serialize,
)
from sse_core.state import GAP_EVENT_TYPE, POSITION_EVENT_TYPE, ReplayConfig, ReplayLog, Subscriber

QUIET = ServerConfig(heartbeat_interval=None)


def body_of(actions: list[Action]) -> bytes:
    return b"".join(a.data for a in actions if isinstance(a, Send))


def events_of(actions: list[Action], parser: Parser | None = None) -> list[Event]:
    items = (parser or Parser()).feed(body_of(actions))
    return [item for item in items if isinstance(item, Event)]


def position(id: str) -> Event:
    """The position block naming ``id``, as a parser reports it."""
    return Event(data="", event=POSITION_EVENT_TYPE, id=id, last_event_id=id)


# --- construction ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_queued_bytes": 0},
        {"max_queued_bytes": 1.5},
        {"max_queued_bytes": True},
        {"max_subscribers": 0},
        {"max_subscribers": "3"},
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, Any]) -> None:
    """Limits that are not positive ints are InvalidConfigError at construction."""
    with pytest.raises(InvalidConfigError):
        Broadcaster(ReplayLog(), **kwargs)


def test_replay_log_must_be_a_replay_log() -> None:
    """Anything but a ReplayLog as the log is InvalidConfigError."""
    with pytest.raises(InvalidConfigError, match="ReplayLog"):
        Broadcaster([])  # type: ignore[arg-type]


def test_replay_log_property_is_the_log_given() -> None:
    """The log passed in is the one events are published to."""
    log = ReplayLog()
    hub = Broadcaster(log)
    assert hub.replay_log is log
    hub.publish(Event(data="a"), now=0.0)
    assert len(log) == 1


# --- subscribe ---------------------------------------------------------------------------------


def test_new_subscriber_gets_head_and_the_log_position() -> None:
    """A new client's queue holds the head, then a position block naming where the log stands
    (so a client dropped before its first event still resumes without loss)."""
    hub = Broadcaster(ReplayLog(ReplayConfig(epoch="b")), config=QUIET)
    hub.publish(Event(data="before"), now=0.0)
    sub = hub.subscribe("/events", [], now=1.0)
    assert sub.has_pending and sub.queued_bytes == 0
    actions = sub.take()
    assert isinstance(actions[0], SendHead) and actions[0].status == 200
    parser = Parser()
    assert events_of(actions, parser) == [position("b-0")]  # no message ...
    assert parser.last_event_id == "b-0"  # ... but the position is known
    assert not sub.has_pending and sub.take() == []


def test_subscriber_with_last_event_id_gets_exactly_the_missed_events() -> None:
    """Last-Event-ID replays exactly the events after it, from the shared log."""
    hub = Broadcaster(ReplayLog(), config=QUIET)
    ids = [hub.publish(Event(data=f"e{i}"), now=0.0).id for i in range(5)]
    sub = hub.subscribe("/events", [("Last-Event-ID", ids[1])], now=1.0)
    assert [e.data for e in events_of(sub.take())] == ["e2", "e3", "e4"]


def test_last_event_id_query_parameter_is_read() -> None:
    """The lastEventId query parameter stands in for the header."""
    hub = Broadcaster(ReplayLog(), config=QUIET)
    ids = [hub.publish(Event(data=f"e{i}"), now=0.0).id for i in range(3)]
    sub = hub.subscribe(f"/events?lastEventId={ids[0]}", [], now=1.0)
    assert [e.data for e in events_of(sub.take())] == ["e1", "e2"]


def test_unknown_last_event_id_gets_the_gap_signal_then_the_live_tail() -> None:
    """An id the log cannot place: the gap event and the log's position, not the log; then
    what is published afterwards."""
    hub = Broadcaster(ReplayLog(), config=QUIET)
    for i in range(2):
        hub.publish(Event(data=f"e{i}"), now=0.0)
    sub = hub.subscribe("/events", [(b"last-event-id", b"elsewhere-9")], now=1.0)
    parser = Parser()
    gap, *rest = events_of(sub.take(), parser)
    assert gap.event == GAP_EVENT_TYPE
    assert json.loads(gap.data) == {"last_event_id": "elsewhere-9", "reason": "unknown"}
    assert rest == [position(hub.replay_log.position)]
    assert parser.last_event_id == hub.replay_log.position
    hub.publish(Event(data="e2"), now=2.0)
    assert [e.data for e in events_of(sub.take(), parser)] == ["e2"]


def test_unknown_last_event_id_gets_the_log_when_asked() -> None:
    """With is_unknown_id_replayed, an unplaceable id gets the gap event and the whole log."""
    config = ServerConfig(heartbeat_interval=None, is_unknown_id_replayed=True)
    hub = Broadcaster(ReplayLog(), config=config)
    for i in range(2):
        hub.publish(Event(data=f"e{i}"), now=0.0)
    sub = hub.subscribe("/events", [(b"last-event-id", b"elsewhere-9")], now=1.0)
    gap, *rest = events_of(sub.take())
    assert json.loads(gap.data)["reason"] == "unknown"
    assert [e.data for e in rest] == ["e0", "e1"]


def test_too_old_last_event_id_gets_the_gap_signal() -> None:
    """An id evicted from the log: the gap event says too_old, then the kept events."""
    hub = Broadcaster(ReplayLog(ReplayConfig(max_events=2)), config=QUIET)
    ids = [hub.publish(Event(data=f"e{i}"), now=0.0).id for i in range(5)]
    sub = hub.subscribe("/events", [("Last-Event-ID", ids[0])], now=1.0)
    parser = Parser()
    gap, *rest = events_of(sub.take(), parser)
    assert json.loads(gap.data)["reason"] == "too_old"
    assert [e.data for e in rest] == ["e3", "e4"]  # the newest: no position block needed
    assert parser.last_event_id == ids[-1]


def test_a_long_replay_may_exceed_the_queue_bound() -> None:
    """The head and replay are accepted whole even past max_queued_bytes; the bound applies to
    what is published afterwards."""
    hub = Broadcaster(ReplayLog(), config=QUIET, max_queued_bytes=10)
    first = hub.publish(Event(data="x" * 50), now=0.0)
    hub.publish(Event(data="y" * 50), now=0.0)
    sub = hub.subscribe("/events", [("Last-Event-ID", first.id)], now=1.0)
    assert not sub.is_dropped and sub.queued_bytes == 0
    assert [e.data for e in events_of(sub.take())] == ["y" * 50]


def test_gzip_is_negotiated_per_subscriber() -> None:
    """A subscriber whose client accepts gzip gets a gzip body that decodes to the events; one
    that does not gets the shared encoded bytes as they are."""
    hub = Broadcaster(ReplayLog(), config=QUIET)
    zipped = hub.subscribe("/events", [("Accept-Encoding", "gzip, br")], now=0.0)
    plain = hub.subscribe("/events", [], now=0.0)
    head, *start = zipped.take()
    assert isinstance(head, SendHead) and ("Content-Encoding", "gzip") in head.headers
    inflater = zlib.decompressobj(wbits=31)
    assert inflater.decompress(body_of(start)) == serialize(position("start"))
    plain.take()
    stored = hub.publish(Event(data="hello"), now=1.0)
    assert plain.take() == [Send(data=stored.encoded)]
    # Flushed per write: the event decodes at once, before the stream ends.
    assert inflater.decompress(body_of(zipped.take())) == stored.encoded


# --- publish and slow clients ------------------------------------------------------------------


def test_publish_queues_the_same_bytes_for_every_subscriber() -> None:
    """Each event is encoded once; every subscriber's queue holds those bytes, in order."""
    hub = Broadcaster(ReplayLog(), config=QUIET)
    subs = [hub.subscribe("/events", [], now=0.0) for _ in range(3)]
    for sub in subs:
        sub.take()
    stored = [hub.publish(Event(data=f"e{i}"), now=1.0) for i in range(3)]
    expected_bytes = sum(len(s.encoded) for s in stored)
    for sub in subs:
        assert sub.queued_bytes == expected_bytes
        actions = sub.take()
        assert actions == [Send(data=b"".join(s.encoded for s in stored))]  # one write
        assert sub.queued_bytes == 0


def test_take_bytes_hands_every_subscriber_the_same_bytes_objects() -> None:
    """The hot path: take_bytes() gives each subscriber the very bytes objects publish()
    queued (an adapter can frame them once for all), counted in bytes_sent as take() counts
    them, and empties the queue."""
    hub = Broadcaster(ReplayLog(), config=QUIET)
    subs = [hub.subscribe("/events", [], now=0.0) for _ in range(3)]
    for sub in subs:
        sub.take()
    sent_before = [sub.session.bytes_sent for sub in subs]
    stored = [hub.publish(Event(data=f"e{i}"), now=1.0) for i in range(2)]
    for sub, before in zip(subs, sent_before, strict=True):
        pieces = sub.take_bytes(now=1.0)
        assert pieces is not None
        assert len(pieces) == 2 and all(p is s.encoded for p, s in zip(pieces, stored, strict=True))
        assert sub.queued_bytes == 0 and not sub.has_pending
        assert sub.session.bytes_sent == before + sum(len(s.encoded) for s in stored)
        assert sub.take_bytes(now=1.0) is None  # nothing queued
    assert hub.metrics.bytes_sent == sum(sub.session.bytes_sent for sub in subs)


def test_take_bytes_leaves_everything_but_stream_bytes_to_take() -> None:
    """take_bytes() is None, and the queue untouched, while the head and first bytes wait,
    during a replay, and once the end (a close or a drop) is queued: take() carries those
    out."""
    hub = Broadcaster(ReplayLog(), config=QUIET, max_queued_bytes=60)
    sub = hub.subscribe("/events", [], now=0.0)
    hub.publish(Event(data="a"), now=0.0)
    assert sub.take_bytes(now=0.0) is None and sub.has_pending  # the head comes first
    assert isinstance(sub.take()[0], SendHead)
    hub.publish(Event(data="x" * 80), now=1.0)  # past the bound: dropped
    assert sub.is_dropped and sub.take_bytes(now=1.0) is None
    assert isinstance(sub.take()[-1], Disconnect)
    other = hub.subscribe("/events", [], now=1.0)
    other.take()
    hub.publish(Event(data="b"), now=1.0)
    hub.close(now=2.0)
    assert other.take_bytes(now=2.0) is None
    actions = other.take()
    assert events_of(actions)[0].data == "b" and isinstance(actions[-1], Disconnect)
    replaying = filled_hub().subscribe("/events", [("Last-Event-ID", "0")], now=1.0)
    replaying.take(now=1.0)
    assert replaying.is_replay_step_next and replaying.take_bytes(now=1.0) is None


def test_take_bytes_compresses_for_a_gzip_subscriber() -> None:
    """A gzip subscriber's take_bytes() is its own compressor's output (one piece), which
    decodes to the published bytes; the plain subscriber next to it still shares them."""
    hub = Broadcaster(ReplayLog(), config=QUIET)
    zipped = hub.subscribe("/events", [("Accept-Encoding", "gzip")], now=0.0)
    plain = hub.subscribe("/events", [], now=0.0)
    inflater = zlib.decompressobj(wbits=31)
    inflater.decompress(body_of(zipped.take()))
    plain.take()
    stored = [hub.publish(Event(data=f"z{i}"), now=1.0) for i in range(2)]
    before = zipped.session.bytes_sent
    (piece,) = zipped.take_bytes(now=1.0) or [b""]
    assert inflater.decompress(piece) == stored[0].encoded + stored[1].encoded
    assert zipped.session.bytes_sent == before + len(piece)
    shared = plain.take_bytes(now=1.0) or []
    assert [p is s.encoded for p, s in zip(shared, stored, strict=True)] == [True, True]


def test_take_bytes_of_a_poll_is_none() -> None:
    """A poll's answer is actions: take_bytes() is always None, and take() gives them."""
    hub = Broadcaster(ReplayLog(), config=QUIET)
    poller = hub.hold("/poll", [], now=0.0)
    hub.publish(Event(data="p"), now=1.0)
    assert poller.take_bytes(now=1.0) is None and poller.has_pending
    assert isinstance(poller.take()[-1], Disconnect)


def test_publish_returns_the_stored_event_with_its_assigned_id() -> None:
    """publish() hands back the log's record (assigned id, encoded bytes)."""
    hub = Broadcaster(ReplayLog(ReplayConfig(epoch="run")))
    stored = hub.publish(Event(data="a"), now=0.0)
    assert stored.id == "run-0" and stored.encoded == b"id: run-0\ndata: a\n\n"


def test_slow_subscriber_is_dropped_and_fast_one_keeps_everything() -> None:
    """A subscriber whose queue would pass max_queued_bytes loses its queue and ends with a
    Disconnect; the others are untouched and the hub counts the drop."""
    hub = Broadcaster(ReplayLog(), config=QUIET, max_queued_bytes=100)
    fast = hub.subscribe("/events", [], now=0.0)
    slow = hub.subscribe("/events", [], now=0.0)
    fast.take()
    slow.take()
    received: list[Event] = []
    for n in range(10):
        hub.publish(Event(data=f"{n:020d}"), now=1.0)
        received += events_of(fast.take())
        assert slow.queued_bytes <= 100
    assert [e.data for e in received] == [f"{n:020d}" for n in range(10)]
    assert slow.is_dropped and slow.is_closed and not fast.is_dropped
    assert hub.dropped == 1
    actions = slow.take()
    assert isinstance(actions[-1], Disconnect) and "max_queued_bytes=100" in actions[-1].reason
    assert not any(isinstance(a, Send) for a in actions)  # the backlog was given up
    hub.publish(Event(data="later"), now=2.0)
    assert slow.take() == [] and hub.dropped == 1  # a dropped subscriber gets nothing more


def test_subscriber_dropped_before_its_first_take_still_learns_its_position() -> None:
    """Regression: a client dropped before the adapter took anything keeps its head and the
    log's position, so it resumes from there and misses nothing (it used to get the head
    alone, reconnect without an id and silently skip what was published meanwhile)."""
    hub = Broadcaster(ReplayLog(), config=QUIET, max_queued_bytes=30)
    hub.publish(Event(data="old"), now=0.0)
    sub = hub.subscribe("/events", [], now=1.0)
    missed = [hub.publish(Event(data=f"new{i}" * 3), now=2.0).id for i in range(3)]
    assert sub.is_dropped
    parser = Parser()
    actions = sub.take()
    assert isinstance(actions[0], SendHead) and isinstance(actions[-1], Disconnect)
    assert events_of(actions, parser) == [position("0")]
    again = hub.subscribe("/events", [("Last-Event-ID", parser.last_event_id)], now=3.0)
    assert [e.id for e in events_of(again.take())] == missed


def test_unsubscribe_forgets_and_ignores_strangers() -> None:
    """unsubscribe() removes the subscriber from publishing; an unknown one is ignored."""
    hub = Broadcaster(ReplayLog(), config=QUIET)
    a = hub.subscribe("/events", [], now=0.0)
    b = hub.subscribe("/events", [], now=0.0)
    assert len(hub) == 2 and list(hub) == [a, b]
    hub.unsubscribe(a)
    hub.unsubscribe(a)
    other = Broadcaster(ReplayLog()).subscribe("/events", [], now=0.0)
    hub.unsubscribe(other)
    assert len(hub) == 1 and list(hub) == [b]
    a.take()
    hub.publish(Event(data="x"), now=1.0)
    assert a.take() == []


def test_iteration_is_a_snapshot() -> None:
    """Iterating the hub while unsubscribing is safe (the adapter's cleanup loop)."""
    hub = Broadcaster(ReplayLog())
    for _ in range(3):
        hub.subscribe("/events", [], now=0.0)
    for sub in hub:
        hub.unsubscribe(sub)
    assert len(hub) == 0


def test_max_subscribers() -> None:
    """At max_subscribers the hub is full and subscribe() refuses; unsubscribing frees a slot."""
    hub = Broadcaster(ReplayLog(), max_subscribers=2)
    first = hub.subscribe("/events", [], now=0.0)
    hub.subscribe("/events", [], now=0.0)
    assert hub.is_full
    with pytest.raises(LocalProtocolError, match="max_subscribers=2"):
        hub.subscribe("/events", [], now=0.0)
    hub.unsubscribe(first)
    assert not hub.is_full
    hub.subscribe("/events", [], now=0.0)
    assert Broadcaster(ReplayLog()).is_full is False


# --- heartbeats --------------------------------------------------------------------------------


def test_heartbeat_is_queued_at_the_deadline() -> None:
    """poll() queues a heartbeat comment once the stream was silent for heartbeat_interval,
    not before; publishing moves the deadline."""
    hub = Broadcaster(ReplayLog(), config=ServerConfig(heartbeat_interval=5.0))
    sub = hub.subscribe("/events", [], now=0.0)
    sub.take()
    assert sub.next_deadline() == 5.0
    assert sub.poll(4.9) is False and not sub.has_pending
    hub.publish(Event(data="a"), now=3.0)
    sub.take()
    assert sub.next_deadline() == 8.0
    assert sub.poll(8.0) is True
    assert sub.take() == [Send(data=HEARTBEAT)]
    assert sub.next_deadline() == 13.0


def test_no_heartbeats_when_disabled() -> None:
    """heartbeat_interval=None: no deadline, poll() never queues."""
    hub = Broadcaster(ReplayLog(), config=QUIET)
    sub = hub.subscribe("/events", [], now=0.0)
    assert sub.next_deadline() is None and sub.poll(1e9) is False


def test_heartbeat_that_overflows_the_queue_drops_and_is_counted() -> None:
    """Regression: a heartbeat that would pass the bound drops the subscriber like a publish
    does, and the hub counts that drop too (it used to count publish drops only)."""
    hub = Broadcaster(ReplayLog(), config=ServerConfig(heartbeat_interval=1.0),
                      max_queued_bytes=2)
    sub = hub.subscribe("/events", [], now=0.0)
    sub.take()
    assert sub.poll(1.0) is True  # three bytes of heartbeat do not fit in two
    assert sub.is_dropped and hub.dropped == 1
    assert isinstance(sub.take()[-1], Disconnect)
    assert sub.next_deadline() is None and sub.poll(100.0) is False


def test_no_heartbeat_while_bytes_wait() -> None:
    """Bytes waiting in the queue keep the stream alive: no heartbeat is added behind them,
    and the next deadline moves on (no busy wake-ups for a client that does not read)."""
    hub = Broadcaster(ReplayLog(), config=ServerConfig(heartbeat_interval=1.0))
    sub = hub.subscribe("/events", [], now=0.0)
    sub.take()
    stored = hub.publish(Event(data="abc"), now=0.5)
    assert sub.poll(1.5) is False and sub.queued_bytes == len(stored.encoded)
    assert sub.next_deadline() == 2.5
    assert events_of(sub.take()) == [stored.event]


# --- close -------------------------------------------------------------------------------------


def test_close_ends_every_stream() -> None:
    """close() queues the end of every stream, the gzip trailer first when compressing;
    closing again adds nothing."""
    hub = Broadcaster(ReplayLog(), config=QUIET)
    plain = hub.subscribe("/events", [], now=0.0)
    zipped = hub.subscribe("/events", [("Accept-Encoding", "gzip")], now=0.0)
    plain.take()
    zipped_body = body_of(zipped.take())
    hub.close(now=2.0)
    assert [type(a) for a in plain.take()] == [Disconnect]
    trailer, end = zipped.take()
    assert isinstance(trailer, Send) and isinstance(end, Disconnect)
    assert zlib.decompress(zipped_body + trailer.data, wbits=31) == serialize(position("start"))
    assert plain.is_closed and not plain.is_dropped
    hub.close(now=3.0)
    assert not plain.has_pending and not zipped.has_pending


def test_close_leaves_dropped_subscribers_alone() -> None:
    """A dropped subscriber already ends with its Disconnect; close() adds no second one."""
    hub = Broadcaster(ReplayLog(), config=QUIET, max_queued_bytes=10)
    slow = hub.subscribe("/events", [], now=0.0)
    hub.publish(Event(data="x" * 20), now=1.0)
    hub.close(now=2.0)
    actions = slow.take()
    assert [type(a) for a in actions].count(Disconnect) == 1
    assert isinstance(actions[-1], Disconnect) and "send queue full" in actions[-1].reason


def test_publish_after_close_skips_the_closed_streams() -> None:
    """Regression: publishing after close() (before the adapter unsubscribed the ended
    streams) still logs the event and leaves the closed streams alone; it used to raise
    LocalProtocolError from the closed sessions."""
    hub = Broadcaster(ReplayLog(), config=QUIET)
    sub = hub.subscribe("/events", [], now=0.0)
    hub.close(now=1.0)
    sub.take()
    stored = hub.publish(Event(data="after"), now=2.0)
    assert sub.take() == [] and hub.replay_log.events()[-1] is stored
    fresh = hub.subscribe("/events", [], now=3.0)  # the hub still serves new clients
    hub.publish(Event(data="more"), now=4.0)
    assert [e.data for e in events_of(fresh.take())] == ["", "more"]  # position, event


# --- replay budget -----------------------------------------------------------------------------


def filled_hub(n: int = 40, **kwargs: Any) -> Broadcaster:
    config = ServerConfig(heartbeat_interval=None, replay_chunk_size=200)
    hub = Broadcaster(ReplayLog(ReplayConfig(max_bytes=None)), config=config, **kwargs)
    for i in range(n):
        hub.publish(Event(data=f"{i:03d}" + "x" * 40), now=0.0)
    return hub


def test_a_replaying_subscriber_pins_one_step_and_takes_live_events_through_the_log() -> None:
    """A long replay is read from the log one step per take(): a subscriber that is not
    drained holds no copy of the log and queues nothing from publish (the replay reaches
    those events), and a drained one gets everything once, in order."""
    hub = filled_hub()
    sub = hub.subscribe("/events", [("Last-Event-ID", hub.replay_log.events()[0].id)], now=1.0)
    assert sub.is_replaying and hub.replays == 1
    for i in range(40, 45):
        hub.publish(Event(data=f"{i:03d}"), now=1.0)
    assert sub.queued_bytes == 0
    parser = Parser()
    assert not sub.is_replay_step_next  # the head and first step are queued
    datas = [e.data[:3] for e in events_of(sub.take(now=1.0), parser)]
    assert sub.is_replay_step_next  # the next take() reads the log
    while sub.has_pending:
        step = sub.take(now=1.0)
        assert len(body_of(step)) <= 200
        datas += [e.data[:3] for e in events_of(step, parser)]
    assert datas == [f"{i:03d}" for i in range(1, 45)]
    assert not sub.is_replaying and hub.replays == 0
    stored = hub.publish(Event(data="live"), now=2.0)
    assert sub.queued_bytes == len(stored.encoded)


def test_past_max_replays_a_client_is_asked_to_come_back_later() -> None:
    """Beyond max_replays long replays under way, a resuming client gets the busy retry and
    the end of its stream, with its id unchanged; once a slot is free it is served."""
    hub = filled_hub(max_replays=1)
    first_id = hub.replay_log.events()[0].id
    hub.subscribe("/events", [("Last-Event-ID", first_id)], now=1.0)
    busy = hub.subscribe("/events", [("Last-Event-ID", first_id)], now=1.0)
    actions = busy.take()
    assert isinstance(actions[-1], Disconnect) and busy.is_closed and hub.put_off == 1
    parser = Parser(last_event_id=first_id)
    assert parser.feed(body_of(actions)) == [Retry(milliseconds=5000)]
    assert parser.last_event_id == first_id
    short = hub.subscribe("/events", [("Last-Event-ID", hub.replay_log.events()[-2].id)], 1.0)
    assert [e.data[:3] for e in events_of(short.take())] == ["039"]  # one step: no slot needed
    for sub in list(hub):
        hub.unsubscribe(sub)
    assert hub.replays == 0
    again = hub.subscribe("/events", [("Last-Event-ID", first_id)], now=2.0)
    assert again.is_replaying and hub.replays == 1


def test_a_replay_not_taken_in_time_is_dropped() -> None:
    """A long replay the client does not take within max_replay_time is dropped: the head
    and first step stay queued, the stream ends, its slot is freed."""
    hub = filled_hub(max_replay_time=10.0)
    sub = hub.subscribe("/events", [("Last-Event-ID", hub.replay_log.events()[0].id)], now=1.0)
    assert sub.next_deadline() == 11.0
    assert sub.poll(5.0) is False and sub.is_replaying
    assert sub.poll(11.0) is True
    assert sub.is_dropped and hub.dropped == 1 and hub.replays == 0
    actions = sub.take()
    assert isinstance(actions[0], SendHead) and isinstance(actions[-1], Disconnect)
    assert not sub.has_pending and sub.next_deadline() is None


def test_max_subscribers_per_key() -> None:
    """Subscribers are counted per key; past the limit that key is refused, others are not,
    and an unsubscribe frees its place."""
    hub = Broadcaster(ReplayLog(), config=QUIET, max_subscribers_per_key=2)
    first = hub.subscribe("/events", [], now=0.0, key="10.0.0.1")
    hub.subscribe("/events", [], now=0.0, key="10.0.0.1")
    assert hub.is_full_for("10.0.0.1") and not hub.is_full_for("10.0.0.2")
    assert not hub.is_full_for(None)
    with pytest.raises(LocalProtocolError, match="per_key"):
        hub.subscribe("/events", [], now=0.0, key="10.0.0.1")
    hub.subscribe("/events", [], now=0.0, key="10.0.0.2")
    hub.subscribe("/events", [], now=0.0)  # no key: not counted
    hub.unsubscribe(first)
    hub.unsubscribe(first)  # twice: ignored
    assert not hub.is_full_for("10.0.0.1") and len(hub) == 3


@pytest.mark.parametrize(
    "kwargs",
    [{"max_subscribers_per_key": 0}, {"max_replays": -1}, {"max_replays": 1.0},
     {"max_replay_time": 0}, {"max_replay_time": math.inf}, {"max_replay_time": True}],
)
def test_budget_arguments_are_checked(kwargs: dict[str, Any]) -> None:
    """The budget arguments refuse values of the wrong type or range."""
    with pytest.raises(InvalidConfigError):
        Broadcaster(ReplayLog(), **kwargs)


@settings(max_examples=300, deadline=None)
@given(
    ops=st.lists(st.sampled_from(["publish", "take", "take", "big"]), max_size=60),
    start=st.integers(min_value=0, max_value=19),
    max_events=st.integers(min_value=3, max_value=30),
    chunk=st.integers(min_value=1, max_value=300),
    is_gzip=st.booleans(),
)
def test_lazy_replay_delivers_once_in_order_or_reports_the_gap(
    ops: list[str], start: int, max_events: int, chunk: int, is_gzip: bool
) -> None:
    """Any interleaving of publishes and takes during a replay in steps, with a log that
    evicts under it: the client gets every event once and in order, except inside a reported
    gap, and ends knowing the newest id."""
    config = ServerConfig(heartbeat_interval=None, replay_chunk_size=chunk)
    log = ReplayLog(ReplayConfig(max_events=max_events, max_bytes=2000))
    hub = Broadcaster(log, config=config, max_queued_bytes=1 << 20)
    published = [hub.publish(Event(data=f"{i}"), now=0.0).id for i in range(20)]
    resume_id = published[start]
    headers = [("Last-Event-ID", resume_id)] + ([("Accept-Encoding", "gzip")] if is_gzip else [])
    sub = hub.subscribe("/events", headers, now=1.0)
    inflater = zlib.decompressobj(wbits=31) if is_gzip else None
    parser = Parser(last_event_id=resume_id)
    received: list[str] = []

    def drain(actions: list[Action]) -> None:
        data = body_of(actions)
        if inflater is not None:
            data = inflater.decompress(data)
        for item in parser.feed(data):
            if isinstance(item, Event) and item.event != POSITION_EVENT_TYPE:
                received.append("gap" if item.event == GAP_EVENT_TYPE else str(item.id))

    for n, op in enumerate(ops):
        if op == "take":
            drain(sub.take(now=2.0))
        else:
            size = 1500 if op == "big" else 1  # a big one evicts several at once
            published.append(hub.publish(Event(data=str(n) * size), now=2.0).id)
    while sub.has_pending:
        drain(sub.take(now=3.0))
    # Once and in order: the ids received are a subsequence of the ids published after the
    # resume point, and every hole in it is announced by a gap signal.
    owed = published[start + 1 :]
    position = 0
    is_gap_announced = False
    for item in received:
        if item == "gap":
            is_gap_announced = True
            continue
        index = owed.index(item, position)
        assert index == position or is_gap_announced, f"{owed[position:index]} lost silently"
        position, is_gap_announced = index + 1, False
    assert position == len(owed) or is_gap_announced or received[-1:] == ["gap"]
    assert parser.last_event_id == log.position


# --- the model -----------------------------------------------------------------------------------

MAX_EVENTS = 4  # small, so that resuming from old ids meets the gap signal
Item = tuple[str, str]  # (id, data) of an event, ("gap", reason) or ("position", id)


class Connection:
    """One client connection as the model sees it."""

    def __init__(self, sub: Subscriber, expected: list[Item], position: str, sent_id: str,
                 is_gzip: bool) -> None:
        self.sub = sub
        self.expected = expected  # replay part, then live events appended by publish
        self.replay_len = len(expected)
        self.position = position  # the log's position at subscribe time
        self.parser = Parser(last_event_id=sent_id)
        self.inflater = zlib.decompressobj(wbits=31) if is_gzip else None
        self.received: list[Item] = []
        self.heartbeats = 0
        self.live_received = 0
        self.ended = False  # a Disconnect was taken
        self.is_counted_dropped = False

    def feed(self, actions: list[Action]) -> None:
        assert not (self.ended and actions), "actions after a Disconnect"
        for index, action in enumerate(actions):
            if isinstance(action, Disconnect):
                assert index == len(actions) - 1, "Disconnect is the last action"
                self.ended = True
            elif isinstance(action, Send):
                data = action.data
                if self.inflater is not None:
                    data = self.inflater.decompress(data)
                for item in self.parser.feed(data):
                    if isinstance(item, Comment):
                        self.heartbeats += 1
                    elif isinstance(item, Event):
                        if item.event == GAP_EVENT_TYPE:
                            self.received.append(("gap", json.loads(item.data)["reason"]))
                        elif item.event == POSITION_EVENT_TYPE:
                            assert item.id is not None and item.data == ""
                            self.received.append(("position", item.id))
                        else:
                            assert item.id is not None
                            self.received.append((item.id, item.data))
            else:
                assert isinstance(action, SendHead) and index == 0


class BroadcastMachine(RuleBasedStateMachine):
    """Random subscribe / publish / take / unsubscribe / heartbeat / close sequences against
    a model: bounded queues, exactly-once in-order delivery, drops counted and resumable."""

    connections = Bundle("connections")

    @initialize(
        max_queued_bytes=st.integers(min_value=20, max_value=200),
        max_subscribers=st.one_of(st.none(), st.integers(min_value=1, max_value=4)),
    )
    def setup(self, max_queued_bytes: int, max_subscribers: int | None) -> None:
        self.max_queued_bytes = max_queued_bytes
        self.hub = Broadcaster(
            ReplayLog(ReplayConfig(max_events=MAX_EVENTS, max_bytes=None)),
            config=ServerConfig(heartbeat_interval=1.0),
            max_queued_bytes=max_queued_bytes,
            max_subscribers=max_subscribers,
        )
        self.now = 0.0
        self.published: list[Item] = []
        self.live: list[Connection] = []
        self.drops = 0

    def _position(self) -> str:
        return self.published[-1][0] if self.published else "start"

    def _expected_replay(self, resume_from: int | None) -> tuple[str, list[Item]]:
        where = ("position", self._position())
        if resume_from is None:  # a new client: nothing to replay, where the log stands
            return "", [where]
        if resume_from == -2:  # an id no log of ours ever issued: the gap, then live only
            return "forged", [("gap", "unknown"), where]
        sent = self.published[resume_from][0] if resume_from >= 0 else "start"
        first_kept = max(0, len(self.published) - MAX_EVENTS)
        if resume_from + 1 >= first_kept:
            return sent, self.published[resume_from + 1 :]
        # The kept events end at the newest one: no position block needed after them.
        return sent, [("gap", "too_old"), *self.published[first_kept:]]

    @rule(
        target=connections,
        resume=st.one_of(st.none(), st.integers(min_value=-2, max_value=30)),
        is_gzip=st.booleans(),
    )
    def subscribe(self, resume: int | None, is_gzip: bool) -> Any:
        if resume is not None and resume >= len(self.published):
            resume = None
        sent_id, replay = self._expected_replay(resume)
        headers = [("Accept-Encoding", "gzip")] if is_gzip else []
        if sent_id:
            headers.append(("Last-Event-ID", sent_id))
        if self.hub.is_full:
            with pytest.raises(LocalProtocolError):
                self.hub.subscribe("/events", headers, self.now)
            return multiple()
        sub = self.hub.subscribe("/events", headers, self.now)
        connection = Connection(sub, replay, self._position(), sent_id, is_gzip)
        self.live.append(connection)
        return connection

    @rule(data=st.text(alphabet="ab \n", max_size=40))
    def publish(self, data: str) -> None:
        before = {id(c): c.sub.queued_bytes for c in self.live}
        stored = self.hub.publish(Event(data=data), self.now)
        self.published.append((stored.id, data))
        for connection in self.live:
            sub = connection.sub
            if sub.is_closed and not connection.is_counted_dropped and sub.is_dropped:
                connection.is_counted_dropped = True
                self.drops += 1
                if connection.inflater is None:  # exact size known: the drop was due
                    assert before[id(connection)] + len(stored.encoded) > self.max_queued_bytes
            elif not sub.is_closed:
                connection.expected.append((stored.id, data))
                if connection.inflater is None:
                    assert sub.queued_bytes == before[id(connection)] + len(stored.encoded)

    @rule(
        datas=st.lists(st.text(alphabet="ab \n", max_size=30), min_size=1, max_size=3),
        picks=st.lists(st.booleans(), max_size=8),
    )
    def fan_out(self, datas: list[str], picks: list[bool]) -> None:
        """The adapters' hot path: ready subscribers that keep up are handed the shared
        bytes (the adapter writes them), the others are queued as by publish()."""
        ready = {c.sub for c, pick in zip(self.live, picks, strict=False) if pick}
        before = {id(c): (c.sub.queued_bytes, c.sub.has_pending) for c in self.live}
        sent_before = {id(c): c.sub.session.bytes_sent for c in self.live}
        fanout = self.hub.fan_out([Event(data=d) for d in datas], self.now, ready)
        assert len(fanout.stored) == len(datas)
        assert fanout.data == b"".join(stored.encoded for stored in fanout.stored)
        items = [(stored.id, d) for stored, d in zip(fanout.stored, datas, strict=True)]
        self.published += items
        sent = {id(sub) for sub in fanout.sent}
        order = [c.sub for c in self.live if id(c.sub) in sent]
        assert list(fanout.sent) == order, "in the order they subscribed"
        for connection in self.live:
            sub = connection.sub
            queued, had_pending = before[id(connection)]
            if id(sub) in sent:
                assert sub in ready and connection.inflater is None and not had_pending
                assert sub.session.bytes_sent == sent_before[id(connection)] + len(fanout.data)
                connection.expected += items
                connection.feed([Send(data=fanout.data)])  # what the adapter writes
                continue
            if sub.is_closed and not connection.is_counted_dropped and sub.is_dropped:
                connection.is_counted_dropped = True
                self.drops += 1
            elif not sub.is_closed:
                connection.expected += items
                if connection.inflater is None:
                    assert sub.queued_bytes == queued + len(fanout.data)
            if sub in ready and sub.has_pending:
                assert sub in fanout.queued, "a ready subscriber with bytes to take is named"
        assert set(fanout.queued) <= ready

    @rule(connection=connections)
    def take(self, connection: Connection) -> None:
        connection.feed(connection.sub.take())

    @rule(connection=connections)
    def take_bytes(self, connection: Connection) -> None:
        """The hot path where it applies, take() where it does not: the same stream."""
        sub = connection.sub
        queued = sub.queued_bytes
        pieces = sub.take_bytes(self.now)
        if pieces is None:
            connection.feed(sub.take())
            return
        if connection.inflater is None:
            assert sum(len(piece) for piece in pieces) == queued
        assert not sub.has_pending or sub.is_replaying
        connection.feed([Send(data=piece) for piece in pieces])

    @rule()
    def take_everyone(self) -> None:
        for connection in self.live:
            connection.feed(connection.sub.take())

    @rule(connection=consumes(connections))
    def unsubscribe(self, connection: Connection) -> None:
        connection.feed(connection.sub.take())
        self.check_connection(connection)
        self.hub.unsubscribe(connection.sub)
        self.live.remove(connection)

    @rule(delay=st.sampled_from([0.25, 0.5, 1.0, 3.0]))
    def heartbeat_poll(self, delay: float) -> None:
        self.now += delay
        for connection in self.live:
            sub = connection.sub
            deadline = sub.next_deadline()
            was_dropped = sub.is_dropped
            # Due, and nothing waiting that keeps the stream alive already.
            should_queue = deadline is not None and deadline <= self.now
            should_queue = should_queue and sub.queued_bytes == 0
            assert sub.poll(self.now) is should_queue
            if sub.is_dropped and not was_dropped:
                connection.is_counted_dropped = True
                self.drops += 1
            if deadline is not None and deadline <= self.now and not sub.is_dropped:
                assert sub.next_deadline() == self.now + 1.0

    @precondition(lambda self: self.live)
    @rule()
    def close(self) -> None:
        self.hub.close(self.now)
        for connection in self.live:
            assert connection.sub.is_closed

    def check_connection(self, connection: Connection) -> None:
        sub = connection.sub
        received, expected = connection.received, connection.expected
        assert received == expected[: len(received)], "not a prefix of what was owed"
        if sub.is_dropped:
            if connection.ended:
                # Even a dropped client got the head and the replay or position queued at
                # subscribe, and its last event ID is exactly where it stopped: resuming from
                # it misses nothing.
                assert len(received) >= connection.replay_len
                live = received[connection.replay_len :]
                where = live[-1][0] if live else connection.position
                assert connection.parser.last_event_id == where
        elif not sub.has_pending:
            assert received == expected, "a caught-up subscriber has everything, once"
            if sub.is_closed:
                assert connection.ended

    @invariant()
    def queues_are_bounded(self) -> None:
        for connection in self.live:
            assert connection.sub.queued_bytes <= self.max_queued_bytes

    @invariant()
    def deliveries_match_the_model(self) -> None:
        for connection in self.live:
            self.check_connection(connection)

    @invariant()
    def drops_are_counted(self) -> None:
        assert self.hub.dropped == self.drops
        assert len(self.hub) == len(self.live)


TestBroadcastMachine = BroadcastMachine.TestCase


# --- long polls held by the broadcaster ---------------------------------------------------


def _poll_broadcaster(**kwargs: Any) -> Broadcaster:
    log = ReplayLog(ReplayConfig(epoch="b"))
    return Broadcaster(log, config=ServerConfig(heartbeat_interval=None), **kwargs)


def _answer(actions: list[Action]) -> tuple[dict[str, str], bytes]:
    """The head fields and the body of a poll's answer (SendHead, Send, Disconnect)."""
    head, body, end = actions
    assert isinstance(head, SendHead) and isinstance(body, Send)
    assert isinstance(end, Disconnect)
    return {name.lower(): value for name, value in head.headers}, body.data


def test_polls_held_at_the_end_of_the_log_share_one_encoding_per_publish() -> None:
    """Every poll held at the log's end gets the very same bytes, encoded once per publish;
    the stream subscriber gets the same event with the same id."""
    hub = _poll_broadcaster()
    subscriber = hub.subscribe("/events", [], now=0.0)
    subscriber.take()
    pollers = [hub.hold("/poll?timeout=30", [], now=1.0) for _ in range(50)]
    assert hub.held_polls == 50 and not any(p.has_pending for p in pollers)
    for number in range(3):
        stored = hub.publish(Event(data=f"e{number}"), now=2.0 + number)
        bodies = [_answer(p.take())[1] for p in pollers]
        assert all(body is bodies[0] for body in bodies)  # the same object: shared
        answer = json.loads(bodies[0])
        assert [e["data"] for e in answer["events"]] == [f"e{number}"]
        assert answer["last_event_id"] == stored.id
        assert hub.answers_encoded == number + 1
        assert hub.held_polls == 0
        for poller in pollers:
            hub.unsubscribe(poller)
        pollers = [hub.hold(f"/poll?lastEventId={stored.id}", [], now=2.5 + number)
                   for _ in range(50)]
    assert hub.polls == 50
    streamed = Parser().feed(b"".join(a.data for a in subscriber.take() if isinstance(a, Send)))
    assert [(e.id, e.data) for e in streamed] == [("b-0", "e0"), ("b-1", "e1"), ("b-2", "e2")]


def test_a_poll_behind_is_answered_at_once_from_the_log() -> None:
    """A poll with an older id gets what it missed at once, without waiting for a publish;
    gzip is used when asked and the stream's config allows it."""
    hub = _poll_broadcaster()
    first = hub.publish(Event(data="a"), now=0.0)
    hub.publish(Event(data="b"), now=0.0)
    plain = hub.hold(f"/poll?lastEventId={first.id}", [], now=1.0)
    zipped = hub.hold(f"/poll?lastEventId={first.id}", [("Accept-Encoding", "gzip")], now=1.0)
    plain_head, plain_body = _answer(plain.take())
    zipped_head, zipped_body = _answer(zipped.take())
    assert "content-encoding" not in plain_head
    assert zipped_head["content-encoding"] == "gzip"
    assert zipped_head["content-length"] == str(len(zipped_body))
    assert zlib.decompress(zipped_body, 31) == plain_body
    assert [e["data"] for e in json.loads(plain_body)["events"]] == ["b"]
    assert hub.answers_encoded == 2  # one per content coding


def test_gzip_follows_the_stream_config() -> None:
    """With compression off in the ServerConfig, polls are never gzipped."""
    hub = Broadcaster(
        ReplayLog(), config=ServerConfig(heartbeat_interval=None, is_compression_enabled=False)
    )
    hub.publish(Event(data="a"), now=0.0)
    poll = hub.hold("/poll?lastEventId=start", [("Accept-Encoding", "gzip")], now=0.0)
    head, _ = _answer(poll.take())
    assert "content-encoding" not in head


def test_a_held_poll_is_answered_empty_at_its_deadline() -> None:
    """max_hold bounds the hold: at the deadline, poll() queues the empty answer."""
    from sse_core import LongPollConfig

    hub = _poll_broadcaster(long_poll=LongPollConfig(max_hold=5.0))
    poller = hub.hold("/poll?timeout=60", [], now=10.0)
    assert poller.next_deadline() == 15.0
    assert not poller.poll(14.9)
    assert poller.poll(15.0)
    _, body = _answer(poller.take())
    assert json.loads(body)["events"] == []
    assert poller.next_deadline() is None and poller.is_closed


def test_max_held_polls_is_enforced_and_freed_on_unsubscribe() -> None:
    """Past max_held_polls, hold() refuses; a poll that goes away frees its slot; streams
    are not counted."""
    hub = _poll_broadcaster(max_held_polls=2, max_subscribers=1)
    first = hub.hold("/poll", [], now=0.0)
    hub.hold("/poll", [], now=0.0)
    assert hub.is_poll_full and not hub.is_full
    with pytest.raises(LocalProtocolError, match="max_held_polls=2"):
        hub.hold("/poll", [], now=0.0)
    hub.unsubscribe(first)
    hub.hold("/poll", [], now=0.0)
    hub.subscribe("/events", [], now=0.0)
    assert len(hub) == 1 and hub.polls == 2


def test_close_answers_every_held_poll() -> None:
    """close() answers held polls at once (empty), as it ends every stream."""
    hub = _poll_broadcaster()
    poller = hub.hold("/poll", [], now=0.0)
    hub.close(now=1.0)
    _, body = _answer(poller.take())
    assert json.loads(body)["events"] == []


def test_gap_answers_are_not_shared() -> None:
    """An id the log cannot place gets its own gap answer, never a cached one."""
    hub = _poll_broadcaster()
    hub.publish(Event(data="a"), now=0.0)
    for _ in range(2):
        _, body = _answer(hub.hold("/poll?lastEventId=nope", [], now=1.0).take())
        assert json.loads(body)["gap"] == {"last_event_id": "nope", "reason": "unknown"}
    assert hub.answers_encoded == 2


def test_answer_cache_is_bounded() -> None:
    """The cache keeps at most max_entries answers, all for the current position."""
    from sse_core.state import AnswerCache

    cache = AnswerCache(max_entries=2)
    for cursor in "abc":
        assert cache._get("p", (cursor, False)) is None
        cache._put((cursor, False), (b"x", cursor, 0))
    assert len(cache) == 2 and cache._get("p", ("a", False)) is None
    assert cache._get("q", ("c", False)) is None and len(cache) == 0
    with pytest.raises(InvalidConfigError):
        AnswerCache(max_entries=0)
