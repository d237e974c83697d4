"""Tests of sse_core.Parser against WHATWG HTML 9.2.6 "Interpreting an event stream".

Every table case runs three ways (h11's habit): the whole stream in one chunk, one byte at a
time, and split at seeded random points.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sse_core import (
    Comment,
    EndOfStream,
    Event,
    InvalidConfigError,
    LimitExceeded,
    LocalProtocolError,
    Parser,
    RemoteProtocolError,
    Retry,
    StreamItem,
)
from sse_core.state import MAX_RETRY_MILLISECONDS

from .reference import reference_parse
from .strategies import split_points, sse_bytes


def parse(chunks: list[bytes], **config: Any) -> tuple[list[StreamItem], EndOfStream, Parser]:
    parser = Parser(**config)
    items: list[StreamItem] = []
    for chunk in chunks:
        items.extend(parser.feed(chunk))
    return items, parser.feed_eof(), parser


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def random_split(data: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    chunks, start = [], 0
    while start < len(data):
        size = rng.randint(1, 7)
        chunks.append(data[start : start + size])
        start += size
    return chunks


def ways(data: bytes) -> list[list[bytes]]:
    return [[data], bytewise(data), random_split(data, 1), random_split(data, 2)]


def msg(data: str, event: str = "message", id: str | None = None, leid: str = "") -> Event:
    return Event(data=data, event=event, id=id, last_event_id=leid)


# (name, stream, expected items, is_truncated, last_event_id after the stream)
CASES: list[tuple[str, bytes, list[StreamItem], bool, str]] = [
    ("simple", b"data: hello\n\n", [msg("hello")], False, ""),
    # "The UTF-8 decode algorithm strips one leading UTF-8 Byte Order Mark (BOM), if any."
    ("bom stripped", b"\xef\xbb\xbfdata: a\n\n", [msg("a")], False, ""),
    ("second bom kept, field unknown", b"\xef\xbb\xbf\xef\xbb\xbfdata: a\n\ndata: b\n\n",
     [msg("b")], False, ""),
    ("bom only at stream start", b"data: a\n\n\xef\xbb\xbfdata: b\n\n", [msg("a")], False, ""),
    # Line endings: "a CRLF pair, a single LF ..., and a single CR".
    ("crlf", b"data: a\r\ndata: b\r\n\r\n", [msg("a\nb")], False, ""),
    ("cr", b"data: a\rdata: b\r\r", [msg("a\nb")], False, ""),
    ("mixed endings", b"data: a\r\ndata: b\rdata: c\n\r\n", [msg("a\nb\nc")], False, ""),
    ("cr then lf is one ending", b"data: a\r\n\r\ndata: b\r\r\n", [msg("a"), msg("b")],
     False, ""),
    # "If the line is not empty but does not contain a colon: the whole line is the field
    # name, and the empty string is the value."
    ("field without colon", b"data\n\n", [msg("")], False, ""),
    ("two empty data lines", b"data\ndata\n\n", [msg("\n")], False, ""),
    # "If value starts with a U+0020 SPACE character, remove it from value" -- only one.
    ("no space", b"data:test\n\n", [msg("test")], False, ""),
    ("one space removed", b"data:  test\n\n", [msg(" test")], False, ""),
    ("tab kept", b"data:\ttest\n\n", [msg("\ttest")], False, ""),
    ("colon in value", b"data: a:b: c\n\n", [msg("a:b: c")], False, ""),
    # "Otherwise: the field is ignored"; names are compared literally.
    ("unknown field", b"foo: bar\ndata: a\nDATA: b\nData: c\n\n", [msg("a")], False, ""),
    ("event field", b"event: update\ndata: a\n\n", [msg("a", "update")], False, ""),
    ("empty event type is message", b"event:\ndata: a\n\n", [msg("a")], False, ""),
    # Dispatch step 7: the event type buffer is reset after each dispatch...
    ("event type reset", b"event: x\ndata: a\n\ndata: b\n\n",
     [msg("a", "x"), msg("b")], False, ""),
    # ... and step 2 resets it even when no event is dispatched.
    ("event type reset without data", b"event: x\n\ndata: b\n\n", [msg("b")], False, ""),
    # Step 2: "If the data buffer is an empty string ... return": nothing is dispatched.
    ("no data, no event", b"event: x\n\n\n\n", [], False, ""),
    ("empty data dispatched", b"data:\n\n", [msg("")], False, ""),
    ("data trailing lf removed once", b"data:\ndata:\n\n", [msg("\n")], False, ""),
    # "id": sets the last event ID buffer; step 1 of dispatch copies it even without data.
    ("id persists", b"id: 1\ndata: a\n\ndata: b\n\n", [msg("a", id="1", leid="1"),
                                                       msg("b", leid="1")], False, "1"),
    ("id only block commits", b"id: 7\n\n", [], False, "7"),
    ("id reset by empty id", b"id: 1\ndata: a\n\nid\ndata: b\n\n",
     [msg("a", id="1", leid="1"), msg("b", id="", leid="")], False, ""),
    # "If the field value does not contain U+0000 NULL ... Otherwise, ignore the field."
    ("id with nul ignored", b"id: 1\n\nid: a\x00b\ndata: x\n\n", [msg("x", leid="1")],
     False, "1"),
    ("last id field wins", b"id: 1\nid: 2\ndata: x\n\n", [msg("x", id="2", leid="2")],
     False, "2"),
    # "retry": only ASCII digits; reported as its own item, never as a message.
    ("retry", b"retry: 1500\n", [Retry(milliseconds=1500)], False, ""),
    ("retry alone dispatches nothing", b"retry: 10\n\n", [Retry(milliseconds=10)], False, ""),
    ("retry with leading zeros", b"retry: 0010\n", [Retry(milliseconds=10)], False, ""),
    ("retry not digits", b"retry: 10a\nretry: -1\nretry: 1.5\nretry:\nretry:  5\n", [],
     False, ""),
    ("retry non-ascii digits", "retry: \u0661\u0662\n".encode(), [], False, ""),
    ("retry huge is clamped", b"retry: " + b"9" * 40 + b"\n",
     [Retry(milliseconds=MAX_RETRY_MILLISECONDS)], False, ""),
    ("retry inside an event", b"data: a\nretry: 5\ndata: b\n\n",
     [Retry(milliseconds=5), msg("a\nb")], False, ""),
    # Comments: "If the line starts with a U+003A COLON character: ignore the line" (for
    # dispatch); sse_core reports them.
    ("comment", b": ping\n:\n::x\n", [Comment(text=" ping"), Comment(text=""),
                                     Comment(text=":x")], False, ""),
    ("comment inside event", b"data: a\n: c\ndata: b\n\n",
     [Comment(text=" c"), msg("a\nb")], False, ""),
    # UTF-8 decode with replacement, including characters split across chunks.
    ("invalid utf-8", b"data: \xff\xc3(\n\n", [msg("\ufffd\ufffd(")], False, ""),
    ("multibyte", "data: é€😀\n\n".encode(), [msg("é€😀")], False, ""),
    ("nul in data kept", b"data: a\x00b\n\n", [msg("a\x00b")], False, ""),
    # "If the file ends in the middle of an event ... the incomplete event is not dispatched."
    ("incomplete event", b"data: a\n\ndata: b\n", [msg("a")], True, ""),
    ("unterminated line", b"data: a\n\ndata: b", [msg("a")], True, ""),
    ("unterminated retry not applied", b"retry: 5", [], True, ""),
    ("pending id is truncation", b"id: 9\n", [], True, ""),
    ("trailing comment is clean", b"data: a\n\n: bye\n", [msg("a"), Comment(text=" bye")],
     False, ""),
    ("partial utf-8 at end", b"data: a\n\n\xe2\x82", [msg("a")], True, ""),
    # The spec's own examples (9.2.6).
    ("spec example blocks",
     b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\n"
     b"data:  third event\n\n",
     [Comment(text=" test stream"), msg("first event", id="1", leid="1"),
      msg("second event", id="", leid=""), msg(" third event")], False, ""),
    ("spec example empty data", b"data\n\ndata\ndata\n\ndata:",
     [msg(""), msg("\n")], True, ""),
    ("spec example identical", b"data:test\n\ndata: test\n\n", [msg("test"), msg("test")],
     False, ""),
    ("spec example yhoo", b"data: YHOO\ndata: +2\ndata: 10\n\n", [msg("YHOO\n+2\n10")],
     False, ""),
]


@pytest.mark.parametrize("way", range(4), ids=["whole", "bytewise", "random1", "random2"])
@pytest.mark.parametrize(
    ("stream", "expected", "truncated", "leid"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_spec_cases(
    stream: bytes, expected: list[StreamItem], truncated: bool, leid: str, way: int
) -> None:
    """Each spec rule gives the same items however the stream is chunked."""
    items, end, parser = parse(ways(stream)[way])
    assert items == expected
    assert end == EndOfStream(is_truncated=truncated)
    assert parser.last_event_id == leid


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_spec_cases_match_reference(case: tuple[str, bytes, list[StreamItem], bool, str]) -> None:
    """The reference transcription agrees with every table case (it checks the table too)."""
    _, stream, expected, truncated, leid = case
    ref = reference_parse(stream)
    assert (ref.items, ref.is_truncated, ref.last_event_id) == (expected, truncated, leid)


def test_cr_at_chunk_end_then_lf() -> None:
    """A CR ending one chunk and an LF starting the next are one line ending, not two."""
    parser = Parser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\ndata: b\r") == []
    assert parser.feed(b"\n\r") == [msg("a\nb")]
    # The event was dispatched by the CR alone; the LF after it adds no blank line.
    assert parser.feed(b"\n") == []
    assert parser.feed(b"data: c\n\n") == [msg("c")]


def test_cr_dispatches_immediately() -> None:
    """A blank line ended by CR dispatches at once, without waiting for a possible LF."""
    parser = Parser()
    assert parser.feed(b"data: a\r\r") == [msg("a")]


def test_bom_split_across_chunks() -> None:
    """A BOM whose bytes arrive one at a time is still stripped once at stream start."""
    items, _, _ = parse([b"\xef", b"\xbb", b"\xbf", b"data: a\n\n"])
    assert items == [msg("a")]


def test_seeded_last_event_id() -> None:
    """The last event ID given at construction carries into events without an id field."""
    parser = Parser(last_event_id="41")
    assert parser.last_event_id == "41"
    assert parser.feed(b"data: a\n\n") == [msg("a", leid="41")]
    assert parser.feed(b"id: 42\ndata: b\n\n") == [msg("b", id="42", leid="42")]


def test_feed_empty_is_not_eof() -> None:
    """Feeding b'' returns nothing and does not end the stream."""
    parser = Parser()
    assert parser.feed(b"data: a\n") == []
    assert parser.feed(b"") == []
    assert parser.feed(b"\n") == [msg("a")]


def test_accepts_bytearray_and_memoryview() -> None:
    """Any bytes-like chunk is accepted."""
    parser = Parser()
    assert parser.feed(bytearray(b"data: a\n")) == []
    assert parser.feed(memoryview(b"\n")) == [msg("a")]


def test_feed_after_eof_is_local_error() -> None:
    """Using the parser after feed_eof is the caller's mistake."""
    parser = Parser()
    parser.feed_eof()
    with pytest.raises(LocalProtocolError):
        parser.feed(b"data: a\n\n")
    with pytest.raises(LocalProtocolError):
        parser.feed_eof()


