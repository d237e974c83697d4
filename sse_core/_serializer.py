"""The ``text/event-stream`` serializer (floor 1).

Every item becomes UTF-8 bytes in one ``str.encode`` call. Nothing it writes can inject a
field or an event: ``event`` and ``id`` values never contain a line break (the records refuse
them on construction and :func:`serialize_event` checks them), and data is split into one
``data:`` line per line, so the parser gives back exactly the data that went in -- except that
CR and CRLF inside data come back as LF, because the format has no way to carry them.

The law, checked by the property tests: for every item the serializer accepts, and every
split of its bytes, :class:`~sse_core.Parser` returns the item.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from ._accelerator import speedups as _speedups
from ._errors import InvalidFieldError, LocalProtocolError
from ._events import Comment, Event, Retry, StreamItem
from ._validators import (
    non_negative_int,
    non_negative_number,
    nonempty_one_line,
    one_line_no_nul,
)

__all__ = [
    "HEARTBEAT",
    "STAMP_PREFIX",
    "read_stamp",
    "serialize",
    "serialize_event",
    "serialize_many",
    "serialize_stamp",
]

#: A heartbeat frame: an empty comment and a blank line. Parsers report it as a
#: :class:`~sse_core.Comment` and it dispatches nothing; proxies that buffer until a blank
#: line pass it on.
HEARTBEAT = b":\n\n"

# The optional C accelerator's writer: write_event(data, event, id, retry) returns the bytes
# for the common valid values and None for anything else, which the code below then handles
# (it is the specification; tests/test_speedups.py compares the two). None: pure Python.
_write_event = None if _speedups is None else _speedups.write_event


# Validated "event: <type>\n" lines by type. Streams use a handful of types; the cache is
# bounded so that arbitrary types cannot grow it.
_EVENT_LINES: dict[str, str] = {"message": ""}
_MAX_CACHED_EVENT_LINES = 256


def _event_text(data: str, event: str, id: str | None) -> str:
    # One "data: " line per data line; the blank line dispatches. Values go after ": "
    # because the parser removes exactly one leading space. Built with one f-string: each
    # "+" would copy the whole frame again.
    if "\n" in data or "\r" in data:
        if "\r" in data:
            data = data.replace("\r\n", "\n").replace("\r", "\n")
        data = data.replace("\n", "\ndata: ")
    head = _EVENT_LINES.get(event)
    if head is None:
        if not event or "\n" in event or "\r" in event:  # only checked lines are cached
            raise InvalidFieldError("event", event, "must be a non-empty str without CR or LF")
        head = f"event: {event}\n"
        if len(_EVENT_LINES) < _MAX_CACHED_EVENT_LINES:
            _EVENT_LINES[event] = head
    if id is None:
        return f"{head}data: {data}\n\n"
    return f"id: {id}\n{head}data: {data}\n\n"


def _encode(text: str, field: str, value: object) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        reason = "contains a lone surrogate; UTF-8 cannot encode it"
        raise InvalidFieldError(field, value, reason) from None


def serialize(item: StreamItem) -> bytes:
    """Encode one item as ``text/event-stream`` bytes.

    An :class:`~sse_core.Event` becomes its ``id`` line (when ``id`` is not ``None``), its
    ``event`` line (unless it is ``"message"``), one ``data:`` line per data line -- at least
    one, so that empty data is dispatched -- and a blank line. ``last_event_id`` is not
    written. A :class:`~sse_core.Comment` becomes ``:text``; a :class:`~sse_core.Retry`
    becomes ``retry: N``. Neither adds a blank line.

    Encode once and send the same bytes to every client of a broadcast.

    Args:
        item: The event, comment or retry to write.

    Returns:
        The UTF-8 bytes.

    Raises:
        InvalidFieldError: text contains a lone surrogate (not encodable in UTF-8), or
            ``item`` is not a stream item.
    """
    if isinstance(item, Event):
        data, event, id = item.data, item.event, item.id
        # (The writer takes None for "message"; a record's event is never None.)
        if _write_event is not None and event is not None:
            written = _write_event(data, event, id, None)
            if written is not None:
                return written
        return _encode(_event_text(data, event, id), "data", data)
    if isinstance(item, Comment):
        return _encode(":" + item.text + "\n", "comment", item.text)
    if isinstance(item, Retry):
        return b"retry: %d\n" % item.milliseconds
    raise InvalidFieldError("item", item, "expected an Event, Comment or Retry")


def serialize_event(
    data: str,
    *,
    event: str | None = None,
    id: str | None = None,
    retry: int | None = None,
) -> bytes:
    """Encode an event from plain values, without building an :class:`~sse_core.Event`.

    The same checks as the records' constructors apply, so the result can never inject.

    Args:
        data: The event's data; CR and CRLF are sent as line breaks.
        event: The event type; ``None`` or ``"message"`` sends no ``event`` line.
        id: The event's id; ``None`` sends no ``id`` line, ``""`` resets the last event ID.
        retry: A reconnection time in milliseconds to send before the event, or ``None``.

    Returns:
        The UTF-8 bytes of the ``retry`` line (if any) followed by the event.

    Raises:
        InvalidFieldError: ``event`` is empty or contains CR/LF; ``id`` contains CR, LF or
            U+0000; ``retry`` is not a non-negative int; ``data`` is not a str or contains a
            lone surrogate.
    """
    if _write_event is not None:
        written = _write_event(data, event, id, retry)
        if written is not None:
            return written
    if not isinstance(data, str):
        raise InvalidFieldError("data", data, f"expected str, got {type(data).__name__}")
    if event is None:
        event = "message"
    elif not (type(event) is str and event in _EVENT_LINES):
        nonempty_one_line.check("event", event, error=InvalidFieldError)
    if id is not None:
        one_line_no_nul.check("id", id, error=InvalidFieldError)
    text = _event_text(data, event, id)
    if retry is not None:
        non_negative_int.check("retry", retry, error=InvalidFieldError)
        text = f"retry: {retry}\n{text}"
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        field, value = ("data", data) if not _is_encodable(data) else ("id", id)
        reason = "contains a lone surrogate; UTF-8 cannot encode it"
        raise InvalidFieldError(field, value, reason) from None


def _is_encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def serialize_many(items: Iterable[StreamItem]) -> bytes:
    """Encode several items into one bytes object, in order.

    Args:
        items: The items to write.

    Returns:
        The concatenation of :func:`serialize` of each item.

    Raises:
        InvalidFieldError: as :func:`serialize`; nothing is returned then.
    """
    return b"".join([serialize(item) for item in items])


def serialize_block(item: Comment | Retry) -> bytes:
    """Encode a comment or a ``retry:`` as a block of its own: its line and a blank line.

    A server writes it before the first event (WHATWG HTML 9.2.6: the blank line ends the
    block and, with no data, dispatches nothing).
    """
    return serialize(item) + b"\n"


def serialize_padding(size: int) -> bytes:
    """A comment block of exactly ``size`` bytes (at least 3: ``:``, LF, blank line).

    Sent first, it pushes a response past the buffer of a proxy that holds small bodies.
    """
    return serialize_block(Comment(text=" " * max(0, size - 3)))


#: What the text of a send-time stamp comment starts with (``:t=<unix ms>``).
STAMP_PREFIX = "t="


def serialize_stamp(wall_now: float) -> bytes:
    """A send-time stamp: the comment line ``:t=<unix time in whole milliseconds>``, rounded
    down (a stamp is never later than the send, so a client on the same clock never reads
    one from its future).

    Written right before an event's lines, it is part of the event's block but no field of
    it: every WHATWG client ignores a line that starts with a colon (HTML 9.2.6), so the
    event other clients see is unchanged; :class:`~sse_core.ClientSession` reads it for its
    latency histogram. No blank line follows, so it dispatches nothing by itself.

    Args:
        wall_now: The server's wall-clock time, Unix seconds.

    Raises:
        LocalProtocolError: ``wall_now`` is not a finite number >= 0.
    """
    non_negative_number.check("wall_now", wall_now, error=LocalProtocolError)
    return f":{STAMP_PREFIX}{math.floor(wall_now * 1000)}\n".encode("ascii")


def read_stamp(text: str) -> float | None:
    """The Unix time in seconds a stamp comment's text carries, or ``None`` when the comment
    is no stamp (a heartbeat, padding, anything else)."""
    if text[:2] != STAMP_PREFIX:
        return None
    digits = text[2:]
    if len(digits) > 16 or not (digits.isdigit() and digits.isascii()):
        return None  # (isdigit() is False for "")
    return int(digits) / 1000
