"""The pure decisions of a stream-backed log (``sse_core/_stream_log.py``), without Redis.

The store is modelled here as Redis keeps it (rows ``<ms>-<n>`` evicted from the head, the
last id given) and its replies are built as redis-py hands them over (nested lists of bytes).
The verdicts are checked against the in-memory :class:`ReplayLog` on the same appends, and
for forged ids against the rule that matters: never a silent skip.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sse_core import Event, InvalidFieldError, LocalProtocolError, RemoteProtocolError, serialize
from sse_core._stream_log import (
    START,
    CreateLog,
    Follower,
    ReadRows,
    StreamId,
    StreamMirror,
    TailStep,
    WaitRows,
    appended,
    covers,
    entry_fields,
    log_id,
    oldest_of,
    parse_log_id,
    parse_stream_id,
    read_start,
    retention_args,
    stored_event,
    verdict,
)
from sse_core.state import Replay, ReplayConfig, ReplayLog, TooOld, UnknownId

EPOCH = "5eed"
numbers = st.integers(min_value=0, max_value=2**64 - 2)
texts = st.text(st.characters(blacklist_categories=["Cs"]), max_size=30)
event_types = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"), min_size=1,
    max_size=10,
)


class Store:
    """The store as the Redis scripts keep it: rows numbered from 1, evicted from the head."""

    def __init__(self, max_events: int) -> None:
        self.max_events = max_events
        self.rows: list[tuple[StreamId, str, str]] = []
        self.last = START

    def append(self, data: str, ms: int) -> StreamId:
        at = StreamId(max(ms, self.last.ms), self.last.n + 1)
        self.rows.append((at, "message", data))
        self.last = at
        del self.rows[: max(0, len(self.rows) - self.max_events)]
        return at

    def read(self, after: StreamId | None, count: int) -> list[Any]:
        """The READ script's reply: ``[epoch, last, rows]`` of at most ``count`` rows."""
        rows = [row for row in self.rows if after is None or row[0] > after][:count]
        return [
            EPOCH.encode(), str(self.last).encode(),
            [[str(at).encode(), [b"s", b"0", b"e", event.encode(), b"d", data.encode()]]
             for at, event, data in rows],
        ]


def assert_same_kind(ours: Any, theirs: Any, claimed: str) -> None:
    """Two answers to a resume from ``claimed`` are of one kind (with one number missed)."""
    assert type(ours) is type(theirs), (claimed, ours, theirs)
    if isinstance(ours, TooOld):
        assert isinstance(theirs, TooOld) and ours.missed == theirs.missed


@given(
    max_events=st.integers(min_value=1, max_value=6),
    appends=st.integers(min_value=0, max_value=12),
    count=st.integers(min_value=1, max_value=20),
)
def test_verdicts_match_the_in_memory_log(max_events: int, appends: int, count: int) -> None:
    """For every position a client can hold (the start, each id issued), the verdict from the
    store's rows is the in-memory log's answer on the same appends: the same kind, the same
    number missed, the same events (in steps of ``count``)."""
    store = Store(max_events)
    memory = ReplayLog(ReplayConfig(max_events=max_events, epoch=EPOCH))
    positions = [(log_id(EPOCH, START), memory.position)]
    for i in range(appends):
        at = store.append(f"e{i}", ms=1000 + i)
        positions.append((log_id(EPOCH, at), memory.append(Event(data=f"e{i}"), 1.0).id))
    for stream_id, memory_id in positions:
        start = read_start(stream_id)
        assert isinstance(start, StreamId)
        ours = verdict(stream_id, store.read(start, count + 1), None, count)
        theirs = memory.resume(memory_id, 1.0)
        assert_same_kind(ours, theirs, stream_id)
        if isinstance(ours, Replay):
            assert isinstance(theirs, Replay)
            data = [stored.event.data for stored in theirs.events]
            assert [stored.event.data for stored in ours.events] == data[:count]
            assert ours.is_complete == (len(data) <= count)
    oldest = oldest_of(store.read(None, count + 1), None, count)
    assert [s.event.data for s in oldest.events] == [
        s.event.data for s in memory.events()
    ][:count]


