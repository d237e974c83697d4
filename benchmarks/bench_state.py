"""Micro-benchmarks of the hot paths of the dedup window, sequencer and replay log, and of
what the client session's audit trail adds per event.

Run from the repository root::

    .venv/bin/python -m benchmarks.bench_state            # full run (about half a minute)
    .venv/bin/python -m benchmarks.bench_state --quick    # smoke run (a few seconds)

Each row times one call in a plain Python ``for`` loop over pre-built inputs, so the figure
includes the loop and the method call (what a session pays), not input generation. The
garbage collector is off inside timed regions, as ``timeit`` does; each figure is the best of
``--runs`` runs. Every run checks its results, so a fast wrong answer fails the script.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from collections.abc import Callable, Sequence

from sse_core._client import ClientConfig, ClientSession
from sse_core._dedup import DedupConfig, DedupWindow
from sse_core._events import Event
from sse_core._replay import Replay, ReplayConfig, ReplayLog, TooOld
from sse_core._sequencer import Sequencer, SequencerConfig

__all__ = ["BENCHES", "main"]

# A benchmark takes a size n and returns (a zero-argument timed body, ops it performs,
# a check run on the body's return value).
Timed = Callable[[], object]
Bench = Callable[[int], tuple[Timed, int, Callable[[object], bool]]]


def bench_dedup_new(n: int) -> tuple[Timed, int, Callable[[object], bool]]:
    """check() of ids never seen, in a full window (each check also evicts the oldest)."""
    ids = [f"evt-{i}" for i in range(n)]

    def body() -> object:
        window = DedupWindow(DedupConfig(max_ids=1000, max_age=60.0))
        check = window.check
        dups = 0
        for i in ids:
            dups += check(i, 1.0)
        return dups

    return body, n, lambda dups: dups == 0


def bench_dedup_duplicate(n: int) -> tuple[Timed, int, Callable[[object], bool]]:
    """check() of ids already in a 10k-id window."""
    held = [f"evt-{i}" for i in range(10_000)]
    window = DedupWindow(DedupConfig(max_ids=10_000, max_age=60.0))
    for i in held:
        window.check(i, 0.0)
    rng = random.Random(1)
    probes = [rng.choice(held) for _ in range(n)]

    def body() -> object:
        check = window.check
        dups = 0
        for i in probes:
            dups += check(i, 1.0)
        return dups

    return body, n, lambda dups: dups == n


def bench_sequencer_in_order(n: int) -> tuple[Timed, int, Callable[[object], bool]]:
    """push() of numbers in order (the common case: nothing waits)."""

    def body() -> object:
        seq: Sequencer[int] = Sequencer(SequencerConfig(), next_expected=0)
        push = seq.push
        for i in range(n):
            push(i, i, 1.0)
        return seq

    return body, n, lambda seq: _seq_ok(seq, n)


def bench_sequencer_reordered(n: int) -> tuple[Timed, int, Callable[[object], bool]]:
    """push() of numbers shuffled within blocks of 8 (every item but one per block waits)."""
    rng = random.Random(2)
    order: list[int] = []
    for start in range(0, n, 8):
        block = list(range(start, min(start + 8, n)))
        rng.shuffle(block)
        order.extend(block)

    def body() -> object:
        seq: Sequencer[int] = Sequencer(SequencerConfig(), next_expected=0)
        push = seq.push
        for i in order:
            push(i, i, 1.0)
        return seq

    return body, n, lambda seq: _seq_ok(seq, n)


def _seq_ok(seq: object, n: int) -> bool:
    assert isinstance(seq, Sequencer)
    return seq.delivered_count == n and seq.missed_count == 0 and seq.buffered_count == 0


def _filled_log(size: int) -> tuple[ReplayLog, list[str]]:
    log = ReplayLog(ReplayConfig(max_events=size, max_bytes=None, epoch="boot"))
    ids = [log.append(Event(data=f"payload {i}"), 0.0).id for i in range(size)]
    return log, ids


def _bench_replay_hit(size: int) -> Bench:
    def bench(n: int) -> tuple[Timed, int, Callable[[object], bool]]:
        """resume() of an id 10 events behind the newest (a client that blipped)."""
        log, ids = _filled_log(size)
        rng = random.Random(3)
        probes = [ids[-1 - rng.randrange(1, 11)] for _ in range(n)]

        def body() -> object:
            resume = log.resume
            total = 0
            for i in probes:
                result = resume(i, 1.0)
                assert isinstance(result, Replay)
                total += len(result.events)
            return total

        return body, n, lambda total: isinstance(total, int) and n <= total <= 10 * n

    bench.__doc__ = f"resume() hit 1-10 events behind the newest, {size // 1000}k-event log"
    return bench


def _bench_replay_too_old(size: int) -> Bench:
    def bench(n: int) -> tuple[Timed, int, Callable[[object], bool]]:
        log = ReplayLog(ReplayConfig(max_events=size, max_bytes=None, epoch="boot"))
        for i in range(2 * size):
            log.append(Event(data=f"payload {i}"), 0.0)
        rng = random.Random(4)
        probes = [f"boot-{rng.randrange(size - 1)}" for _ in range(n)]

        def body() -> object:
            resume = log.resume
            return sum(isinstance(resume(i, 1.0), TooOld) for i in probes)

        return body, n, lambda hits: hits == n

    bench.__doc__ = f"resume() of an evicted id (TooOld), {size // 1000}k-event log"
    return bench


def bench_replay_append(n: int) -> tuple[Timed, int, Callable[[object], bool]]:
    """append() of a small event with an assigned id (serialize + store + evict)."""
    events = [Event(data=f"payload {i}") for i in range(n)]

    def body() -> object:
        log = ReplayLog(ReplayConfig(max_events=10_000, max_bytes=None, epoch="boot"))
        append = log.append
        for e in events:
            append(e, 1.0)
        return log

    return body, n, lambda log: isinstance(log, ReplayLog) and len(log) == min(n, 10_000)


def _bench_client_event(max_audit_records: int) -> Bench:
    def bench(n: int) -> tuple[Timed, int, Callable[[object], bool]]:
        """on_data() with one event per call on a streaming client session (the audit
        trail on or off: ``max_audit_records``)."""
        config = ClientConfig(url="http://bench.test/", max_audit_records=max_audit_records)
        client = ClientSession(config, rng=random.Random(0))
        client.start(0.0)
        client.on_response(200, [("Content-Type", "text/event-stream")], 0.0)
        client.on_data(b": first bytes\n", 0.0)
        chunks = [b"id: %d\ndata: x\n\n" % k for k in range(n)]

        def body() -> object:
            on_data = client.on_data
            for data in chunks:
                on_data(data, 1.0)
            return client

        def check(result: object) -> bool:
            return client.metrics.messages_received == n and client.last_event_id == str(n - 1)

        return body, n, check

    return bench


BENCHES: dict[str, Bench] = {
    "dedup check, new id": bench_dedup_new,
    "dedup check, duplicate id": bench_dedup_duplicate,
    "sequencer push, in order": bench_sequencer_in_order,
    "sequencer push, reordered (blocks of 8)": bench_sequencer_reordered,
    "replay resume hit, 10k log": _bench_replay_hit(10_000),
    "replay resume hit, 100k log": _bench_replay_hit(100_000),
    "replay resume TooOld, 100k log": _bench_replay_too_old(100_000),
    "replay append (assigned id)": bench_replay_append,
    "client on_data, 1 event, audit trail off": _bench_client_event(0),
    "client on_data, 1 event, audit trail on": _bench_client_event(100),
}


def run(bench: Bench, n: int, runs: int) -> float:
    """Return the best time per op in nanoseconds over ``runs`` runs."""
    best = float("inf")
    for _ in range(runs):
        body, ops, check = bench(n)
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter_ns()
            result = body()
            elapsed = time.perf_counter_ns() - start
        finally:
            gc.enable()
        if not check(result):
            raise SystemExit(f"benchmark gave a wrong result: {result!r}")
        best = min(best, elapsed / ops)
    return best


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks and print one row per hot path."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes, one run")
    parser.add_argument("-n", type=int, default=None, help="operations per run")
    parser.add_argument("--runs", type=int, default=None, help="runs per row (best is kept)")
    args = parser.parse_args(argv)
    n = args.n or (5_000 if args.quick else 200_000)
    runs = args.runs or (1 if args.quick else 5)
    print(f"Python {sys.version.split()[0]}, {n} ops per run, best of {runs}")
    print(f"{'hot path':<44} {'ns/op':>9} {'ops/s':>12}")
    for name, bench in BENCHES.items():
        ns = run(bench, n, runs)
        print(f"{name:<44} {ns:>9.0f} {1e9 / ns:>12,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
