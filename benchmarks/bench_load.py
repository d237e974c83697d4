"""Load benchmark: many concurrent SSE clients on loopback, one broadcast stream.

    python -m benchmarks.bench_load --clients 10000 --events 40

For each server (sse_core's asyncio ``EventStreamServer``, and sse-starlette under uvicorn
on the same workload), in its own process: connect ``--clients`` clients, publish
``--events`` events of about ``--size`` bytes at ``--rate`` per second, and measure

- memory per connection: the server's RSS growth from idle to all connected, divided by
  the number of clients;
- CPU per 1,000 events fanned out: the server process's CPU time (user + system) while it
  broadcasts, per 1,000 deliveries (events x clients);
- latency from publish to receipt, p50 and p99 (each event carries its publish time on the
  shared monotonic clock).

The clients all live in this process: raw sockets speaking HTTP/1.0 (so that neither server
chunks the body) and sse_core's parser. Both servers face the same clients, so the client
side's own cost weighs on both alike. Everything runs on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from sse_core import Event, Parser

SERVERS = ("sse_core", "sse-starlette")


# --- the servers (each runs in its own process: `--serve NAME`) ---------------------------


def _stats(subscribers: int) -> dict[str, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    with open("/proc/self/statm") as statm:
        rss = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return {"rss": rss, "cpu": usage.ru_utime + usage.ru_stime, "subscribers": subscribers}


async def _command_loop(
    publish: Callable[[str], None], subscribers: Callable[[], int], port: int
) -> None:
    """Read commands on stdin: ``stats``, ``publish COUNT RATE SIZE``, ``quit``."""
    loop = asyncio.get_running_loop()
    print(json.dumps({"port": port}), flush=True)
    while True:
        line = (await loop.run_in_executor(None, sys.stdin.readline)).split()
        if not line or line[0] == "quit":
            return
        if line[0] == "stats":
            print(json.dumps(_stats(subscribers())), flush=True)
        elif line[0] == "publish":
            count, rate, size = int(line[1]), float(line[2]), int(line[3])
            started = time.monotonic()
            for n in range(count):
                due = started + n / rate
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                publish(f"{time.monotonic():.6f} {n} " + "x" * size)
            print(json.dumps({"published": count}), flush=True)


async def _serve_sse_core() -> None:
    from sse_core import ServerConfig
    from sse_core.adapters.asyncio import EventStreamServer
    from sse_core.state import ReplayConfig, ReplayLog

    server = EventStreamServer(
        ReplayLog(ReplayConfig(max_events=1000)),
        config=ServerConfig(heartbeat_interval=15.0, is_compression_enabled=False),
    )
    await server.start("127.0.0.1", 0)
    try:
        await _command_loop(
            lambda data: server.publish(Event(data=data)),
            lambda: len(server.broadcaster),
            server.address[1],
        )
    finally:
        await server.aclose(grace=0.0)


async def _serve_sse_starlette() -> None:
    import uvicorn
    from sse_starlette.sse import EventSourceResponse
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.routing import Route

    queues: set[asyncio.Queue[str]] = set()
    counter = 0

    async def events(request: Request) -> EventSourceResponse:
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=10_000)
        queues.add(queue)

        async def stream():  # type: ignore[no-untyped-def]
            try:
                while True:
                    yield await queue.get()
            finally:
                queues.discard(queue)

        return EventSourceResponse(stream(), ping=15)

    def publish(data: str) -> None:
        nonlocal counter
        counter += 1
        # The same wire text as sse_core's (an id and the data), built once per event.
        item = {"id": str(counter), "data": data}
        for queue in list(queues):
            if not queue.full():
                queue.put_nowait(item)  # type: ignore[arg-type]

    app = Starlette(routes=[Route("/events", events)])
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="error", backlog=4096, lifespan="off"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        await _command_loop(publish, lambda: len(queues), port)
    finally:
        server.should_exit = True
        server.force_exit = True
        await asyncio.wait_for(task, 10)


# --- the clients ---------------------------------------------------------------------------


class _LoadClient(asyncio.Protocol):
    """One raw client: sends an HTTP/1.0 request, parses the body, records latencies."""

    def __init__(self, request: bytes, latencies: list[float], done: Callable[[], None]) -> None:
        self._request = request
        self._latencies = latencies
        self._done = done
        self._parser = Parser()
        self._head = b""
        self.is_streaming = False
        self.received = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        if not self.is_streaming:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            data = self._head[end + 4 :]
            self._head = b""
            self.is_streaming = True
        now = time.monotonic()
        for item in self._parser.feed(data):
            if isinstance(item, Event) and item.data[:1].isdigit():
                self._latencies.append(now - float(item.data.split(" ", 1)[0]))
                self.received += 1
                self._done()


async def _connect_all(
    port: int, count: int, latencies: list[float], done: Callable[[], None]
) -> list[_LoadClient]:
    loop = asyncio.get_running_loop()
    request = (
        b"GET /events HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
        b"Cache-Control: no-cache\r\n\r\n"
    )
    clients: list[_LoadClient] = []
    batch = 250
    for start in range(0, count, batch):
        results = await asyncio.gather(*[
            loop.create_connection(
                lambda: _LoadClient(request, latencies, done), "127.0.0.1", port
            )
            for _ in range(min(batch, count - start))
        ])
        clients.extend(protocol for _, protocol in results)
    return clients


class _Server:
    def __init__(self, name: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.bench_load", "--serve", name],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            # uvicorn's forced exit prints the cancelled streams' tracebacks: not our news.
            stderr=subprocess.DEVNULL if name == "sse-starlette" else None,
        )
        self.port = int(self.read()["port"])

    def read(self) -> dict[str, float]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the server process ended")
        return json.loads(line)  # type: ignore[no-any-return]

    def ask(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def stats(self) -> dict[str, float]:
        self.ask("stats")
        return self.read()

    def stop(self) -> None:
        try:
            self.ask("quit")
            self.process.wait(timeout=15)
        except Exception:
            self.process.kill()
            self.process.wait()


async def _run_one(
    name: str, clients: int, events: int, rate: float, size: int
) -> dict[str, float]:
    server = _Server(name)
    latencies: list[float] = []
    expected = clients * events
    all_in = asyncio.Event()
    received = 0

    def done() -> None:
        nonlocal received
        received += 1
        if received >= expected:
            all_in.set()

    protocols: list[_LoadClient] = []
    try:
        idle = server.stats()
        started = time.monotonic()
        protocols = await _connect_all(server.port, clients, latencies, done)
        while True:  # every request read and subscribed
            connected = server.stats()
            if connected["subscribers"] >= clients:
                break
            await asyncio.sleep(0.2)
        connect_time = time.monotonic() - started
        await asyncio.sleep(0.5)
        connected = server.stats()
        server.ask(f"publish {events} {rate} {size}")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(all_in.wait(), timeout=events / rate + 60)
        # The "published" line came first; drain it, then the final stats.
        await asyncio.get_running_loop().run_in_executor(None, server.read)
        after = server.stats()
    finally:
        for protocol in protocols:
            if protocol.transport is not None:
                protocol.transport.abort()
        server.stop()
    ordered = sorted(latencies)

    def quantile(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")

    return {
        "clients": clients,
        "connect_s": connect_time,
        "delivered": len(latencies),
        "expected": expected,
        "mem_per_conn_kib": (connected["rss"] - idle["rss"]) / clients / 1024,
        "cpu_ms_per_1000": (after["cpu"] - connected["cpu"]) * 1000 / (expected / 1000),
        "p50_ms": quantile(0.50) * 1000,
        "p99_ms": quantile(0.99) * 1000,
        "mean_ms": statistics.fmean(latencies) * 1000 if latencies else float("nan"),
    }


def _raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--rate", type=float, default=5.0, help="events per second")
    parser.add_argument("--size", type=int, default=100, help="bytes of data per event")
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--serve", choices=SERVERS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    _raise_fd_limit()
    if args.serve == "sse_core":
        asyncio.run(_serve_sse_core())
        return 0
    if args.serve == "sse-starlette":
        asyncio.run(_serve_sse_starlette())
        return 0

    print(
        f"{args.clients} clients, {args.events} events of {args.size} B at {args.rate:g}/s, "
        f"loopback, {os.cpu_count()} cores\n"
    )
    results = {}
    for name in args.servers.split(","):
        result = asyncio.run(_run_one(name, args.clients, args.events, args.rate, args.size))
        results[name] = result
        print(
            f"{name:14s} delivered {result['delivered']}/{result['expected']}"
            f"  connect {result['connect_s']:.1f} s"
            f"  mem/conn {result['mem_per_conn_kib']:.1f} KiB"
            f"  CPU/1000 fan-outs {result['cpu_ms_per_1000']:.2f} ms"
            f"  latency p50 {result['p50_ms']:.1f} ms p99 {result['p99_ms']:.1f} ms",
            flush=True,
        )
    if set(results) == set(SERVERS):
        ours, theirs = results["sse_core"], results["sse-starlette"]
        print(
            "\nsse-starlette / sse_core:"
            f"  mem/conn {theirs['mem_per_conn_kib'] / ours['mem_per_conn_kib']:.2f}x"
            f"  CPU {theirs['cpu_ms_per_1000'] / ours['cpu_ms_per_1000']:.2f}x"
            f"  p50 {theirs['p50_ms'] / ours['p50_ms']:.2f}x"
            f"  p99 {theirs['p99_ms'] / ours['p99_ms']:.2f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
