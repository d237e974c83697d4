"""Server CPU per event with many held long polls, against the same clients streaming.

    python -m benchmarks.longpoll_cpu --clients 1000 --events 60 --rate 10

sse_core's asyncio ``EventStreamServer`` (polls on ``/poll``, answers not compressed) runs in a
process of its own, driven like ``benchmarks.bench_load``'s servers (``stats`` reads its
``resource.getrusage`` CPU time, user + system). This process holds ``--clients`` clients on
it, first as long pollers, then as streams, and the server publishes ``--events`` events of
``--size`` bytes at ``--rate`` per second to each kind. Printed per transport:

- the server's CPU time from the first publish until every client has every event: per
  event published, and per delivery (event x client);
- events/s each client received, deliveries/s in all, requests/s (each poll is a request and
  a connection: HTTP/1.0, the server closes it after the answer; the streams are one request
  each, made before the window);
- latency from publish to receipt, p50 and p99.

The pollers are raw sockets (a request, the answer read to its end, its JSON parsed, the next
poll at once from its ``last_event_id``); the streams are ``bench_load``'s clients. Both live
in this process, so the clients' own cost never lands on the server's figure. Everything runs
on 127.0.0.1 and stops by itself (each run is bounded by ``--events / --rate + 60`` s).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable

from benchmarks import bench_load
from sse_core import Event, LongPollConfig, ServerConfig
from sse_core.adapters import ServerOptions
from sse_core.adapters.asyncio import EventStreamServer
from sse_core.state import ReplayConfig, ReplayLog

TRANSPORTS = ("polls", "streams")
#: The command line: clients, events, events per second, bytes of data per event, transports.
_OPTIONS: tuple[tuple[str, type, object], ...] = (
    ("--clients", int, 1000), ("--events", int, 60), ("--rate", float, 10.0),
    ("--size", int, 100), ("--transports", str, ",".join(TRANSPORTS)),
)


async def _serve() -> None:
    """The server's process: commands on stdin (``bench_load``'s ``stats``, ``publish``)."""
    server = EventStreamServer(
        ReplayLog(ReplayConfig(max_events=10_000)),
        config=ServerConfig(heartbeat_interval=15.0, is_compression_enabled=False),
        options=ServerOptions(
            long_poll_path="/poll", long_poll=LongPollConfig(max_hold=25.0),
            max_subscribers=None, max_held_polls=None,
        ),
    )
    await server.start("127.0.0.1", 0)
    broadcaster = server.broadcaster

    def publish(data: str) -> None:
        server.publish(Event(data=data))

    try:
        await bench_load._command_loop(
            publish,
            lambda: len(broadcaster) + broadcaster.held_polls,
            server.address[1],
        )
    finally:
        await server.aclose(grace=0.0)


class _Server(bench_load._Server):
    """The server's process (``--serve``)."""

    def __init__(self) -> None:
        command = [sys.executable, "-m", "benchmarks.longpoll_cpu", "--serve"]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True)
        self.port = int(self.read()["port"])


class _Pollers:
    """``count`` raw long pollers: each polls again as soon as its answer is read."""

    def __init__(self, port: int, latencies: list[float], done: Callable[[], None]) -> None:
        self._port = port
        self._latencies = latencies
        self._done = done
        self.requests = 0
        self.is_running = True

    async def poll_for_ever(self) -> None:
        """One poller's loop (ends at the first poll after :attr:`is_running` went false)."""
        last_event_id = ""
        while self.is_running:
            reader, writer = await asyncio.open_connection("127.0.0.1", self._port)
            writer.write(
                f"GET /poll?lastEventId={last_event_id}&timeout=25 HTTP/1.0\r\n"
                "Host: 127.0.0.1\r\nAccept: application/json\r\n\r\n".encode()
            )
            response = await reader.read()  # HTTP/1.0: to the end of the connection
            writer.close()
            self.requests += 1
            answer = json.loads(response[response.index(b"\r\n\r\n") + 4 :])
            now = time.monotonic()
            for event in answer["events"]:
                if event["data"][:1].isdigit():
                    self._latencies.append(now - float(event["data"].split(" ", 1)[0]))
                    self._done()
            last_event_id = answer["last_event_id"]


async def _run(transport: str, clients: int, events: int, rate: float, size: int) -> dict[
    str, float
]:
    server = _Server()
    latencies: list[float] = []
    all_in = asyncio.Event()
    expected = clients * events

    def done() -> None:
        if len(latencies) >= expected:
            all_in.set()

    pollers = _Pollers(server.port, latencies, done)
    tasks: list[asyncio.Task[None]] = []
    streams: list[bench_load._LoadClient] = []
    try:
        if transport == "polls":
            tasks = [asyncio.create_task(pollers.poll_for_ever()) for _ in range(clients)]
        else:
            streams = await bench_load._connect_all(server.port, clients, "1.1", latencies, done)
        while server.stats()["subscribers"] < clients:  # every poll held, every stream open
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.5)
        before = server.stats()
        requests_before = pollers.requests
        started = time.monotonic()
        server.ask(f"publish {events} {rate} {size}")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(all_in.wait(), timeout=events / rate + 60)
        window = time.monotonic() - started
        await asyncio.get_running_loop().run_in_executor(None, server.read)  # "published"
        after = server.stats()
        requests = pollers.requests - requests_before
    finally:
        pollers.is_running = False
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for stream in streams:
            if stream.transport is not None:
                stream.transport.abort()
        server.stop()
    ordered = sorted(latencies)
    cpu = (after["user"] + after["sys"]) - (before["user"] + before["sys"])  # user + system
    return {
        "delivered": len(latencies),
        "expected": expected,
        "window_s": window,
        "cpu_s": cpu,
        "cpu_ms_per_event": cpu * 1000 / events,
        "cpu_us_per_delivery": cpu * 1e6 / max(1, len(latencies)),
        "events_per_s": len(latencies) / clients / window,
        "deliveries_per_s": len(latencies) / window,
        "requests_per_s": requests / window,
        "events_per_request": len(latencies) / requests if requests else float("nan"),
        "p50_ms": ordered[len(ordered) // 2] * 1000 if ordered else float("nan"),
        "p99_ms": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000
        if ordered else float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for flag, kind, default in _OPTIONS:
        parser.add_argument(flag, type=kind, default=default)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    bench_load._raise_fd_limit()
    if args.serve:
        asyncio.run(_serve())
        return 0
    print(
        f"{args.clients} clients, {args.events} events of {args.size} B at {args.rate:g}/s,"
        f" sse_core's asyncio server, loopback, {os.cpu_count()} cores\n"
    )
    for transport in args.transports.split(","):
        result = asyncio.run(_run(transport, args.clients, args.events, args.rate, args.size))
        print(
            f"{transport:8s} delivered {result['delivered']}/{result['expected']}"
            f" in {result['window_s']:.1f} s; server CPU {result['cpu_s']:.2f} s ="
            f" {result['cpu_ms_per_event']:.1f} ms per event ="
            f" {result['cpu_us_per_delivery']:.1f} us per delivery\n"
            f"{'':8s} {result['events_per_s']:.1f} events/s per client,"
            f" {result['deliveries_per_s']:.0f} deliveries/s,"
            f" {result['requests_per_s']:.0f} requests/s"
            f" ({result['events_per_request']:.2f} events per request);"
            f" latency p50 {result['p50_ms']:.0f} ms, p99 {result['p99_ms']:.0f} ms",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