@given(
    appends=st.integers(min_value=1, max_value=10),
    max_events=st.integers(min_value=1, max_value=10),
    ms=st.integers(min_value=0, max_value=3000),
    n=st.integers(min_value=0, max_value=15),
)
def test_a_forged_id_never_skips_events_silently(
    appends: int, max_events: int, ms: int, n: int
) -> None:
    """Whatever ``<ms>-<n>`` a client claims, the answer is UnknownId, TooOld, or a Replay
    that starts right after event ``n`` -- never one that leaves out events it did not see."""
    store = Store(max_events)
    for i in range(appends):
        store.append(f"e{i}", ms=1000 + 100 * i)
    claimed = log_id(EPOCH, StreamId(ms, n))
    result = verdict(claimed, store.read(StreamId(ms, n), 100), None, 99)
    if isinstance(result, Replay):
        numbers = [parse_log_id(stored.id)[1].n for stored in result.events]  # type: ignore[index]
        assert numbers == list(range(n + 1, store.last.n + 1))


def test_verdicts_on_edges() -> None:
    """A log that does not exist, another epoch, an id beyond the last one, a last id with
    another ms, and an empty (all evicted) log are each answered as the contract says."""
    store = Store(3)
    ids = [log_id(EPOCH, store.append(f"e{i}", 1000 + i)) for i in range(5)]
    start = read_start(ids[0])
    assert isinstance(start, StreamId)
    assert verdict(ids[0], [], None, 10) == UnknownId(last_event_id=ids[0])
    other = "beef" + ids[3][len(EPOCH):]
    assert verdict(other, store.read(read_start(other), 11), None, 10) == UnknownId(  # type: ignore[arg-type]
        last_event_id=other
    )
    beyond = log_id(EPOCH, StreamId(1004, 9))
    assert verdict(beyond, store.read(StreamId(1004, 9), 11), None, 10) == UnknownId(
        last_event_id=beyond
    )
    skewed = log_id(EPOCH, StreamId(999, 5))  # the last number, another ms
    assert verdict(skewed, store.read(StreamId(999, 5), 11), None, 10) == UnknownId(
        last_event_id=skewed
    )
    store.rows.clear()  # everything aged out
    assert verdict(ids[4], store.read(StreamId(1004, 5), 11), None, 10) == Replay(events=())
    assert verdict(ids[1], store.read(StreamId(1001, 2), 11), None, 10) == TooOld(
        last_event_id=ids[1], missed=3
    )
    assert oldest_of([], None, 10) == Replay(events=())


def test_replay_steps_are_cut_by_bytes() -> None:
    """With ``max_bytes`` a Replay stops before passing it (one event at least) and says it
    is not complete."""
    store = Store(10)
    for i in range(4):
        store.append(f"e{i}", 1000)
    one = len(stored_event(EPOCH, StreamId(1000, 2), "message", "e1").encoded)
    result = verdict(log_id(EPOCH, START), store.read(START, 11), 2 * one, 10)
    assert isinstance(result, Replay) and len(result.events) == 2 and not result.is_complete
    result = verdict(log_id(EPOCH, START), store.read(START, 11), 1, 10)
    assert isinstance(result, Replay) and len(result.events) == 1 and not result.is_complete


@given(st.from_regex(r"[0-9a-f]{1,16}", fullmatch=True), numbers, numbers)
def test_ids_round_trip(epoch: str, ms: int, n: int) -> None:
    """``<epoch>-<ms>-<n>`` reads back as written, and stream ids order as (ms, n)."""
    at = StreamId(ms, n)
    assert parse_log_id(log_id(epoch, at)) == (epoch, at)
    assert parse_stream_id(str(at)) == at
    assert (at < StreamId(ms, n + 1)) and (at < StreamId(ms + 1, 0))


@pytest.mark.parametrize(
    "text",
    ["", "-", "1", "1-", "-1", "01-1", "1-01", "+1-1", "1-1-1", "1 -1", "\u0661-1",
     "1" * 21 + "-1", "1-1x", f"{2**64}-0", f"0-{2**64}"],
)
def test_malformed_stream_ids_are_refused(text: str) -> None:
    """Only canonical decimal ``<ms>-<n>`` is a stream id; anything else is None, and as a
    client's id (after an epoch) it is UnknownId without asking the store."""
    assert parse_stream_id(text) is None
    assert read_start(f"{EPOCH}-{text}") == UnknownId(last_event_id=f"{EPOCH}-{text}")


