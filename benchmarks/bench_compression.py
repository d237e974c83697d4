"""Bandwidth saved by gzip (flushed after every event) on the chat workload.

Run: ``python -m benchmarks.bench_compression [--events N]``. The chat stream is the one of
``benchmarks.bench_protocol``; each event goes through a :class:`sse_core.ServerSession` with
and without ``Accept-Encoding: gzip``, one ``send`` per event (the worst case for
compression: every event is flushed on its own, as a live stream must).
"""

from __future__ import annotations

import argparse
import time

from sse_core import Event, Parser, Send, ServerConfig, ServerSession
from sse_core.state import Decompressor

from .bench_protocol import make_chat


def measure(events: list[Event], accept_encoding: str | None) -> tuple[int, float, bytes]:
    session = ServerSession(ServerConfig(heartbeat_interval=None))
    headers = [("Accept-Encoding", accept_encoding)] if accept_encoding else []
    session.on_request("/", headers, 0.0)
    chunks: list[bytes] = []
    started = time.perf_counter()
    for event in events:
        for action in session.send(event, 0.0):
            if isinstance(action, Send):
                chunks.append(action.data)
    elapsed = time.perf_counter() - started
    return session.bytes_sent, elapsed, b"".join(chunks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args(argv)
    workload = make_chat(args.events)
    events = [item for item in Parser().feed(workload.body) if isinstance(item, Event)]
    plain_bytes, plain_time, plain_body = measure(events, None)
    gz_bytes, gz_time, gz_body = measure(events, "gzip")
    decoded = Decompressor("gzip", max_output=1 << 30).decompress(gz_body)
    assert decoded == plain_body, "the gzip body does not decode to the plain body"
    per_event = 1e6 / len(events)
    print(f"chat workload, {len(events):,} events, one flush per event")
    print(f"  identity: {plain_bytes:>12,} B   {plain_time * per_event:6.2f} us/event")
    print(f"  gzip    : {gz_bytes:>12,} B   {gz_time * per_event:6.2f} us/event"
          f"   saved {1 - gz_bytes / plain_bytes:.1%} of the bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
