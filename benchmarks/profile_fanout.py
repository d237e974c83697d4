"""Where the asyncio server's publish time goes with many clients that never read.

    python -m benchmarks.profile_fanout --clients 2000 --rate 10 --seconds 20 [--gzip] [--read]

An asyncio ``EventStreamServer`` in this process; ``--clients`` raw sockets in a child
process that send a request (with ``Accept-Encoding: gzip`` when ``--gzip``), shrink their
receive buffer and never read, so that every server transport soon stops taking bytes
(paused); with ``--read`` they read everything instead. The publisher aims at ``--rate``
events per second of ``--size`` bytes for ``--seconds``; the script prints the rate
achieved, the time one :meth:`publish` call takes (median and worst) and how late the loop
ran the publisher, then a cProfile of the publish calls only (``--top`` lines, by internal
time; ``--no-profile`` to time without it).

Everything runs on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import cProfile
import io
import pstats
import random
import selectors
import socket
import statistics
import subprocess
import sys
import time

from sse_core import Event, ServerConfig
from sse_core.adapters import ServerOptions
from sse_core.adapters.asyncio import EventStreamServer


def _clients(port: int, count: int, is_gzip: bool, is_reading: bool) -> None:
    """The child process: ``count`` connections that never read (or, with ``is_reading``,
    read and discard everything); exits when stdin closes."""
    accept = b"Accept-Encoding: gzip\r\n" if is_gzip else b""
    request = b"GET /events HTTP/1.1\r\nHost: bench\r\n" + accept + b"\r\n"
    socks = []
    for _ in range(count):
        sock = socket.socket()
        if not is_reading:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        sock.sendall(request)
        socks.append(sock)
    print("connected", flush=True)
    if not is_reading:
        sys.stdin.read()
        return
    selector = selectors.DefaultSelector()
    selector.register(sys.stdin, selectors.EVENT_READ)
    for sock in socks:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    while True:
        for key, _ in selector.select():
            if key.fileobj is sys.stdin:
                return
            with contextlib.suppress(OSError):
                key.fileobj.recv(1 << 16)  # type: ignore[union-attr]


async def start_clients(
    port: int, count: int, *, is_gzip: bool = False, is_reading: bool = False
) -> subprocess.Popen[str]:
    """Start the child process of ``count`` clients of ``127.0.0.1:port`` (as ``--child``
    runs them) and wait until all are connected; closing its stdin ends it."""
    child = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.profile_fanout", "--child", str(port),
         "--clients", str(count), *(["--gzip"] if is_gzip else []),
         *(["--read"] if is_reading else [])],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert child.stdout is not None
    line = await asyncio.get_running_loop().run_in_executor(None, child.stdout.readline)
    if line.strip() != "connected":
        child.kill()
        child.wait()
        raise RuntimeError(f"the clients did not connect: {line!r}")
    return child


async def _run(args: argparse.Namespace) -> None:
    config = ServerConfig(heartbeat_interval=None, is_compression_enabled=args.gzip)
    server = EventStreamServer(config=config, options=ServerOptions(send_timeout=None))
    await server.start()
    port = server.address[1]
    child = await start_clients(port, args.clients, is_gzip=args.gzip, is_reading=args.read)
    try:
        while len(server.broadcaster) < args.clients:
            await asyncio.sleep(0.05)
        rng = random.Random(1)

        def text(size: int) -> str:  # compresses about as well as JSON does (4:3)
            return base64.b64encode(rng.randbytes(size * 3 // 4)).decode()

        # Warm up with big events until every transport is paused (the sockets are full).
        warm = 0
        while (
            not args.read
            and sum(p._is_paused for p in server._protocols) < args.clients
            and warm < 50
        ):
            server.publish(Event(data=text(64 * 1024)))
            warm += 1
            await asyncio.sleep(0.1)
        paused = sum(p._is_paused for p in server._protocols)
        print(f"{args.clients} clients, read={args.read}, gzip={args.gzip}, size={args.size}:"
              f" {paused} paused after {warm} warm-up events")
        profile = cProfile.Profile()
        durations: list[float] = []
        lateness: list[float] = []
        interval = 1.0 / args.rate
        start = time.monotonic()
        due = start
        count = 0
        while time.monotonic() - start < args.seconds:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            lateness.append(max(0.0, time.monotonic() - due))
            event = Event(data=text(args.size))
            t0 = time.perf_counter()
            if args.profile:
                profile.enable()
            server.publish(event)
            if args.profile:
                profile.disable()
            durations.append(time.perf_counter() - t0)
            count += 1
            due += interval
        elapsed = time.monotonic() - start
        print(f"published {count} in {elapsed:.1f} s: {count / elapsed:.1f} events/s"
              f" (aimed at {args.rate}); dropped so far {server.broadcaster.dropped}")
        print(f"publish(): median {statistics.median(durations) * 1e3:.1f} ms,"
              f" max {max(durations) * 1e3:.1f} ms;"
              f" loop lateness median {statistics.median(lateness) * 1e3:.1f} ms,"
              f" max {max(lateness) * 1e3:.1f} ms")
        if args.profile:
            out = io.StringIO()
            pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(args.top)
            print(out.getvalue())
    finally:
        if child.stdin is not None:
            child.stdin.close()
        child.wait(timeout=30)
        await server.aclose(grace=0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--gzip", action="store_true")
    parser.add_argument("--read", action="store_true", help="clients that read everything")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--no-profile", dest="profile", action="store_false")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        _clients(args.child, args.clients, args.gzip, args.read)
    else:
        asyncio.run(_run(args))


if __name__ == "__main__":
    main()