def test_the_largest_stream_id_reads_but_is_never_a_start() -> None:
    """``(2**64-1)-(2**64-1)`` is a stream id, but nothing can follow it (Redis refuses to
    read after it), so a client holding it is UnknownId without a round trip."""
    largest = f"{2**64 - 1}-{2**64 - 1}"
    assert parse_stream_id(largest) == StreamId(2**64 - 1, 2**64 - 1)
    assert read_start(f"{EPOCH}-{largest}") == UnknownId(last_event_id=f"{EPOCH}-{largest}")
    assert read_start(f"{EPOCH}-{2**64 - 1}-5") == StreamId(2**64 - 1, 5)


@given(texts, event_types, st.from_regex(r"[0-9a-f]{16}", fullmatch=True), numbers, numbers)
def test_sizes_the_store_counts_are_the_encoded_sizes(
    data: str, event_type: str, epoch: str, ms: int, n: int
) -> None:
    """The size the store keeps plus the id line the Lua script adds (6 + epoch + stream id)
    is exactly the length of the bytes a reader gets, so ``max_bytes`` bounds the same thing
    in both logs."""
    size, kept_type, kept_data = entry_fields(Event(data=data, event=event_type))
    at = StreamId(ms, n)
    stored = stored_event(epoch, at, kept_type, kept_data)
    assert len(stored.encoded) == size + 6 + len(epoch) + len(str(at))
    assert stored.encoded == serialize(Event(data=data, event=event_type, id=stored.id))
    assert stored.event.data == data and stored.stored_at == ms / 1000


def test_entry_fields_refuse_an_events_own_id() -> None:
    """A shared log gives ids itself: an event with one is refused before any I/O."""
    with pytest.raises(InvalidFieldError, match="assigns ids"):
        entry_fields(Event(data="x", id="mine"))


@given(st.floats(min_value=1e-6, max_value=1e9, allow_nan=False))
def test_retention_args_never_evict_early(max_age: float) -> None:
    """The age bound in whole ms is never shorter than the one configured; no bound is 0."""
    events, size, age_ms = retention_args(ReplayConfig(max_events=7, max_age=max_age))
    assert (events, size) == (7, 1 << 20)
    assert age_ms >= max_age * 1000 and age_ms - 1 < max(max_age * 1000, 1)
    assert age_ms == max(1, math.ceil(max_age * 1000))
    assert retention_args(ReplayConfig(max_bytes=None)) == (1000, 0, 0)


def test_a_malformed_reply_is_a_remote_error() -> None:
    """A reply that is not what the scripts return is the store's fault: RemoteProtocolError."""
    with pytest.raises(RemoteProtocolError):
        verdict(f"{EPOCH}-1-1", [b"e", b"not-an-id", []], None, 10)
    with pytest.raises(RemoteProtocolError):
        verdict(f"{EPOCH}-1-1", [b"e", 17, []], None, 10)
    for reply in ([b"e"], [b"e", b"1-1", [[b"1-1", [b"s", b"0"]]]], [b"e", b"1-1", [[b"1-1"]]]):
        with pytest.raises(RemoteProtocolError):
            verdict(f"{EPOCH}-1-1", reply, None, 10)
    with pytest.raises(RemoteProtocolError):
        appended([b"e"])


def test_replies_as_text_read_as_replies_as_bytes() -> None:
    """A client made with ``decode_responses=True`` hands over str: the same verdicts."""
    store = Store(3)
    ids = [log_id(EPOCH, store.append(f"e{i}", 1000 + i)) for i in range(5)]

    def as_text(value: Any) -> Any:
        if isinstance(value, bytes):
            return value.decode()
        if isinstance(value, list):
            return [as_text(item) for item in value]
        return value

    for client_id in ids:
        start = read_start(client_id)
        assert isinstance(start, StreamId)
        reply = store.read(start, 11)
        assert verdict(client_id, as_text(reply), None, 10) == verdict(client_id, reply, None, 10)
    assert appended(["e", "1-2"]) == appended([b"e", b"1-2"]) == ("e", StreamId(1, 2))


