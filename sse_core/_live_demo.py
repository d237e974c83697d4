"""The live part of ``python -m sse_core demo``: server, fault proxy and client on loopback (edge).

An asyncio :class:`~sse_core.adapters.asyncio.EventStreamServer` publishes a numbered stream
(with non-ASCII text, so that cuts land inside UTF-8 characters). A
:class:`~sse_core.testing.FaultProxy` sits between it and an asyncio
:class:`~sse_core.adapters.asyncio.EventSource`, and faults hit one after another: a cut of the
live connection, a cut after a byte count inside an event, a TCP reset, a silent stall, added
latency, and a server restart on another port with the same replay log. The client's status
is printed as it changes; the report at the end says whether every event arrived exactly once
and in order.
"""

from __future__ import annotations

import asyncio
import random
import time

from ._actions import Deliver, ReportGap, ReportStatus
from ._backoff import BackoffConfig
from ._client import ClientConfig
from ._events import Event
from ._replay import ReplayConfig, ReplayLog
from ._server import ServerConfig
from .adapters.asyncio import EventSource, EventStreamServer
from .testing import CutAfter, Delay, FaultProxy, Pass, ResetAfter, StallAfter

__all__ = ["live_demo"]

_PLAN = (
    # (connection number, fault, what it does)
    (2, CutAfter(after_bytes=937), "cut after 937 bytes: inside an event"),
    (3, ResetAfter(after_bytes=2_000), "TCP reset after 2,000 bytes"),
    (4, StallAfter(after_bytes=1_200), "silent stall after 1,200 bytes (socket stays open)"),
    (5, Delay(latency=0.15), "150 ms added to every chunk"),
)


async def _live(seed: int, events: int, interval: float) -> bool:
    rng = random.Random(seed)
    started = time.monotonic()

    def stamp() -> str:
        return f"{time.monotonic() - started:6.2f}s"

    log = ReplayLog(ReplayConfig(max_events=100_000))
    server_config = ServerConfig(heartbeat_interval=0.5, retry=100)
    server = EventStreamServer(log, config=server_config)
    await server.start()
    proxy = FaultProxy(upstream=server.address)
    await proxy.start()
    proxy.schedule(Pass(), *[fault for _, fault, _ in _PLAN])
    host, port = proxy.address
    print(f"   server on {server.address[1]}, fault proxy on {port}, client -> proxy")
    print("   planned faults, one per new connection:")
    print("     connection 1: cut while streaming, at 0.8 s (the live cut)")
    for number, _, text in _PLAN:
        print(f"     connection {number}: {text}")
    restart_at = events * interval * 0.7
    print(f"     then: server restart on another port (same replay log) at {restart_at:.1f} s")
    print()

    config = ClientConfig(
        url=f"http://{host}:{port}/events",
        stall_timeout=1.0,
        backoff=BackoffConfig(base_delay=0.1, max_delay=1.0),
    )
    published: list[str] = []
    received: list[str] = []
    gaps: list[ReportGap] = []

    async def publish() -> None:
        nonlocal server
        restart_at = events * 0.7
        while len(server.broadcaster) == 0:  # the client is owed what follows its arrival
            await asyncio.sleep(0.005)
        for n in range(events):
            text = f"tick {n} · température {rng.randint(-20, 40)} °C · 東京"
            published.append(server.publish(Event(data=text, event="tick")).id)
            if n == int(0.8 / interval):
                print(f"   {stamp()}  FAULT  the live connection is cut")
                await proxy.cut_all()
            if n == int(restart_at):
                print(f"   {stamp()}  FAULT  server restart (same replay log, new port)")
                await server.aclose(grace=0.0)
                server = EventStreamServer(log, config=server_config)
                await server.start()
                proxy.upstream = server.address
            if n + 1 < events:
                await asyncio.sleep(interval)

    publisher = asyncio.create_task(publish())
    source = EventSource(config, rng=rng)

    async def consume() -> None:
        async for report in source.reports():
            if isinstance(report, Deliver):
                received.append(report.event.id or "")
                if len(received) >= events:
                    return
            elif isinstance(report, ReportStatus):
                why = f"  ({report.reason})" if report.reason else ""
                print(f"   {stamp()}  {report.state.value.upper():<12}{why}")
            elif isinstance(report, ReportGap):
                gaps.append(report)
                print(f"   {stamp()}  GAP    {report}")

    try:
        async with source:
            consumer = asyncio.create_task(consume())
            await publisher
            # Everything is published; the client has a few seconds to catch up.
            await asyncio.wait_for(consumer, timeout=10.0)
    except asyncio.TimeoutError:
        print(f"   {stamp()}  the client did not catch up in time")
    finally:
        publisher.cancel()
        await proxy.close()
        await server.aclose(grace=0.0)

    metrics = source.metrics
    is_exact = received == published
    print()
    print(f"   events published          {len(published)}")
    print(f"   events delivered          {len(received)}")
    print(f"   exactly once, in order    {'yes' if is_exact else 'NO'}")
    if not is_exact:
        missing = sorted(set(published) - set(received), key=published.index)
        print(f"   missing: {missing[:20]}")
        print(f"   delivered twice: {sorted({i for i in received if received.count(i) > 1})[:20]}")
    print(f"   duplicates suppressed     {metrics.messages_deduplicated}")
    print(f"   gaps reported             {len(gaps)}")
    print(f"   reconnections             {metrics.reconnections}")
    print(f"   connections through proxy {proxy.stats.accepted}")
    print(f"   faults injected           {proxy.stats.faults_applied + 1}"
          " (the live cut, the plan, the restart)")
    return is_exact and not gaps


def live_demo(seed: int, *, events: int = 600, interval: float = 0.01) -> bool:
    """Run the live demo; return whether every event arrived exactly once, in order."""
    return asyncio.run(_live(seed, events, interval))
