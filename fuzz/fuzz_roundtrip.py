"""Atheris harness for the serializer round trip (serializer -> parser).

Invariant (the law in ``sse_core._serializer``): for every item the constructors and the
serializer accept, and every split of the serialized bytes, :class:`sse_core.Parser` gives
the item back -- data with CR and CRLF turned into LF, ``retry`` clamped to
``MAX_RETRY_MILLISECONDS``, and ``Event.last_event_id`` tracking the ids sent so far -- and
``feed_eof()`` reports no truncation. Items the constructors refuse (``InvalidFieldError``)
are skipped, and so are items ``serialize`` refuses with ``InvalidFieldError`` (lone
surrogates). ``serialize_event`` must agree byte for byte with ``serialize`` of the records,
and ``serialize_many`` with the concatenation. Any other exception is a crash.

Input format (see ``make_corpus.py``)::

    byte 0      initial last_event_id: one of LAST_EVENT_IDS (byte % 4)
    byte 1      n: number of split offsets (taken % 8)
    2*n bytes   big-endian split offsets, each taken modulo len(serialized) + 1
    then records until the input ends; each starts with a kind byte (kind % 4):
      0 Event   flags byte (bit 0: has event, bit 1: has id), then strings data [event] [id]
      1 Comment string text
      2 Retry   length byte L, then L bytes: the milliseconds, big-endian
      3 Event sent with serialize_event(..., retry=...): as 0, then a Retry as 2

A string is a 2-byte big-endian length L and L bytes, decoded as UTF-8 (surrogates allowed)
or, when that fails, as UTF-16-LE (surrogates allowed), so that any code point -- lone
surrogates included -- can be reached.

Run: ``python fuzz/fuzz_roundtrip.py CORPUS_DIR -max_total_time=60`` (see ``fuzz/README.md``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

LAST_EVENT_IDS = ("", "7", "prev-id", "\u00e9\U0001f600")

_ROOT = Path(__file__).resolve().parent.parent
# Appended, not prepended: an installed sse_core (the sanitizer build in .venv-fuzz, see
# .ci/fuzz.sh) must win over the source tree, which is only the fallback (and holds tests/).
if str(_ROOT) not in sys.path:
    sys.path.append(str(_ROOT))

sse_core: Any = None


def _import_targets() -> None:
    global sse_core
    import sse_core


# --- input format ----------------------------------------------------------------------------


def encode_string(text: str) -> bytes:
    """Encode one string field (used by ``make_corpus.py``)."""
    raw = text.encode("utf-8", "surrogatepass")
    return len(raw).to_bytes(2, "big") + raw


def encode_input(
    records: Sequence[bytes], *, last_event_id_index: int = 0, splits: Sequence[int] = ()
) -> bytes:
    """Build a harness input from already-encoded records (used by ``make_corpus.py``)."""
    header = bytes([last_event_id_index % 4, len(splits) % 8])
    return header + b"".join(s.to_bytes(2, "big") for s in splits[:7]) + b"".join(records)


def encode_event(data: str, event: str | None = None, id: str | None = None) -> bytes:
    """Record kind 0."""
    flags = (event is not None) | ((id is not None) << 1)
    out = bytes([0, flags]) + encode_string(data)
    if event is not None:
        out += encode_string(event)
    if id is not None:
        out += encode_string(id)
    return out


def encode_comment(text: str) -> bytes:
    """Record kind 1."""
    return b"\x01" + encode_string(text)


def encode_retry(milliseconds: int) -> bytes:
    """Record kind 2."""
    raw = milliseconds.to_bytes(max(1, (milliseconds.bit_length() + 7) // 8), "big")
    return b"\x02" + bytes([len(raw)]) + raw


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def byte(self) -> int:
        raw = self.take(1)
        return raw[0] if raw else 0

    def string(self) -> str:
        raw = self.take(int.from_bytes(self.take(2), "big"))
        try:
            return raw.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            return raw[: len(raw) & ~1].decode("utf-16-le", "surrogatepass")

    def at_end(self) -> bool:
        return self.pos >= len(self.data)


# --- the target ------------------------------------------------------------------------------


def _expected(item: Any, last_event_id: str) -> Any:
    core = sse_core
    if type(item) is core.Event:
        data = item.data.replace("\r\n", "\n").replace("\r", "\n")
        return core.Event(data=data, event=item.event, id=item.id, last_event_id=last_event_id)
    if type(item) is core.Retry:
        return core.Retry(milliseconds=min(item.milliseconds, core.MAX_RETRY_MILLISECONDS))
    return item


def _build(reader: _Reader, kind: int) -> tuple[list[Any], bytes] | None:
    """Decode one record; return its items and serialized bytes, or None if refused."""
    core = sse_core
    if kind in (0, 3):
        flags = reader.byte()
        data = reader.string()
        event = reader.string() if flags & 1 else None
        id = reader.string() if flags & 2 else None
        retry = None
        if kind == 3:
            reader.byte()  # the kind byte of the Retry record, for symmetry with kind 2
            retry = int.from_bytes(reader.take(reader.byte()), "big")
        try:
            items: list[Any] = []
            if retry is not None:
                items.append(core.Retry(milliseconds=retry))
            kw: dict[str, Any] = {"data": data}
            if event is not None:
                kw["event"] = event
            if id is not None:
                kw["id"] = id
            record = core.Event(**kw)
            items.append(record)
        except core.InvalidFieldError:
            # The constructor refused: serialize_event must refuse the same values.
            try:
                core.serialize_event(data, event=event, id=id, retry=retry)
            except core.InvalidFieldError:
                return None
            raise AssertionError(f"serialize_event accepted {data!r} {event!r} {id!r}") from None
        try:
            wire = core.serialize_many(items)
        except core.InvalidFieldError:
            # Lone surrogates: serialize_event must refuse them too.
            try:
                core.serialize_event(data, event=event, id=id, retry=retry)
            except core.InvalidFieldError:
                return None
            raise AssertionError("serialize_event accepted what serialize refused") from None
        direct = core.serialize_event(data, event=event, id=id, retry=retry)
        assert direct == wire, (direct, wire)
        return items, wire
    if kind == 1:
        text = reader.string()
        try:
            comment = core.Comment(text=text)
            return [comment], core.serialize(comment)
        except core.InvalidFieldError:
            return None
    retry_item = core.Retry(milliseconds=int.from_bytes(reader.take(reader.byte()), "big"))
    return [retry_item], core.serialize(retry_item)


def check(data: bytes) -> None:
    """The fuzz target: assert the round-trip law for one input."""
    if sse_core is None:
        _import_targets()
    core = sse_core
    reader = _Reader(data)
    initial_id = LAST_EVENT_IDS[reader.byte() % 4]
    count = reader.byte() % 8
    raw_splits = [int.from_bytes(reader.take(2), "big") for _ in range(count)]
    sent: list[Any] = []
    pieces: list[bytes] = []
    while not reader.at_end():
        built = _build(reader, reader.byte() % 4)
        if built is not None:
            sent.extend(built[0])
            pieces.append(built[1])
    wire = b"".join(pieces)
    assert core.serialize_many(sent) == wire

    expected = []
    last_event_id = initial_id
    for item in sent:
        if type(item) is core.Event and item.id is not None:
            last_event_id = item.id
        expected.append(_expected(item, last_event_id))

    offsets = sorted({s % (len(wire) + 1) for s in raw_splits})
    bounds = [0, *offsets, len(wire)]
    ways = {
        "whole": [wire],
        "byte by byte": [wire[i : i + 1] for i in range(len(wire))],
        "fuzzer splits": [wire[a:b] for a, b in pairwise(bounds)],
    }
    for name, chunks in ways.items():
        parser = core.Parser(last_event_id=initial_id)
        got: list[Any] = []
        for chunk in chunks:
            got.extend(parser.feed(chunk))
        eof = parser.feed_eof()
        if got != expected or eof.is_truncated or parser.last_event_id != last_event_id:
            raise AssertionError(
                f"round trip failed ({name})\nsent={sent!r}\nwire={wire!r}\n"
                f"expected={expected!r}\ngot={got!r}\neof={eof!r}\n"
                f"last_event_id={parser.last_event_id!r} (expected {last_event_id!r})"
            )


def main() -> None:
    import atheris

    with atheris.instrument_imports(include=["sse_core"]):
        _import_targets()
    # Which build is under test (fuzz/run.sh prints this line from the log).
    print(
        f"fuzz_roundtrip: sse_core from {Path(sse_core.__file__).parent}, C accelerator: "
        f"{'yes' if sse_core.ACCELERATED else 'no (pure Python)'}",
        file=sys.stderr,
        flush=True,
    )
    atheris.Setup(sys.argv, check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