# -- the live tail: Follower and StreamMirror --------------------------------------------


class EpochStore(Store):
    """A :class:`Store` that can be wiped (a new epoch) or deleted (no log at all)."""

    def __init__(self, max_events: int) -> None:
        super().__init__(max_events)
        self.epoch = EPOCH
        self.exists = True
        self.created = 0  # logs created by CreateLog
        self.tags: dict[StreamId, str | None] = {}  # the epoch each row carries
        self.is_tagging = True  # False: rows as an older sse_core appends them
        self.reads = 0  # ReadRows answered

    def append(self, data: str, ms: int) -> StreamId:
        at = super().append(data, ms)
        self.tags[at] = self.epoch if self.is_tagging else None
        return at

    def wipe(self, epoch: str) -> None:
        self.rows, self.last, self.epoch, self.exists = [], START, epoch, True

    def xread(self, after: StreamId, count: int) -> list[Any]:
        """``XREAD``'s entries after ``after`` as redis-py hands them over (fields in a
        mapping, ``epoch`` among them when the row carries one)."""
        entries = []
        for at, event, data in [row for row in self.rows if row[0] > after][:count] if (
            self.exists
        ) else []:
            fields = {b"s": b"0", b"e": event.encode(), b"d": data.encode()}
            tag = self.tags.get(at)
            if tag is not None:
                fields[b"epoch"] = tag.encode()
            entries.append((str(at).encode(), fields))
        return entries

    def read_from(self, start: str, count: int) -> list[Any]:
        """The READ script's reply to a :class:`ReadRows`."""
        self.reads += 1
        if not self.exists:
            return []
        after = None if start == "-" else parse_stream_id(start[1:])
        reply = self.read(after, count)
        reply[0] = self.epoch.encode()
        return reply


def follow(follower: Follower, mirror: StreamMirror, store: EpochStore, now: float) -> list[str]:
    """Carry out the follower's requests against ``store`` until it would wait; apply each
    step to ``mirror`` as the server does; return the gaps reported."""
    gaps = []
    has_waited = False
    for _ in range(1000):
        request = follower.next_request()
        if isinstance(request, CreateLog):
            store.wipe(f"new{store.created}")
            store.created += 1
            follower.on_created()
            continue
        if isinstance(request, WaitRows):
            # XREAD BLOCK returns the rows after the id, or nothing at its timeout (the
            # follower then reads, and sees a wiped or deleted log).
            entries = store.xread(request.after, request.count)
            if has_waited and not entries:
                return gaps
            has_waited = has_waited or not entries
            step = follower.on_woken(entries)
        else:
            step = follower.on_read(store.read_from(request.start, request.count))
        if step.restart is not None:
            mirror.restart(*step.restart)
        if step.gap is not None:
            gaps.append(step.gap)
        for stored in step.events:
            mirror.append(stored.event, now)
    raise AssertionError("the follower never waits")


@given(
    max_events=st.integers(min_value=1, max_value=5),
    count=st.integers(min_value=1, max_value=4),
    plan=st.lists(
        st.tuples(st.integers(min_value=0, max_value=4), st.booleans()), min_size=1,
        max_size=12,
    ),
)
def test_a_mirror_fed_by_the_follower_answers_every_resume_as_the_store(
    max_events: int, count: int, plan: list[tuple[int, bool]]
) -> None:
    """Appends in bursts (some longer than the retention: the tail finds them trimmed; some
    of rows without their epoch, as an older sse_core appends them) with the tail catching
    up after each: the follower hands over every event the store still has, in order, once,
    reports ``trimmed`` exactly when events went before it read them, and the mirror answers
    every resume (start, each id issued, a forged one) as the store's own verdict does."""
    store = EpochStore(max_events)
    follower, mirror = Follower(read_count=count), StreamMirror(ReplayConfig(max_events=max_events))
    issued = [log_id(EPOCH, START)]
    follow(follower, mirror, store, 1.0)
    handed: list[int] = []
    for burst, is_tagging in plan:
        store.is_tagging = is_tagging
        before = store.last.n
        for i in range(burst):
            issued.append(log_id(EPOCH, store.append(f"e{before + i}", 1000 + before + i)))
        gaps = follow(follower, mirror, store, 1.0)
        assert gaps == (["trimmed"] if burst > max_events else [])
        assert mirror.position == log_id(EPOCH, store.last)
        kept = [parse_log_id(s.id)[1].n for s in mirror.events()]  # type: ignore[index]
        assert kept == [row[0].n for row in store.rows]
        handed += kept[len(kept) - min(burst, len(kept)):] if burst else []
        for claimed in [*issued, log_id(EPOCH, StreamId(5, 2)), "x-1-1"]:
            start = read_start(claimed)
            theirs = (
                start if isinstance(start, UnknownId)
                else verdict(claimed, store.read(start, 101), None, 100)
            )
            ours = mirror.resume(claimed, 1.0)
            assert_same_kind(ours, theirs, claimed)
            if isinstance(ours, Replay):
                assert isinstance(theirs, Replay)
                assert [s.id for s in ours.events] == [s.id for s in theirs.events]
    assert handed == sorted(set(handed))