@pytest.mark.parametrize(
    "config",
    [
        {"max_line_length": 0},
        {"max_line_length": -5},
        {"max_event_size": 0},
        {"max_event_size": 1.5},
        {"max_line_length": True},
        {"last_event_id": "a\nb"},
        {"last_event_id": "a\x00"},
    ],
)
def test_invalid_config(config: dict[str, Any]) -> None:
    """Bad limits or a last event ID that could not be sent are refused up front."""
    with pytest.raises(InvalidConfigError) as info:
        Parser(**config)
    assert isinstance(info.value, ValueError)


# --- limits ---------------------------------------------------------------------------------


def test_line_limit_in_one_chunk_keeps_earlier_items() -> None:
    """A too-long line raises LimitExceeded carrying the items parsed before it."""
    parser = Parser(max_line_length=10)
    with pytest.raises(LimitExceeded) as info:
        parser.feed(b"data: a\n\n: c\ndata: 0123456789\n\n")
    error = info.value
    assert (error.limit, error.maximum) == ("max_line_length", 10)
    assert error.value == len("data: 0123456789")
    assert error.items == [msg("a"), Comment(text=" c")]
    assert isinstance(error, RemoteProtocolError)


def test_line_limit_exact_length_is_accepted() -> None:
    """A line of exactly max_line_length code points is fine, in any chunking."""
    stream = b"data: 0123\n\n"  # the line has 10 code points
    for chunks in ways(stream):
        items, _, _ = parse(chunks, max_line_length=10)
        assert items == [msg("0123")]


