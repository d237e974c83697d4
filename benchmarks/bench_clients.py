"""Client benchmark: events/s end to end over loopback, one client at a time (a benchmark,
not a test).

    python -m benchmarks.bench_clients [--events 100000] [--rounds 3] [--workload small]
        [--clients "sse_core asyncio,sse_core sync,httpx-sse"]

A server process blasts a pre-serialized body (HTTP/1.1, close-delimited, no chunking, so
no server work is timed); each client reads it until it has counted every event and checks
the last one's data. Contenders, on the same server bytes:

- sse_core's socket clients: ``adapters.asyncio``, ``adapters.trio``, ``adapters.sync``;
- sse_core's drivers over the user's client: ``adapters.httpx`` (``EventSource`` on an
  ``httpx.AsyncClient``, ``SyncEventSource`` on an ``httpx.Client``, ``TrioEventSource``)
  and ``adapters.aiohttp`` (``EventSource`` on an ``aiohttp.ClientSession``);
- httpx-sse over ``httpx.AsyncClient`` and over ``httpx.Client`` (the usual peer).

Workloads: ``small`` (~100-byte events, no ids), ``big`` (4 KiB events), ``ids`` (~100-byte
events, an ``id:`` on each, the client's dedup window on: sse_core's default). Figures:
events/s (median of the rounds), and the ratio to httpx-sse of the same kind (async to
async, sync to sync). For sse_core's clients the table also splits the time per event into
parsing (the :class:`~sse_core.Parser` alone on the same bytes in 64 KiB chunks) and the rest
(session, pipeline, adapter and I/O).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sse_core import ClientConfig, Parser

#: name -> (bytes of an event's data, whether each event carries an id, share of --events)
WORKLOADS: dict[str, tuple[int, bool, int]] = {
    "small": (94, False, 1),
    "big": (4090, False, 10),  # a tenth as many events: the same order of bytes
    "ids": (88, True, 1),
}

HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Connection: close\r\n\r\n"
)


def payload(index: int, size: int) -> str:
    """The data of event ``index``: its number, padded to ``size`` characters."""
    return f"{index:08d}".ljust(size, "x")


def count(workload: str, events: int) -> int:
    """How many events ``workload`` has for ``--events``."""
    return max(1, events // WORKLOADS[workload][2])


def body(workload: str, events: int) -> bytes:
    """The event stream of ``workload`` for ``--events``."""
    size, has_ids, _ = WORKLOADS[workload]
    events = count(workload, events)
    if has_ids:
        lines = [f"id: {i}\ndata: {payload(i, size)}\n\n" for i in range(events)]
    else:
        lines = [f"data: {payload(i, size)}\n\n" for i in range(events)]
    return "".join(lines).encode()


# --- the server: its own process, so that it does not share the clients' interpreter ---


def serve(events: int) -> None:
    """Accept connections forever; answer ``GET /<workload>`` with that workload's body."""
    bodies = {name: HEAD + body(name, events) for name in WORKLOADS}
    with socket.create_server(("127.0.0.1", 0), backlog=64) as listener:
        print(listener.getsockname()[1], flush=True)
        while True:
            connection, _ = listener.accept()
            with connection:
                head = b""
                while b"\r\n\r\n" not in head:
                    data = connection.recv(4096)
                    if not data:
                        break
                    head += data
                else:
                    name = head.split(b" ", 2)[1].decode().strip("/")
                    with contextlib.suppress(OSError):
                        connection.sendall(bodies[name])
                        connection.shutdown(socket.SHUT_WR)
                        while connection.recv(65536):  # until the client lets go
                            pass


# --- the contenders: each reads one stream until it has `events` events ----------------

#: A contender: (url, events) -> (the last event's data, seconds from the request to it).
#: The clock starts once the client object and event loop exist (httpx's client builds an
#: SSL context, about 15 ms, which is not what is measured here).
Reader = Callable[[str, int], tuple[str, float]]


def _config(url: str) -> ClientConfig:
    return ClientConfig(url=url, stall_timeout=None)


async def _count_async(events: AsyncIterator[Any], wanted: int) -> str:
    """Count ``wanted`` events; the data of the last one."""
    count = 0
    async for event in events:
        count += 1
        if count == wanted:
            return str(event.data)
    raise AssertionError(f"the stream ended after {count} of {wanted} events")


def _count(events: Iterator[Any], wanted: int) -> str:
    """Count ``wanted`` events; the data of the last one."""
    count = 0
    for event in events:
        count += 1
        if count == wanted:
            return str(event.data)
    raise AssertionError(f"the stream ended after {count} of {wanted} events")


