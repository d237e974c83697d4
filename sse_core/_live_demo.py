"""The live part of ``python -m sse_core demo``: server, fault proxy and client on loopback (edge).

An asyncio :class:`~sse_core.adapters.asyncio.EventStreamServer` publishes a numbered stream
(with non-ASCII text, so that cuts land inside UTF-8 characters). A
:class:`~sse_core.testing.FaultProxy` sits between it and an asyncio
:class:`~sse_core.adapters.asyncio.EventSource`, and faults hit one after another: a cut of the
live connection, a cut after a byte count inside an event, a TCP reset, a silent stall, added
latency, and a server restart on another port with the same replay log. Printed as it
happens: the client's status, its staleness (``ClientConfig(stale_after=...)``: no byte for
longer than that, the data may be stale, until the next byte), and the alerts a
:class:`~sse_core.state.HealthMonitor` raises and resolves over the client's metrics, checked
at a steady interval with thresholds scaled to the demo's few seconds. The report at the end
says whether every event arrived exactly once and in order.
"""

from __future__ import annotations

import asyncio
import random
import time

from ._actions import Deliver, ReportGap, ReportStale, ReportStatus
from ._backoff import BackoffConfig
from ._client import ClientConfig
from ._events import Event
from ._health import HealthConfig, HealthMonitor, HealthRule, RaiseAlert, ResolveAlert
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

#: The client's stall timeout, and the age at which it says its data may be stale: between
#: the server's heartbeat interval (0.5 s) and the stall timeout, so a stall shows first as
#: stale data, then as a reconnection.
_STALL_TIMEOUT = 1.0
_STALE_AFTER = 0.7

#: The health monitor's thresholds, scaled from the brief's minutes to the demo's seconds: the
#: burst of faults is "more than 2 reconnections within 3 s"; the alert resolves once the
#: rule has been clear for 1 s. Checked every 0.1 s, as an application would on a timer.
_HEALTH = HealthConfig(window=3.0, max_reconnections=2, resolve_after=1.0)
_HEALTH_INTERVAL = 0.1

#: The longest the demo waits, once the client has caught up, for open alerts to resolve (a
#: rule clears at most one window after the last fault, then holds for ``resolve_after``).
_RESOLVE_WAIT = _HEALTH.window + _HEALTH.resolve_after + 2.0


def _number(value: float | int | None) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, int):
        return str(value)
    return f"{value:.2f}".rstrip("0").rstrip(".")


#: The rules whose figure is a rate (shown as a percentage), and the one that fires below.
_RATES = (HealthRule.STREAM_COMPLETION, HealthRule.CONNECTION_FAILURES)
_FIRES_BELOW = HealthRule.STREAM_COMPLETION


def _figure(rule: HealthRule, value: float | int | None) -> str:
    if rule in _RATES and value is not None:
        return f"{value:.0%}"
    return _number(value) + (" s" if rule is HealthRule.RECONNECT_TIME else "")


def _figures(alert: RaiseAlert | ResolveAlert) -> str:
    """The figures behind an alert, readable: ``window 2.9 s, reconnections 3``."""
    parts = []
    for name, value in alert.figures:
        unit = " s" if name in ("window", "total") else ""
        parts.append(f"{name} {_number(value)}{unit}")
    return ", ".join(parts)


def _describe(alert: RaiseAlert | ResolveAlert) -> tuple[str, str]:
    """The label and the text of an alert's line, with the figures behind it."""
    rule = alert.rule
    if isinstance(alert, RaiseAlert):
        side = "under" if rule is _FIRES_BELOW else "over"
        return ("ALERT", f"{rule.value}: {_figure(rule, alert.value)}, {side} "
                f"{_figure(rule, alert.threshold)} ({_figures(alert)})")
    held = alert.at - alert.raised_at
    return ("RESOLVED", f"{rule.value}: clear for {_number(_HEALTH.resolve_after)} s, "
            f"alerted for {held:.1f} s ({_figures(alert)})")


