"""The decisions of an event log kept in a stream store such as Redis Streams (floor 3).

Pure: no I/O. The store (a Redis stream and a small hash beside it, see
``sse_core/adapters/_redis_scripts.py``) numbers events itself, atomically for every
publisher; this module holds everything that needs no round trip: how ids are written and
read, what is stored for an event, the retention bounds as the store takes them, and the
verdict on a resume from the rows the store returned.

Ids: the store gives each event a stream id ``<ms>-<n>``: ``ms`` the store's clock in
milliseconds when it was appended (never less than the previous one's), ``n`` its number,
counting appends from 1 in the store's one order. The event id clients see is
``<epoch>-<ms>-<n>``; ``<epoch>-0-0`` marks the start of an empty log. Because ``n`` counts
every append, the gap between a client's id and the oldest event kept is exact: the verdict
needs no memory of evicted ids.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import attrs

from ._errors import InvalidFieldError, RemoteProtocolError
from ._events import Event, _make_event
from ._replay import Replay, ReplayConfig, ReplayResult, StoredEvent, TooOld, UnknownId
from ._serializer import serialize

__all__ = [
    "START",
    "StreamId",
    "StreamRow",
    "appended",
    "entry_fields",
    "log_id",
    "oldest_of",
    "parse_log_id",
    "parse_stream_id",
    "read_start",
    "retention_args",
    "stored_event",
    "verdict",
]

#: The largest part of a stream id (Redis ids are two unsigned 64-bit numbers).
_MAX_PART = 2**64 - 1
_MAX_DIGITS = len(str(_MAX_PART))


@attrs.frozen(order=True)
class StreamId:
    """A stream id ``<ms>-<n>``, ordered as the store orders them.

    Attributes:
        ms: The store's clock, in milliseconds, when the event was appended.
        n: The event's number: appends counted from 1 (0 only in :data:`START`).
    """

    ms: int
    n: int

    def __str__(self) -> str:
        return f"{self.ms}-{self.n}"


#: The stream id before the first event.
START = StreamId(0, 0)
_LAST_POSSIBLE = StreamId(_MAX_PART, _MAX_PART)


@attrs.frozen
class StreamRow:
    """One event as read from the store.

    Attributes:
        at: Its stream id.
        event: Its event type.
        data: Its data.
    """

    at: StreamId
    event: str
    data: str


def _number(text: str) -> int | None:
    if (
        not text
        or len(text) > _MAX_DIGITS
        or not text.isascii()
        or not text.isdigit()
        or (text[0] == "0" and len(text) > 1)
    ):
        return None
    value = int(text)
    return value if value <= _MAX_PART else None


def parse_stream_id(text: str) -> StreamId | None:
    """Read ``<ms>-<n>`` (canonical decimal numbers up to 2**64 - 1), or return ``None``."""
    ms, sep, n = text.partition("-")
    ms_value, n_value = _number(ms), _number(n)
    if not sep or ms_value is None or n_value is None:
        return None
    return StreamId(ms_value, n_value)


def log_id(epoch: str, at: StreamId) -> str:
    """The event id clients see: ``<epoch>-<ms>-<n>``."""
    return f"{epoch}-{at}"


def parse_log_id(text: str) -> tuple[str, StreamId] | None:
    """Read ``<epoch>-<ms>-<n>`` into the epoch and the stream id, or return ``None``."""
    epoch, sep, rest = text.partition("-")
    at = parse_stream_id(rest)
    if not sep or not epoch or at is None:
        return None
    return epoch, at


def retention_args(config: ReplayConfig) -> tuple[int, int, int]:
    """The bounds as the store's script takes them: ``(max_events, max_bytes, max_age_ms)``,
    0 meaning no bound. An age is rounded up to whole milliseconds (an event is never evicted
    early)."""
    max_age_ms = 0 if config.max_age is None else max(1, math.ceil(config.max_age * 1000))
    return config.max_events, config.max_bytes or 0, max_age_ms


def entry_fields(event: Event) -> tuple[int, str, str]:
    """What the store keeps of an event: ``(size, type, data)``, ``size`` being the encoded
    length without the ``id:`` line (the store adds the line's length once it chose the id).

    Raises:
        InvalidFieldError: the event has an id (a shared log assigns them, so that they
            order events across publishers), or it cannot be encoded.
    """
    if event.id is not None:
        raise InvalidFieldError(
            "id", event.id, "a shared log assigns ids itself; pass id=None"
        )
    return len(serialize(event)), event.event, event.data


def stored_event(epoch: str, at: StreamId, event: str, data: str) -> StoredEvent:
    """The stored event for a row: its id, the event with it, its bytes; ``stored_at`` is the
    store's clock in seconds."""
    id = log_id(epoch, at)
    record = _make_event(data, event, id, id)
    return StoredEvent(id=id, event=record, encoded=serialize(record), stored_at=at.ms / 1000)


def read_start(last_event_id: str) -> StreamId | UnknownId:
    """Where a resume reads from: the stream id in ``last_event_id``, or :class:`UnknownId`
    when it is not an id of this form (no round trip needed to say so)."""
    parsed = parse_log_id(last_event_id)
    if parsed is None or parsed[1] == _LAST_POSSIBLE:  # nothing can follow it: Redis refuses
        return UnknownId(last_event_id=last_event_id)
    return parsed[1]


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, str):
        return value
    raise RemoteProtocolError(f"the store answered {value!r} where text was expected")


