"""Tests of the serializer: exact bytes, refusals, and the serialize -> parse law."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sse_core import (
    HEARTBEAT,
    Comment,
    Event,
    InvalidFieldError,
    Parser,
    Retry,
    StreamItem,
    serialize,
    serialize_event,
    serialize_many,
)

from .strategies import split_points


def parse_all(chunks: list[bytes]) -> list[StreamItem]:
    parser = Parser()
    items: list[StreamItem] = []
    for chunk in chunks:
        items.extend(parser.feed(chunk))
    assert parser.feed_eof().is_truncated is False
    return items


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        (Event(data="hello"), b"data: hello\n\n"),
        (Event(data=""), b"data: \n\n"),
        (Event(data="a\nb", event="x", id="1"), b"id: 1\nevent: x\ndata: a\ndata: b\n\n"),
        (Event(data="a\r\nb\rc"), b"data: a\ndata: b\ndata: c\n\n"),
        (Event(data="x\n"), b"data: x\ndata: \n\n"),
        (Event(data=" lead", id=""), b"id: \ndata:  lead\n\n"),
        (Event(data="é"), "data: é\n\n".encode()),
        (Comment(text=" ping"), b": ping\n"),
        (Comment(), b":\n"),
        (Retry(milliseconds=2500), b"retry: 2500\n"),
    ],
)
def test_exact_bytes(item: StreamItem, expected: bytes) -> None:
    """Each item has one documented encoding."""
    assert serialize(item) == expected


def test_serialize_event_matches_serialize() -> None:
    """The plain-values API writes the same bytes as serializing a record."""
    assert serialize_event("a\nb", event="x", id="7") == serialize(
        Event(data="a\nb", event="x", id="7")
    )
    assert serialize_event("a", event="message") == b"data: a\n\n"
    assert serialize_event("a", retry=10) == b"retry: 10\ndata: a\n\n"


def test_heartbeat_is_a_comment_that_dispatches_nothing() -> None:
    """HEARTBEAT parses as one empty comment and no event."""
    assert parse_all([HEARTBEAT]) == [Comment(text="")]


def test_serialize_many_concatenates() -> None:
    """serialize_many is the concatenation of serialize over the items."""
    items: list[StreamItem] = [Retry(milliseconds=1), Event(data="a"), Comment(text="c")]
    assert serialize_many(items) == b"".join(serialize(item) for item in items)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"event": "a\nb"},
        {"event": "a\rb"},
        {"event": ""},
        {"id": "1\n2"},
        {"id": "1\r"},
        {"id": "a\x00"},
        {"retry": -1},
        {"retry": 1.5},
        {"retry": True},
        {"retry": "10"},
        {"event": 5},
    ],
)
def test_serialize_event_refuses_injection(kwargs: dict[str, Any]) -> None:
    """Values that could inject fields or events are refused with InvalidFieldError."""
    with pytest.raises(InvalidFieldError) as info:
        serialize_event("data", **kwargs)
    assert isinstance(info.value, ValueError)


def test_lone_surrogate_refused() -> None:
    """Text UTF-8 cannot encode is refused, not written as invalid bytes."""
    with pytest.raises(InvalidFieldError):
        serialize(Event(data="\ud800"))
    with pytest.raises(InvalidFieldError):
        serialize(Comment(text="\udfff"))
    with pytest.raises(InvalidFieldError):
        serialize_event("ok", id="\ud800")


def test_non_item_refused() -> None:
    """serialize only takes stream items."""
    with pytest.raises(InvalidFieldError):
        serialize("data: x\n\n")  # type: ignore[arg-type]
    with pytest.raises(InvalidFieldError):
        serialize_event(b"bytes")  # type: ignore[arg-type]


# --- the law --------------------------------------------------------------------------------

line_text = st.text().filter(lambda s: "\n" not in s and "\r" not in s)
id_text = line_text.filter(lambda s: "\x00" not in s)
items_strategy = st.one_of(
    st.builds(
        Event,
        data=st.text(),
        event=line_text.filter(bool) | st.just("message"),
        id=st.none() | id_text,
    ),
    st.builds(Comment, text=line_text),
    st.builds(Retry, milliseconds=st.integers(0, 10**15)),
)


def expected_after_parse(items: list[StreamItem]) -> list[StreamItem]:
    """What parsing the serialized items gives: CR/CRLF in data become LF and each event
    carries the last event ID as it stands after it."""
    out: list[StreamItem] = []
    last_event_id = ""
    for item in items:
        if isinstance(item, Event):
            if item.id is not None:
                last_event_id = item.id
            data = item.data.replace("\r\n", "\n").replace("\r", "\n")
            out.append(
                Event(data=data, event=item.event, id=item.id, last_event_id=last_event_id)
            )
        else:
            out.append(item)
    return out


@given(items=st.lists(items_strategy, max_size=10), data=st.data())
def test_round_trip(items: list[StreamItem], data: st.DataObject) -> None:
    """For every item the serializer accepts and every split of its bytes, the parser gives
    the item back (with the documented CR/CRLF -> LF normalisation)."""
    stream = serialize_many(items)
    chunks = data.draw(split_points(stream))
    assert parse_all(chunks) == expected_after_parse(items)


@given(data=st.text(), event=st.none() | st.text(), id=st.none() | st.text())
def test_no_injection(data: str, event: str | None, id: str | None) -> None:
    """Whatever strings are passed, serialize_event either refuses them or writes exactly one
    event carrying exactly those values -- never extra fields or events."""
    try:
        stream = serialize_event(data, event=event, id=id)
    except InvalidFieldError:
        return
    items = parse_all([stream])
    assert len(items) == 1
    event_item = items[0]
    assert isinstance(event_item, Event)
    assert event_item.data == data.replace("\r\n", "\n").replace("\r", "\n")
    assert event_item.event == (event or "message")
    assert event_item.id == id
