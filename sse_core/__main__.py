"""``python -m sse_core``: what is installed, and a demo of the library at work (edge).

With no command it prints the version and whether the C accelerator is in use, and if not,
why not and what that costs -- the one place besides ``sse_core.ACCELERATED`` and the docs'
install page where sse_core says so (importing it never warns).

Every other command (``listen``, ``serve`` ...) is the ``sse-core`` command line's
(:mod:`sse_core._cli`): ``python -m sse_core listen URL`` is ``sse-core listen URL``.

``python -m sse_core demo`` shows the library end to end, on one screen. First live, on
loopback: an asyncio server, a fault-injecting proxy and an asyncio client, with faults
hitting one after another, and the client's status, staleness and health alerts (raised and
resolved) shown as they happen (see :mod:`sse_core._live_demo`; it needs the ``http`` extra). Then
the protocol core on its own: a "server" serializes a stream; the bytes cross a deliberately
hostile "network" that cuts them at random points (inside fields and inside UTF-8
characters) and swaps line endings; the parser rebuilds every event. Then the failure modes:
an injection attempt refused, a truncated stream detected, an oversized line stopped with
nothing lost. Then the sessions: seeded fault scenarios in the simulator, and the parser's
throughput.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import random
import sys
import time

from . import (
    ACCELERATED,
    HEARTBEAT,
    Comment,
    Event,
    InvalidFieldError,
    LimitExceeded,
    Parser,
    Retry,
    StreamItem,
    __version__,
    _cli,
    serialize,
    serialize_event,
    serialize_many,
)
from .testing import random_scenario, simulate

#: The environment switch that forces pure Python (docs/parser.rst), named in the report.
_PURE_PYTHON_ENV = "SSE_CORE_PURE_PYTHON"


def describe_install() -> list[str]:
    """Lines saying which sse_core this is and whether its C accelerator is in use.

    Returns:
        The version and platform line, then the accelerator line: in use, switched off by
        ``SSE_CORE_PURE_PYTHON``, or not installed (with the cost and where to read more).
    """
    lines = [
        f"sse_core {__version__} on {platform.python_implementation()} "
        f"{platform.python_version()} ({sys.platform}, {platform.machine()})"
    ]
    if ACCELERATED:
        lines.append("C accelerator: in use (the parser and the serializer run in C)")
        return lines
    is_installed = importlib.util.find_spec("sse_core._speedups") is not None
    if is_installed:
        value = os.environ.get(_PURE_PYTHON_ENV)
        lines.append(f"C accelerator: installed, switched off by {_PURE_PYTHON_ENV}={value}")
    else:
        lines.append("C accelerator: not installed (a pure-Python wheel, or no C compiler)")
    lines.append("  sse_core runs in pure Python: the same behaviour, but slower (parsing several")
    lines.append("  times, serializing about twice).")
    if not is_installed:
        lines.append("  The docs' install page (docs/install.rst) says how to get the accelerator.")
    return lines


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
    try:
        from ._live_demo import live_demo
    except ModuleNotFoundError as error:  # h11, for the asyncio adapter the live part runs
        print(f"the demo runs the asyncio adapter, which needs the http extra "
              f"(pip install 'sse-core[http]'): {error}", file=sys.stderr)
        return 2
    rng = random.Random(seed)
    print(f"sse_core demo (seed {seed})\n")

    print("1. Live on loopback: an asyncio server, a fault-injecting proxy and an asyncio")
    print("   client. Faults hit one after another; the client's status, whether its data")
    print("   may be stale, and the health monitor's alerts, as they happen:")
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
    accelerated = "with the C accelerator" if ACCELERATED else "pure Python"
    print(f"   parsed {count:,} events ({len(body) / 1e6:.1f} MB) in 4 KiB reads, {accelerated}: "
          f"{count / elapsed:,.0f} events/s, {len(body) / elapsed / 1e6:.0f} MB/s")
    return 0 if is_live_ok and same and count == 100_000 and ok == len(results) else 1


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: ``python -m sse_core [demo [--seed N] | COMMAND ...]``.

    Args:
        argv: The arguments after the program name (default: ``sys.argv[1:]``).

    Returns:
        The process exit status.
    """
    argv = sys.argv[1:] if argv is None else argv
    names = [_cli.command_name(module) for module in _cli.COMMANDS]
    if argv and argv[0] in names:
        return _cli.main(argv, prog="python -m sse_core")
    parser = argparse.ArgumentParser(
        prog="python -m sse_core",
        description="Without a command: the version and whether the C accelerator is in use.",
        epilog=f"The sse-core commands work here too: {', '.join(names)} "
        "(python -m sse_core COMMAND --help).",
    )
    parser.add_argument("--version", action="version", version=f"sse_core {__version__}")
    commands = parser.add_subparsers(dest="command")
    demo_parser = commands.add_parser("demo", help="show the library at work")
    demo_parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    if args.command is None:
        print("\n".join(describe_install()))
        print("Run `python -m sse_core demo` to see the library at work.")
        return 0
    return demo(args.seed)


if __name__ == "__main__":
    sys.exit(main())
