"""Atheris harness for :class:`sse_core.Parser` (h11's fuzz invariant, for SSE).

Invariant: any bytes, fed whole, one byte at a time, in chunks of three, and split at
fuzzer-chosen offsets, give the same items and the same :meth:`~sse_core.Parser.feed_eof`
result and final ``last_event_id`` -- or raise :class:`~sse_core.LimitExceeded`, in which case
the items returned before plus ``exc.items`` are the same for every split, the limit named is
the same, and the parser stays failed (later calls raise ``RemoteProtocolError``). Anything
else that escapes is a crash. Every item must also be a record its own constructor accepts
(the parser builds them without validation). When ``tests/reference.py`` exists, the result
must also equal the reference transcription of the spec.

Input format (so that seeds can be written by hand, see ``make_corpus.py``)::

    byte 0      flags: bit 0 -> small limits (bytes 1 and 2), bits 1-2 -> initial
                last_event_id (one of LAST_EVENT_IDS)
    byte 1      max_line_length = 1 + byte % 64      (only with small limits)
    byte 2      max_event_size  = 1 + byte % 128     (only with small limits)
    byte 3      n: number of split offsets (taken % 8)
    2*n bytes   big-endian split offsets, each taken modulo len(stream) + 1
    rest        the stream

Run: ``python fuzz/fuzz_parser.py CORPUS_DIR -max_total_time=60`` (see ``fuzz/README.md``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

HEADER_SIZE = 4
LAST_EVENT_IDS = ("", "7", "prev-id", "\u00e9\U0001f600")

_ROOT = Path(__file__).resolve().parent.parent
# Appended, not prepended: an installed sse_core (the sanitizer build in .venv-fuzz, see
# .ci/fuzz.sh) must win over the source tree, which is only the fallback (and holds tests/).
if str(_ROOT) not in sys.path:
    sys.path.append(str(_ROOT))


def _import_targets() -> None:
    """Import the code under test into module globals (instrumented when fuzzing)."""
    global sse_core, reference_parse
    import sse_core

    try:
        from tests.reference import reference_parse
    except ImportError:  # the reference model is optional
        reference_parse = None


sse_core: Any = None
reference_parse: Callable[..., Any] | None = None


def encode_input(
    stream: bytes,
    *,
    limits: tuple[int, int] | None = None,
    last_event_id_index: int = 0,
    splits: Sequence[int] = (),
) -> bytes:
    """Build a harness input (used by ``make_corpus.py``)."""
    flags = (1 if limits else 0) | ((last_event_id_index % 4) << 1)
    line, event = limits if limits else (1, 1)
    header = bytes([flags, (line - 1) % 64, (event - 1) % 128, len(splits) % 8])
    return header + b"".join(s.to_bytes(2, "big") for s in splits[:7]) + stream


def decode_input(data: bytes) -> tuple[dict[str, Any], list[int], bytes]:
    """Split a harness input into parser keywords, split offsets and the stream."""
    header = data[:HEADER_SIZE].ljust(HEADER_SIZE, b"\x00")
    flags, line_byte, event_byte, count = header
    count %= 8
    offsets_end = HEADER_SIZE + 2 * count
    raw = data[HEADER_SIZE:offsets_end]
    stream = data[offsets_end:]
    splits = sorted(
        {int.from_bytes(raw[i : i + 2], "big") % (len(stream) + 1) for i in range(0, len(raw), 2)}
    )
    kwargs: dict[str, Any] = {"last_event_id": LAST_EVENT_IDS[(flags >> 1) & 3]}
    if flags & 1:
        kwargs["max_line_length"] = 1 + line_byte % 64
        kwargs["max_event_size"] = 1 + event_byte % 128
    return kwargs, splits, stream


def _chunks_at(stream: bytes, offsets: Sequence[int]) -> list[bytes]:
    bounds = [0, *offsets, len(stream)]
    return [stream[a:b] for a, b in pairwise(bounds)]


def _check_item(item: object) -> None:
    """Every item must be a record that its validating constructor would also build."""
    core = sse_core
    if type(item) is core.Event:
        rebuilt = core.Event(
            data=item.data, event=item.event, id=item.id, last_event_id=item.last_event_id
        )
    elif type(item) is core.Comment:
        rebuilt = core.Comment(text=item.text)
    elif type(item) is core.Retry:
        rebuilt = core.Retry(milliseconds=item.milliseconds)
        assert item.milliseconds <= core.MAX_RETRY_MILLISECONDS
    else:
        raise AssertionError(f"unexpected item type {type(item)!r}")
    assert rebuilt == item, (rebuilt, item)


def run_parser(kwargs: dict[str, Any], chunks: Sequence[bytes]) -> tuple[list[Any], Any, str]:
    """Feed ``chunks`` then end of stream.

    Returns:
        (items, outcome, last_event_id) where outcome is the ``EndOfStream`` or the name of
        the limit that was exceeded.
    """
    core = sse_core
    parser = core.Parser(**kwargs)
    items: list[Any] = []
    try:
        for chunk in chunks:
            got = parser.feed(chunk)
            assert isinstance(got, list)
            items.extend(got)
    except core.LimitExceeded as exc:
        items.extend(exc.items)
        assert exc.limit in ("max_line_length", "max_event_size"), exc.limit
        assert exc.maximum == kwargs.get(exc.limit), (exc.maximum, kwargs)
        assert exc.value > exc.maximum, (exc.value, exc.maximum)
        # Failed for good: every later call says so.
        for call in (lambda: parser.feed(b"data: x\n\n"), parser.feed_eof):
            try:
                call()
            except core.LimitExceeded as again:
                raise AssertionError("LimitExceeded raised twice") from again
            except core.RemoteProtocolError:
                pass
            else:
                raise AssertionError("a failed parser accepted a call")
        for item in items:
            _check_item(item)
        return items, exc.limit, parser.last_event_id
    eof = parser.feed_eof()
    assert type(eof) is core.EndOfStream
    try:
        parser.feed(b"data: x\n\n")
    except core.LocalProtocolError:
        pass
    else:
        raise AssertionError("feed after feed_eof was accepted")
    for item in items:
        _check_item(item)
    return items, eof, parser.last_event_id


def check(data: bytes) -> None:
    """The fuzz target: assert the invariant for one input."""
    if sse_core is None:
        _import_targets()
    kwargs, splits, stream = decode_input(data)
    whole = run_parser(kwargs, [stream])
    ways = {
        "byte by byte": [stream[i : i + 1] for i in range(len(stream))],
        "chunks of 3": [stream[i : i + 3] for i in range(0, len(stream), 3)],
        "fuzzer splits": _chunks_at(stream, splits),
        "with empty chunks": [b"", *_chunks_at(stream, splits[:1]), b""],
    }
    for name, chunks in ways.items():
        got = run_parser(kwargs, chunks)
        if got[:2] != whole[:2] or (isinstance(whole[1], sse_core.EndOfStream)
                                    and got[2] != whole[2]):
            raise AssertionError(
                f"{name} differs from whole feed\nkwargs={kwargs!r}\nstream={stream!r}\n"
                f"chunks={chunks!r}\nwhole={whole!r}\ngot={got!r}"
            )
    if reference_parse is not None:
        ref = reference_parse(stream, **kwargs)
        items, outcome, last_event_id = whole
        expected_outcome = ref.error if ref.error is not None else sse_core.EndOfStream(
            is_truncated=ref.is_truncated
        )
        if ref.items != items or expected_outcome != outcome or (
            ref.error is None and ref.last_event_id != last_event_id
        ):
            raise AssertionError(
                f"parser differs from tests/reference.py\nkwargs={kwargs!r}\n"
                f"stream={stream!r}\nparser={whole!r}\nreference={ref!r}"
            )


def main() -> None:
    import atheris

    with atheris.instrument_imports(include=["sse_core"]):
        _import_targets()
    # Which build is under test (fuzz/run.sh prints this line from the log).
    print(
        f"fuzz_parser: sse_core from {Path(sse_core.__file__).parent}, C accelerator: "
        f"{'yes' if sse_core.ACCELERATED else 'no (pure Python)'}",
        file=sys.stderr,
        flush=True,
    )
    atheris.Setup(sys.argv, check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
