"""Chunked messages: split_message and ChunkAssembler (floor 2: state object).

A payload too large for one event (a proxy's buffer, a parser's ``max_event_size``) is sent
as several events and rebuilt on the other side. :func:`split_message` cuts it;
:class:`ChunkAssembler` puts messages back together, in a bounded amount of memory, whatever
order the chunks arrive in and whatever the peer sends.

Wire convention
---------------

Each chunk is an ordinary :class:`~sse_core.Event` whose ``event`` is the dedicated chunk type
(:data:`CHUNK_EVENT`, ``"sse-chunk"``, unless both sides configure another) and whose ``data``
is one header line, a line feed, and the chunk's text::

    data      = header LF text
    header    = msg-id SP index SP count SP size SP type
    msg-id    = 1*64( ALPHA / DIGIT / "-" / "." / "_" / "~" )   ; same on every chunk
    index     = number          ; 0 <= index < count
    count     = number          ; how many chunks the message has, >= 1
    size      = number          ; the whole payload's length in UTF-8 bytes
    type      = 1*256( any character but CR and LF )  ; the message's own event type,
                                                        ; never the chunk type itself
    number    = "0" / ( %x31-39 *17DIGIT )  ; ASCII decimal, no sign, no leading zeros
    text      = the chunk's part of the payload (may contain LF; may be empty)

``SP`` is one space (U+0020) and ``LF`` one line feed. The header is the same on every chunk
of a message except for ``index``. The texts of chunks ``0 .. count-1``, concatenated in index
order, are the payload; their UTF-8 lengths add up to ``size``. Chunks may arrive in any order,
interleaved with other messages' chunks and with ordinary events. The ``id`` field of the
chunk events is not part of the convention: :func:`split_message` puts the message's SSE id
on the last chunk only, so that ``Last-Event-ID`` never points into the middle of a message
and a server replaying from it resends the whole of an unfinished message.

For example ``split_message("hello, wörld", message_id="m1", max_chunk_size=5,
event="greeting", id="7")`` gives three events that serialize as::

    event: sse-chunk
    data: m1 0 3 13 greeting
    data: hello

    event: sse-chunk
    data: m1 1 3 13 greeting
    data: , wö

    id: 7
    event: sse-chunk
    data: m1 2 3 13 greeting
    data: rld

Sizes are UTF-8 bytes, what the wire and the proxies in between count. Chunks are cut on
code-point boundaries (a ``str`` has no surrogate pairs to split), so each chunk's text
encodes to at most ``max_chunk_size`` bytes; the header line and its LF add at most 123 bytes
plus the UTF-8 size of ``type``. A ``text/event-stream`` cannot carry CR inside data (CR and CRLF
come back as LF), so :func:`split_message` turns CRLF and lone CR into LF *before* cutting:
the assembled payload is the payload with that normalisation, exactly what sending it as one
event would have delivered, and ``size`` is the size after it.
"""

from __future__ import annotations

import enum
import re

import attrs

from ._errors import InvalidConfigError, InvalidFieldError, LimitExceeded
from ._events import Comment, Event, Retry, StreamItem
from ._validators import (
    MonotonicNow,
    int_at_least,
    nonempty_one_line,
    positive_int,
    positive_number,
)

__all__ = [
    "AssemblerOutput",
    "CHUNK_EVENT",
    "ChunkAssembler",
    "ChunkConfig",
    "ChunkLimitExceeded",
    "DropReason",
    "MessageDropped",
    "split_message",
]

#: The event type of chunk events unless both sides configure another.
CHUNK_EVENT = "sse-chunk"

_MAX_MESSAGE_ID_LENGTH = 64
_MAX_TYPE_LENGTH = 256
_MAX_DIGITS = 18
_NUMBER = rf"(0|[1-9][0-9]{{0,{_MAX_DIGITS - 1}}})"
_MESSAGE_ID = re.compile(rf"[0-9A-Za-z._~-]{{1,{_MAX_MESSAGE_ID_LENGTH}}}")
_HEADER = re.compile(
    rf"([0-9A-Za-z._~-]{{1,{_MAX_MESSAGE_ID_LENGTH}}}) {_NUMBER} {_NUMBER} {_NUMBER} "
    rf"([^\r\n]{{1,{_MAX_TYPE_LENGTH}}})"
)
# Longest header line the grammar allows; the search for its LF never looks further.
_MAX_HEADER_LENGTH = _MAX_MESSAGE_ID_LENGTH + 3 * (_MAX_DIGITS + 1) + 1 + _MAX_TYPE_LENGTH


