"""Tests of the optional C accelerator ``sse_core._speedups`` against the pure-Python code.

The Python code is the specification. Every parser check runs the parser with each scanner
(``sse_core._parser._Scanner`` and the C ``Scanner``, chosen by setting
``_parser._new_scanner`` for the length of the check), and the C one must give the same items,
the same errors and the same state as the Python one. Every serializer check calls the public
functions with and without the C writer (``_serializer._write_event``) and compares the bytes
or the error (type, message, field, value); the Event checks compare the C ``EventInit`` with
the Python ``__init__`` it wraps. The module is skipped when the extension is not built or not
in use (``SSE_CORE_PURE_PYTHON=1``).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import inspect
import random
import sys
import tracemalloc
import types
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

import sse_core
import sse_core._parser as parser_module
import sse_core._serializer as serializer_module
from sse_core import (
    Comment,
    EndOfStream,
    Event,
    InvalidFieldError,
    LimitExceeded,
    Parser,
    Retry,
    StreamItem,
)
from sse_core.state import MAX_RETRY_MILLISECONDS

from .reference import reference_parse
from .strategies import split_points, sse_bytes
from .test_parser import CASES, msg, ways

_speedups = pytest.importorskip("sse_core._speedups")
if not sse_core.ACCELERATED:  # built, but left out by SSE_CORE_PURE_PYTHON=1
    pytest.skip("the C accelerator is switched off", allow_module_level=True)

PY_SCANNER = parser_module._Scanner


def c_scanner(max_line_length: int, max_event_size: int, last_event_id: str) -> Any:
    """A C scanner, made as the parser makes it."""
    return parser_module._c_scanner(max_line_length, max_event_size, last_event_id)


# The scanner factory of each implementation under test: pure Python and C.
IMPLS: dict[str, Callable[[int, int, str], Any]] = {"python": PY_SCANNER, "c": c_scanner}
both = pytest.mark.parametrize("impl", list(IMPLS))
accelerated = pytest.mark.parametrize("impl", ["c"])

# The scanner state both implementations expose under these names.
STATE = ("data", "data_size", "event_type", "own_id", "id_buffer", "last_event_id",
         "tail", "tail_size", "pending_lf", "is_at_start", "undecoded")


def test_implementations_found() -> None:
    """The parser uses the C scanner, and the Python one under test is the pure-Python
    class; the public methods stay Python functions (nothing is replaced by C)."""
    assert parser_module._new_scanner is parser_module._c_scanner
    assert type(Parser()._scanner) is _speedups.Scanner
    assert PY_SCANNER.__module__ == "sse_core._parser"
    assert isinstance(Parser.__dict__["feed"], types.FunctionType)
    assert isinstance(serializer_module.__dict__["serialize"], types.FunctionType)
    assert isinstance(serializer_module.__dict__["serialize_event"], types.FunctionType)


@contextlib.contextmanager
def using(impl: str) -> Iterator[None]:
    """Make new parsers use the named scanner for the duration."""
    saved = parser_module._new_scanner
    parser_module._new_scanner = IMPLS[impl]  # type: ignore[assignment]
    try:
        yield
    finally:
        parser_module._new_scanner = saved


def scanner_state(scanner: Any) -> tuple[Any, ...]:
    """The spec's buffers as they stand (lists copied: the Python scanner goes on using its
    own)."""
    values = [getattr(scanner, name) for name in STATE]
    return tuple(list(v) if isinstance(v, list) else v for v in values)


def state(parser: Parser) -> tuple[Any, ...]:
    """The scanner's state and the parser's own."""
    return (*scanner_state(parser._scanner), parser._state)


def run(impl: str, chunks: list[bytes], **config: Any) -> list[Any]:
    """Feed the chunks; record what each call returned or raised, and the state after it."""
    trace: list[Any] = []
    with using(impl):
        parser = Parser(**config)
        for chunk in chunks:
            try:
                trace.append(("items", parser.feed(chunk)))
            except LimitExceeded as error:
                trace.append(("error", error.limit, error.value, error.maximum, error.items))
                trace.append(("state", state(parser)))
                trace.append(("then", _raised(parser.feed, b"data: x\n\n")))
                return trace
            trace.append(("state", state(parser)))
        trace.append(("end", parser.feed_eof(), parser.last_event_id))
        trace.append(("then", _raised(parser.feed, b"data: x\n\n")))
    return trace


def _raised(function: Callable[..., Any], *args: Any) -> tuple[type[BaseException], str]:
    """The type and message of what calling the function raises."""
    with pytest.raises(Exception) as info:
        function(*args)
    return info.type, str(info.value)


def items_of(trace: list[Any]) -> tuple[list[StreamItem], object]:
    """All items of a trace, and the end of stream or the name of the limit crossed."""
    items: list[StreamItem] = []
    end: object = None
    for entry in trace:
        if entry[0] == "items":
            items.extend(entry[1])
        elif entry[0] == "error":
            items.extend(entry[4])
            end = entry[1]
        elif entry[0] == "end":
            end = entry[1]
    return items, end


# --- the spec table -------------------------------------------------------------------------


@both
@pytest.mark.parametrize("way", range(4), ids=["whole", "bytewise", "random1", "random2"])
@pytest.mark.parametrize(
    ("stream", "expected", "truncated", "leid"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_spec_cases(
    impl: str, stream: bytes, expected: list[StreamItem], truncated: bool, leid: str, way: int
) -> None:
    """Each spec table case gives the expected items with either implementation."""
    trace = run(impl, ways(stream)[way])
    assert items_of(trace) == (expected, EndOfStream(is_truncated=truncated))
    assert trace[-2][2] == leid


# --- C against Python -----------------------------------------------------------------------


@accelerated
@given(data=st.data(), stream=sse_bytes, leid=st.sampled_from(["", "5", "x y"]))
def test_same_trace_as_python(impl: str, data: st.DataObject, stream: bytes, leid: str) -> None:
    """Any stream in any chunking: the same items, end and state after every call."""
    chunks = data.draw(split_points(stream))
    assert run(impl, chunks, last_event_id=leid) == run("python", chunks, last_event_id=leid)


@accelerated
@given(
    data=st.data(),
    stream=sse_bytes,
    max_line_length=st.integers(1, 12),
    max_event_size=st.integers(1, 12),
)
def test_same_trace_as_python_with_limits(
    impl: str, data: st.DataObject, stream: bytes, max_line_length: int, max_event_size: int
) -> None:
    """With small limits: the same error (limit, value, maximum, items) at the same call."""
    chunks = data.draw(split_points(stream))
    config = {"max_line_length": max_line_length, "max_event_size": max_event_size}
    assert run(impl, chunks, **config) == run("python", chunks, **config)


# Streams where most line endings are CR or CRLF (the C feed scans them in place where the
# Python code normalises a copy): lines of the format with short values in every str kind.
_crlf_line = st.tuples(
    st.sampled_from(["data: ", "data:", "data", "id: ", "event: ", "retry: ", ":", "", "x: "]),
    st.text(alphabet="a 1:\x00\u00e9\u65e5\U0001f600", max_size=4),
    st.sampled_from(["\r\n", "\r\n", "\r", "\r", "\n", "\r\n\r\n", "\r\r", "\n\r"]),
).map(lambda parts: "".join(parts).encode())
crlf_bytes = st.lists(_crlf_line, max_size=25).map(b"".join)


@accelerated
@given(data=st.data(), stream=crlf_bytes, leid=st.sampled_from(["", "7"]))
def test_cr_line_endings_same_trace_as_python(
    impl: str, data: st.DataObject, stream: bytes, leid: str
) -> None:
    """CR- and CRLF-heavy streams in any chunking (CRLF pairs often split after the CR):
    the same items, end and state after every call as the Python feed."""
    chunks = data.draw(split_points(stream))
    assert run(impl, chunks, last_event_id=leid) == run("python", chunks, last_event_id=leid)


@accelerated
@given(
    data=st.data(),
    stream=crlf_bytes,
    max_line_length=st.integers(1, 10),
    max_event_size=st.integers(1, 10),
)
def test_cr_line_endings_with_limits(
    impl: str, data: st.DataObject, stream: bytes, max_line_length: int, max_event_size: int
) -> None:
    """CR- and CRLF-heavy streams with small limits: the same error at the same call, with
    the same items before it."""
    chunks = data.draw(split_points(stream))
    config = {"max_line_length": max_line_length, "max_event_size": max_event_size}
    assert run(impl, chunks, **config) == run("python", chunks, **config)



# Longer values, so that the C search for CR and LF runs over whole blocks of characters
# (8 two-byte characters per SSE2 comparison) and finds them at every offset in a block;
# "data: " lines before other fields make the C fast path start and give up.
_long_crlf_line = st.tuples(
    st.sampled_from(["data: ", "data: ", "data:", "id: ", "event: ", ":", "x: "]),
    st.text(alphabet="ab :\x00\u00e9\u65e5\U0001f600", max_size=40),
    st.sampled_from(["\r\n", "\r\n", "\r", "\n", "\r\n\r\n", "\n\n", "\r\r"]),
).map(lambda parts: "".join(parts).encode())


@accelerated
@given(data=st.data(), stream=st.lists(_long_crlf_line, max_size=20).map(b"".join))
def test_long_cr_lines_same_trace_as_python(
    impl: str, data: st.DataObject, stream: bytes
) -> None:
    """CR, LF and CRLF at any offset of long lines of one-, two- and four-byte text, in any
    chunking: the same items, end and state after every call as the Python feed."""
    chunks = data.draw(split_points(stream))
    assert run(impl, chunks) == run("python", chunks)


@accelerated
@pytest.mark.parametrize("wide", ["", "\u00e9", "\u65e5", "\U0001f600"])
@pytest.mark.parametrize("ending", ["\r\n", "\r", "\n"])
def test_line_ending_at_every_offset(impl: str, wide: str, ending: str) -> None:
    """A line ending after 0 to 40 characters of text of each kind, in a stream with CRs:
    the same trace as the Python feed, and the data lines as written."""
    lines = ["x" * k + wide for k in range(41)]
    body = "".join(f"data: {line}{ending}id: {k}\r\n{ending}" for k, line in enumerate(lines))
    chunks = [body.encode()]
    trace = run(impl, chunks)
    assert trace == run("python", chunks)
    assert [item.data for item in items_of(trace)[0]] == lines

_CR_STREAMS = [
    b"id: 1\r\nevent: e\r\ndata: a\r\ndata: b\r\n\r\ndata: c\r\r: x\rdata: \xc3\xa9\n\r\n",
    b"data: a\r\r\ndata: b\n\rretry: 5\r\ndata: \xe6\x97\xa5\r\n\r\ndata: \xf0\x9f\x98\x80\r\r",
    b"\xef\xbb\xbf\r\n\r\ndata\r\ndata:\r\n\r\n\r\ndata: x\r\ndata: y\r\n\r\nid\r\n\r\n",
]


@accelerated
@pytest.mark.parametrize("stream", _CR_STREAMS)
@pytest.mark.parametrize("max_line_length", [1, 3, 1 << 20])
def test_cr_line_endings_every_two_and_three_way_split(
    impl: str, stream: bytes, max_line_length: int
) -> None:
    """Mixed CR, LF and CRLF streams cut at every point and every pair of points (so every
    CRLF pair is split after its CR once), and fed byte by byte: the same trace as Python."""
    n = len(stream)
    splits = [[stream[:i], stream[i:]] for i in range(n + 1)]
    splits += [
        [stream[:i], stream[i:j], stream[j:]] for i in range(n + 1) for j in range(i, n + 1)
    ]
    splits.append([stream[i : i + 1] for i in range(n)])
    for chunks in splits:
        config = {"max_line_length": max_line_length}
        assert run(impl, chunks, **config) == run("python", chunks, **config), chunks


# Text as _process receives it, in every str kind: ASCII, Latin-1, BMP and astral characters,
# NUL, and the field names and separators of the format.
_piece = st.sampled_from(
    ["data", "data:", "data: ", "event: ", "id: ", "id:", "retry: ", "retry:", ":", ": ",
     "\n", "\n", "\n\n", " ", "a", "0", "7", "19", "\x00", "é", "ÿ", "日", "😀", "\x7f"]
) | st.text(max_size=4)
_text = st.lists(_piece, max_size=40).map("".join)


@given(
    texts=st.lists(_text, max_size=4),
    max_event_size=st.sampled_from([1, 3, 8, 1 << 20]),
    ends_lines=st.booleans(),
)
def test_scanner_direct_matches_python(
    texts: list[str], max_event_size: int, ends_lines: bool
) -> None:
    """Scanners fed directly with text of any str kind (lone surrogates included, as UTF-8
    with surrogatepass), whole lines or not: the same items, the same error and the same
    state after every call."""

    def calls(make: Callable[[int, int, str], Any]) -> list[Any]:
        scanner = make(1 << 20, max_event_size, "s")
        trace: list[Any] = []
        for text in texts:
            if ends_lines and text and not text.endswith("\n"):
                text += "\n"
            try:
                items = scanner.feed(text.encode("utf-8", "surrogatepass"))
            except LimitExceeded as error:
                trace.append((type(error), error.value, error.maximum, error.items))
                break
            trace.append((items, scanner_state(scanner)))
        trace.append(("end", scanner.end(), scanner_state(scanner)))
        return trace

    assert calls(c_scanner) == calls(PY_SCANNER)


# --- C against the reference ----------------------------------------------------------------


@accelerated
@given(data=st.data(), stream=sse_bytes)
def test_chunk_split_invariance(impl: str, data: st.DataObject, stream: bytes) -> None:
    """With the accelerator, any split gives the same items as parsing whole."""
    chunks = data.draw(split_points(stream))
    assert items_of(run(impl, chunks)) == items_of(run(impl, [stream]))


@accelerated
@given(data=st.data(), stream=sse_bytes, leid=st.sampled_from(["", "5"]))
def test_equivalent_to_reference(impl: str, data: st.DataObject, stream: bytes, leid: str) -> None:
    """With the accelerator, any split agrees with the reference transcription of the spec."""
    chunks = data.draw(split_points(stream))
    ref = reference_parse(stream, last_event_id=leid)
    trace = run(impl, chunks, last_event_id=leid)
    assert items_of(trace) == (ref.items, EndOfStream(is_truncated=ref.is_truncated))
    assert trace[-2][2] == ref.last_event_id


@accelerated
@given(
    data=st.data(),
    stream=sse_bytes,
    max_line_length=st.integers(1, 12),
    max_event_size=st.integers(1, 12),
)
def test_limits_agree_with_reference(
    impl: str, data: st.DataObject, stream: bytes, max_line_length: int, max_event_size: int
) -> None:
    """With the accelerator and small limits, a split fails where the reference does and
    keeps every item the reference produced before."""
    chunks = data.draw(split_points(stream))
    ref = reference_parse(stream, max_line_length=max_line_length, max_event_size=max_event_size)
    items, end = items_of(
        run(impl, chunks, max_line_length=max_line_length, max_event_size=max_event_size)
    )
    assert items == ref.items
    assert end == (EndOfStream(is_truncated=ref.is_truncated) if ref.error is None else ref.error)


@accelerated
@given(events=st.lists(st.text(max_size=30), min_size=1, max_size=20), data=st.data())
def test_fast_paths_match_reference(impl: str, events: list[str], data: st.DataObject) -> None:
    """Blocks of only 'data: ' lines carrying any text give the reference's events."""
    stream = b"".join(
        ("data: " + text.replace("\r", "").replace("\n", "\ndata: ") + "\n\n").encode()
        for text in events
    )
    chunks = data.draw(split_points(stream))
    assert items_of(run(impl, chunks))[0] == reference_parse(stream).items


