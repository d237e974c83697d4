"""Profile one of sse_core's socket clients on a workload of bench_clients (a benchmark
tool, not a test): where the time per event goes, the most expensive functions (own time,
in total and per event; cProfile's own cost per call inflates every figure alike).

    python -m benchmarks.profile_client [--events 100000] [--workload ids]
        [--client asyncio|sync] [--top 10]

It profiles whichever ``sse_core`` it imports, and says which: to compare with an older
checkout, copy this file and ``bench_clients.py`` into that tree's ``benchmarks/`` and run it
there with ``PYTHONPATH`` set to that tree.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats

import sse_core
from benchmarks import bench_clients as bench
from sse_core import ClientConfig
from sse_core.adapters import asyncio as asyncio_adapter
from sse_core.adapters import sync as sync_adapter


async def _read_async(url: str, events: int) -> None:
    count = 0
    config = ClientConfig(url=url, stall_timeout=None)
    async with asyncio_adapter.EventSource(config) as source:
        async for _ in source:
            count += 1
            if count == events:
                return


def _read_sync(url: str, events: int) -> None:
    count = 0
    with sync_adapter.EventSource(ClientConfig(url=url, stall_timeout=None)) as source:
        for _ in source:
            count += 1
            if count == events:
                return


def _read(client: str, url: str, events: int) -> None:
    if client == "asyncio":
        asyncio.run(_read_async(url, events))
    else:
        _read_sync(url, events)


def main() -> None:
    """Profile one read of ``--events`` events and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--workload", choices=list(bench.WORKLOADS), default="ids")
    parser.add_argument("--client", choices=["asyncio", "sync"], default="asyncio")
    parser.add_argument("--top", type=int, default=10)
    args = parser.parse_args()
    events = bench.count(args.workload, args.events)
    with bench.server(args.events) as port:
        url = f"http://127.0.0.1:{port}/{args.workload}"
        _read(args.client, url, 1000)  # warm up
        profile = cProfile.Profile()
        profile.enable()
        _read(args.client, url, events)
        profile.disable()
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    total = sum(row[2] for row in stats.values())
    print(f"sse_core from {sse_core.__file__}; {args.client} client, {args.workload}")
    print(f"{total:.2f} s of own time (profiled) for {events:,} events,"
          f" {total / events * 1e6:.2f} us/event")
    rows = sorted(stats.items(), key=lambda item: -item[1][2])[: args.top]
    for (path, _, name), (_, calls, own, _, _) in rows:
        print(f"{own:7.3f} s {own / events * 1e6:6.3f} us/event {calls:>9,} calls"
              f"  {path.rsplit('/', 1)[-1]}:{name}")


if __name__ == "__main__":
    main()
