"""The blocking server's loop cost: idle streams and deliveries, against the asyncio server.

    python -m benchmarks.bench_sync --clients 1000 --heartbeat 1 --baseline main
    python -m benchmarks.bench_sync --clients 4000 --heartbeat 1 --events 20 --repeat 3

For each server, in its own process -- sse_core's blocking ``EventStreamServer``
(:mod:`sse_core.adapters.sync`, one thread and a selector loop), the asyncio
``EventStreamServer`` on the same workload, and (``--baseline``) the blocking server of
another source tree -- connect ``--clients`` streams and measure

- idle CPU: the share of one core the server process spends while the streams are idle for
  ``--idle`` seconds, with a heartbeat every ``--heartbeat`` seconds (the streams connect
  spread over one interval, so that their heartbeats fall due apart: each is a wake-up of
  the server, and what it costs with many streams open is what the loop does per
  wake-up);
- CPU per 1,000 deliveries (events x clients): the server process's CPU time while it
  publishes ``--events`` events of about ``--size`` bytes at ``--rate`` per second, user and
  system apart, and the publish-to-receipt latency (p50, p99).

``--baseline`` takes a source tree holding ``sse_core`` (a checkout of an earlier commit)
or a git revision (``main``): the revision's ``sse_core`` is extracted with ``git archive``
into a temporary directory, with this tree's built C accelerator copied in (so that the
baseline differs only in its Python). ``--repeat N`` runs N rounds, the servers
interleaved, and reports each figure's median: on a shared machine the load moves between
runs; the load average is printed before and after.

The clients all live in this process (those of :mod:`benchmarks.bench_load`: raw
HTTP/1.1 sockets, a chunk decoder and sse_core's parser), so every server faces the same
clients. Everything runs on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import itertools
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

if __package__:
    from . import bench_load
else:  # run as a script (a server's process): this directory is on the path
    import bench_load  # type: ignore[import-not-found, no-redef]

SERVERS = ("sync", "asyncio")
BASELINE = "sync@baseline"
_HERE = Path(__file__).resolve()
_ROOT = _HERE.parent.parent


# --- the servers (each runs in its own process: `--serve KIND`) ----------------------------


def _serve(kind: str, heartbeat: float) -> None:
    """Serve one stream with the blocking or the asyncio server, taking commands on stdin
    (those of :func:`benchmarks.bench_load._command_loop`)."""
    from sse_core import Event, ServerConfig
    from sse_core.state import ReplayConfig, ReplayLog

    config = ServerConfig(heartbeat_interval=heartbeat, is_compression_enabled=False)
    log = ReplayLog(ReplayConfig(max_events=1000))
    if kind == "sync":
        from sse_core.adapters.sync import EventStreamServer as SyncServer

        server = SyncServer(log, config=config)
        server.start("127.0.0.1", 0)
        try:
            asyncio.run(bench_load._command_loop(
                lambda data: server.publish(Event(data=data)),
                lambda: len(server.broadcaster),
                server.address[1],
            ))
        finally:
            server.close(grace=0.0)
        return

    async def serve_asyncio() -> None:
        from sse_core.adapters.asyncio import EventStreamServer as AsyncioServer

        server = AsyncioServer(log, config=config)
        await server.start("127.0.0.1", 0)
        try:
            await bench_load._command_loop(
                lambda data: server.publish(Event(data=data)),
                lambda: len(server.broadcaster),
                server.address[1],
            )
        finally:
            await server.aclose(grace=0.0)

    asyncio.run(serve_asyncio())


class _Server(bench_load._Server):
    """A server's process, spoken to over its stdin and stdout (as bench_load's are)."""

    def __init__(self, name: str, source: Path | None, heartbeat: float) -> None:
        kind = "sync" if name == BASELINE else name
        command = [sys.executable, str(_HERE), "--serve", kind, "--heartbeat", str(heartbeat)]
        # The sse_core to serve first on the path (a baseline's), this tree's for the rest.
        path = [str(source)] if source is not None else []
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([*path, str(_ROOT)])}
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        self.port = int(self.read()["port"])


async def _connect_spread(
    port: int, count: int, spread: float, latencies: list[float]
) -> list[bench_load._LoadClient]:
    """Connect ``count`` streams evenly over ``spread`` seconds (one heartbeat interval):
    their heartbeats then fall due apart, as those of clients that come at any time do,
    and each is a wake-up of its own (all at once, one wake-up would serve them all)."""
    loop = asyncio.get_running_loop()
    request = (
        b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
    )
    batches = max(1, min(count, int(spread * 1000)))  # a batch a millisecond at most
    started = loop.time()
    clients: list[bench_load._LoadClient] = []
    for batch in range(batches):
        await asyncio.sleep(max(0.0, started + batch * spread / batches - loop.time()))
        size = count * (batch + 1) // batches - count * batch // batches
        results = await asyncio.gather(*[
            loop.create_connection(
                lambda: bench_load._LoadClient(request, latencies, _nothing), "127.0.0.1", port
            )
            for _ in range(size)
        ])
        clients.extend(protocol for _, protocol in results)
    return clients


def _nothing() -> None:
    """What a client does on each event it receives, besides noting its latency."""


def _cpu(stats: dict[str, float]) -> float:
    return stats["user"] + stats["sys"]


async def run_one(
    name: str,
    clients: int,
    *,
    heartbeat: float,
    idle: float,
    events: int,
    rate: float,
    size: int,
    source: Path | None = None,
) -> dict[str, float]:
    """Serve ``clients`` streams with the server ``name`` (from the source tree ``source``,
    for the baseline) and measure it; see the module's documentation."""
    server = _Server(name, source, heartbeat)
    latencies: list[float] = []  # one per event received, by any stream
    protocols: list[bench_load._LoadClient] = []
    try:
        protocols = await _connect_spread(server.port, clients, heartbeat, latencies)
        give_up = time.monotonic() + 120
        while server.stats()["subscribers"] < clients:
            if time.monotonic() > give_up:
                raise RuntimeError(f"{name}: not every client was subscribed in time")
            await asyncio.sleep(0.2)
        await asyncio.sleep(min(1.0, idle))  # the connections settle
        before, started = server.stats(), time.monotonic()
        await asyncio.sleep(idle)
        idled, elapsed = server.stats(), time.monotonic() - started
        server.ask(f"publish {events} {rate} {size}")
        await asyncio.get_running_loop().run_in_executor(None, server.read)  # "published"
        give_up = time.monotonic() + 60
        while len(latencies) < clients * events and time.monotonic() < give_up:
            await asyncio.sleep(0.05)
        after = server.stats()
    finally:
        server.stop()
        for transport in (protocol.transport for protocol in protocols):
            if transport is not None:
                transport.abort()
    # The 99 cut points of the latencies: [49] is the median, [98] the 99th percentile.
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [math.nan] * 99
    expected = clients * events
    per_1000 = 1000 * 1000 / expected if expected else float("nan")  # s of CPU -> ms/1,000
    return {
        "clients": clients,
        "idle_cpu_pct": 100 * (_cpu(idled) - _cpu(before)) / elapsed,
        "delivered": len(latencies),
        "expected": expected,
        "cpu_ms_per_1000": (_cpu(after) - _cpu(idled)) * per_1000,
        "user_ms_per_1000": (after["user"] - idled["user"]) * per_1000,
        "sys_ms_per_1000": (after["sys"] - idled["sys"]) * per_1000,
        "p50_ms": cuts[49] * 1000,
        "p99_ms": cuts[98] * 1000,
    }


