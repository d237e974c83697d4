"""``python -m sse_core demo``: the library at work, end to end, on one screen (edge).

First live, on loopback: an asyncio server, a fault-injecting proxy and an asyncio client,
with faults hitting one after another (see :mod:`sse_core._live_demo`). Then the protocol
core on its own: a "server" serializes a stream; the bytes cross a deliberately hostile
"network" that cuts them at random points (inside fields and inside UTF-8 characters) and
swaps line endings; the parser rebuilds every event. Then the failure modes: an injection
attempt refused, a truncated stream detected, an oversized line stopped with nothing lost.
Then the sessions: seeded fault scenarios in the simulator, and the parser's throughput.
"""

from __future__ import annotations

import argparse
import random
import sys
import time

from . import (
    HEARTBEAT,
    Comment,
    Event,
    InvalidFieldError,
    LimitExceeded,
    Parser,
    Retry,
    StreamItem,
    serialize,
    serialize_event,
    serialize_many,
)
from ._accelerator import ACCELERATED as IS_ACCELERATED
from ._live_demo import live_demo
from .testing import random_scenario, simulate


def _show(item: StreamItem) -> str:
    if isinstance(item, Event):
        own = "" if item.id is None else f" id={item.id!r}"
        return f"Event {item.event!r}{own} data={item.data!r} last_event_id={item.last_event_id!r}"
    if isinstance(item, Comment):
        return f"Comment {item.text!r}"
    return f"Retry {item.milliseconds} ms"


def _hostile_chunks(data: bytes, rng: random.Random) -> list[bytes]:
    chunks, start = [], 0
    while start < len(data):
        size = rng.randint(1, 9)
        chunks.append(data[start : start + size])
        start += size
    return chunks


def demo(seed: int) -> int:
    """Run the demo; return the process exit status."""
    rng = random.Random(seed)
    print(f"sse_core demo (seed {seed})\n")

    print("1. Live on loopback: an asyncio server, a fault-injecting proxy and an asyncio")
    print("   client. Faults hit one after another; the client's status as it happens:")
    is_live_ok = live_demo(seed)

    print("\n2. The server writes a stream; the serializer makes every field safe.")
    published: list[StreamItem] = [
        Retry(milliseconds=3000),
        Event(data="hello", id="1"),
        Event(data='{"price": 42.5}', event="tick", id="2"),
        Event(data="multi\nline\r\ndata", id="3"),
        Comment(text=" keep-alive"),
        Event(data="naïve café ☕ 😀", id="4"),
        Event(data="", id="5"),
    ]
    stream = serialize_many(published) + HEARTBEAT
    print(f"   {len(published)} items -> {len(stream)} bytes:")
    for line in stream.decode().splitlines():
        print(f"     {line!r}")

    print("\n3. The network cuts the bytes anywhere (mid-field, mid-character) and a proxy")
    print("   rewrites LF as CRLF. The parser rebuilds the same items:")
    mangled = stream.replace(b"\n", b"\r\n")
    chunks = _hostile_chunks(mangled, rng)
    parser = Parser()
    received: list[StreamItem] = []
    offset = 0
    for chunk in chunks:
        offset += len(chunk)
        for item in parser.feed(chunk):
            received.append(item)
            print(f"   after {offset:4d} B: {_show(item)}")
    end = parser.feed_eof()
    events_in = [i for i in published if isinstance(i, Event)]
    events_out = [i for i in received if isinstance(i, Event)]
    same = [(e.data.replace("\r\n", "\n"), e.event, e.id) for e in events_in] == [
        (e.data, e.event, e.id) for e in events_out
    ]
    print(f"   {len(chunks)} chunks, {len(events_out)} events, identical: {same}, "
          f"clean end: {not end.is_truncated}, resume from Last-Event-ID {parser.last_event_id!r}")

    print("\n4. Injection attempts are refused, not escaped into the stream:")
    attempts: list[dict[str, str]] = [{"id": "6\ndata: forged"}, {"event": "x\r\n\r\ndata: x"}]
    for kwargs in attempts:
        try:
            serialize_event("payload", id=kwargs.get("id"), event=kwargs.get("event"))
        except InvalidFieldError as error:
            print(f"   refused: {error}")

    print("\n5. A connection that dies mid-event is reported as truncated:")
    parser = Parser(last_event_id="5")
    cut = serialize(Event(data="half", id="6"))[:-3]
    print(f"   feed({cut!r}) -> {parser.feed(cut)}")
    print(f"   feed_eof() -> {parser.feed_eof()}; resume from {parser.last_event_id!r}")

    print("\n6. A line over the limit stops the parser; nothing already parsed is lost:")
    parser = Parser(max_line_length=64)
    try:
        parser.feed(b"data: small\n\ndata: " + b"x" * 100 + b"\n\n")
    except LimitExceeded as error:
        print(f"   LimitExceeded: {error}")
        print(f"   items parsed before it: {[_show(i) for i in error.items]}")

    print("\n7. The sessions under faults: a client and a server on a simulated network that")
    print("   cuts, resets, stalls, restarts (with and without the replay log), deploys (503),")
    print("   partitions, slows and buffers -- 300 seeded scenarios on a virtual clock:")
    results = [simulate(random_scenario(seed)) for seed in range(seed, seed + 300)]
    ok = sum(r.is_ok for r in results)
    print(f"   {sum(r.published for r in results):,} events published, "
          f"{sum(r.delivered for r in results):,} delivered exactly once and in order, "
          f"{sum(r.missed for r in results):,} inside {sum(r.gaps for r in results):,} "
          f"reported gaps (beyond the replay window),")
    print(f"   {sum(r.reconnects for r in results):,} reconnections; "
          f"{ok}/{len(results)} scenarios kept the invariant (nothing lost silently, "
          f"nothing twice)")

    print("\n8. Throughput (this machine):")
    body = b"".join(
        serialize_event(f'{{"token": "t{i}"}}', id=str(i) if i % 16 == 0 else None)
        for i in range(100_000)
    )
    parser = Parser()
    started = time.perf_counter()
    count = 0
    for offset in range(0, len(body), 4096):
        count += len(parser.feed(body[offset : offset + 4096]))
    elapsed = time.perf_counter() - started
    accelerated = "with the C accelerator" if IS_ACCELERATED else "pure Python"
    print(f"   parsed {count:,} events ({len(body) / 1e6:.1f} MB) in 4 KiB reads, {accelerated}: "
          f"{count / elapsed:,.0f} events/s, {len(body) / elapsed / 1e6:.0f} MB/s")
    return 0 if is_live_ok and same and count == 100_000 and ok == len(results) else 1


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m sse_core")
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser("demo", help="show the library at work")
    demo_parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    return demo(args.seed)


if __name__ == "__main__":
    sys.exit(main())