# --- examples -------------------------------------------------------------------------------


@both
def test_fast_path_limit_reports_joined_size(impl: str) -> None:
    """A block of only data lines that is too big reports its whole joined size (the fast
    path's figure), with the events before it kept."""
    trace = run(impl, [b"data: ok\n\ndata: 12345\ndata: 6789\ndata: abc\n\n"], max_event_size=9)
    assert trace[0] == ("error", "max_event_size", 14, 9, [msg("ok")])


@both
def test_literal_path_limit_reports_running_size(impl: str) -> None:
    """In a block with other fields the data size is checked line by line: the error names
    the size at the first line that crossed the limit, after the items before it."""
    trace = run(impl, [b"id: 1\ndata: 12345\n: c\ndata: 6789\ndata: abc\n\n"], max_event_size=9)
    assert trace[0] == ("error", "max_event_size", 10, 9, [Comment(text=" c")])


@both
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"0", 0),
        (b"000", 0),
        (b"0000000000000000000000123", 123),
        (b"9" * 18, 10**18 - 1),
        (b"1" + b"0" * 17, 10**17),
        (b"1" + b"0" * 18, MAX_RETRY_MILLISECONDS),
        (b"0" * 30 + b"9" * 18, 10**18 - 1),
        (b"9" * 5000, MAX_RETRY_MILLISECONDS),
    ],
)
def test_retry_digits(impl: str, value: bytes, expected: int) -> None:
    """Retry values: leading zeros do not count; more than 18 digits report the maximum."""
    items, _ = items_of(run(impl, [b"retry: " + value + b"\n"]))
    assert items == [Retry(milliseconds=expected)]
    assert isinstance(items[0], Retry) and type(items[0].milliseconds) is int