def test_parser_is_failed_after_limit() -> None:
    """After a limit error every call says the parser failed (h11's ERROR state)."""
    parser = Parser(max_line_length=4)
    with pytest.raises(LimitExceeded):
        parser.feed(b"data: long")
    with pytest.raises(RemoteProtocolError, match="failed earlier"):
        parser.feed(b"\n\n")
    with pytest.raises(RemoteProtocolError, match="failed earlier"):
        parser.feed_eof()


def test_line_limit_bounds_memory_without_newline() -> None:
    """A stream with no newline fails as soon as the line passes the limit: memory stays
    bounded by the limit, not by the stream (a 1 GB stream would fail at the same point)."""
    limit = 100_000
    parser = Parser(max_line_length=limit)
    chunk = b"a" * 65536
    fed = 0
    with pytest.raises(LimitExceeded) as info:
        for _ in range(16384):  # up to 1 GiB
            parser.feed(chunk)
            fed += len(chunk)
    assert fed <= limit  # it failed on the first chunk that crossed the limit
    assert info.value.limit == "max_line_length"


def test_event_size_limit() -> None:
    """Data beyond max_event_size raises, with earlier events kept, in any chunking."""
    stream = b"data: ok\n\ndata: 12345\ndata: 6789\n\n"
    for chunks in ways(stream):
        parser = Parser(max_event_size=9)
        got: list[StreamItem] = []
        with pytest.raises(LimitExceeded) as info:
            for chunk in chunks:
                got.extend(parser.feed(chunk))
        assert got + info.value.items == [msg("ok")]
        assert info.value.limit == "max_event_size"


