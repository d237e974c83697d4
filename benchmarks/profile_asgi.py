"""Where the ASGI ``EventStream``'s delivery time goes under a real uvicorn, in this process.

    python -m benchmarks.profile_asgi --clients 2000 --events 50 [--http h11|httptools]
        [--profile] [--top 30]

An ``EventStream`` served by ``uvicorn.Server`` in this process (asyncio loop, the ``--http``
implementation); ``--clients`` raw sockets in a child process (``benchmarks.profile_fanout``'s
reading clients) that read and discard everything. Once every client is subscribed and idle,
the script reports the process's memory growth per connection (RSS, after a collection),
then publishes ``--events`` events of ``--size`` bytes at ``--rate`` per second and reports
this process's CPU time (user + system) per 1,000 deliveries, from the first publish until
every client's task has sent everything (the clients run in their own process and are not
counted). With ``--tracemalloc``, where the idle connections' memory was allocated (by
line; the allocator's and the kernel's share is not in it). With ``--profile``, a cProfile
of that window (the whole event loop: uvicorn's code and ours), ``--top`` lines by internal
time; the figures are then inflated by the profiler.

Everything runs on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import os
import pstats
import resource
import time
import tracemalloc

from sse_core import Event, ServerConfig
from sse_core.adapters import ServerOptions
from sse_core.adapters.asgi import EventStream

from .profile_fanout import start_clients


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _is_idle(stream: EventStream) -> bool:
    """Whether every client's task has sent all that was queued for it."""
    return all(
        not connection.subscriber.has_pending and connection.write_scope is None
        for connection in list(stream._connections.values())
    )


_ORIGINS = (
    ("/sse_core/", "sse_core"),
    ("/uvicorn/", "uvicorn"),
    ("/h11/", "h11"),
    ("/anyio/", "anyio"),
    ("/asyncio/", "asyncio (Python)"),
)


def _by_origin(stats: pstats.Stats) -> dict[str, float]:
    """The profile's internal time summed by where the functions live; built-ins (system
    calls, the C parts of asyncio and httptools) apart, the socket's send() on its own, the
    loop's wait left out."""
    totals: dict[str, float] = {}
    for (filename, _, name), row in stats.stats.items():  # type: ignore[attr-defined]
        origin = "other Python"
        if filename == "~":
            if "'send' of '_socket" in name:
                origin = "socket send()"
            elif "'poll' of 'select" in name:
                continue  # the loop waiting: idle, not work
            else:
                origin = "built-ins (C)"
        else:
            for marker, label in _ORIGINS:
                if marker in filename:
                    origin = label
                    break
        totals[origin] = totals.get(origin, 0.0) + row[2]
    return totals


async def _run(args: argparse.Namespace) -> None:
    import uvicorn

    stream = EventStream(
        config=ServerConfig(heartbeat_interval=15.0, is_compression_enabled=False),
        options=ServerOptions(max_subscribers=None),
    )
    config = uvicorn.Config(
        stream, host="127.0.0.1", port=0, http=args.http, loop="asyncio", lifespan="on",
        log_level="warning", access_log=False, backlog=4096,
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    serving = asyncio.get_running_loop().create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    gc.collect()
    if args.tracemalloc:
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
    rss_before = _rss()
    child = await start_clients(port, args.clients, is_reading=True)
    try:
        await stream.wait_for_subscribers(args.clients)
        await asyncio.sleep(1.0)
        gc.collect()
        per_connection = (_rss() - rss_before) / args.clients
        if args.tracemalloc:
            growth = tracemalloc.take_snapshot().compare_to(before, "lineno")
            tracemalloc.stop()
            print(f"allocations per idle connection, by line (top {args.top}):")
            for stat in growth[: args.top]:
                frame = stat.traceback[0]
                print(f"  {stat.size_diff / args.clients:8.0f} B"
                      f"  {stat.count_diff / args.clients:5.1f} blocks"
                      f"  {frame.filename}:{frame.lineno}")
        data = "x" * args.size
        profile = cProfile.Profile()
        interval = 1.0 / args.rate
        cpu0, start = _cpu(), time.monotonic()
        if args.profile:
            profile.enable()
        due = start
        for _ in range(args.events):
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            stream.publish(Event(data=data))
            due += interval
        while not _is_idle(stream):
            await asyncio.sleep(0.001)
        if args.profile:
            profile.disable()
        cpu = _cpu() - cpu0
        elapsed = time.monotonic() - start
        deliveries = args.events * args.clients
        with open("/proc/loadavg") as loadavg:
            load = loadavg.read().split()[0]
        print(
            f"http={args.http} clients={args.clients} events={args.events} size={args.size}:"
            f" {cpu / deliveries * 1e6:.1f} ms CPU per 1,000 deliveries"
            f" ({cpu:.2f} s in {elapsed:.1f} s), {per_connection / 1024:.1f} KiB per idle"
            f" connection, dropped {stream.broadcaster.dropped}, load {load}"
        )
        if args.profile:
            out = io.StringIO()
            stats = pstats.Stats(profile, stream=out)
            stats.sort_stats("tottime").print_stats(args.top)
            print(out.getvalue())
            print("internal time by origin (share of the busy time):")
            by_origin = _by_origin(stats)
            total = sum(by_origin.values())
            for origin, seconds in sorted(by_origin.items(), key=lambda item: -item[1]):
                print(f"  {origin:<28} {seconds:6.2f} s  {seconds / total:5.1%}")
    finally:
        if child.stdin is not None:
            child.stdin.close()
        child.wait(timeout=30)
        server.should_exit = True
        await serving


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--size", type=int, default=200)
    parser.add_argument("--http", default="h11", choices=("h11", "httptools"))
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--tracemalloc", action="store_true",
                        help="where the idle connections' memory was allocated")
    asyncio.run(_run(parser.parse_args()))


if __name__ == "__main__":
    main()