@both
def test_event_spanning_calls(impl: str) -> None:
    """Data lines left by one feed join those of the next, in every str kind."""
    chunks = [b"event: t\nid: 1\ndata: a\xc3\xa9\ndata: b\n", "data: \u65e5\n".encode(),
              "data: \U0001f600\ndata: x\n\n".encode()]
    trace = run(impl, chunks)
    assert trace[1][1][:6] == (["a\u00e9", "b"], 4, "t", "1", "1", "")
    assert trace[3][1][:6] == (["a\u00e9", "b", "\u65e5"], 6, "t", "1", "1", "")
    assert trace[4] == ("items", [msg("a\u00e9\nb\n\u65e5\n\U0001f600\nx", "t", "1", "1")])


@both
def test_items_are_exact_types(impl: str) -> None:
    """Items are Event/Comment/Retry records whose fields are plain str (or None)."""
    items, _ = items_of(run(impl, [b": hi\nevent: e\nid: 7\ndata: a\ndata: b\n\ndata: c\n\n"]))
    assert [type(item) for item in items] == [Comment, Event, Event]
    for item in items:
        for name in ("data", "event", "last_event_id", "text"):
            if hasattr(item, name):
                assert type(getattr(item, name)) is str
    assert items[1] == msg("a\nb", "e", "7", "7") and hash(items[1]) == hash(msg("a\nb", "e",
                                                                               "7", "7"))


