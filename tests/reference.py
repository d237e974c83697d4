"""A small, obviously-correct transcription of WHATWG "Interpreting an event stream".

It works on the whole stream at once, one character and one line at a time, with the spec's
three buffers as plain strings, so that it can be read side by side with the spec. The property
tests check that ``sse_core.Parser`` -- fed in any chunking -- gives exactly what this gives.

Additions the spec leaves to implementations, mirrored from sse_core's documented behaviour:
comments and ``retry`` values are reported as items; the last event ID buffer starts as the
given ``last_event_id``; the optional limits stop the parse at the first line longer than
``max_line_length`` or the first data line that makes the data longer than ``max_event_size``.
"""

from __future__ import annotations

import codecs
import re
import sys
from dataclasses import dataclass, field

from sse_core import Comment, Event, Retry

MAX_RETRY = 10**18 - 1


@dataclass
class ReferenceResult:
    """What the reference parse produced."""

    items: list[Event | Comment | Retry] = field(default_factory=list)
    last_event_id: str = ""
    is_truncated: bool = False
    #: The name of the limit that stopped the parse, or None.
    error: str | None = None


def reference_parse(
    data: bytes,
    *,
    last_event_id: str = "",
    max_line_length: int | None = None,
    max_event_size: int | None = None,
) -> ReferenceResult:
    """Parse a complete stream (followed by end of file) the way the spec describes."""
    result = ReferenceResult(last_event_id=last_event_id)
    # "UTF-8 decode": errors become U+FFFD; one leading BOM is stripped. An incomplete
    # sequence at the very end is left undecoded (it can only belong to the unterminated
    # line, which end of file discards); it is not counted against max_line_length.
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    text = decoder.decode(data, final=False)
    undecoded = decoder.getstate()[0]
    if text.startswith("\ufeff"):
        text = text[1:]
    # Lines end in CRLF, in LF, or in CR; the part after the last line ending is not a line.
    *lines, unterminated = re.split(r"\r\n|\r|\n", text)

    data_buffer = ""
    event_type_buffer = ""
    last_event_id_buffer = last_event_id
    own_id: str | None = None

    for line in lines:
        if max_line_length is not None and len(line) > max_line_length:
            result.error = "max_line_length"
            return result
        if line == "":
            # Dispatch the event.
            result.last_event_id = last_event_id_buffer  # step 1
            if data_buffer == "":  # step 2
                data_buffer = ""
                event_type_buffer = ""
                own_id = None
                continue
            if data_buffer.endswith("\n"):  # step 3
                data_buffer = data_buffer[:-1]
            event_type = event_type_buffer if event_type_buffer != "" else "message"
            result.items.append(
                Event(data=data_buffer, event=event_type, id=own_id,
                      last_event_id=result.last_event_id)
            )
            data_buffer = ""  # step 7
            event_type_buffer = ""
            own_id = None
            continue
        if line.startswith(":"):
            result.items.append(Comment(text=line[1:]))
            continue
        if ":" in line:
            index = line.index(":")
            name = line[:index]
            value = line[index + 1 :]
            if value.startswith(" "):
                value = value[1:]
        else:
            name = line
            value = ""
        if name == "event":
            event_type_buffer = value
        elif name == "data":
            data_buffer = data_buffer + value + "\n"
            if max_event_size is not None and len(data_buffer) - 1 > max_event_size:
                result.error = "max_event_size"
                return result
        elif name == "id":
            if "\x00" not in value:
                last_event_id_buffer = value
                own_id = value
        elif name == "retry":
            if value != "" and all(c in "0123456789" for c in value):
                sys.set_int_max_str_digits(0)  # the value may be longer than 4300 digits
                result.items.append(Retry(milliseconds=min(int(value), MAX_RETRY)))
    if max_line_length is not None and len(unterminated) > max_line_length:
        result.error = "max_line_length"
        return result
    # End of file: pending data is discarded.
    result.is_truncated = (
        unterminated != ""
        or undecoded != b""
        or data_buffer != "" or event_type_buffer != "" or own_id is not None
    )
    return result
