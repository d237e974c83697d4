"""The decisions of an event log kept in a stream store such as Redis Streams (floor 3).

Pure: no I/O. The store (a Redis stream and a small hash beside it, see
``sse_core/adapters/_redis_scripts.py``) numbers events itself, atomically for every
publisher; this module holds everything that needs no round trip: how ids are written and
read, what is stored for an event, the retention bounds as the store takes them, and the
verdict on a resume from the rows the store returned -- and, for a worker that serves
clients from the store's live tail, the tail's decisions (:class:`Follower`: what to read
next, what to deliver, when the store lost events) and the worker's copy of the log
(:class:`StreamMirror`, which its clients resume from).

Ids: the store gives each event a stream id ``<ms>-<n>``: ``ms`` the store's clock in
milliseconds when it was appended (never less than the previous one's), ``n`` its number,
counting appends from 1 in the store's one order. The event id clients see is
``<epoch>-<ms>-<n>``; ``<epoch>-0-0`` marks the start of an empty log. Because ``n`` counts
every append, the gap between a client's id and the oldest event kept is exact: the verdict
needs no memory of evicted ids.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ._errors import (
    IdempotencyConflictError,
    InvalidFieldError,
    LocalProtocolError,
    RemoteProtocolError,
)
from ._events import Event, _make_event
from ._replay import (
    Replay,
    ReplayConfig,
    ReplayLog,
    ReplayResult,
    StoredEvent,
    TooOld,
    UnknownId,
)
from ._serializer import serialize
from ._validators import positive_int

__all__ = [
    "START",
    "CreateLog",
    "Follower",
    "ReadRows",
    "StreamMirror",
    "TailStep",
    "WaitRows",
    "StreamId",
    "StreamRow",
    "MAX_IDEMPOTENCY_KEY_LENGTH",
    "appended",
    "appended_once",
    "check_idempotency_key",
    "event_digest",
    "covers",
    "entry_fields",
    "log_id",
    "oldest_of",
    "parse_log_id",
    "parse_stream_id",
    "read_start",
    "retention_args",
    "stored_event",
    "verdict",
    "window_ms",
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


#: The longest idempotency key (:func:`check_idempotency_key`).
MAX_IDEMPOTENCY_KEY_LENGTH = 200


def check_idempotency_key(key: object) -> str:
    """Return ``key`` if it can key an idempotent append: 1 to
    :data:`MAX_IDEMPOTENCY_KEY_LENGTH` visible ASCII characters (``!`` to ``~``: no space,
    no control character; a uuid, ``order-17-shipped``).

    Raises:
        InvalidFieldError: it cannot (field ``idempotency_key``).
    """
    if not isinstance(key, str):
        raise InvalidFieldError("idempotency_key", key, "expected a str")
    # ASCII and printable is U+0020 to U+007E; without the space, "!" to "~".
    if not (
        0 < len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH
        and key.isascii() and key.isprintable() and " " not in key
    ):
        raise InvalidFieldError(
            "idempotency_key", key,
            f"expected 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} visible ASCII characters (no space)",
        )
    return key


def event_digest(event_type: str, data: str) -> str:
    """What identifies an event's stored fields under an idempotency key: a 128-bit BLAKE2b
    digest of its type and data, in hex (a type holds no LF, so the two cannot blur)."""
    fields = f"{event_type}\n{data}".encode("utf-8", "surrogatepass")
    return hashlib.blake2b(fields, digest_size=16).hexdigest()


def window_ms(window: float) -> int:
    """An idempotency window as the store takes it: whole milliseconds, rounded up (a key is
    never forgotten early)."""
    return max(1, math.ceil(window * 1000))


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


#: The field of a stream entry that holds the epoch it was appended in (the APPEND script
#: writes it; entries of an older sse_core lack it).
_EPOCH_FIELD = "epoch"


def _fields(fields: Any) -> dict[str, Any]:
    """An entry's fields by name: from a flat ``[name, value, ...]`` list (a script's
    reply) or a mapping (redis-py's ``XREAD``)."""
    pairs = fields.items() if isinstance(fields, Mapping) else zip(
        fields[::2], fields[1::2], strict=True
    )
    return {_text(name): value for name, value in pairs}


def _row(entry_id: Any, values: dict[str, Any]) -> StreamRow:
    return StreamRow(_stream_id(entry_id), _text(values["e"]), _text(values["d"]))


def _rows(entries: Sequence[Any]) -> list[StreamRow]:
    return [_row(entry_id, _fields(fields)) for entry_id, fields in entries]


def _tagged_rows(entries: Sequence[Any]) -> list[tuple[StreamRow, str | None]]:
    """Rows as ``XREAD`` returns them, each with the epoch written into it (``None``: an
    entry without the field).

    Raises:
        RemoteProtocolError: an entry is malformed.
    """
    tagged = []
    try:
        for entry_id, fields in entries:
            values = _fields(fields)
            epoch = values.get(_EPOCH_FIELD)
            tagged.append((_row(entry_id, values), None if epoch is None else _text(epoch)))
    except (TypeError, ValueError, KeyError) as error:
        raise RemoteProtocolError(f"the store answered a wait with {entries!r}") from error
    return tagged


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


def appended_once(
    reply: Sequence[Any], idempotency_key: str, event_type: str, data: str
) -> StoredEvent:
    """The answer to a keyed append: ``[epoch, stream id]`` (stored now) or ``[epoch, stream
    id, verdict]`` (the key was answered before in this epoch, nothing stored): ``same``, the
    same event (its first id is the answer), or ``other``, another event.

    Raises:
        IdempotencyConflictError: the key was used for another event.
        RemoteProtocolError: the reply is of neither shape.
    """
    if isinstance(reply, (list, tuple)) and len(reply) == 3:
        epoch, at = appended(reply[:2])
        match _text(reply[2]):
            case "same":
                return stored_event(epoch, at, event_type, data)
            case "other":
                raise IdempotencyConflictError(idempotency_key, log_id(epoch, at))
            case _:
                raise RemoteProtocolError(f"the store answered {reply!r}")
    return stored_event(*appended(reply), event_type, data)


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
    first = snapshot.rows[0].at.n if snapshot.rows else None
    placed = _place(last_event_id, parsed[1], snapshot.last, first)
    return _replay(snapshot, max_bytes, count) if placed is None else placed


def _place(
    last_event_id: str, at: StreamId, last: StreamId, first: int | None
) -> UnknownId | TooOld | Replay | None:
    """Place a client's stream id ``at`` in a log of one epoch whose newest id is ``last``
    and whose oldest kept event after ``at`` is numbered ``first`` (``None``: none kept).

    Returns ``None`` when the answer is every kept event from ``first`` on; else the answer.
    """
    if at.n > last.n or (at.n == last.n and at != last):
        return UnknownId(last_event_id=last_event_id)
    if first is None:
        if at.n == last.n:
            return Replay(events=())
        return TooOld(last_event_id=last_event_id, missed=last.n - at.n)
    if first <= at.n:  # kept events at or before the id: its ms part was not the one issued
        return UnknownId(last_event_id=last_event_id)
    if first > at.n + 1:
        return TooOld(last_event_id=last_event_id, missed=first - at.n - 1)
    return None


class StreamMirror(ReplayLog):
    """A worker's copy of the newest events of a log kept in the store: the
    :class:`~sse_core.Broadcaster`'s replay log when the events come from the store's live
    tail (:class:`Follower`).

    Events come in with the ids the store gave them (``<epoch>-<ms>-<n>``), in the store's
    order, through :meth:`append` (that is, :meth:`~sse_core.Broadcaster.publish`); it keeps
    the newest within the bounds of its :class:`~sse_core.state.ReplayConfig`. It answers
    :meth:`resume` as the store would (:func:`verdict`): the events after an id it keeps,
    :class:`~sse_core.state.TooOld` with the exact number missed when the id is older than
    what it keeps, :class:`~sse_core.state.UnknownId` for an id of another epoch, one never
    issued, or one newer than what it has seen (an adapter waits for its tail to catch up
    before resuming such an id, see :meth:`is_behind`).

    Until :meth:`restart` gives it an epoch it holds nothing and has no position
    (:attr:`is_loaded` is false: an adapter admits no client then).

    Args:
        config: Retention (``max_events``, ``max_bytes``, ``max_age`` on the worker's
            clock); its ``epoch`` is ignored (the store's is used).
    """

    __slots__ = ("_epoch", "_last")

    def __init__(self, config: ReplayConfig | None = None) -> None:
        config = ReplayConfig() if config is None else config
        ReplayLog.__init__(self, attrs.evolve(config, epoch=""))
        self._epoch: str | None = None
        self._last: StreamId | None = None  # None: before the first event of a restart

    @property
    def epoch(self) -> str | None:
        """The store's epoch the kept events belong to, or ``None`` before the first load."""
        return self._epoch

    @property
    def is_loaded(self) -> bool:
        """Whether the mirror follows an epoch of the store (it has a position)."""
        return self._epoch is not None and self._last is not None

    @property
    def position(self) -> str:
        """The id of the newest event it has seen (``<epoch>-<ms>-<n>``).

        Raises:
            LocalProtocolError: not :attr:`is_loaded`.
        """
        if self._epoch is None or self._last is None:
            raise LocalProtocolError("the mirror has not loaded the log yet")
        return log_id(self._epoch, self._last)

    def restart(self, epoch: str, last: StreamId | None) -> None:
        """Forget every kept event and follow ``epoch`` from ``last`` on: the id of the
        newest event of the store, or ``None`` when the store's kept events follow (they are
        appended next, the first of them may be of any number).

        Raises:
            InvalidFieldError: ``epoch`` is empty or contains ``-``, CR, LF or U+0000.
        """
        if not epoch or "-" in epoch or parse_log_id(f"{epoch}-0-0") is None:
            raise InvalidFieldError("epoch", epoch, "must be non-empty without '-'")
        latest = self._latest_now
        ReplayLog.__init__(self, self._config)
        self._latest_now = latest
        self._epoch = epoch
        self._last = last

    def append(self, event: Event, now: float) -> StoredEvent:
        """Keep an event of the store with its id, the next in the store's order.

        Raises:
            InvalidFieldError: the id is not of the epoch followed, or not after the last
                one appended.
            ClockError: ``now`` is not finite or earlier than a previous ``now``.
        """
        parsed = None if event.id is None else parse_log_id(event.id)
        if parsed is None or parsed[0] != self._epoch:
            raise InvalidFieldError(
                "id", event.id or "", f"must be an id of the store's epoch {self._epoch!r}"
            )
        at, last = parsed[1], self._last
        if last is not None and at <= last:
            raise InvalidFieldError("id", event.id or "", f"must come after {last}")
        stored = ReplayLog.append(self, event, now)
        self._last = at
        return stored

    def resume(
        self, last_event_id: str, now: float, *, max_bytes: int | None = None
    ) -> ReplayResult:
        """Answer a resume from the kept events, as the store would (see the class).

        Raises:
            InvalidConfigError: ``max_bytes`` is not ``None`` or an int >= 1.
            ClockError: ``now`` is not finite or earlier than a previous ``now``.
        """
        self._take_now(now)
        if max_bytes is not None:
            positive_int.check("max_bytes", max_bytes)
        self._expire(now)
        parsed = parse_log_id(last_event_id)
        if parsed is None or parsed[0] != self._epoch or self._last is None:
            return UnknownId(last_event_id=last_event_id)
        at = parsed[1]
        first = self._first_kept()
        if first is not None and first <= at.n <= self._last.n:
            return ReplayLog.resume(self, last_event_id, now, max_bytes=max_bytes)
        placed = _place(last_event_id, at, self._last, first)
        return self.oldest(max_bytes=max_bytes) if placed is None else placed

    def is_behind(self, last_event_id: str) -> bool:
        """Whether ``last_event_id`` may be an id the store issued that this mirror has not
        seen yet: of this log's form, and of another epoch or newer than the newest seen.

        An adapter asks the store for its position then, and waits until the mirror has
        caught up with it before resuming the client (or the client would read a gap that
        the store does not have).
        """
        parsed = parse_log_id(last_event_id)
        if parsed is None:
            return False
        return parsed[0] != self._epoch or self._last is None or parsed[1].n > self._last.n

    def _first_kept(self) -> int | None:
        if not self._index:
            return None
        first = self._entries[self._head]
        assert first is not None
        parsed = parse_log_id(first.id)
        assert parsed is not None
        return parsed[1].n


def covers(position: str, last_event_id: str) -> bool:
    """Whether the store, at ``position`` (its :meth:`~sse_core.state.AsyncSharedLog.position`),
    has issued ``last_event_id``: the same epoch and a number not past the position's."""
    parsed, at = parse_log_id(position), parse_log_id(last_event_id)
    return (
        parsed is not None and at is not None and parsed[0] == at[0] and at[1].n <= parsed[1].n
    )


@attrs.frozen
class ReadRows:
    """What the tail asks the store: the rows from ``start`` (``-``: the oldest kept, or
    ``(<stream id>``: after it), at most ``count``, with the log's epoch and newest id."""

    start: str
    count: int


@attrs.frozen
class WaitRows:
    """What the tail asks the store: wait (at most the tail's block timeout) until a row
    after ``after`` exists, and answer the rows after it, at most ``count``, as they are
    (``XREAD BLOCK``; no rows when the timeout passed)."""

    after: StreamId
    count: int


@attrs.frozen
class CreateLog:
    """What the tail asks the store: create the log (a new epoch) since it does not exist,
    and answer its epoch and newest id."""


@attrs.frozen
class TailStep:
    """What the tail decided from one answer of the store.

    Attributes:
        restart: ``(epoch, newest id or None)`` to :meth:`StreamMirror.restart` the mirror
            with before the events, or ``None``.
        gap: Why the events before ``restart`` cannot be followed exactly (``"epoch"``:
            the log was wiped, ``"deleted"``: it no longer exists, ``"trimmed"``: events
            after the last one seen were evicted), or ``None``. Every client is told: its
            stream ends, and it resumes against the restarted mirror (an explicit gap).
        events: The next events, in the store's order, to hand to the subscribers.
    """

    restart: tuple[str, StreamId | None] | None = None
    gap: str | None = None
    events: tuple[StoredEvent, ...] = ()


_NOTHING = TailStep()


class Follower:
    """The decisions of a worker's live tail of a log in the store (no I/O).

    The adapter loops: carry out :meth:`next_request` (:class:`ReadRows`, :class:`WaitRows`
    or :class:`CreateLog`), feed the answer to :meth:`on_read`, :meth:`on_woken` or
    :meth:`on_created`, and apply the :class:`TailStep` returned. Up to date, each new
    event costs one request: the rows a :class:`WaitRows` returns carry the epoch they were
    appended in, and are handed over at once when they are of the epoch followed and start
    right after the last event handed over; anything else is read again with
    :class:`ReadRows` (the log's epoch and newest id, atomically), which decides. A request
    that failed
    (the store unreachable) is simply asked again after a backoff: the follower's place is
    only moved by answers, so it catches up from the last event it handed over.

    Every event is handed over once, in the store's order. When the store can no longer
    give the events after the last one handed over -- a new epoch (a restart without
    persistence, a wiped store), a deleted log, or events evicted before the tail read them
    -- the follower reads the log again from its oldest kept event and says so
    (:attr:`TailStep.gap`).

    Args:
        read_count: The most rows one read fetches.
    """

    def __init__(self, read_count: int = 256) -> None:
        positive_int.check("read_count", read_count)
        self._count = read_count
        self._epoch: str | None = None
        self._last: StreamId | None = None  # None: read from the oldest kept row next
        self._is_missing = False  # the log does not exist: create it next
        self._has_more = True  # read again at once (else wait for new rows)
        self._gap: str | None = None  # a gap to report with the next restart

    @property
    def epoch(self) -> str | None:
        """The epoch followed, or ``None`` before the first answer."""
        return self._epoch

    @property
    def last(self) -> StreamId | None:
        """The stream id of the last event handed over (or the log's newest when it holds
        none), or ``None`` when the next read starts from the oldest kept row."""
        return self._last

    def next_request(self) -> ReadRows | WaitRows | CreateLog:
        """What to ask the store next."""
        if self._is_missing:
            return CreateLog()
        if self._last is None:
            return ReadRows("-", self._count)
        if self._has_more:
            return ReadRows(f"({self._last}", self._count)
        return WaitRows(self._last, self._count)

    def on_woken(self, entries: Sequence[Any] = ()) -> TailStep:
        """A :class:`WaitRows` returned ``entries``: the rows after its id, each
        ``(stream id, fields)`` (the fields a mapping or a flat ``[name, value, ...]`` list),
        none when its timeout passed.

        Rows that each carry the epoch followed and start right after the last event handed
        over are handed over (the next request waits again). Otherwise the next request
        reads with :class:`ReadRows`, whose answer decides: no rows (the timeout: the log
        may have been wiped or deleted meanwhile, and a read says so within the wait's
        timeout), a row without the epoch (appended by an older sse_core), of another epoch
        (the log was wiped and made again), or after a hole (events trimmed before the tail
        read them).

        Raises:
            RemoteProtocolError: an entry is malformed.
        """
        tagged = _tagged_rows(entries)
        epoch, last = self._epoch, self._last
        if (
            not tagged
            or epoch is None
            or last is None
            or self._is_missing
            or tagged[0][0].at.n != last.n + 1
            or any(tag != epoch for _, tag in tagged)
        ):
            self._has_more = True
            return _NOTHING
        self._last = tagged[-1][0].at
        return TailStep(events=tuple(
            stored_event(epoch, row.at, row.event, row.data) for row, _ in tagged
        ))

    def on_created(self) -> None:
        """The store carried out :class:`CreateLog`: read the new log from its start."""
        self._is_missing = False
        self._last = None
        self._has_more = True

    def on_read(self, reply: Sequence[Any]) -> TailStep:
        """The store's answer to :class:`ReadRows` (``[]`` when the log does not exist, else
        ``[epoch, newest id, rows]``).

        Raises:
            RemoteProtocolError: the answer is malformed.
        """
        snapshot = _snapshot(reply)
        if snapshot is None:
            if self._epoch is not None and self._gap is None:
                self._gap = "deleted"
            self._is_missing = True
            return _NOTHING
        if self._last is None:
            return self._load(snapshot)
        last, rows = self._last, snapshot.rows
        if snapshot.epoch != self._epoch:
            return self._lost("epoch")
        if rows:
            if rows[0].at.n != last.n + 1:
                return self._lost("trimmed")
        elif snapshot.last != last:
            return self._lost("trimmed")
        self._has_more = len(rows) >= self._count
        if not rows:
            return _NOTHING
        self._last = rows[-1].at
        return TailStep(events=self._events(snapshot))

    def _load(self, snapshot: _Snapshot) -> TailStep:
        """A read from the oldest kept row: the mirror restarts there."""
        rows = snapshot.rows
        self._epoch = snapshot.epoch
        self._last = rows[-1].at if rows else snapshot.last
        self._has_more = len(rows) >= self._count
        gap, self._gap = self._gap, None
        restart = (snapshot.epoch, None if rows else snapshot.last)
        return TailStep(restart=restart, gap=gap, events=self._events(snapshot))

    def _lost(self, reason: str) -> TailStep:
        """The events after the last one handed over are not in the store: read it again
        from its oldest kept row, and report the gap with that read."""
        self._gap = reason
        self._last = None
        return _NOTHING

    def _events(self, snapshot: _Snapshot) -> tuple[StoredEvent, ...]:
        epoch = snapshot.epoch
        return tuple(stored_event(epoch, row.at, row.event, row.data) for row in snapshot.rows)