def test_scanner_argument_errors() -> None:
    """The C Scanner refuses missing, keyword or wrongly typed arguments, and classes whose
    fields are not data descriptors, with TypeError (a class without the fields with
    AttributeError); feed refuses a str."""
    kinds = (Event, Comment, Retry, LimitExceeded)
    with pytest.raises(TypeError):
        _speedups.Scanner(10, 10, "")
    with pytest.raises(TypeError):
        _speedups.Scanner(10, 10, "", *kinds, max_line_length=10)
    with pytest.raises(TypeError):
        _speedups.Scanner(10, 10, b"", *kinds)
    with pytest.raises(TypeError):
        _speedups.Scanner(10.0, 10, "", *kinds)
    plain = type("Plain", (), dict.fromkeys(["data", "event", "id", "last_event_id"], ""))
    with pytest.raises(TypeError, match=r"Plain\.data is not a data descriptor"):
        _speedups.Scanner(10, 10, "", plain, Comment, Retry, LimitExceeded)
    with pytest.raises(AttributeError):
        _speedups.Scanner(10, 10, "", Comment, Comment, Retry, LimitExceeded)
    with pytest.raises(TypeError):
        _speedups.Scanner(10, 10, "", *kinds).feed("data: a\n\n")


def test_scanner_state_views_are_copies() -> None:
    """The C scanner's state views are copies: changing them changes nothing it parses."""
    scanner = c_scanner(100, 100, "")
    scanner.feed(b"data: a\ndata: b")
    scanner.data.append(5)
    scanner.tail.append(5)
    assert (scanner.data, scanner.tail, scanner.tail_size) == (["a"], ["data: b"], 7)
    assert scanner.feed(b"\n\n") == [msg("a\nb")]


# --- reference counts and memory ------------------------------------------------------------


def _stream(rng: random.Random, n: int) -> bytes:
    parts = []
    for i in range(n):
        parts.append(f"id: {i}\nevent: t{i % 3}\n" if i % 4 == 0 else "")
        parts.append(": ping\n" if i % 7 == 0 else "")
        parts.append("retry: 10\n" if i % 11 == 0 else "")
        parts.append("data: " + "x" * rng.randrange(50) + "\u00e9\u65e5"[: i % 3] + "\n")
        parts.append("data: more\n" if i % 2 else "")
        parts.append("\n")
    return "".join(parts).encode()


def test_no_reference_leaks() -> None:
    """Parsing with the accelerator leaves the reference counts of the objects it shares
    (the seeded last event ID, the record classes) as they were once the items are gone."""
    seed = "".join(["seed", "-id"])  # a str object of its own
    body = _stream(random.Random(5), 300)
    chunks = [body[i : i + 97] for i in range(0, len(body), 97)]
    with using("c"):
        for _ in range(2):  # warm up caches
            parser = Parser(last_event_id=seed)
            for chunk in chunks:
                parser.feed(chunk)
            del parser
        gc.collect()
        before = (sys.getrefcount(seed), sys.getrefcount(Event), sys.getrefcount(Comment))
        for _ in range(20):
            parser = Parser(last_event_id=seed)
            items = []
            for chunk in chunks:
                items.extend(parser.feed(chunk))
            assert len(items) > 300
            del parser, items
        gc.collect()
        after = (sys.getrefcount(seed), sys.getrefcount(Event), sys.getrefcount(Comment))
    assert after == before


def traced_growth(once: Callable[[], object], *, warm: int, runs: int) -> int:
    """Bytes of traced memory that ``runs`` calls of ``once`` add after ``warm`` traced calls
    (a leak grows with ``runs``; caches filled by the warm calls do not)."""
    tracemalloc.start()
    try:
        for _ in range(warm):
            once()
        gc.collect()
        first, _ = tracemalloc.get_traced_memory()
        for _ in range(runs):
            once()
        gc.collect()
        second, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return second - first


def test_no_memory_growth() -> None:
    """Memory traced after repeated parses with the accelerator (errors included) does not
    grow with the number of parses."""
    body = _stream(random.Random(6), 200)
    chunks = [body[i : i + 61] for i in range(0, len(body), 61)]

    def once() -> None:
        parser = Parser()
        for chunk in chunks:
            parser.feed(chunk)
        failing = Parser(max_event_size=40)
        with pytest.raises(LimitExceeded):
            for chunk in chunks:
                failing.feed(chunk)

    with using("c"):
        for _ in range(3):
            once()
        gc.collect()
        growth = traced_growth(once, warm=5, runs=50)
    assert growth < 20_000


@both
def test_feed_input_types(impl: str) -> None:
    """Any bytes-like chunk is accepted; a str is refused with TypeError."""
    with using(impl):
        parser = Parser()
        assert parser.feed(bytearray(b"data: a\r")) == []
        assert parser.feed(memoryview(b"\ndata: b\n\n")) == [msg("a\nb")]
        with pytest.raises(TypeError):
            parser.feed("data: c\n\n")  # type: ignore[arg-type]


@accelerated
def test_huge_limits(impl: str) -> None:
    """Limits beyond any machine size behave as no limit, as in Python."""
    stream = b"data: " + b"x" * 1000 + b"\n\nretry: 5\n"
    config = {"max_line_length": 10**30, "max_event_size": 10**30}
    assert run(impl, [stream], **config) == run("python", [stream], **config)



@accelerated
@pytest.mark.parametrize("chunks", [
    [b"data: ab", b"c\r\n\r\n"],
    [b"data: a", "\u00e9".encode(), "\u65e5\U0001f600\n\ndata: b\n".encode(), b"\n"],
    [b"id: 1", b"2", b"3\r", b"\ndata: ", "\U0001f600".encode(), b"\r\n", b"\r\n"],
    [b":", "\U0001f600".encode(), b"x", "\u00e9\r\n".encode()],
    ["data: \u00e9".encode(), b"x", b"y\n\n"],
])
def test_unfinished_line_joined_with_wider_and_narrower_text(impl: str,
                                                             chunks: list[bytes]) -> None:
    """An unfinished line whose pieces and completing text are of different str kinds: the
    same trace, and every str handed out is canonical (equal to its copy through encode)."""
    trace = run(impl, chunks)
    assert trace == run("python", chunks)
    for item in items_of(trace)[0]:
        for value in attrs.astuple(item):
            if isinstance(value, str):
                assert value == value.encode("utf-8", "surrogatepass").decode(
                    "utf-8", "surrogatepass")
                assert hash(value) == hash("".join(list(value)))


