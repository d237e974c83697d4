"""Randomized fault runs across the long-polling fallback: every event exactly once, in order?

    python -m benchmarks.longpoll_faults --runs 120 --events 100

Each run starts sse_core's asyncio server (a replay log that keeps everything, polls on a path
of their own or on the stream's path by ``Accept``, and at most 2, 7 or 100 events an answer,
chosen by the seed), the project's
:class:`~sse_core.testing.FaultProxy` in front of it, and sse_core's asyncio client behind it
with the fallback on (``long_poll_url``, ``switch_after=1``, a probe back to streaming every
half second). Streams, polls and probes all go through the proxy, and the faults hit all
three kinds:

- the first connection, for half of the seeds, is a *blocked* stream (its head passes, then
  nothing -- a buffering proxy): the client switches to polls at once;
- the connections after it take random faults from a seeded ``random.Random`` (a cut, a
  reset or a stall after a random byte count, added latency, a refused connection), and
  a quarter of them block again (a stream so hit is a switch; a poll so hit stalls until
  its deadline);
- while the server publishes, whatever connection is open -- a stream, a held poll, a probe
  -- is cut or reset at random moments.

A run is *exact* when the client's deliveries are the published ids, once each, in order; it
may instead end with an explicit gap (a :class:`~sse_core.ReportGap`) and what it delivered
still in order without repeats. With this log no gap is expected.
``tests/adapters/test_longpoll_faults.py`` runs 120 such runs in CI.
"""

from __future__ import annotations

import asyncio
import random
import time

import attrs

from benchmarks.fault_runs import RunResult, run_bounded, run_seeded
from sse_core import (
    ClientConfig,
    ClientSession,
    ClientState,
    Deliver,
    Event,
    LongPollConfig,
    ReportGap,
    ReportStatus,
    ReportTransport,
    ServerConfig,
    Transport,
)
from sse_core.adapters import ClientOptions, ServerOptions
from sse_core.adapters.asyncio import EventSource, EventStreamServer
from sse_core.state import BackoffConfig, ReplayConfig, ReplayLog
from sse_core.testing import FaultProxy, Pass, ProxyFault, StallAfter, random_fault


@attrs.frozen(kw_only=True)
class SwitchResult:
    """One run: the fault run's record and how often the client changed transports."""

    run: RunResult
    to_polls: int  # switches from streaming to long-polling
    to_stream: int  # probes that brought it back
    polls_lost: int  # polls (or probes) that failed while long-polling: cut, reset, stalled
    is_in_order: bool  # no repeat, no reordering (what a run with a gap must still keep)


async def _head_length(address: tuple[str, int], config: ClientConfig) -> int:
    """The length of the stream's response head as this client's request gets it."""
    request = ClientSession(config, rng=random.Random(0)).request()
    reader, writer = await asyncio.open_connection(*address)
    lines = ["GET /events HTTP/1.1", f"Host: {address[0]}"]
    lines += [f"{name}: {value}" for name, value in request.headers if name.lower() != "host"]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    head = await reader.readuntil(b"\r\n\r\n")
    writer.close()
    return len(head)


