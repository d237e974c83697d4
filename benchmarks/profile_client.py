"""Profile sse_core's asyncio client on the ``ids`` workload of bench_clients (a benchmark
tool, not a test): where the time per event goes, the ten most expensive functions.

    python -m benchmarks.profile_client [--events 100000] [--workload ids]

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
from sse_core.adapters.asyncio import EventSource


async def _read(url: str, events: int) -> None:
    count = 0
    async with EventSource(ClientConfig(url=url, stall_timeout=None)) as source:
        async for _ in source:
            count += 1
            if count == events:
                return


def main() -> None:
    """Profile one read of ``--events`` events and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--workload", choices=list(bench.WORKLOADS), default="ids")
    args = parser.parse_args()
    with bench.server(args.events) as port:
        url = f"http://127.0.0.1:{port}/{args.workload}"
        asyncio.run(_read(url, 1000))  # warm up
        profile = cProfile.Profile()
        profile.enable()
        asyncio.run(_read(url, bench.count(args.workload, args.events)))
        profile.disable()
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    total = sum(row[2] for row in stats.values())
    print(f"sse_core from {sse_core.__file__}")
    print(f"{total:.2f} s of own time (profiled) for {args.events:,} events")
    rows = sorted(stats.items(), key=lambda item: -item[1][2])[:10]
    for (path, _, name), (_, calls, own, _, _) in rows:
        print(f"{own:7.3f} s {calls:>9,} calls  {path.rsplit('/', 1)[-1]}:{name}")


if __name__ == "__main__":
    main()