@both
def test_last_event_id_str_subclass_is_kept(impl: str) -> None:
    """A str subclass as the seeded last event ID is the very object the events carry."""
    seed = _Str("seed")
    with using(impl):
        parser = Parser(last_event_id=seed)
        items = parser.feed(b"data: a\n\ndata: b\nevent: t\n\n")
    assert [item.last_event_id for item in items if isinstance(item, Event)] == [seed, seed]
    assert all(item.last_event_id is seed for item in items if isinstance(item, Event))
    assert parser.last_event_id is seed

@accelerated
def test_parser_subclass(impl: str) -> None:
    """A subclass of Parser (whose slots the accelerator does not address directly) parses
    the same, before and after plain Parser instances have been used."""

    class Sub(Parser):
        __slots__ = ("extra",)

    stream = b"id: 1\nevent: e\ndata: a\n\n: c\ndata: b\r\n\r\n"
    with using(impl):
        for cls in (Sub, Parser, Sub):
            parser = cls()
            assert parser.feed(stream) == [msg("a", "e", "1", "1"), Comment(text=" c"),
                                           msg("b", leid="1")]
            assert parser.last_event_id == "1"


# --- the serializer -------------------------------------------------------------------------


# The public functions call the C writer first (C_*); with _write_event set to None they are
# the pure-Python specification (PY_*).
C_SERIALIZE_EVENT: Callable[..., bytes] = serializer_module.serialize_event
C_SERIALIZE: Callable[..., bytes] = serializer_module.serialize


@contextlib.contextmanager
def without_c_writer() -> Iterator[None]:
    """Make the serializer functions pure Python for the duration."""
    saved = serializer_module._write_event
    serializer_module._write_event = None
    try:
        yield
    finally:
        serializer_module._write_event = saved


def PY_SERIALIZE_EVENT(*args: Any, **kwargs: Any) -> bytes:
    """serialize_event without the C writer."""
    with without_c_writer():
        return serializer_module.serialize_event(*args, **kwargs)


def PY_SERIALIZE(*args: Any, **kwargs: Any) -> bytes:
    """serialize without the C writer."""
    with without_c_writer():
        return serializer_module.serialize(*args, **kwargs)


def outcome(function: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, ...]:
    """What a call returns, or the type, message, field and value of what it raises."""
    try:
        return ("bytes", function(*args, **kwargs))
    except Exception as error:  # any difference in errors must show
        return (type(error), str(error), getattr(error, "field", None),
                repr(getattr(error, "value", None)))


def test_c_writer_writes_common_case_only() -> None:
    """The C writer is in use and writes the common valid case itself; for anything else it
    returns None and the Python code decides."""
    write = _speedups.write_event
    assert serializer_module._write_event is write
    assert write("a\r\nb", "t", "1", 5) == b"retry: 5\nid: 1\nevent: t\ndata: a\ndata: b\n\n"
    assert write("a", "message", None, None) == b"data: a\n\n"
    for args in [(_Str("a"), None, None, None), ("a", "", None, None), ("a", "x\ny", None, None),
                 ("a", None, "1\x00", None), ("a", None, None, -1), ("a", None, None, 2**64),
                 ("a", None, None, True), ("\ud800", None, None, None), (5, None, None, None)]:
        assert write(*args) is None, args
    with pytest.raises(TypeError):
        write("a", None, None)


class _Str(str):
    __slots__ = ()


# Text of every str kind with the characters that matter: line endings, NUL, lone surrogates.
_ser_text = st.lists(
    st.sampled_from(["a", " ", "message", "\n", "\r", "\r\n", "\x00", "é", "ÿ", "日", "😀",
                     "\ud800", "\udfff", "data: ", ":"]) | st.text(max_size=5),
    max_size=12,
).map("".join)
_ser_value = st.one_of(
    _ser_text,
    _ser_text.map(_Str),
    st.none(),
    st.sampled_from([b"x", 5, 1.5, True, ["a"]]),
)
_retry_value = st.one_of(
    st.none(), st.integers(-3, 10**6), st.integers(), st.sampled_from([True, 1.0, "5", -1]),
    st.just(10**100),
)


@given(
    data=_ser_value,
    event=_ser_value,
    id=_ser_value,
    retry=_retry_value,
    passed=st.frozensets(st.sampled_from(["event", "id", "retry"])),
)
def test_serialize_event_matches_python(
    data: Any, event: Any, id: Any, retry: Any, passed: frozenset[str]
) -> None:
    """Any values, valid or not, passed or left out: the same bytes, or the same error with
    the same field and value."""
    given_values = {"event": event, "id": id, "retry": retry}
    kwargs = {name: value for name, value in given_values.items() if name in passed}
    assert outcome(C_SERIALIZE_EVENT, data, **kwargs) == outcome(PY_SERIALIZE_EVENT, data,
                                                                   **kwargs)


@given(data=_ser_text, event=st.sampled_from([None, "message", "chat", "é日😀"]),
       id=st.sampled_from([None, "", "1", "id-é"]), retry=st.none() | st.integers(0, 10**20))
def test_serialize_event_valid_matches_python(
    data: str, event: str | None, id: str | None, retry: int | None
) -> None:
    """Valid event types and ids with any data (the fast path): the same bytes or error."""
    assert outcome(C_SERIALIZE_EVENT, data, event=event, id=id, retry=retry) == outcome(
        PY_SERIALIZE_EVENT, data, event=event, id=id, retry=retry
    )


def test_serialize_event_argument_errors_match_python() -> None:
    """Wrong arguments raise the Python function's TypeError."""
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
        ((), {}), (("a", "b"), {}), ((), {"data": "a"}), (("a",), {"events": "x"}),
        (("a",), {"event": "x", "id": None, "bogus": 1}),
    ]
    for args, kwargs in calls:
        assert outcome(C_SERIALIZE_EVENT, *args, **kwargs) == outcome(
            PY_SERIALIZE_EVENT, *args, **kwargs
        )


def _forced(cls: type, **values: Any) -> Any:
    """A record whose slots hold the given values, bypassing validation."""
    obj: Any = object.__new__(cls)
    for name, value in values.items():
        object.__setattr__(obj, name, value)
    return obj


