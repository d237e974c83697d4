"""The incremental ``text/event-stream`` parser (floor 1).

Follows WHATWG HTML, section 9.2.6 "Interpreting an event stream" and "dispatch the event".
Step references in comments name the spec's paragraphs. Bytes go in with :meth:`Parser.feed`
in any chunking; :class:`~sse_core.Event`, :class:`~sse_core.Comment` and
:class:`~sse_core.Retry` items come out in stream order.

How it is fast without leaving the spec: each chunk is decoded once, line endings are
normalised to LF with ``str.replace`` (C speed), and the text is cut into blocks at blank lines
with one ``str.split``. A block that is a single ``data: `` line, or only ``data: `` lines,
becomes an event without a per-line Python loop; every other block goes through the literal
line-by-line transcription of the spec (in ``_process``). Both paths give the same result:
the property tests compare them with a separate reference transcription kept in ``tests/``.

The parse state of a stream lives in a scanner that :class:`Parser` holds: :class:`_Scanner`
here, or ``sse_core._speedups.Scanner`` from the optional C accelerator, which has the same
methods and state and is built from the same arguments plus the record and error classes
(see the comment at the top of ``_speedups.c``). :class:`_Scanner` is its specification;
``tests/test_speedups.py`` compares the two after every call. :class:`Parser` keeps the
configuration checks and the open/closed/failed state.
"""

from __future__ import annotations

import codecs
import enum
from collections.abc import Callable
from typing import Protocol

import attrs

from ._accelerator import speedups as _speedups
from ._errors import LimitExceeded, LocalProtocolError, RemoteProtocolError
from ._events import Comment, Event, Retry, StreamItem, _make_comment, _make_event
from ._validators import one_line_no_nul, positive_int

__all__ = [
    "DEFAULT_MAX_EVENT_SIZE",
    "DEFAULT_MAX_LINE_LENGTH",
    "MAX_RETRY_MILLISECONDS",
    "EndOfStream",
    "Parser",
]

#: Default for :class:`Parser`'s ``max_line_length``: 1 MiB of code points.
DEFAULT_MAX_LINE_LENGTH = 1 << 20
#: Default for :class:`Parser`'s ``max_event_size``: 8 MiB of code points of event data.
DEFAULT_MAX_EVENT_SIZE = 8 << 20
#: A ``retry:`` value with more significant digits than 18 is reported as this (31 million
#: years); it keeps ``int()`` linear and the value usable.
MAX_RETRY_MILLISECONDS = 10**18 - 1

_UTF8Decoder = codecs.getincrementaldecoder("utf-8")
_new = object.__new__
# Slot setters of Event, for the single-line fast path (see _events._make_event).
_set_data = Event.__dict__["data"].__set__
_set_event = Event.__dict__["event"].__set__
_set_id = Event.__dict__["id"].__set__
_set_last_event_id = Event.__dict__["last_event_id"].__set__


def _make_retry(milliseconds: int) -> Retry:
    obj: Retry = _new(Retry)
    Retry.__dict__["milliseconds"].__set__(obj, milliseconds)
    return obj


@attrs.frozen(kw_only=True)
class EndOfStream:
    """What :meth:`Parser.feed_eof` found at the end of the stream.

    Attributes:
        is_truncated: True when the stream ended inside an event: an unterminated line, or a
            block with ``data``, ``event`` or ``id`` fields that no blank line dispatched. The
            spec discards such an event; a client should treat the end as a connection loss
            rather than a clean end. Trailing comments, ``retry`` fields and unknown fields
            after the last event do not count (nothing is lost with them).
    """

    is_truncated: bool


