"""The server side of the network-namespace tests: run inside its own namespace.

An :class:`~sse_core.adapters.asyncio.EventStreamServer` listens on the given address (port 0)
and, once the first client has subscribed, publishes ``--count`` events at a fixed rate, each
with JSON data ``{"n": <0, 1, ...>}``. It then keeps serving (replays included) until SIGTERM
or ``--deadline``.

It prints JSON lines on stdout:

* ``{"port": <port>}`` once listening;
* ``{"n": <n>, "id": <id>, "t": <monotonic>}`` for each event published;
* ``{"subscribers": <k>, "t": <monotonic>}`` whenever the number of client connections the
  server holds changes (checked every 50 ms);
* ``{"end": "stopped" | "deadline", "published": <count>, "subscribers": <k>,
  "dropped": <d>}`` last, where ``subscribers`` is how many client connections the server
  still held when told to stop (half-open ones included) and ``dropped`` how many clients the
  broadcaster dropped for falling behind.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from typing import Any

from sse_core import Event, ServerConfig
from sse_core.adapters import ServerOptions
from sse_core.adapters.asyncio import EventStreamServer
from sse_core.state import ReplayConfig, ReplayLog


def emit(**fields: Any) -> None:
    """Print one JSON line and flush it (the test reads it at once)."""
    print(json.dumps(fields), flush=True)


async def publish(
    server: EventStreamServer, count: int, interval: float, published: list[str]
) -> None:
    """Publish ``count`` numbered events, ``interval`` apart, once a client is subscribed."""
    await server.wait_for_subscribers()  # the test's client connects within a second
    for n in range(count):
        stored = server.publish(Event(data=json.dumps({"n": n})))
        published.append(stored.id)
        emit(n=n, id=stored.id, t=time.monotonic())
        await asyncio.sleep(interval)


async def watch(server: EventStreamServer) -> None:
    """Print the number of subscribers whenever it changes."""
    seen = -1
    while True:
        if len(server.broadcaster) != seen:
            seen = len(server.broadcaster)
            emit(subscribers=seen, t=time.monotonic())
        await asyncio.sleep(0.05)


async def serve(args: argparse.Namespace) -> None:
    """Serve until SIGTERM or the deadline, then report and close."""
    log = ReplayLog(ReplayConfig(max_events=args.window, epoch="netns"))
    server = EventStreamServer(
        log,
        config=ServerConfig(heartbeat_interval=args.heartbeat),
        options=ServerOptions(send_timeout=args.send_timeout),
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await server.start(args.host, 0)
    published: list[str] = []
    tasks = [
        asyncio.create_task(publish(server, args.count, args.interval, published)),
        asyncio.create_task(watch(server)),
    ]
    try:
        emit(port=server.address[1])
        try:
            await asyncio.wait_for(stop.wait(), args.deadline)
            why = "stopped"
        except asyncio.TimeoutError:
            why = "deadline"
        emit(
            end=why,
            published=len(published),
            subscribers=len(server.broadcaster),
            dropped=server.broadcaster.dropped,
        )
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.aclose(grace=0.5)


def main() -> None:
    """Parse the arguments and serve."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--interval", type=float, required=True)
    parser.add_argument("--window", type=int, required=True, help="replay log max_events")
    parser.add_argument("--heartbeat", type=float, required=True)
    parser.add_argument("--send-timeout", type=float, required=True)
    parser.add_argument("--deadline", type=float, required=True)
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
