"""Hypothesis strategies shared by the protocol tests."""

from __future__ import annotations

from hypothesis import strategies as st

# Pieces that make the parser's branches likely: field names, separators, every kind of
# line ending, U+0000, a BOM, bytes of split and invalid UTF-8, digits.
_FRAGMENTS = [
    b"data", b"data:", b"data: ", b"event:", b"event: ", b"id:", b"id: ", b"id",
    b"retry:", b"retry: ", b"retry", b":", b": ", b" ", b"\n", b"\n", b"\r", b"\r\n",
    b"\n\n", b"\x00", b"\xef\xbb\xbf", b"\xff", b"\xc3", b"\xa9", b"\xe2\x82", b"\xac",
    b"\xf0\x9f\x98", b"\x80", b"a", b"1", b"42", b"007", b"x y", b"Data", b"\xd9\xa1",
]

_soup = st.lists(
    st.one_of(st.sampled_from(_FRAGMENTS), st.binary(max_size=6)), max_size=60
).map(b"".join)

# Streams made of plausible lines: a field prefix, a short value, a line ending.
_line = st.tuples(
    st.sampled_from(["data", "data:", "data: ", "id: ", "id:", "event: ", "retry: ", ":", "",
                     "foo: ", "data:  "]),
    st.text(alphabet="ab 1:\x00\u00e9\ufeff", max_size=5),
    st.sampled_from(["\n", "\n", "\r", "\r\n", "\n\n", "\r\n\r\n", ""]),
).map(lambda parts: "".join(parts).encode())
_lines = st.lists(_line, max_size=30).map(b"".join)

#: Byte streams that exercise the parser: a soup of SSE fragments and arbitrary bytes, or
#: sequences of plausible lines with every kind of line ending.
sse_bytes = st.one_of(_soup, _lines)


@st.composite
def split_points(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """Cut ``data`` at arbitrary points (possibly none, possibly empty chunks)."""
    cuts = draw(st.lists(st.integers(0, len(data)), max_size=12))
    if draw(st.booleans()):
        # Cut right after every CR: the case of a CRLF pair split across two chunks.
        cuts += [i + 1 for i, byte in enumerate(data) if byte == 0x0D]
    cuts.sort()
    chunks = []
    start = 0
    for cut in cuts:
        chunks.append(data[start:cut])
        start = cut
    chunks.append(data[start:])
    return chunks