def _stream_id(value: Any) -> StreamId:
    at = parse_stream_id(_text(value))
    if at is None:
        raise RemoteProtocolError(
            f"the store answered {value!r} where a stream id was expected"
        )
    return at


def _rows(entries: Sequence[Any]) -> list[StreamRow]:
    rows = []
    for entry_id, fields in entries:
        pairs = zip(fields[::2], fields[1::2], strict=True)
        values = {_text(name): value for name, value in pairs}
        rows.append(StreamRow(_stream_id(entry_id), _text(values["e"]), _text(values["d"])))
    return rows


@attrs.frozen
class _Snapshot:
    epoch: str
    last: StreamId
    rows: list[StreamRow]


def _snapshot(reply: Sequence[Any]) -> _Snapshot | None:
    """Read the store's answer to a read: ``[]`` when the log does not exist, else
    ``[epoch, last stream id, rows]``."""
    if not reply:
        return None
    try:
        epoch, last, entries = reply
        return _Snapshot(_text(epoch), _stream_id(last), _rows(entries))
    except (TypeError, ValueError, KeyError) as error:
        raise RemoteProtocolError(f"the store answered a read with {reply!r}") from error


def appended(reply: Sequence[Any]) -> tuple[str, StreamId]:
    """Read the store's answer to an append or a position: ``[epoch, stream id]``."""
    try:
        epoch, at = reply
        return _text(epoch), _stream_id(at)
    except (TypeError, ValueError) as error:
        raise RemoteProtocolError(f"the store answered {reply!r}") from error


def _replay(snapshot: _Snapshot, max_bytes: int | None, count: int) -> Replay:
    """The first ``count`` rows as a :class:`Replay`, cut before ``max_bytes`` (one event at
    least); complete when nothing was cut (the store is asked for ``count + 1`` rows, so one
    more row than ``count`` means there is more)."""
    events: list[StoredEvent] = []
    size = 0
    for row in snapshot.rows[:count]:
        stored = stored_event(snapshot.epoch, row.at, row.event, row.data)
        size += len(stored.encoded)
        if max_bytes is not None and size > max_bytes and events:
            return Replay(events=tuple(events), is_complete=False)
        events.append(stored)
    return Replay(events=tuple(events), is_complete=len(snapshot.rows) <= count)


def oldest_of(reply: Sequence[Any], max_bytes: int | None, count: int) -> Replay:
    """The answer to ``oldest()`` from a read of ``count + 1`` rows from the start."""
    snapshot = _snapshot(reply)
    if snapshot is None:
        return Replay(events=())
    return _replay(snapshot, max_bytes, count)


def verdict(
    last_event_id: str, reply: Sequence[Any], max_bytes: int | None, count: int
) -> ReplayResult:
    """Decide a resume from the store's read of ``count + 1`` rows after the client's
    stream id.

    Args:
        last_event_id: The id the client sent (one :func:`read_start` accepted).
        reply: The store's answer (see :func:`_snapshot`).
        max_bytes: The bound of one :class:`Replay` step, or ``None``.
        count: The most events to answer with (the read asked for one more).

    Returns:
        :class:`UnknownId` when the log does not exist (wiped, not yet recreated), the id is
        of another epoch, was never issued, or does not fit the rows; :class:`TooOld` when the
        rows after it start later than its successor (the store evicts oldest first, so every
        event in between is gone: their number is exact); else :class:`Replay`.
    """
    snapshot = _snapshot(reply)
    parsed = parse_log_id(last_event_id)
    if snapshot is None or parsed is None or parsed[0] != snapshot.epoch:
        return UnknownId(last_event_id=last_event_id)
    at, last = parsed[1], snapshot.last
    if at.n > last.n or (at.n == last.n and at != last):
        return UnknownId(last_event_id=last_event_id)
    if not snapshot.rows:
        if at.n == last.n:
            return Replay(events=())
        return TooOld(last_event_id=last_event_id, missed=last.n - at.n)
    first = snapshot.rows[0].at.n
    if first <= at.n:  # rows at or before the id: its ms part was not the one issued
        return UnknownId(last_event_id=last_event_id)
    if first > at.n + 1:
        return TooOld(last_event_id=last_event_id, missed=first - at.n - 1)
    return _replay(snapshot, max_bytes, count)
