"""Micro-benchmark: what metrics cost per event in the client session (a benchmark, not a
test; nothing here is asserted).

    python -m benchmarks.metrics_overhead [--events 50000] [--rounds 7] [--chunk 16384]

One :class:`~sse_core.ClientSession` takes a pre-serialized body (~100-byte events with ids,
dedup on: the default client) in chunks, in memory -- no I/O. Contenders, on the same bytes:

- ``metrics``: the session as shipped (its :class:`MetricsRecorder` counts every delivery,
  duplicate, gap and connection);
- ``no metrics``: the same session with a recorder whose ``record_*`` methods do nothing
  (what is left is the session without its counting; the calls remain, so the figure is
  what the counters themselves add);
- ``stamped, not read``: every event stamped by the server (``:t=<ms>`` comment), the client
  not measuring latency (what stamps cost a client that ignores them);
- ``metrics + latency``: the same stamped body, the client measuring latency, given
  ``wall_now`` with each chunk;
- ``metrics + batching``: the plain body, the client grouping deliveries into batches
  (``ClientConfig.batching``: 20 events or 50 ms; here the count decides, the clock stands).

Printed: ns per event (best of the rounds, to keep a loaded machine's noise out) and the
overhead over ``no metrics``. Target: metrics add under 10 % to the per-event cost.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

from sse_core import ClientConfig, ClientSession, Event, ServerConfig, ServerSession
from sse_core._metrics import MetricsRecorder
from sse_core._serializer import serialize
from sse_core.state import BatchConfig

SSE = [("content-type", "text/event-stream")]


class _NoMetrics(MetricsRecorder):
    """A recorder that counts nothing (the baseline)."""

    def record_attempt(self) -> None:
        pass

    def record_failed_attempt(self) -> None:
        pass

    def record_connection(self, duration: float) -> None:
        pass

    def record_messages(self, count: int = 1) -> None:
        pass

    def record_duplicates(self, count: int = 1) -> None:
        pass

    def record_reconnection(self, time_to_reconnect: float) -> None:
        pass

    def record_gap(self, missed: int | None) -> None:
        pass

    def record_latency(self, latency: float) -> None:
        pass


def _body(events: int, *, is_stamped: bool) -> bytes:
    if not is_stamped:
        return b"".join(serialize(Event(data="x" * 88, id=str(n))) for n in range(events))
    server = ServerSession(ServerConfig(is_send_time_stamped=True, heartbeat_interval=None))
    server.on_request("/events", [], 0.0)
    out = []
    for n in range(events):
        for action in server.send(Event(data="x" * 88, id=str(n)), 0.0, wall_now=1e9):
            out.append(action.data)  # type: ignore[attr-defined]
    return b"".join(out)


def _session(
    *, is_counting: bool, is_latency_measured: bool, batching: BatchConfig | None = None
) -> ClientSession:
    config = ClientConfig(url="http://bench.test/", is_latency_measured=is_latency_measured,
                          batching=batching)
    session = ClientSession(config, rng=random.Random(1))
    if not is_counting:
        recorder = _NoMetrics()
        session._metrics = recorder
        session._pipeline._metrics = recorder
    session.start(0.0)
    session.on_response(200, SSE, 0.0)
    return session


def _run(body: bytes, chunk: int, make: Callable[[], ClientSession], wall: bool) -> float:
    session = make()
    chunks = [body[i:i + chunk] for i in range(0, len(body), chunk)]
    start = time.perf_counter()
    if wall:
        for piece in chunks:
            session.on_data(piece, 1.0, wall_now=1e9 + 0.01)
    else:
        for piece in chunks:
            session.on_data(piece, 1.0)
    return time.perf_counter() - start


def main() -> None:
    """Run the contenders and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--chunk", type=int, default=16_384)
    args = parser.parse_args()
    plain, stamped = _body(args.events, is_stamped=False), _body(args.events, is_stamped=True)
    contenders = {
        "no metrics": (plain, False, lambda: _session(is_counting=False,
                                                      is_latency_measured=False)),
        "metrics": (plain, False, lambda: _session(is_counting=True, is_latency_measured=False)),
        "stamped, not read": (stamped, False, lambda: _session(is_counting=True,
                                                                is_latency_measured=False)),
        "metrics + latency": (stamped, True, lambda: _session(is_counting=True,
                                                               is_latency_measured=True)),
        "metrics + batching": (plain, False, lambda: _session(
            is_counting=True, is_latency_measured=False, batching=BatchConfig())),
    }
    best: dict[str, float] = {}
    for _ in range(args.rounds):  # interleaved, so drift on a shared machine hits all alike
        for name, (body, wall, make) in contenders.items():
            elapsed = _run(body, args.chunk, make, wall)
            best[name] = min(best.get(name, elapsed), elapsed)
    base = best["no metrics"] / args.events
    print(f"{args.events} events of ~100 bytes with ids, {args.chunk}-byte chunks, "
          f"best of {args.rounds}")
    print(f"{'contender':<20} {'ns/event':>10} {'overhead':>10}")
    for name, elapsed in best.items():
        per_event = elapsed / args.events
        print(f"{name:<20} {per_event * 1e9:>10.0f} {(per_event / base - 1) * 100:>9.1f}%")


if __name__ == "__main__":
    main()