def _normalise_newlines(text: str) -> str:
    if "\r" in text:
        return text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def _utf8_size(text: str) -> int:
    if text.isascii():
        return len(text)
    # surrogatepass: an Event built by hand may hold a lone surrogate; count it, never fail.
    return len(text.encode("utf-8", "surrogatepass"))


_max_chunk_size = int_at_least(4)


def split_message(
    payload: str,
    *,
    message_id: str,
    max_chunk_size: int,
    event: str = "message",
    id: str | None = None,
    chunk_event: str = CHUNK_EVENT,
) -> list[Event]:
    """Cut one payload into chunk events that a :class:`ChunkAssembler` puts back together.

    Always returns at least one event, even for a payload that would fit in one (the empty
    payload is one chunk with empty text); send small payloads as plain events if you prefer.

    Args:
        payload: The message's data. CRLF and lone CR become LF first, as they would on the
            wire; the sizes in the headers are those of the normalised payload.
        message_id: Names the message on the wire: 1 to 64 characters from ``A-Z a-z 0-9 - .
            _ ~``. It must not be reused while an earlier message with the same id may still
            be incomplete at a receiver.
        max_chunk_size: Largest UTF-8 size of one chunk's text, in bytes (the header line
            comes on top). At least 4, so that every code point fits.
        event: The message's own event type, which the assembled event will carry: 1 to 256
            characters, no CR or LF, not ``chunk_event``.
        id: The SSE ``id`` to give the last chunk (the other chunks get none), or ``None``.
        chunk_event: The event type of the chunk events.

    Returns:
        The chunk events in index order.

    Raises:
        InvalidFieldError: ``payload`` is not a str or holds a lone surrogate (UTF-8 cannot
            encode it); ``message_id`` breaks its grammar; ``event`` or ``chunk_event`` is
            empty, contains CR/LF, is too long, or ``event == chunk_event``; ``id`` contains
            CR, LF or U+0000.
        InvalidConfigError: ``max_chunk_size`` is not an int >= 4.
    """
    if not isinstance(payload, str):
        raise InvalidFieldError("data", payload, f"expected str, got {type(payload).__name__}")
    if not isinstance(message_id, str) or not _MESSAGE_ID.fullmatch(message_id):
        raise InvalidFieldError(
            "message_id", message_id, "must be 1 to 64 characters from A-Z a-z 0-9 - . _ ~"
        )
    _max_chunk_size.check("max_chunk_size", max_chunk_size)
    nonempty_one_line.check("chunk_event", chunk_event, error=InvalidFieldError)
    nonempty_one_line.check("event", event, error=InvalidFieldError)
    if len(event) > _MAX_TYPE_LENGTH:
        raise InvalidFieldError("event", event, f"longer than {_MAX_TYPE_LENGTH} characters")
    if event == chunk_event:
        raise InvalidFieldError("event", event, "must differ from the chunk event type")
    try:
        encoded = _normalise_newlines(payload).encode("utf-8")
    except UnicodeEncodeError:
        reason = "contains a lone surrogate; UTF-8 cannot encode it"
        raise InvalidFieldError("data", payload, reason) from None
    total = len(encoded)
    # Cut points: as far as max_chunk_size allows, then back over UTF-8 continuation bytes
    # (10xxxxxx) so that every cut falls between two code points.
    cuts = [0]
    start = 0
    while total - start > max_chunk_size:
        end = start + max_chunk_size
        while encoded[end] & 0xC0 == 0x80:
            end -= 1
        cuts.append(end)
        start = end
    cuts.append(total)
    count = len(cuts) - 1
    last = count - 1
    events = []
    for index in range(count):
        text = encoded[cuts[index] : cuts[index + 1]].decode("utf-8")
        data = f"{message_id} {index} {count} {total} {event}\n{text}"
        events.append(Event(data=data, event=chunk_event, id=id if index == last else None))
    return events


