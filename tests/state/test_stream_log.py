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

from sse_core import Event, InvalidFieldError, RemoteProtocolError, serialize
from sse_core._stream_log import (
    START,
    StreamId,
    appended,
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
        assert type(ours) is type(theirs), (stream_id, ours, theirs)
        if isinstance(ours, TooOld):
            assert isinstance(theirs, TooOld) and ours.missed == theirs.missed
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