def test_event_size_limit_exact_is_accepted() -> None:
    """Data of exactly max_event_size code points (LFs between lines included) passes."""
    stream = b"data: 1234\ndata: 5678\n\ndata: 123456789\n\n"
    for chunks in ways(stream):
        items, _, _ = parse(chunks, max_event_size=9)
        assert items == [msg("1234\n5678"), msg("123456789")]


def test_many_data_lines_bounded_by_event_size() -> None:
    """Endless empty data lines still grow the data buffer and so hit the event limit."""
    parser = Parser(max_event_size=1000)
    with pytest.raises(LimitExceeded) as info:
        for _ in range(10_000):
            parser.feed(b"data\n" * 100)
    assert info.value.limit == "max_event_size"


# --- properties -----------------------------------------------------------------------------


def run_chunks(chunks: list[bytes], **config: Any) -> tuple[list[StreamItem], object, str]:
    """Parse chunks; return items, then the end result or the limit name, and the last ID."""
    parser = Parser(**config)
    items: list[StreamItem] = []
    try:
        for chunk in chunks:
            items.extend(parser.feed(chunk))
        end: object = parser.feed_eof()
    except LimitExceeded as error:
        items.extend(error.items)
        end = error.limit
    return items, end, parser.last_event_id


@given(data=st.data(), stream=sse_bytes)
def test_chunk_split_invariance(data: st.DataObject, stream: bytes) -> None:
    """Any split of any byte stream gives the same items as parsing it whole."""
    chunks = data.draw(split_points(stream))
    assert run_chunks(chunks) == run_chunks([stream])


@given(stream=sse_bytes)
def test_equivalent_to_reference_whole(stream: bytes) -> None:
    """Parsing whole agrees with the reference transcription of the spec."""
    ref = reference_parse(stream)
    items, end, _ = run_chunks([stream])
    assert items == ref.items
    assert end == EndOfStream(is_truncated=ref.is_truncated)


@given(data=st.data(), stream=sse_bytes, leid=st.sampled_from(["", "5", "x y"]))
def test_equivalent_to_reference_split(data: st.DataObject, stream: bytes, leid: str) -> None:
    """Parsing in arbitrary chunks agrees with the reference, last event ID included."""
    chunks = data.draw(split_points(stream))
    ref = reference_parse(stream, last_event_id=leid)
    items, end, last = run_chunks(chunks, last_event_id=leid)
    assert (items, end) == (ref.items, EndOfStream(is_truncated=ref.is_truncated))
    if ref.error is None:
        assert last == ref.last_event_id


@given(stream=sse_bytes, leid=st.sampled_from(["", "5"]))
def test_an_event_with_its_own_id_reports_it_as_the_last_event_id(
    stream: bytes, leid: str
) -> None:
    """``id`` and ``last_event_id`` differ only when the event has no id of its own: an
    event whose block had an id field reports that id as the last event ID too."""
    items, _, _ = run_chunks([stream], last_event_id=leid)
    for event in items:
        if isinstance(event, Event) and event.id is not None:
            assert event.last_event_id == event.id


@given(
    data=st.data(),
    stream=sse_bytes,
    max_line_length=st.integers(1, 12),
    max_event_size=st.integers(1, 12),
)
def test_limits_agree_with_reference(
    data: st.DataObject, stream: bytes, max_line_length: int, max_event_size: int
) -> None:
    """With small limits, every split fails at the same place as the reference and keeps
    every item the reference produced before that place."""
    chunks = data.draw(split_points(stream))
    ref = reference_parse(
        stream, max_line_length=max_line_length, max_event_size=max_event_size
    )
    items, end, _ = run_chunks(
        chunks, max_line_length=max_line_length, max_event_size=max_event_size
    )
    assert items == ref.items
    if ref.error is None:
        assert end == EndOfStream(is_truncated=ref.is_truncated)
    else:
        assert end == ref.error


@given(events=st.lists(st.text(max_size=30), min_size=1, max_size=20), data=st.data())
def test_fast_paths_match_literal_path(events: list[str], data: st.DataObject) -> None:
    """Blocks of only 'data: ' lines (the parser's fast paths) give the same events as the
    reference, whatever text they carry."""
    stream = b"".join(
        ("data: " + text.replace("\r", "").replace("\n", "\ndata: ") + "\n\n").encode()
        for text in events
    )
    chunks = data.draw(split_points(stream))
    assert run_chunks(chunks)[0] == reference_parse(stream).items