def sse_core_asyncio(url: str, events: int) -> tuple[str, float]:
    from sse_core.adapters.asyncio import EventSource

    async def read() -> tuple[str, float]:
        started = time.perf_counter()
        async with EventSource(_config(url)) as source:
            return await _count_async(aiter(source), events), time.perf_counter() - started

    return asyncio.run(read())


def sse_core_trio(url: str, events: int) -> tuple[str, float]:
    import trio

    from sse_core.adapters.trio import EventSource

    async def read() -> tuple[str, float]:
        started = time.perf_counter()
        async with EventSource(_config(url)) as source:
            return await _count_async(aiter(source), events), time.perf_counter() - started

    return trio.run(read)


def sse_core_sync(url: str, events: int) -> tuple[str, float]:
    from sse_core.adapters.sync import EventSource

    started = time.perf_counter()
    with EventSource(_config(url)) as source:
        return _count(iter(source), events), time.perf_counter() - started


def sse_core_httpx(url: str, events: int) -> tuple[str, float]:
    import httpx

    from sse_core.adapters.httpx import EventSource

    async def read() -> tuple[str, float]:
        async with httpx.AsyncClient() as client:
            started = time.perf_counter()
            async with EventSource(client, _config(url)) as source:
                return await _count_async(aiter(source), events), time.perf_counter() - started

    return asyncio.run(read())


def sse_core_httpx_sync(url: str, events: int) -> tuple[str, float]:
    import httpx

    from sse_core.adapters.httpx import SyncEventSource

    with httpx.Client() as client:
        started = time.perf_counter()
        with SyncEventSource(client, _config(url)) as source:
            return _count(iter(source), events), time.perf_counter() - started


def sse_core_httpx_trio(url: str, events: int) -> tuple[str, float]:
    import httpx
    import trio

    from sse_core.adapters.httpx import TrioEventSource

    async def read() -> tuple[str, float]:
        async with httpx.AsyncClient() as client:
            started = time.perf_counter()
            async with TrioEventSource(client, _config(url)) as source:
                return await _count_async(aiter(source), events), time.perf_counter() - started

    return trio.run(read)


def sse_core_aiohttp(url: str, events: int) -> tuple[str, float]:
    import aiohttp

    from sse_core.adapters.aiohttp import EventSource

    async def read() -> tuple[str, float]:
        async with aiohttp.ClientSession() as client:
            started = time.perf_counter()
            async with EventSource(client, _config(url)) as source:
                return await _count_async(aiter(source), events), time.perf_counter() - started

    return asyncio.run(read())


def httpx_sse_async(url: str, events: int) -> tuple[str, float]:
    import httpx
    from httpx_sse import aconnect_sse

    async def read() -> tuple[str, float]:
        async with httpx.AsyncClient() as client:
            started = time.perf_counter()
            async with aconnect_sse(client, "GET", url) as source:
                last = await _count_async(source.aiter_sse(), events)
                return last, time.perf_counter() - started

    return asyncio.run(read())


def httpx_sse_sync(url: str, events: int) -> tuple[str, float]:
    import httpx
    from httpx_sse import connect_sse

    with httpx.Client() as client:
        started = time.perf_counter()
        with connect_sse(client, "GET", url) as source:
            return _count(source.iter_sse(), events), time.perf_counter() - started


@dataclass(frozen=True)
class Contender:
    """One client under test."""

    name: str
    read: Reader
    #: "async" or "sync": which httpx-sse it is compared with
    kind: str
    #: whether the parse/rest split applies (sse_core's own clients)
    is_ours: bool
    #: a module the contender needs, or None
    needs: str | None = None


CONTENDERS = [
    Contender("sse_core asyncio", sse_core_asyncio, "async", True),
    Contender("sse_core trio", sse_core_trio, "async", True, "trio"),
    Contender("sse_core sync", sse_core_sync, "sync", True),
    Contender("sse_core httpx driver", sse_core_httpx, "async", True, "httpx"),
    Contender("sse_core httpx sync", sse_core_httpx_sync, "sync", True, "httpx"),
    Contender("sse_core httpx trio", sse_core_httpx_trio, "async", True, "trio"),
    Contender("sse_core aiohttp", sse_core_aiohttp, "async", True, "aiohttp"),
    Contender("httpx-sse async", httpx_sse_async, "async", False, "httpx_sse"),
    Contender("httpx-sse sync", httpx_sse_sync, "sync", False, "httpx_sse"),
]

PEER = {"async": "httpx-sse async", "sync": "httpx-sse sync"}


def available() -> list[Contender]:
    """The contenders whose libraries are installed."""
    found = []
    for contender in CONTENDERS:
        if contender.needs is not None:
            try:
                importlib.import_module(contender.needs)
            except ImportError:
                continue
        found.append(contender)
    return found