def _chunk_event(instance: object, attribute: object, value: object) -> None:
    if value == "message":
        raise InvalidConfigError("chunk_event must not be 'message': every plain event has it")


@attrs.frozen(kw_only=True)
class ChunkConfig:
    """Limits and timing of a :class:`ChunkAssembler`.

    Every limit is checked against the values a chunk's header *announces* before anything is
    stored, and nothing is allocated from an announced value, so a peer that announces a huge
    message only earns a :class:`ChunkLimitExceeded`.

    Attributes:
        max_chunks: Most chunks one message may announce. At least 1.
        max_message_size: Largest payload one message may announce, in UTF-8 bytes. At least 1.
        max_pending: Most messages held incomplete at once. At least 1.
        max_buffered_size: Most UTF-8 bytes all incomplete messages may announce together
            (their sizes are reserved when they start), or ``None`` for no bound beyond
            ``max_pending * max_message_size``. At least ``max_message_size`` when given.
        timeout: Seconds an incomplete message is kept after its last new chunk before it is
            reported abandoned. Positive and finite.
        chunk_event: The event type that marks chunk events. Non-empty, no CR or LF, not
            ``"message"``.

    Raises:
        InvalidConfigError: on construction, when a value is out of range or of the wrong type.
    """

    max_chunks: int = attrs.field(default=1024, validator=positive_int)
    max_message_size: int = attrs.field(default=4 * 1024 * 1024, validator=positive_int)
    max_pending: int = attrs.field(default=16, validator=positive_int)
    max_buffered_size: int | None = attrs.field(default=None, validator=positive_int.or_none())
    timeout: float = attrs.field(default=30.0, validator=positive_number)
    chunk_event: str = attrs.field(
        default=CHUNK_EVENT, validator=[nonempty_one_line, _chunk_event]
    )

    def __attrs_post_init__(self) -> None:
        if self.max_buffered_size is not None and self.max_buffered_size < self.max_message_size:
            raise InvalidConfigError(
                f"max_buffered_size ({self.max_buffered_size}) must be at least "
                f"max_message_size ({self.max_message_size})"
            )


class ChunkLimitExceeded(LimitExceeded):
    """A chunk announced a message beyond a limit of :class:`ChunkConfig`; it was refused.

    A :class:`~sse_core.LimitExceeded` (so a :class:`~sse_core.RemoteProtocolError`) that also
    names the refused message. The assembler is unchanged apart from what the same call did
    before (messages it expired, which are in :attr:`items`): the chunk was not stored and every
    other message is unaffected, so the caller may go on feeding.

    Attributes:
        limit: The :class:`ChunkConfig` keyword: ``"max_chunks"``, ``"max_message_size"``,
            ``"max_pending"`` or ``"max_buffered_size"``.
        value: The announced count or size (for ``max_pending``, the number of pending
            messages there would have been; for ``max_buffered_size``, the bytes reserved
            there would have been).
        maximum: The configured maximum.
        items: :class:`MessageDropped` records the call produced before it raised.
        message_id: The ``msg-id`` of the refused chunk.
    """

    def __init__(
        self, limit: str, value: int, maximum: int, items: list[MessageDropped], message_id: str
    ) -> None:
        super().__init__(limit, value, maximum, items)
        self.message_id = message_id

    def __str__(self) -> str:
        return f"message {self.message_id!r} refused: {super().__str__()}"


class DropReason(enum.Enum):
    """Why a :class:`MessageDropped` record was produced."""

    #: The chunk's ``data`` does not follow the header grammar (or its type is the chunk
    #: type). Nothing else is dropped; ``message_id`` is ``None``.
    MALFORMED = "malformed"
    #: The chunk's count, size or type differ from an earlier chunk of the same message.
    INCONSISTENT = "inconsistent"
    #: A chunk came again with a different text (a repeat with the same text is ignored).
    CONFLICT = "conflict"
    #: The chunks' texts add up to more, or (once all are in) less, than the announced size.
    SIZE_MISMATCH = "size_mismatch"
    #: No new chunk for ``timeout`` seconds: the message was abandoned.
    EXPIRED = "expired"
    #: :meth:`ChunkAssembler.clear` discarded the message.
    CLEARED = "cleared"