def test_the_follower_reports_a_new_epoch_and_a_deleted_log_and_reloads() -> None:
    """A wiped store (new epoch) and a deleted log are gaps: the follower reads the log
    again from its start and the step restarts the mirror in the new epoch; the first load
    of a log is no gap; a missing log is created."""
    store = EpochStore(10)
    store.exists = False
    follower, mirror = Follower(read_count=2), StreamMirror()
    assert not mirror.is_loaded
    assert follow(follower, mirror, store, 1.0) == []  # created, loaded: no gap
    assert mirror.epoch == "new0" and mirror.position == "new0-0-0"
    ids = [log_id(store.epoch, store.append(f"e{i}", 1000 + i)) for i in range(3)]
    assert follow(follower, mirror, store, 1.0) == []
    assert mirror.position == ids[-1]
    store.wipe("other")
    store.append("x", 5)
    assert follow(follower, mirror, store, 2.0) == ["epoch"]
    assert mirror.epoch == "other" and [s.event.data for s in mirror.events()] == ["x"]
    assert mirror.resume(ids[-1], 2.0) == UnknownId(last_event_id=ids[-1])
    store.exists = False
    assert follow(follower, mirror, store, 3.0) == ["deleted"]
    assert mirror.epoch == "new1" and len(mirror) == 0


def test_the_follower_waits_when_up_to_date_and_reads_again_when_woken() -> None:
    """Up to date, the follower asks to wait after its last id; woken (rows came, or the
    wait timed out) it reads again from there; a failed request is simply asked again."""
    store = EpochStore(10)
    follower, mirror = Follower(read_count=5), StreamMirror()
    follow(follower, mirror, store, 1.0)
    at = store.append("a", 1000)
    follow(follower, mirror, store, 1.0)
    assert follower.next_request() == WaitRows(at, 5)
    assert follower.next_request() == WaitRows(at, 5)  # nothing moves without an answer
    assert follower.on_woken() == TailStep()  # the wait's timeout: read again
    assert follower.next_request() == ReadRows(f"({at}", 5)


def test_rows_a_wait_returns_are_handed_over_without_a_read() -> None:
    """Up to date, each event costs the tail one request: the rows ``XREAD`` returns carry
    their epoch, start right after the last event handed over, and are handed over at once,
    in order; the follower then waits again after the newest (no :class:`ReadRows`)."""
    store = EpochStore(10)
    follower, mirror = Follower(read_count=5), StreamMirror()
    follow(follower, mirror, store, 1.0)
    first = store.append("a", 1000)
    follow(follower, mirror, store, 1.0)
    ids = [store.append(data, 1001) for data in ("b", "c")]
    request = follower.next_request()
    assert request == WaitRows(first, 5)
    step = follower.on_woken(store.xread(request.after, request.count))
    assert step.restart is None and step.gap is None
    assert [s.id for s in step.events] == [log_id(EPOCH, at) for at in ids]
    assert [s.event.data for s in step.events] == ["b", "c"]
    assert follower.next_request() == WaitRows(ids[-1], 5)
    reads, handed = store.reads, []
    for i in range(20):  # one event at a time, as a live tail meets them
        store.append(f"e{i}", 1002 + i)
        request = follower.next_request()
        assert isinstance(request, WaitRows)
        handed += follower.on_woken(store.xread(request.after, request.count)).events
    assert store.reads == reads
    assert [s.event.data for s in handed] == [f"e{i}" for i in range(20)]


