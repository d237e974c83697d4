"""Write the committed seed corpus for the fuzz harnesses (reproducibly).

Run from the repository root: ``python fuzz/make_corpus.py``. It rewrites
``fuzz/corpus/parser/`` and ``fuzz/corpus/roundtrip/`` from the tables below and checks every
seed against its harness's invariant, so a seed can never be a known crash.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import fuzz_parser  # noqa: E402
import fuzz_roundtrip as rt  # noqa: E402

P = fuzz_parser.encode_input

PARSER_SEEDS: dict[str, bytes] = {
    "simple": P(b"data: hello\n\n"),
    "bom": P(b"\xef\xbb\xbfdata: after a BOM\n\n\xef\xbb\xbfdata: not stripped\n\n"),
    "crlf": P(b"event: add\r\ndata: one\r\ndata: two\r\n\r\n", splits=[21, 22]),
    # A CR ends the first chunk and an LF starts the next: one line ending, not two.
    "cr-at-chunk-end": P(b"data: a\rdata: b\r\n\r", splits=[8, 16]),
    "multiline-data": P(b"data: line 1\ndata:line 2\ndata\ndata:  spaced\n\n"),
    "id-with-nul": P(b"id: 1\n\nid: bad\x00id\ndata: kept id 1\n\n", last_event_id_index=2),
    "id-reset": P(b"id: 5\ndata: a\n\nid\ndata: b\n\ndata: c\n\n"),
    "retry": P(b"retry: 3000\n\nretry: 12x\nretry:\nretry: 0042\nretry: 99999999999999999999\n"),
    "comments": P(b":\n\n: heartbeat\n:no space\ndata: x\n: mid-block\n\n"),
    "invalid-utf8": P(b"data: \xff\xfe bad \xc3\n\ndata: split \xe2\x82\xac euro\n\n",
                      splits=[20, 38]),
    "truncated": P(b"data: never dispatched\nid: 9"),
    "fields": P(b"event\ndata: typed reset\n\nEvent: x\nDATA: y\nfoo: bar\ndata:z\n\n"),
    "small-line-limit": P(b"data: ok\n\ndata: this line is too long\n\n", limits=(12, 100)),
    "small-event-limit": P(b"data: 12345\n\ndata: 123\ndata: 456\n\n", limits=(64, 6)),
    "last-event-id-seeded": P(b"data: keeps the seeded id\n\n", last_event_id_index=3),
}

E, C, R = rt.encode_event, rt.encode_comment, rt.encode_retry
RT = rt.encode_input

ROUNDTRIP_SEEDS: dict[str, bytes] = {
    "simple": RT([E("hello")]),
    "empty-data": RT([E(""), E("\n"), E("\n\n")]),
    "typed": RT([E("x", event="update"), E("y", event="message")]),
    "ids": RT([E("a", id="1"), E("b"), E("c", id=""), E("d")], last_event_id_index=1),
    "crlf-in-data": RT([E("a\r\nb\rc\nd\r")], splits=[5, 6, 7]),
    "multiline": RT([E("line 1\nline 2\n\nline 4")]),
    "colons-and-spaces": RT([E(" lead: space", event=" spaced ev", id=" id: x")]),
    "comments": RT([C(""), C(" heartbeat"), C(":::"), E("after")]),
    "retry": RT([R(0), R(3000), R(10**18 - 1), R(10**30)]),
    "event-with-retry": RT([b"\x03" + E("x", id="9")[1:] + R(1500)]),
    "unicode": RT([E("\u00e9\U0001f600\u2028\x00", event="\u00fc", id="\U0001f600")],
                  last_event_id_index=3),
    "lone-surrogate": RT([E("bad \ud800"), C("\udfff"), E("good")]),
    "refused": RT([E("x", event=""), E("y", id="a\x00b"), E("z", event="a\nb"), C("a\rb"),
                   E("ok")]),
    "bom-in-data": RT([E("\ufeffdata"), C("\ufeff")], splits=[1]),
}


def main() -> None:
    for name, seeds, target in (
        ("parser", PARSER_SEEDS, fuzz_parser.check),
        ("roundtrip", ROUNDTRIP_SEEDS, rt.check),
    ):
        directory = HERE / "corpus" / name
        directory.mkdir(parents=True, exist_ok=True)
        for old in directory.iterdir():
            old.unlink()
        for seed_name, data in seeds.items():
            target(data)
            (directory / seed_name).write_bytes(data)
        print(f"{directory.relative_to(HERE.parent)}: {len(seeds)} seeds")


if __name__ == "__main__":
    main()