async def _live(seed: int, events: int, interval: float) -> bool:
    rng = random.Random(seed)
    started = time.monotonic()

    def say(label: str, text: str = "") -> None:
        print(f"   {time.monotonic() - started:6.2f}s  {label:<12}  {text}".rstrip())

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
    print(f"   the client: stall timeout {_number(_STALL_TIMEOUT)} s; its data may be stale "
          f"after {_number(_STALE_AFTER)} s")
    print("     without a byte (the server sends a heartbeat every 0.5 s when idle)")
    print(f"   health, checked every {_number(_HEALTH_INTERVAL)} s: alert on more than "
          f"{_HEALTH.max_reconnections} reconnections")
    print(f"     within {_number(_HEALTH.window)} s, resolved after "
          f"{_number(_HEALTH.resolve_after)} s clear")
    print()

    config = ClientConfig(
        url=f"http://{host}:{port}/events",
        stall_timeout=_STALL_TIMEOUT,
        stale_after=_STALE_AFTER,
        backoff=BackoffConfig(base_delay=0.1, max_delay=1.0),
    )
    published: list[str] = []
    received: list[str] = []
    gaps: list[ReportGap] = []
    stale_for: list[float] = []  # how long each stale period lasted
    alerts: list[RaiseAlert | ResolveAlert] = []
    caught_up = asyncio.Event()

    async def publish() -> None:
        nonlocal server
        restart_at = events * 0.7
        while len(server.broadcaster) == 0:  # the client is owed what follows its arrival
            await asyncio.sleep(0.005)
        for n in range(events):
            text = f"tick {n} · température {rng.randint(-20, 40)} °C · 東京"
            published.append(server.publish(Event(data=text, event="tick")).id)
            if n == int(0.8 / interval):
                say("FAULT", "the live connection is cut")
                await proxy.cut_all()
            if n == int(restart_at):
                say("FAULT", "server restart (same replay log, new port)")
                await server.aclose(grace=0.0)
                server = EventStreamServer(log, config=server_config)
                await server.start()
                proxy.upstream = server.address
            if n + 1 < events:
                await asyncio.sleep(interval)

    publisher = asyncio.create_task(publish())
    source = EventSource(config, rng=rng)
    monitor = HealthMonitor(_HEALTH)

    async def consume() -> None:
        stale_since = 0.0
        async for report in source.reports():
            if isinstance(report, Deliver):
                received.append(report.event.id or "")
                if len(received) >= events:
                    caught_up.set()
            elif isinstance(report, ReportStatus):
                why = f"  ({report.reason})" if report.reason else ""
                say(f"{report.state.value.upper():<12}{why}")
            elif isinstance(report, ReportStale) and report.is_stale:
                stale_since = report.since
                age = time.monotonic() - report.since
                say("STALE", f"data may be stale (no byte for {age:.1f} s)")
            elif isinstance(report, ReportStale):
                stale_for.append(report.since - stale_since)
                say("FRESH", f"fresh again (a byte after {stale_for[-1]:.1f} s without one)")
            elif isinstance(report, ReportGap):
                gaps.append(report)
                say("GAP", str(report))

    async def watch_health() -> None:
        while True:
            for alert in monitor.check(source.metrics, time.monotonic()):
                alerts.append(alert)
                say(*_describe(alert))
            await asyncio.sleep(_HEALTH_INTERVAL)

    tasks: list[asyncio.Task[None]] = []
    try:
        async with source:
            tasks += [asyncio.create_task(consume()), asyncio.create_task(watch_health())]
            await publisher
            # Everything is published; the client has a few seconds to catch up.
            try:
                await asyncio.wait_for(caught_up.wait(), timeout=10.0)
            except asyncio.TimeoutError:
                say("LATE", "the client did not catch up in time")
            else:
                wait = "; the stream stays open until the alerts resolve"
                say("CAUGHT UP", f"all {events} events delivered{wait * bool(monitor.alerting)}")
            # The faults are over: an open alert resolves within a window and a hold time.
            deadline = time.monotonic() + _RESOLVE_WAIT
            while monitor.alerting and time.monotonic() < deadline:
                await asyncio.sleep(_HEALTH_INTERVAL)
    finally:
        publisher.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(publisher, *tasks, return_exceptions=True)
        await proxy.close()
        await server.aclose(grace=0.0)

    metrics = source.metrics
    is_exact = received == published
    raised = [a for a in alerts if isinstance(a, RaiseAlert)]
    resolved = [a for a in alerts if isinstance(a, ResolveAlert)]
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
    longest = f" (longest {max(stale_for):.1f} s)" if stale_for else ""
    print(f"   stale periods             {len(stale_for)}{longest}")
    still_open = ", ".join(sorted(rule.value for rule in monitor.alerting))
    print(f"   alerts raised, resolved   {len(raised)}, {len(resolved)}"
          + (f" (still open: {still_open})" if still_open else ""))
    print(f"   connections through proxy {proxy.stats.accepted}")
    print(f"   faults injected           {proxy.stats.faults_applied + 1}"
          " (the live cut, the plan, the restart)")
    return is_exact and not gaps


def live_demo(seed: int, *, events: int = 600, interval: float = 0.01) -> bool:
    """Run the live demo; return whether every event arrived exactly once, in order."""
    return asyncio.run(_live(seed, events, interval))