async def switch_run(seed: int, events: int = 100, *, timeout: float = 30.0) -> SwitchResult:
    """One randomized run (see the module's documentation)."""
    rng = random.Random(seed)
    started = time.monotonic()
    poll_path = rng.choice(("/poll", "/events"))
    server = EventStreamServer(
        ReplayLog(ReplayConfig(max_events=events + 100)),
        config=ServerConfig(heartbeat_interval=0.1, padding=64),
        options=ServerOptions(
            path="/events", long_poll_path=poll_path,
            # Small answers for some seeds: polls then resume mid-log, not only at its end.
            long_poll=LongPollConfig(max_hold=0.3, max_events=rng.choice((2, 7, 100))),
        ),
    )
    await server.start()
    start_id = server.publish(Event(data="before")).id  # the client's place
    proxy = FaultProxy(upstream=server.address)
    await proxy.start()
    host, port = proxy.address
    config = ClientConfig(
        url=f"http://{host}:{port}/events",
        long_poll_url=f"http://{host}:{port}{poll_path}",
        last_event_id=start_id,
        stall_timeout=0.4,
        first_byte_timeout=0.3,
        switch_after=1,
        retry_streaming_after=0.5,
        long_poll_timeout=0.3,
        min_poll_interval=0.01,
        backoff=BackoffConfig(base_delay=0.02, min_base_delay=0.01, max_delay=0.1),
    )
    blocked = StallAfter(after_bytes=await _head_length(server.address, config))

    def fault() -> ProxyFault:
        if rng.random() < 0.25:
            return blocked
        return random_fault(rng, max_bytes=3_000, max_latency=0.02)

    first: ProxyFault = blocked if rng.random() < 0.5 else Pass()
    proxy.schedule(first, *[fault() for _ in range(rng.randint(4, 10))])
    published: list[str] = []
    received: list[str] = []
    seen: list[object] = []  # the reports but deliveries, in order
    live_faults = {rng.randrange(events): rng.choice(("cut", "reset")) for _ in range(4)}

    async def publish() -> None:
        for n in range(events):
            published.append(server.publish(Event(data=f"event {n} · ü 𝄞")).id)
            fault = live_faults.get(n)
            if fault == "cut":
                await proxy.cut_all()
            elif fault == "reset":
                await proxy.reset_all()
            if n % 5 == 4:  # spread over about a second and a half
                await asyncio.sleep(0.075)

    async def consume(source: EventSource) -> None:
        async for report in source.reports():
            match report:
                case Deliver(event=event):
                    received.append(event.id or "")
                    if len(received) >= events:
                        return
                case _:
                    seen.append(report)

    source = EventSource(config, rng=rng, options=ClientOptions(connect_timeout=2.0))

    def describe() -> str:
        return f"{len(received)}/{events} delivered; {_story(seen)[0]}"

    detail = await run_bounded(source, publish, consume, (proxy, server), timeout, describe)
    switches, polls_lost = _story(seen)
    gaps = [report for report in seen if isinstance(report, ReportGap)]
    order = [published.index(i) if i in published else -1 for i in received]
    return SwitchResult(
        run=RunResult.of(
            seed, events, published, received, gaps, source, proxy, started, detail
        ),
        to_polls=switches.count(Transport.LONG_POLLING),
        to_stream=switches.count(Transport.STREAMING),
        polls_lost=polls_lost,
        is_in_order=-1 not in order and order == sorted(set(order)),
    )


def _story(reports: list[object]) -> tuple[list[Transport], int]:
    """The transports the client switched to, and how many connections it lost while
    long-polling (a poll or a probe: cut, reset or stalled)."""
    switches: list[Transport] = []
    polls_lost = 0
    for report in reports:
        if isinstance(report, ReportTransport):
            switches.append(report.transport)
        elif (
            isinstance(report, ReportStatus)
            and report.state is ClientState.RECONNECTING
            and switches[-1:] == [Transport.LONG_POLLING]
        ):
            polls_lost += 1
    return switches, polls_lost


async def run_batch(seeds: list[int], events: int) -> list[SwitchResult]:
    """Several runs at once, each with its own server, proxy and client."""
    return list(await asyncio.gather(*[switch_run(seed, events) for seed in seeds]))


def is_good(result: SwitchResult) -> bool:
    """Exactly once and in order, or an explicit gap with what came still in order."""
    return result.run.is_exact or (result.run.gaps > 0 and result.is_in_order)


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    args, results = run_seeded(argv, __doc__.split("\n")[0], run_batch, runs=120, events=100)
    exact = sum(r.run.is_exact for r in results)
    good = sum(is_good(r) for r in results)
    print(
        f"{len(results)} runs of {args.events} events through the fault proxy with the "
        f"long-poll fallback: {exact} exact, {good - exact} with an explicit gap, "
        f"{len(results) - good} wrong"
    )
    print(
        f"{sum(r.to_polls for r in results)} switches to polls "
        f"(in {sum(r.to_polls > 0 for r in results)} runs), "
        f"{sum(r.to_stream for r in results)} back to streaming "
        f"(in {sum(r.to_stream > 0 for r in results)} runs), "
        f"{sum(r.polls_lost for r in results)} polls lost to a fault "
        f"(in {sum(r.polls_lost > 0 for r in results)} runs), "
        f"{sum(r.run.faults for r in results):,} faults injected, "
        f"{sum(r.run.reconnections for r in results):,} reconnections, "
        f"{time.monotonic() - started:.1f} s wall"
    )
    for result in results:
        if not is_good(result):
            print(f"  FAILED seed {result.run.seed}: {result}")
    return 0 if good == len(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