class _State(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"
    FAILED = "failed"


# Read per feed: a module global is found in a few ns, an Enum member through its class in
# about 50 ns (CPython 3.11).
_OPEN = _State.OPEN


class _ScanState(Protocol):
    """What :class:`Parser` asks of a scanner: :class:`_Scanner` or the C one."""

    @property
    def last_event_id(self) -> str:
        """The last event ID string."""

    def feed(self, data: bytes | bytearray | memoryview, /) -> list[StreamItem]:
        """Parse the next chunk; return the items it completed."""

    def end(self) -> bool:
        """End of stream: whether an event was cut short."""


class Parser:
    """Incremental parser for one ``text/event-stream`` response body.

    Feed it the body's bytes as they arrive, in chunks of any size; it returns the items
    completed by each chunk. Call :meth:`feed_eof` when the body ends. Use a new parser for
    each connection, passing the previous one's :attr:`last_event_id`.

    Limits bound memory whatever the input: at most ``max_line_length`` code points of an
    unfinished line and ``max_event_size`` code points of event data are held, plus at most
    three bytes of an unfinished UTF-8 sequence. Crossing a limit raises
    :class:`~sse_core.LimitExceeded`; items parsed by the same call before the limit was
    crossed are in the exception's ``items``, so nothing is lost. After that the parser is
    failed for good (every later call raises :class:`~sse_core.RemoteProtocolError`): the
    stream is no longer trustworthy, and the client should reconnect.

    Args:
        max_line_length: Longest line accepted, in code points, without its line ending.
        max_event_size: Longest event data accepted, in code points (lines joined by LF).
        last_event_id: The event source's last event ID string when this stream starts. The
            spec's literal text starts each stream's "last event ID buffer" empty; like
            browsers, we seed it with the last event ID, so that an event without an ``id``
            field after a reconnection keeps the ID instead of resetting it.

    Raises:
        InvalidConfigError: when a limit is not a positive int or ``last_event_id`` contains
            CR, LF or U+0000.
    """

    __slots__ = ("_scanner", "_state")

    def __init__(
        self,
        *,
        max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
        max_event_size: int = DEFAULT_MAX_EVENT_SIZE,
        last_event_id: str = "",
    ) -> None:
        positive_int.check("max_line_length", max_line_length)
        positive_int.check("max_event_size", max_event_size)
        one_line_no_nul.check("last_event_id", last_event_id)
        self._scanner = _new_scanner(max_line_length, max_event_size, last_event_id)
        self._state = _State.OPEN

    @property
    def last_event_id(self) -> str:
        """The last event ID string: set at each dispatch, even of a block without data.

        This is what a client sends as ``Last-Event-ID`` when it reconnects.
        """
        return self._scanner.last_event_id

    def feed(self, data: bytes | bytearray | memoryview) -> list[StreamItem]:
        """Parse the next chunk of the stream.

        Args:
            data: The next bytes of the body, of any length. ``b""`` is not end of stream.

        Returns:
            The items completed by this chunk, in stream order; an empty list means that
            more bytes are needed.

        Raises:
            LimitExceeded: a line or an event crossed its limit. ``items`` holds what this
                call parsed before; the parser is failed afterwards.
            RemoteProtocolError: the parser failed earlier.
            LocalProtocolError: called after :meth:`feed_eof`.
        """
        if self._state is not _OPEN:
            self._raise_not_open()
        try:
            return self._scanner.feed(data)
        except LimitExceeded:
            self._state = _State.FAILED
            raise

    def feed_eof(self) -> EndOfStream:
        """Signal the end of the stream.

        "Once the end of the file is reached, any pending data must be discarded": an
        unterminated line and an undispatched event are dropped, and reported.

        Returns:
            Whether an incomplete event was discarded.

        Raises:
            RemoteProtocolError: the parser failed earlier.
            LocalProtocolError: called twice.
        """
        if self._state is not _State.OPEN:
            self._raise_not_open()
        self._state = _State.CLOSED
        return EndOfStream(is_truncated=self._scanner.end())

    # --- internals ------------------------------------------------------------------------

    def _raise_not_open(self) -> None:
        if self._state is _State.FAILED:
            raise RemoteProtocolError("the parser failed earlier; start a new one")
        raise LocalProtocolError("the stream has ended (feed_eof was called)")


class _Scanner:
    """The parse state of one stream and the scan over it (the specification of the C one).

    ``feed`` is :meth:`Parser.feed` for an open parser; ``end`` is the work of
    :meth:`Parser.feed_eof`. A crossed limit empties the line and data buffers and raises
    :class:`~sse_core.LimitExceeded`; the scanner is not fed after that. The attributes are
    the state that ``sse_core._speedups.Scanner`` exposes under the same names.
    """

    __slots__ = (
        "data",
        "data_size",
        "decoder",
        "event_type",
        "id_buffer",
        "is_at_start",
        "last_event_id",
        "max_event_size",
        "max_line_length",
        "own_id",
        "pending_lf",
        "tail",
        "tail_size",
    )

    def __init__(self, max_line_length: int, max_event_size: int, last_event_id: str) -> None:
        self.max_line_length = max_line_length
        self.max_event_size = max_event_size
        # "UTF-8 decode" with replacement; the incremental decoder keeps a multibyte
        # character that is split across chunks until its last byte arrives.
        self.decoder = _UTF8Decoder("replace")
        self.is_at_start = True  # no character decoded yet: a BOM may still come
        self.pending_lf = False  # the last character seen was CR: skip one LF that follows
        self.tail: list[str] = []  # pieces of the unfinished line
        self.tail_size = 0
        # The three buffers of the spec (data as a list of lines, joined at dispatch).
        self.data: list[str] = []
        self.data_size = -1  # len of the data buffer without its final LF
        self.event_type = ""
        self.id_buffer = last_event_id
        # The id field of the current block, or None: what Event.id reports.
        self.own_id: str | None = None
        self.last_event_id = last_event_id  # the spec's "last event ID string"

    @property
    def undecoded(self) -> bytes:
        """The bytes of a character split across chunks, not decoded yet."""
        pending: bytes = self.decoder.getstate()[0]
        return pending

    def feed(self, data: bytes | bytearray | memoryview) -> list[StreamItem]:
        """Parse the next chunk; return the items it completed."""
        text = self.decoder.decode(data)
        if not text:
            return []
        if self.is_at_start:
            # "The UTF-8 decode algorithm strips one leading UTF-8 Byte Order Mark (BOM)".
            self.is_at_start = False
            if text[0] == "\ufeff":
                text = text[1:]
                if not text:
                    return []
        if self.pending_lf:
            # A CR ended the previous chunk; an LF right after it completes a CRLF pair and
            # is not a second line ending.
            self.pending_lf = False
            if text[0] == "\n":
                text = text[1:]
                if not text:
                    return []
        if "\r" in text:
            # "a CRLF pair, a single LF, and a single CR ... being the ways in which a line
            # can end": normalise all three to LF.
            self.pending_lf = text[-1] == "\r"
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        end = text.rfind("\n")
        if end < 0:
            # No line ends in this chunk. Keep the pieces and join them once the line ends,
            # so that a line fed byte by byte costs linear time, not quadratic.
            size = self.tail_size + len(text)
            if size > self.max_line_length:
                self._fail(LimitExceeded("max_line_length", size, self.max_line_length))
            self.tail.append(text)
            self.tail_size = size
            return []
        if self.tail:
            self.tail.append(text[: end + 1])
            complete = "".join(self.tail)  # whole lines, each ending in LF
        else:
            complete = text[: end + 1]
        tail = text[end + 1 :]
        self.tail = [tail] if tail else []
        self.tail_size = len(tail)
        out: list[StreamItem] = []
        if len(complete) > self.max_line_length + 1:
            # Only a chunk longer than the limit can hold a line longer than the limit.
            offset = 0
            for line in complete.split("\n"):
                if len(line) > self.max_line_length:
                    self._process(complete[:offset], out)
                    self._fail(
                        LimitExceeded("max_line_length", len(line), self.max_line_length, out)
                    )
                offset += len(line) + 1
        self._process(complete, out)
        if len(tail) > self.max_line_length:
            self._fail(LimitExceeded("max_line_length", len(tail), self.max_line_length, out))
        return out

    def end(self) -> bool:
        """End of stream: whether an event was cut short; empties the line and data buffers."""
        has_partial_line = bool(self.tail) or bool(self.undecoded)
        is_truncated = (
            has_partial_line
            or bool(self.data)
            or bool(self.event_type)
            or self.own_id is not None
        )
        self.tail = []
        self.data = []
        return is_truncated

    def _fail(self, error: LimitExceeded) -> None:
        self.tail = []
        self.data = []
        raise error

    def _process(self, complete: str, out: list[StreamItem]) -> None:
        """Process whole lines; ``complete`` is empty or ends with LF.

        The spec's buffers live in local variables for the length of the call (attribute
        access per line would cost more than the rest of the work) and are stored back at
        the end. A limit error leaves them unsaved: the parser is failed then anyway.
        """
        # Cut at blank lines: every block but the last was ended by a blank line (dispatch);
        # the last holds the lines of a block that is not finished yet (or is empty).
        blocks = complete.split("\n\n")
        last = len(blocks) - 1
        append = out.append
        max_size = self.max_event_size
        max_single = max_size + 6
        data = self.data
        size = self.data_size
        event_type = self.event_type
        own_id = self.own_id
        id_buffer = self.id_buffer
        committed = self.last_event_id  # the spec's "last event ID string"
        for index, block in enumerate(blocks):
            if index == last:
                if not block:
                    break
                lines = block[:-1].split("\n")
            else:
                if block[:6] == "data: " and not data and not event_type and own_id is None:
                    # Fast paths, for a block that starts with nothing pending (so the last
                    # event ID string already equals the buffer, and dispatch keeps it so).
                    if "\n" not in block:
                        # One "data: " line: the event's data is the rest of the line.
                        if len(block) > max_single:
                            self._fail(
                                LimitExceeded("max_event_size", len(block) - 6, max_size, out)
                            )
                        event: Event = _new(Event)
                        _set_data(event, block[6:])
                        _set_event(event, "message")
                        _set_id(event, None)
                        _set_last_event_id(event, id_buffer)
                        append(event)
                        continue
                    if block.count("\n") == block.count("\ndata: "):
                        # Only "data: " lines: drop each prefix, keep the LFs between them.
                        joined = block[6:].replace("\ndata: ", "\n")
                        if len(joined) > max_size:
                            self._fail(
                                LimitExceeded("max_event_size", len(joined), max_size, out)
                            )
                        append(_make_event(joined, "message", None, id_buffer))
                        continue
                lines = block.split("\n")
                lines.append("")  # the blank line that ended the block
            # The literal path: the spec's rules for each line, in order.
            for line in lines:
                if not line:
                    # "If the line is empty (a blank line): dispatch the event." Step 1: the
                    # last event ID string takes the buffer's value. Step 2: no data, no event.
                    committed = id_buffer
                    if data:
                        # Steps 3-6: data lines joined by LF (the final LF removed); the type
                        # is "message" unless the event type buffer is non-empty.
                        append(
                            _make_event("\n".join(data), event_type or "message", own_id,
                                        id_buffer)
                        )
                        data = []
                        size = -1
                    # Step 7 (and step 2): empty the data and event type buffers.
                    event_type = ""
                    own_id = None
                    continue
                if line[0] == ":":
                    # "If the line starts with a U+003A COLON character: ignore the line."
                    # We report it: servers send comments as heartbeats.
                    append(_make_comment(line[1:]))
                    continue
                # "If the line contains a colon": the field is what comes before the first
                # colon, the value what comes after, less one leading space. "Otherwise":
                # the whole line is the field name and the value is empty -- exactly what
                # partition gives.
                field, _, value = line.partition(":")
                if value[:1] == " ":
                    value = value[1:]
                # "Process the field": names are compared literally.
                if field == "data":
                    # Append the value, then an LF, to the data buffer.
                    size += len(value) + 1
                    if size > max_size:
                        self._fail(LimitExceeded("max_event_size", size, max_size, out))
                    data.append(value)
                elif field == "event":
                    event_type = value
                elif field == "id":
                    # Ignore an id that contains U+0000 NULL.
                    if "\x00" not in value:
                        id_buffer = own_id = value
                elif field == "retry" and value.isdigit() and value.isascii():
                    # Only ASCII digits (at least one), read in base ten.
                    digits = value.lstrip("0") or "0"
                    append(
                        _make_retry(int(digits) if len(digits) <= 18 else MAX_RETRY_MILLISECONDS)
                    )
                # "Otherwise: the field is ignored."
        self.data = data
        self.data_size = size
        self.event_type = event_type
        self.own_id = own_id
        self.id_buffer = id_buffer
        self.last_event_id = committed


def _c_scanner(max_line_length: int, max_event_size: int, last_event_id: str) -> _ScanState:
    """A ``sse_core._speedups.Scanner``: the C scanner, given the classes it builds and raises."""
    return _speedups.Scanner(
        max_line_length, max_event_size, last_event_id, Event, Comment, Retry, LimitExceeded
    )


# The scanner Parser uses: the C one when the accelerator is loaded (sse_core.ACCELERATED),
# else the pure-Python specification.
_new_scanner: Callable[[int, int, str], _ScanState] = (
    _Scanner if _speedups is None else _c_scanner
)