@attrs.frozen(kw_only=True)
class MessageDropped:
    """A message, or a chunk, the assembler had to throw away: loss is never silent.

    Attributes:
        reason: Why; see :class:`DropReason`.
        message_id: The message's ``msg-id``, or ``None`` for a ``MALFORMED`` chunk.
        event: The message's own event type as announced by its first chunk, or ``None``
            for a ``MALFORMED`` chunk.
        received: How many distinct chunks of it were held (0 when it was never stored).
        count: How many chunks it announced, or ``None`` for a ``MALFORMED`` chunk.
        detail: A sentence for logs saying what was expected and what was seen.
    """

    reason: DropReason
    message_id: str | None
    event: str | None
    received: int
    count: int | None
    detail: str


#: What :meth:`ChunkAssembler.feed` returns: items passed through, assembled events, reports.
AssemblerOutput = Event | Comment | Retry | MessageDropped


class _Pending:
    """An incomplete message: its announced header and the chunks held so far."""

    __slots__ = ("chunks", "count", "deadline", "event", "final_id", "size", "total")

    def __init__(self, event: str, count: int, total: int, deadline: float) -> None:
        self.event = event
        self.count = count
        self.total = total
        self.chunks: dict[int, str] = {}
        self.size = 0  # UTF-8 bytes held in chunks
        self.final_id: str | None = None  # the SSE id of chunk count-1, once it came
        self.deadline = deadline