@contextlib.contextmanager
def baseline_tree(baseline: str) -> Iterator[Path]:
    """The source tree of ``baseline``: a directory holding ``sse_core`` as it is, or a git
    revision whose ``sse_core`` is extracted (``git archive``) into a temporary directory,
    this tree's built C accelerator copied in.

    Raises:
        ValueError: neither (no such directory, and git does not know the revision).
    """
    given = Path(baseline)
    if (given / "sse_core" / "__init__.py").is_file():
        yield given.resolve()
        return
    with tempfile.TemporaryDirectory(prefix="bench_sync_baseline_") as directory:
        archive = subprocess.run(
            ["git", "-C", str(_ROOT), "archive", baseline, "sse_core"],
            capture_output=True, check=False,
        )
        if archive.returncode != 0:
            raise ValueError(
                f"--baseline {baseline}: not a source tree with sse_core, nor a git revision"
                f" ({archive.stderr.decode(errors='replace').strip()})"
            )
        subprocess.run(["tar", "-x", "-C", directory], input=archive.stdout, check=True)
        for built in (_ROOT / "sse_core").glob("_speedups*.so"):
            shutil.copy2(built, Path(directory) / "sse_core" / built.name)
        yield Path(directory)


def _load() -> str:
    """The load averages (1, 5 and 15 minutes)."""
    return " ".join(f"{average:.2f}" for average in os.getloadavg())