# --- measuring ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    """One contender's figures on one workload."""

    contender: Contender
    workload: str
    seconds: list[float]
    last: str
    events: int

    @property
    def rate(self) -> float:
        """Events per second, median of the rounds."""
        return self.events / statistics.median(self.seconds)


def parse_seconds(workload: str, events: int) -> float:
    """Seconds sse_core's parser takes for the workload's body in 64 KiB chunks (best of 3)."""
    data = body(workload, events)
    chunks = [data[i : i + 65536] for i in range(0, len(data), 65536)]
    best = float("inf")
    for _ in range(3):
        parser = Parser()
        started = time.perf_counter()
        for chunk in chunks:
            parser.feed(chunk)
        best = min(best, time.perf_counter() - started)
    return best


def measure(
    port: int, contenders: list[Contender], workload: str, events: int, rounds: int
) -> list[Result]:
    """Each contender reads the workload's stream ``rounds`` times (interleaved)."""
    url = f"http://127.0.0.1:{port}/{workload}"
    events = count(workload, events)
    seconds: dict[str, list[float]] = {c.name: [] for c in contenders}
    last: dict[str, str] = {}
    for _ in range(rounds):
        for contender in contenders:
            last[contender.name], elapsed = contender.read(url, events)
            seconds[contender.name].append(elapsed)
    return [Result(c, workload, seconds[c.name], last[c.name], events) for c in contenders]


@contextlib.contextmanager
def server(events: int) -> Iterator[int]:
    """The blasting server, in its own process; yields its port."""
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.bench_clients", "--serve", "--events", str(events)],
        stdout=subprocess.PIPE, text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    try:
        assert process.stdout is not None
        yield int(process.stdout.readline())
    finally:
        process.kill()
        process.wait()


def report(results: list[Result], events: int) -> None:
    """Print one workload's table."""
    workload = results[0].workload
    size, has_ids, _ = WORKLOADS[workload]
    rates = {r.contender.name: r.rate for r in results}
    parsing = parse_seconds(workload, events) / count(workload, events) * 1e6
    print(f"\n## {workload}: {count(workload, events):,} events of {size} data bytes"
          f"{', an id on each (dedup on)' if has_ids else ''}; median of {len(results[0].seconds)}")
    print(f"{'client':<24}{'events/s':>12}{'vs httpx-sse':>14}{'us/event':>10}"
          f"{'parse':>8}{'rest':>8}")
    for result in results:
        name = result.contender.name
        peer = rates.get(PEER[result.contender.kind])
        ratio = f"{result.rate / peer:.2f}x" if peer else "-"
        per_event = 1e6 / result.rate
        split = (f"{parsing:>8.2f}{per_event - parsing:>8.2f}" if result.contender.is_ours
                 else f"{'':>8}{'':>8}")
        print(f"{name:<24}{result.rate:>12,.0f}{ratio:>14}{per_event:>10.2f}{split}")


def run(
    events: int, rounds: int, workloads: list[str], chosen: list[str] | None = None
) -> list[Result]:
    """Measure every available contender on ``workloads`` (those whose name starts with
    one of ``chosen``, when given); check each read every event."""
    contenders = [
        contender for contender in available()
        if chosen is None or any(contender.name.startswith(prefix) for prefix in chosen)
    ]
    results: list[Result] = []
    with server(events) as port:
        for workload in workloads:
            measured = measure(port, contenders, workload, events, rounds)
            expected = payload(count(workload, events) - 1, WORKLOADS[workload][0])
            for result in measured:
                if result.last != expected:
                    raise AssertionError(
                        f"{result.contender.name} on {workload}: last event {result.last[:20]!r}"
                        f", expected {expected[:20]!r}"
                    )
            results.extend(measured)
    return results


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark (or, with ``--serve``, be its server)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workload", choices=[*WORKLOADS, "all"], default="all")
    parser.add_argument(
        "--clients", default=None,
        help="comma-separated name prefixes of the contenders to run (default: all)",
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.events)
        return
    workloads = list(WORKLOADS) if args.workload == "all" else [args.workload]
    chosen = None if args.clients is None else [c.strip() for c in args.clients.split(",")]
    results = run(args.events, args.rounds, workloads, chosen)
    import sse_core

    print(f"sse_core {sse_core.__version__} (C accelerator: {sse_core.ACCELERATED}), "
          f"Python {sys.version.split()[0]}")
    for workload in workloads:
        report([r for r in results if r.workload == workload], args.events)


if __name__ == "__main__":
    main()