class ChunkAssembler(MonotonicNow):
    """Rebuilds chunked messages from the events of a stream; passes everything else through.

    Feed it every item the parser gives (:meth:`feed`). Items that are not chunk events come
    back unchanged, in order. A chunk event is stored until its message is complete; then the
    message comes back as one :class:`~sse_core.Event` with the payload as ``data``, the
    announced type as ``event``, the SSE ``id`` of the message's last chunk (index
    ``count - 1``) as ``id`` and the ``last_event_id`` of the chunk that completed it.

    Peer faults are answered in a defined way (the offending message is dropped, every other
    one is unaffected) and reported as :class:`MessageDropped` records among the output:

    * a chunk whose data breaks the header grammar (``MALFORMED``; only that chunk is dropped);
    * a chunk whose count, size or type differ from its message's first chunk
      (``INCONSISTENT``);
    * a chunk repeated with different text (``CONFLICT``); a repeat with the same text is
      ignored and counted in :attr:`duplicates`;
    * texts adding up to more, or in the end less, than the announced size (``SIZE_MISMATCH``);
    * a message with no new chunk for ``timeout`` seconds (``EXPIRED``), reported by the
      first :meth:`feed` or :meth:`poll` at or after its deadline (see :meth:`next_deadline`).

    A chunk that *announces* more than a limit allows raises :class:`ChunkLimitExceeded` (see
    :class:`ChunkConfig`); it is not stored and nothing else changes. Chunks of a message that
    was dropped, and late repeats of one that was completed, start it afresh: it cannot
    complete, and is reported when it expires.

    Memory is bounded: at most ``max_pending`` messages, each holding at most
    ``max_message_size`` UTF-8 bytes of text in at most ``max_chunks`` chunks, all together at
    most ``max_buffered_size`` bytes (a ``str`` costs 1 to 4 bytes per code point, so Python
    memory is within 4 times that, plus per-chunk overhead). A ``now`` earlier than one
    already passed is refused with :class:`~sse_core.ClockError` and changes nothing (see
    :doc:`/state/clock`).

    Args:
        config: The limits; ``ChunkConfig()`` when omitted.
    """

    __slots__ = ("_config", "_duplicates", "_pending", "_reserved", "_size")

    def __init__(self, config: ChunkConfig | None = None) -> None:
        MonotonicNow.__init__(self)
        self._config = ChunkConfig() if config is None else config
        # Incomplete messages by msg-id, in order of deadline: a message that makes progress
        # is moved to the end, and since now never decreases and timeout is constant, the
        # first entry always has the earliest deadline.
        self._pending: dict[str, _Pending] = {}
        self._reserved = 0  # sum of the announced sizes of pending messages
        self._size = 0  # sum of the UTF-8 sizes of the chunks held
        self._duplicates = 0

    @property
    def config(self) -> ChunkConfig:
        """The limits this assembler was built with."""
        return self._config

    def __len__(self) -> int:
        """Return how many messages are incomplete right now (at most ``max_pending``)."""
        return len(self._pending)

    @property
    def buffered_size(self) -> int:
        """UTF-8 bytes of chunk text held right now (at most ``reserved_size``)."""
        return self._size

    @property
    def reserved_size(self) -> int:
        """Sum of the announced sizes of the incomplete messages (at most ``max_buffered_size``)."""
        return self._reserved

    @property
    def duplicates(self) -> int:
        """How many chunks were ignored because the same chunk, same text, was already held."""
        return self._duplicates

    def next_deadline(self) -> float | None:
        """Return when the next incomplete message will expire, or ``None`` if none is held.

        Call :meth:`poll` at (or after) that instant to get it reported.
        """
        for pending in self._pending.values():
            return pending.deadline
        return None

    def poll(self, now: float) -> list[MessageDropped]:
        """Report every incomplete message whose deadline is at or before ``now``.

        Args:
            now: The current monotonic time in seconds.

        Returns:
            One ``EXPIRED`` record per abandoned message, earliest deadline first; the messages
            are forgotten.

        Raises:
            ClockError: ``now`` is not finite or is earlier than a previous ``now``.
        """
        self._take_now(now)
        return self._expire(now)

    def clear(self) -> list[MessageDropped]:
        """Forget every incomplete message (for example when the stream ends for good).

        Returns:
            One ``CLEARED`` record per message that was discarded, oldest progress first.
        """
        out = [
            self._record(DropReason.CLEARED, mid, p, "discarded by clear()")
            for mid, p in self._pending.items()
        ]
        self._pending.clear()
        self._reserved = 0
        self._size = 0
        return out

    def feed(self, item: StreamItem, now: float) -> list[AssemblerOutput]:
        """Take one item from the stream.

        Args:
            item: An item from the parser. Everything but an :class:`~sse_core.Event` of type
                ``chunk_event`` comes back unchanged.
            now: The current monotonic time in seconds.

        Returns:
            ``EXPIRED`` records for messages whose deadline passed (first), then ``item``
            itself if it is not a chunk event, or the assembled event if it completed a
            message, or a :class:`MessageDropped` record if it was refused; nothing if it was
            stored or ignored as a repeat.

        Raises:
            ChunkLimitExceeded: the chunk announced a message beyond a limit; the records of
                this call are in its ``items``. Nothing was stored, nothing else changed.
            ClockError: ``now`` is not finite or is earlier than a previous ``now``.
        """
        self._take_now(now)
        out: list[AssemblerOutput] = []
        out.extend(self._expire(now))
        if not isinstance(item, Event) or item.event != self._config.chunk_event:
            out.append(item)
        else:
            self._take(item, now, out)
        return out

    # -- internals ---------------------------------------------------------------------------

    def _record(
        self, reason: DropReason, mid: str, pending: _Pending, detail: str
    ) -> MessageDropped:
        return MessageDropped(
            reason=reason,
            message_id=mid,
            event=pending.event,
            received=len(pending.chunks),
            count=pending.count,
            detail=detail,
        )

    def _forget(self, mid: str) -> _Pending:
        pending = self._pending.pop(mid)
        self._reserved -= pending.total
        self._size -= pending.size
        return pending

    def _expire(self, now: float) -> list[MessageDropped]:
        out: list[MessageDropped] = []
        pending_by_id = self._pending
        while pending_by_id:
            mid = next(iter(pending_by_id))
            pending = pending_by_id[mid]
            if pending.deadline > now:
                break
            self._forget(mid)
            detail = (
                f"expected {pending.count} chunks, had {len(pending.chunks)} when no new chunk "
                f"came for {self._config.timeout} s"
            )
            out.append(self._record(DropReason.EXPIRED, mid, pending, detail))
        return out

    def _drop(
        self, reason: DropReason, mid: str, detail: str, out: list[AssemblerOutput]
    ) -> None:
        out.append(self._record(reason, mid, self._forget(mid), detail))

    def _take(self, chunk: Event, now: float, out: list[AssemblerOutput]) -> None:
        data = chunk.data
        newline = data.find("\n", 0, _MAX_HEADER_LENGTH + 1)
        match = _HEADER.fullmatch(data, 0, newline) if newline >= 0 else None
        if match is None or int(match[2]) >= int(match[3]) or match[5] == chunk.event:
            out.append(
                MessageDropped(
                    reason=DropReason.MALFORMED,
                    message_id=None,
                    event=None,
                    received=0,
                    count=None,
                    detail=f"chunk header does not follow the grammar: {data[:80]!r}",
                )
            )
            return
        mid, event = match[1], match[5]
        index, count, total = int(match[2]), int(match[3]), int(match[4])
        text = data[newline + 1 :]
        size = _utf8_size(text)
        pending = self._pending.get(mid)
        if pending is None:
            self._start(chunk, mid, event, index, count, total, text, size, now, out)
            return
        if (count, total, event) != (pending.count, pending.total, pending.event):
            detail = (
                f"chunk {index} announced count {count}, size {total}, type {event!r}; the "
                f"message has count {pending.count}, size {pending.total}, type "
                f"{pending.event!r}"
            )
            self._drop(DropReason.INCONSISTENT, mid, detail, out)
            return
        held = pending.chunks.get(index)
        if held is not None:
            if held == text:
                self._duplicates += 1
                return
            detail = f"chunk {index} came again with a different text"
            self._drop(DropReason.CONFLICT, mid, detail, out)
            return
        if pending.size + size > total:
            detail = f"chunks add up to at least {pending.size + size} bytes, announced {total}"
            self._drop(DropReason.SIZE_MISMATCH, mid, detail, out)
            return
        pending.chunks[index] = text
        pending.size += size
        self._size += size
        if index == count - 1:
            pending.final_id = chunk.id
        if len(pending.chunks) < count:
            # Progress: a new deadline, so the message moves to the end of the order.
            pending.deadline = now + self._config.timeout
            del self._pending[mid]
            self._pending[mid] = pending
            return
        if pending.size != total:
            detail = f"chunks add up to {pending.size} bytes, announced {total}"
            self._drop(DropReason.SIZE_MISMATCH, mid, detail, out)
            return
        self._forget(mid)
        chunks = pending.chunks
        out.append(
            Event(
                data="".join([chunks[i] for i in range(count)]),
                event=event,
                id=pending.final_id,
                last_event_id=chunk.last_event_id,
            )
        )

    def _start(
        self,
        chunk: Event,
        mid: str,
        event: str,
        index: int,
        count: int,
        total: int,
        text: str,
        size: int,
        now: float,
        out: list[AssemblerOutput],
    ) -> None:
        config = self._config
        if count > config.max_chunks:
            raise ChunkLimitExceeded("max_chunks", count, config.max_chunks, _records(out), mid)
        if total > config.max_message_size:
            raise ChunkLimitExceeded(
                "max_message_size", total, config.max_message_size, _records(out), mid
            )
        if size > total or (count == 1 and size != total):
            out.append(
                MessageDropped(
                    reason=DropReason.SIZE_MISMATCH,
                    message_id=mid,
                    event=event,
                    received=0,
                    count=count,
                    detail=f"chunk {index} holds {size} bytes, the message announced {total}",
                )
            )
            return
        if count == 1:
            last_event_id = chunk.last_event_id
            out.append(Event(data=text, event=event, id=chunk.id, last_event_id=last_event_id))
            return
        if len(self._pending) >= config.max_pending:
            raise ChunkLimitExceeded(
                "max_pending", len(self._pending) + 1, config.max_pending, _records(out), mid
            )
        max_buffered = config.max_buffered_size
        if max_buffered is not None and self._reserved + total > max_buffered:
            raise ChunkLimitExceeded(
                "max_buffered_size", self._reserved + total, max_buffered, _records(out), mid
            )
        pending = _Pending(event, count, total, now + config.timeout)
        pending.chunks[index] = text
        pending.size = size
        if index == count - 1:
            pending.final_id = chunk.id
        self._pending[mid] = pending
        self._reserved += total
        self._size += size


def _records(out: list[AssemblerOutput]) -> list[MessageDropped]:
    # Before a limit is checked, a call has produced nothing but expiry records.
    return [item for item in out if isinstance(item, MessageDropped)]