def _workload(args: argparse.Namespace) -> str:
    """What a run does, on which machine, under which load."""
    return (
        f"{args.clients} streams, heartbeat {args.heartbeat:g} s, idle {args.idle:g} s;"
        f" {args.events} events of {args.size} B at {args.rate:g}/s; loopback,"
        f" {os.cpu_count()} cores, load {_load()}\n"
    )


def _server_names(text: str) -> list[str]:
    """The servers ``--servers`` names (comma-separated), each one of :data:`SERVERS`."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(names) - set(SERVERS))
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown servers {unknown}; choose from {', '.join(SERVERS)}"
        )
    return names


def _print_result(name: str, result: dict[str, float], heartbeat: float) -> None:
    print(
        f"{name:14s} {result['clients']:.0f} streams"
        f"  idle (heartbeat {heartbeat:g} s) {result['idle_cpu_pct']:.1f}% of a core"
        f"  delivered {result['delivered']:.0f}/{result['expected']:.0f}"
        f"  CPU/1000 deliveries {result['cpu_ms_per_1000']:.2f} ms"
        f" (user {result['user_ms_per_1000']:.2f} + sys {result['sys_ms_per_1000']:.2f})"
        f"  p50 {result['p50_ms']:.1f} ms p99 {result['p99_ms']:.1f} ms",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--heartbeat", type=float, default=1.0, help="seconds")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds measured idle")
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--rate", type=float, default=5.0, help="events per second")
    parser.add_argument("--size", type=int, default=100, help="bytes of data per event")
    parser.add_argument("--serve", choices=SERVERS, help=argparse.SUPPRESS)  # a server's
    parser.add_argument("--servers", type=_server_names, default=list(SERVERS),
                        help=f"comma-separated, of {', '.join(SERVERS)}")
    parser.add_argument("--baseline", metavar="DIR_OR_REV",
                        help="also run the blocking server of this source tree or git revision")
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds, the servers taking turns; each figure's median is shown")
    args = parser.parse_args(argv)
    bench_load._raise_fd_limit()
    if args.serve is not None:
        _serve(args.serve, args.heartbeat)
        return 0
    names: list[str] = args.servers
    with contextlib.ExitStack() as stack:
        source = None
        if args.baseline is not None:
            try:
                source = stack.enter_context(baseline_tree(args.baseline))
            except ValueError as error:
                parser.error(str(error))
            names.insert(names.index("sync") if "sync" in names else 0, BASELINE)
        print(_workload(args), flush=True)
        runs: dict[str, list[dict[str, float]]] = collections.defaultdict(list)
        # Interleaved: a change in the machine's load hits every server alike.
        for turn, name in itertools.product(range(args.repeat), names):
            if args.repeat > 1 and name == names[0]:
                print(f"round {turn + 1} of {args.repeat}", flush=True)
            runs[name].append(asyncio.run(run_one(
                name, args.clients, heartbeat=args.heartbeat, idle=args.idle,
                events=args.events, rate=args.rate, size=args.size,
                source=source if name == BASELINE else None,
            )))
            _print_result(name, runs[name][-1], args.heartbeat)
    results = {name: bench_load._median(runs[name]) for name in names}
    if args.repeat > 1:
        print(f"\nmedians of {args.repeat} rounds")
        for name in names:
            _print_result(name, results[name], args.heartbeat)
    print(f"\nload after: {_load()}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