@given(
    data=_ser_value,
    event=_ser_value,
    id=_ser_value,
    text=_ser_value,
    ms=_retry_value,
    kind=st.sampled_from(["event", "comment", "retry", "other"]),
)
def test_serialize_matches_python(
    data: Any, event: Any, id: Any, text: Any, ms: Any, kind: str
) -> None:
    """Records (built without validation, so holding any values) and non-records: the same
    bytes, or the same error."""
    item: Any = {
        "event": lambda: _forced(Event, data=data, event=event, id=id, last_event_id=""),
        "comment": lambda: _forced(Comment, text=text),
        "retry": lambda: _forced(Retry, milliseconds=ms),
        "other": lambda: data,
    }[kind]()
    assert outcome(C_SERIALIZE, item) == outcome(PY_SERIALIZE, item)


@given(data=_ser_text.filter(lambda t: "\ud800" not in t and "\udfff" not in t),
       event=st.sampled_from(["message", "chat", "é"]), id=st.sampled_from([None, "", "7"]))
def test_serialize_valid_records_round_trip(data: str, event: str, id: str | None) -> None:
    """Valid records: the Python bytes, which the parser turns back into the record."""
    item = Event(data=data, event=event, id=id)
    body = C_SERIALIZE(item)
    assert body == PY_SERIALIZE(item)
    parsed = Parser().feed(body)
    assert parsed == [Event(data=data.replace("\r\n", "\n").replace("\r", "\n"), event=event,
                            id=id, last_event_id=id or "")]
    assert C_SERIALIZE(Comment(text="hé")) == b":h\xc3\xa9\n"
    assert C_SERIALIZE(Retry(milliseconds=1500)) == b"retry: 1500\n"


def test_serialize_missing_slot_matches_python() -> None:
    """A record with an unset slot raises the Python function's AttributeError."""
    for item in (object.__new__(Event), object.__new__(Comment), object.__new__(Retry)):
        assert outcome(C_SERIALIZE, item) == outcome(PY_SERIALIZE, item)


def test_serializer_no_reference_leaks() -> None:
    """Serializing (fast path and fallback) leaves reference counts of the values as they were."""
    data = "".join(["payload ", "é\n日\r\n😀"])
    event, id = "".join(["ch", "at"]), "".join(["4", "2"])
    item = Event(data=data, event=event, id=id)

    def once() -> None:
        C_SERIALIZE_EVENT(data, event=event, id=id, retry=5)
        C_SERIALIZE(item)
        C_SERIALIZE(Comment(text=event))
        outcome(C_SERIALIZE_EVENT, data, event=event, id="a\nb")  # the Python fallback

    for _ in range(3):
        once()
    gc.collect()
    before = [sys.getrefcount(value) for value in (data, event, id, item)]
    for _ in range(200):
        once()
    gc.collect()
    assert [sys.getrefcount(value) for value in (data, event, id, item)] == before


def test_serializer_no_memory_growth() -> None:
    """Memory traced after many serializations does not grow with their number."""
    values = [("x" * i + "é\n日\r😀", "t", str(i)) for i in range(50)]

    def once() -> None:
        for data, event, id in values:
            C_SERIALIZE_EVENT(data, event=event, id=id, retry=1)
            C_SERIALIZE(Event(data=data, event=event, id=id))
        outcome(C_SERIALIZE_EVENT, "\ud800")

    for _ in range(3):
        once()
    assert traced_growth(once, warm=5, runs=100) < 20_000



def test_serializer_unencodable_field_after_encoded_data() -> None:
    """Non-ASCII data is encoded before the id and event type; when one of those holds a lone
    surrogate the encoded data is let go and the Python error is raised, without leaking."""
    data = "".join(["caf", "é\n日\r\n😀 ", "x" * 200])
    bad = "".join(["\ud800", "7"])

    def once() -> None:
        for kwargs in ({"id": bad}, {"event": bad}, {"event": "t", "id": bad}):
            got = outcome(C_SERIALIZE_EVENT, data, **kwargs)
            assert got[0] is InvalidFieldError
            assert got == outcome(PY_SERIALIZE_EVENT, data, **kwargs)
        item = Event(data=data, event=bad)
        assert outcome(C_SERIALIZE, item) == outcome(PY_SERIALIZE, item)
        assert outcome(C_SERIALIZE, Comment(text=bad)) == outcome(PY_SERIALIZE, Comment(text=bad))

    for _ in range(3):
        once()
    gc.collect()
    before = [sys.getrefcount(value) for value in (data, bad)]
    assert traced_growth(once, warm=20, runs=300) < 20_000
    assert [sys.getrefcount(value) for value in (data, bad)] == before


@pytest.mark.parametrize("data", [
    "", "\n", "\r", "\r\n", "\n\r", "\r\r\n\n", "a\rb\nc\r\nd", "\ra\n", "a\r",
    "é\r\n日\r😀\n", "ÿ\rÿ", "x" * 100 + "\r\n" + "y" * 100 + "\r", "\u2028\x85\x0c",
])
def test_serializer_line_endings_in_data(data: str) -> None:
    """Each CR, LF and CRLF pair in data, ASCII or not, becomes one "data: " line break."""
    lines = data.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    want = ("data: " + "\ndata: ".join(lines) + "\n\n").encode()
    assert C_SERIALIZE_EVENT(data) == want == PY_SERIALIZE_EVENT(data)
    assert C_SERIALIZE(Event(data=data)) == want

# --- Parser.feed's arguments ---------------------------------------------------------------


def test_feed_unusual_arguments_match_python() -> None:
    """feed(data=...) parses with either scanner as with the Python one; wrong arguments raise
    the same errors."""
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
        ((), {"data": b"data: a\n\n"}), ((), {}), ((b"x", b"y"), {}), ((), {"chunk": b"x"}),
        ((b"data: a\n\n",), {"data": b"x"}), (("data: a\n\n",), {}), ((5,), {}),
        ((memoryview(b"data: a\n\n")[::2],), {}),  # no simple buffer
    ]
    for args, kwargs in calls:
        results = []
        for impl in ("c", "python"):
            with using(impl):
                results.append(outcome(Parser().feed, *args, **kwargs))
        assert results[0] == results[1]