@pytest.mark.parametrize("change", ["untagged", "epoch", "trimmed"])
def test_rows_a_wait_cannot_vouch_for_are_read_again(change: str) -> None:
    """Rows without their epoch (appended by an older sse_core), of another epoch (the log
    was wiped and made again: even numbered right after the last event seen), or after a
    hole (events trimmed before the tail saw them) are not handed over as they came: the
    follower reads, and the read decides (the events, or the gap)."""
    store = EpochStore(3)
    follower, mirror = Follower(read_count=5), StreamMirror(ReplayConfig(max_events=3))
    follow(follower, mirror, store, 1.0)
    last = store.append("a", 1000)
    follow(follower, mirror, store, 1.0)
    if change == "untagged":
        store.is_tagging = False
        store.append("b", 1001)
    elif change == "epoch":
        store.wipe("other")
        store.last = last  # numbered on from the old log's last id
        store.append("b", 1001)
    else:
        for data in "bcde":
            store.append(data, 1001)
    request = follower.next_request()
    assert isinstance(request, WaitRows)
    entries = store.xread(request.after, request.count)
    assert entries and follower.on_woken(entries) == TailStep()
    assert follower.next_request() == ReadRows(f"({last}", 5)
    gaps = follow(follower, mirror, store, 1.0)
    assert gaps == {"untagged": [], "epoch": ["epoch"], "trimmed": ["trimmed"]}[change]
    assert [s.event.data for s in mirror.events()] == {
        "untagged": ["a", "b"], "epoch": ["b"], "trimmed": ["c", "d", "e"]
    }[change]
    assert mirror.epoch == ("other" if change == "epoch" else EPOCH)


def test_a_malformed_wait_answer_is_a_remote_error() -> None:
    """Rows without the event's fields, or not pairs, are the store's fault."""
    follower = Follower(read_count=2)
    follower.on_read([EPOCH.encode(), b"0-0", []])
    with pytest.raises(RemoteProtocolError):
        follower.on_woken([(b"1-1", {b"epoch": EPOCH.encode()})])
    with pytest.raises(RemoteProtocolError):
        follower.on_woken([b"1-1"])


def test_the_mirror_refuses_what_the_store_would_not_give_and_waits_for_newer_ids() -> None:
    """The mirror takes only ids of its epoch, each after the last; before a load it has no
    position; an id newer than what it saw (or of another epoch) is one to wait for."""
    mirror = StreamMirror()
    with pytest.raises(LocalProtocolError):
        _ = mirror.position
    assert mirror.is_behind(log_id(EPOCH, StreamId(1, 1)))
    mirror.restart(EPOCH, START)
    first = stored_event(EPOCH, StreamId(10, 1), "message", "a")
    mirror.append(first.event, 1.0)
    with pytest.raises(InvalidFieldError):
        mirror.append(first.event, 1.0)  # not after the last
    with pytest.raises(InvalidFieldError):
        mirror.append(stored_event("beef", StreamId(11, 2), "message", "b").event, 1.0)
    with pytest.raises(InvalidFieldError):
        mirror.append(Event(data="no id"), 1.0)
    with pytest.raises(InvalidFieldError):
        mirror.restart("has-dash", None)
    assert not mirror.is_behind(first.id)
    assert not mirror.is_behind("not an id of this form")
    assert mirror.is_behind(log_id(EPOCH, StreamId(10, 2)))
    assert mirror.is_behind(log_id("beef", StreamId(10, 1)))
    assert covers(log_id(EPOCH, StreamId(10, 2)), log_id(EPOCH, StreamId(10, 2)))
    assert not covers(log_id(EPOCH, StreamId(10, 2)), log_id(EPOCH, StreamId(10, 3)))
    assert not covers(log_id("beef", StreamId(10, 2)), log_id(EPOCH, StreamId(10, 1)))
    assert not covers("junk", log_id(EPOCH, StreamId(10, 1)))