# --- Event.__init__ -----------------------------------------------------------------------------

# Event's __init__ is the C EventInit wrapping the Python method (its __wrapped__).
C_EVENT_INIT: Any = Event.__dict__["__init__"]
PY_EVENT_INIT: Callable[..., None] = C_EVENT_INIT.__wrapped__


@contextlib.contextmanager
def event_init(function: Callable[..., None]) -> Iterator[None]:
    """Make ``Event.__init__`` the given function for the length of the block (an EventInit
    is told its class, as Python tells it when the class is created)."""
    saved = Event.__dict__["__init__"]
    Event.__init__ = function  # type: ignore[method-assign]
    if isinstance(function, _speedups.EventInit):
        function.__set_name__(Event, "__init__")
    try:
        yield
    finally:
        Event.__init__ = saved  # type: ignore[method-assign]


def built(cls: type, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
    """The fields (value, exact type) of ``cls(*args, **kwargs)``, or what it raises."""
    try:
        item = cls(*args, **kwargs)
    except Exception as error:  # any difference in errors must show
        return (type(error), str(error), getattr(error, "field", None),
                repr(getattr(error, "value", None)))
    names = ("data", "event", "id", "last_event_id")
    return ("event", type(item), tuple((getattr(item, n), type(getattr(item, n))) for n in names))


def test_python_event_init_found() -> None:
    """Event.__init__ is the C EventInit, and the one compared against is the pure-Python
    function it wraps; inspect sees the Python signature through it."""
    assert type(C_EVENT_INIT) is _speedups.EventInit
    assert isinstance(PY_EVENT_INIT, types.FunctionType)
    assert PY_EVENT_INIT.__qualname__ == "Event.__init__"
    assert inspect.signature(Event) == inspect.signature(PY_EVENT_INIT.__get__(object()))
    assert list(inspect.signature(Event).parameters) == ["data", "event", "id", "last_event_id"]


_init_value = st.one_of(
    _ser_value,
    st.sampled_from(["message", "".join(["mess", "age"]), "", "1", "\x00", _Str("message")]),
)


@given(
    values=st.dictionaries(
        st.sampled_from(["data", "event", "id", "last_event_id", "bogus", "Data"]), _init_value
    ),
    args=st.lists(_init_value, max_size=2),
    subclass=st.booleans(),
)
def test_event_init_matches_python(values: dict[str, Any], args: list[Any],
                                   subclass: bool) -> None:
    """Any keywords, valid or not, any positional arguments, Event or a subclass: the C
    __init__ builds the same record (the same field objects of the same types) or raises the
    same error (type, message, field, value) as the Python one."""

    class Sub(Event):
        __slots__ = ()

    cls = Sub if subclass else Event
    with event_init(C_EVENT_INIT):
        got = built(cls, *args, **values)
    with event_init(PY_EVENT_INIT):
        expected = built(cls, *args, **values)
    assert got == expected


@given(data=_ser_text, event=st.sampled_from(["message", "chat", "é日😀", "a b"]),
       id=st.sampled_from([None, "", "1", "id-é", "日"]),
       last_event_id=st.sampled_from(["", "1", "é", "😀"]))
def test_event_init_valid_matches_python(data: str, event: str, id: str | None,
                                         last_event_id: str) -> None:
    """Valid values (the fast path): equal records holding the very objects passed."""
    kwargs: dict[str, Any] = {"data": data, "event": event, "id": id,
                              "last_event_id": last_event_id}
    with event_init(C_EVENT_INIT):
        item = Event(**kwargs)
    assert built(Event, **kwargs) == ("event", Event, tuple((v, type(v)) for v in
                                                            kwargs.values()))
    for name, value in kwargs.items():
        assert getattr(item, name) is value
    assert item == Event(**kwargs) and hash(item) == hash(Event(**kwargs))


def test_event_init_keeps_records_frozen() -> None:
    """Records built by the C __init__ are still immutable and compare by value."""
    with event_init(C_EVENT_INIT):
        item = Event(data="a", event="e", id="1", last_event_id="1")
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            item.data = "b"  # type: ignore[misc]
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            del item.event
        assert item == Event(data="a", event="e", id="1", last_event_id="1")
        assert attrs.evolve(item, data="b").data == "b"
        with pytest.raises(InvalidFieldError):
            attrs.evolve(item, event="a\nb")


def test_event_init_no_reference_leaks() -> None:
    """Building records (fast path, fallback, errors, re-initialising a record) leaves the
    reference counts of the values as they were once the records are gone."""
    data, event = "".join(["pay", "load"]), "".join(["ch", "at"])
    id, bad = "".join(["4", "2"]), "".join(["a\n", "b"])
    values = (data, event, id, bad, Event)

    def once() -> None:
        item = Event(data=data, event=event, id=id, last_event_id=id)
        C_EVENT_INIT(item, data=event, event=event)  # replaces the slots
        Event(data=_Str(data), id=id)  # the Python fallback
        for kwargs in ({"data": data, "event": bad}, {"data": data, "id": bad}, {"data": 1}):
            with pytest.raises(InvalidFieldError):
                Event(**kwargs)
        with pytest.raises(TypeError):
            Event(data, event=event)  # type: ignore[call-arg]

    with event_init(C_EVENT_INIT):
        for _ in range(3):
            once()
        gc.collect()
        before = [sys.getrefcount(value) for value in values]
        for _ in range(200):
            once()
        gc.collect()
        after = [sys.getrefcount(value) for value in values]
    assert after == before



# --- Event(...) without type.__call__ ---------------------------------------------------------


def call_type(cls: type, *args: Any, **kwargs: Any) -> Any:
    """``cls(*args, **kwargs)`` through ``type.__call__``, bypassing the class's vectorcall."""
    return type.__call__(cls, *args, **kwargs)


def test_event_init_hands_other_calls_to_python() -> None:
    """Whether Event is called directly or through type.__call__, the common valid call is
    done in C (the wrapped Python method is not called) and every other call by the Python
    method; replacing __init__ (and restoring it) is followed at once."""
    calls: list[dict[str, Any]] = []

    def spy(self: Event, **kwargs: Any) -> None:
        calls.append(kwargs)
        PY_EVENT_INIT(self, **kwargs)

    with event_init(_speedups.EventInit(spy)):
        for call in (Event, functools.partial(call_type, Event)):
            assert call(data="a", id="1") == Event(data="a", id="1", last_event_id="")
            assert calls == []
            with pytest.raises(InvalidFieldError):
                call(data="a", event="")
            assert calls == [{"data": "a", "event": ""}]
            calls.clear()
    with event_init(PY_EVENT_INIT):
        assert built(Event, data="a", id="1") == built(call_type, Event, data="a", id="1")
    with event_init(lambda self, **kwargs: calls.append(kwargs)):
        Event(data="b")
        assert calls == [{"data": "b"}]
    assert Event(data="c").data == "c" and calls == [{"data": "b"}]
    # (Event.__new__ is not replaced here: CPython cannot give a class its object.__new__ slot
    # back once __new__ was set on it. Subclasses with their own __new__ are tested below.)


@given(
    values=st.dictionaries(
        st.sampled_from(["data", "event", "id", "last_event_id", "bogus", "Data"]), _init_value
    ),
    args=st.lists(_init_value, max_size=2),
    subclass=st.booleans(),
)
def test_event_call_matches_type_call(values: dict[str, Any], args: list[Any],
                                      subclass: bool) -> None:
    """Any arguments, Event or a subclass: calling the class gives what type.__call__ gives
    (the same field objects, or the same error)."""

    class Sub(Event):
        __slots__ = ()

    cls = Sub if subclass else Event
    assert built(cls, *args, **values) == built(call_type, cls, *args, **values)


def test_event_init_fast_only_on_its_own_plain_class() -> None:
    """EventInit stores fields itself only on the class it was created in, when that class
    was made by ``type`` and has the four fields as data descriptors; on any other class every
    call goes to the wrapped method."""
    calls: list[dict[str, Any]] = []

    def spy(self: Any, **kwargs: Any) -> None:
        calls.append(kwargs)
        for name, value in kwargs.items():
            object.__setattr__(self, name, value)

    class Fields:
        __slots__ = ("data", "event", "id", "last_event_id")
        __init__ = _speedups.EventInit(spy)

    class NoFields:
        __init__ = _speedups.EventInit(spy)

    class Meta(type):
        pass

    class WithMeta(metaclass=Meta):
        __slots__ = ("data", "event", "id", "last_event_id")
        __init__ = _speedups.EventInit(spy)

    item = Fields(data="a", id="1")
    assert (item.data, item.event, item.id, item.last_event_id, calls) == ("a", "message", "1",
                                                                           "", [])
    for cls in (NoFields, WithMeta):
        assert cls(data="b").data == "b"
        assert calls == [{"data": "b"}]
        calls.clear()
    with pytest.raises(TypeError):
        _speedups.EventInit()
    with pytest.raises(TypeError):
        _speedups.EventInit(5)


def test_event_subclasses_are_built_by_type_call() -> None:
    """Subclasses of Event, with or without their own __init__ or __new__, are built as
    type.__call__ builds them."""

    class Plain(Event):
        __slots__ = ()

    class WithInit(Event):
        __slots__ = ("extra",)

        def __init__(self, *, extra: int, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            object.__setattr__(self, "extra", extra)

    class WithNew(Event):
        __slots__ = ()

        def __new__(cls, **kwargs: Any) -> WithNew:
            return object.__new__(cls)

    assert type(Plain(data="a")) is Plain and Plain(data="a").data == "a"
    item = WithInit(data="b", id="2", extra=3)
    assert (type(item), item.data, item.id, item.extra) == (WithInit, "b", "2", 3)
    with pytest.raises(TypeError, match="extra"):
        WithInit(data="b")
    assert WithNew(data="c", event="t").event == "t"
    with pytest.raises(InvalidFieldError):
        WithNew(data="c", event="")
    assert Event.__dict__["__init__"] is C_EVENT_INIT


def test_event_call_errors_are_the_python_ones() -> None:
    """Wrong calls of Event raise the Python __init__'s errors, with its messages."""
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
        ((), {}), (("a",), {}), ((), {"data": "a", "bogus": 1}), ((), {"event": "x"}),
        ((), {"data": 5}), ((), {"data": "a", "id": "1\x00"}), ((), {"data": "a", "event": ""}),
        ((), {"data": "a", "last_event_id": None}), (("a", "b"), {"data": "a"}),
    ]
    for args, kwargs in calls:
        got = built(Event, *args, **kwargs)
        assert got[0] != "event"
        with event_init(PY_EVENT_INIT):
            assert got == built(Event, *args, **kwargs)


def test_event_call_kwargs_forms() -> None:
    """Keywords passed by name, by ** (also with equal names that are other str objects) and
    through functools.partial or attrs.evolve build the same record."""

    want = Event(data="a", event="e", id="1", last_event_id="1")
    assert Event(**{"data": "a", "event": "e", "id": "1", "last_event_id": "1"}) == want
    assert functools.partial(Event, data="a", event="e")(id="1", last_event_id="1") == want
    assert attrs.evolve(Event(data="z"), data="a", event="e", id="1", last_event_id="1") == want
    names = {"".join(["da", "ta"]): "a", "".join(["eve", "nt"]): "e", "id": "1",
             "last_event_id": "1"}  # equal names that are not the interned objects
    assert Event(**names) == want


def test_event_call_no_reference_leaks() -> None:
    """Calling Event on the direct path (records, errors) leaves reference counts as they
    were once the records are gone, the class's included."""
    data, event = "".join(["pay", "load"]), "".join(["ch", "at"])
    id, bad = "".join(["4", "2"]), "".join(["a\n", "b"])
    values = (data, event, id, bad, Event)

    def once() -> None:
        Event(data=data, event=event, id=id, last_event_id=id)
        Event(data=data)
        for kwargs in ({"data": data, "event": bad}, {"data": data, "id": bad}, {"data": 1}):
            with pytest.raises(InvalidFieldError):
                Event(**kwargs)
        with pytest.raises(TypeError):
            Event(data, event=event)  # type: ignore[call-arg]
        with pytest.raises(TypeError):
            Event(data=data, bogus=event)  # type: ignore[call-arg]

    assert Event.__dict__["__init__"] is C_EVENT_INIT
    for _ in range(3):
        once()
    gc.collect()
    before = [sys.getrefcount(value) for value in values]
    for _ in range(200):
        once()
    gc.collect()
    assert [sys.getrefcount(value) for value in values] == before
