"""Randomized fault runs on real loopback TCP: does every event arrive exactly once, in order?

    python -m benchmarks.fault_runs --runs 200 --events 1000

Each run starts sse_core's asyncio server with a replay log, a
:class:`~sse_core.testing.FaultProxy` in front of it and sse_core's asyncio client behind it.
The proxy gives the connections after the first one random faults drawn from a seeded
``random.Random`` (a cut, a reset or a stall after a random byte count -- inside fields and
inside UTF-8 characters -- added latency, a refused connection) and, while the server
publishes, the live connection is cut or reset at random moments. A run succeeds when the
client's deliveries are exactly the published ids, in order. Runs go in concurrent batches
(each run has its own server, proxy and client) so that waiting for stall timeouts overlaps.

``tests/adapters/test_fault_runs.py`` runs the same 200 runs in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import attrs

from sse_core import ClientConfig, Deliver, Event, ReportGap, ServerConfig
from sse_core.adapters import ClientOptions
from sse_core.adapters.asyncio import EventSource, EventStreamServer
from sse_core.state import BackoffConfig, ReplayConfig, ReplayLog
from sse_core.testing import FaultProxy, Pass, random_fault


@attrs.frozen(kw_only=True)
class RunResult:
    """What one run saw."""

    seed: int
    published: int
    delivered: int
    is_exact: bool  # deliveries == published ids, in order, each once
    gaps: int
    reconnections: int
    faults: int
    elapsed: float
    detail: str = ""

    @classmethod
    def of(
        cls,
        seed: int,
        events: int,
        published: list[str],
        received: list[str],
        gaps: list[ReportGap],
        source: EventSource,
        proxy: FaultProxy,
        started: float,
        detail: str,
    ) -> RunResult:
        """The record of a run that published ``published`` and delivered ``received``
        (ids), ``events`` owed in all, from ``started`` (monotonic) to now."""
        return cls(
            seed=seed,
            published=len(published),
            delivered=len(received),
            is_exact=received == published and len(published) == events,
            gaps=len(gaps),
            reconnections=source.metrics.reconnections,
            faults=proxy.stats.faults_applied,
            elapsed=time.monotonic() - started,
            detail=detail,
        )


async def fault_run(seed: int, events: int = 1000, *, timeout: float = 60.0) -> RunResult:
    """One randomized run (see the module's documentation)."""
    rng = random.Random(seed)
    started = time.monotonic()
    log = ReplayLog(ReplayConfig(max_events=events + 100))  # a window that keeps everything
    server = EventStreamServer(log, config=ServerConfig(heartbeat_interval=0.1))
    await server.start()
    proxy = FaultProxy(upstream=server.address)
    await proxy.start()
    # The first connection subscribes the client; the faults hit the ones after it.
    proxy.schedule(Pass(), *[
        random_fault(rng, max_bytes=30_000, max_latency=0.02) for _ in range(rng.randint(3, 8))
    ])
    host, port = proxy.address
    config = ClientConfig(
        url=f"http://{host}:{port}/events",
        stall_timeout=0.4,
        backoff=BackoffConfig(base_delay=0.02, min_base_delay=0.01, max_delay=0.1),
    )
    published: list[str] = []
    received: list[str] = []
    gaps: list[ReportGap] = []
    live_faults = {rng.randrange(events): rng.choice(("cut", "reset")) for _ in range(3)}
    live_applied = 0

    async def publish() -> None:
        nonlocal live_applied
        # Owed from the moment the client knows where the stream stands (its first position
        # arrived): a client that loses its first connection before that comes back as a
        # new client, rightly owed only what is published afterwards (under load, its stall
        # timer can run out before the first bytes arrive).
        while not source.session.last_event_id:
            await asyncio.sleep(0.002)
        for n in range(events):
            text = f"event {n} · ü € 𝄞 " + "x" * rng.randrange(80)
            published.append(server.publish(Event(data=text)).id)
            fault = live_faults.get(n)
            if fault == "cut":
                live_applied += await proxy.cut_all()
            elif fault == "reset":
                live_applied += await proxy.reset_all()
            if n % 5 == 4:  # spread the stream over about half a second
                await asyncio.sleep(0.002)

    async def consume(source: EventSource) -> None:
        async for report in source.reports():
            if isinstance(report, Deliver):
                received.append(report.event.id or "")
                if len(received) >= events:
                    return
            elif isinstance(report, ReportGap):
                gaps.append(report)

    source = EventSource(config, rng=rng, options=ClientOptions(connect_timeout=2.0))

    def describe() -> str:
        subscribers = [
            f"replaying={s.is_replaying} pending={s.has_pending} queued={s.queued_bytes}"
            f" closed={s.is_closed} dropped={s.is_dropped}"
            for s in server.broadcaster
        ]
        return (
            f"{len(received)}/{events} delivered; next deadline"
            f" {source.session.next_deadline()!r} at {time.monotonic():.3f}; server subscribers"
            f" {subscribers}; missing {_ranges(sorted(set(published) - set(received)))}"
        )

    detail = await run_bounded(source, publish, consume, (proxy, server), timeout, describe)
    return RunResult.of(seed, events, published, received, gaps, source, proxy, started, detail)


def _ranges(ids: list[str]) -> str:
    """Ids as runs (``"12-40, 77"``), for a failure's detail."""
    numbers = sorted(int(i.rpartition("-")[2]) for i in ids if i.rpartition("-")[2].isdigit())
    runs: list[str] = []
    for n in numbers:
        if runs and int(runs[-1].split("-")[-1]) == n - 1:
            runs[-1] = f"{runs[-1].split('-')[0]}-{n}"
        else:
            runs.append(str(n))
    return ", ".join(runs)


async def run_bounded(
    source: EventSource,
    publish: Callable[[], Coroutine[Any, Any, None]],
    consume: Callable[[EventSource], Coroutine[Any, Any, None]],
    ends: tuple[FaultProxy, EventStreamServer],
    timeout: float,
    describe: Callable[[], str],
) -> str:
    """Run the client while ``publish`` publishes and ``consume`` reads, for at most
    ``timeout`` seconds, then close the proxy and the server: a client that stops making
    progress fails the run (with its state and what ``describe`` says) instead of hanging
    the batch.

    Returns:
        ``""``, or what the run was doing when it timed out.
    """

    async def run() -> None:
        async with source:
            consumer = asyncio.create_task(consume(source))
            await publisher_done(asyncio.create_task(publish()), consumer)
            await consumer

    running = asyncio.ensure_future(run())
    detail = ""
    proxy, server = ends
    try:
        done, _ = await asyncio.wait({running}, timeout=timeout)
        if not done:
            session = source.session
            detail = (
                f"timed out: client {session.state.value} on {session.transport.value}, last"
                f" id {session.last_event_id!r}; {describe()}"
            )
            running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
    finally:
        await proxy.close()
        await server.aclose(grace=0.0)
    return detail


async def publisher_done(publisher: asyncio.Task[None], consumer: asyncio.Task[None]) -> None:
    """Wait for the publisher; if the consumer fails first, surface its error."""
    done, _ = await asyncio.wait({publisher, consumer}, return_when=asyncio.FIRST_EXCEPTION)
    for task in done:
        task.result()
    await publisher


async def run_batch(seeds: list[int], events: int) -> list[RunResult]:
    """Several runs at once, each with its own server, proxy and client."""
    return list(await asyncio.gather(*[fault_run(seed, events) for seed in seeds]))


_Result = TypeVar("_Result")


def run_seeded(
    argv: list[str] | None,
    description: str,
    batch: Callable[[list[int], int], Coroutine[Any, Any, list[_Result]]],
    *,
    runs: int,
    events: int,
) -> tuple[argparse.Namespace, list[_Result]]:
    """The command line of a seeded benchmark (``--runs``, ``--events``, ``--batch``,
    ``--seed``), and the results of its runs, ``--batch`` at once."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--runs", type=int, default=runs)
    parser.add_argument("--events", type=int, default=events)
    parser.add_argument("--batch", type=int, default=20, help="runs at once")
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    args = parser.parse_args(argv)
    results: list[_Result] = []
    for first in range(args.seed, args.seed + args.runs, args.batch):
        seeds = list(range(first, min(first + args.batch, args.seed + args.runs)))
        results += asyncio.run(batch(seeds, args.events))
    return args, results


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    args, results = run_seeded(
        argv, __doc__.split("\n")[0], run_batch, runs=200, events=1000
    )
    exact = sum(result.is_exact for result in results)
    print(
        f"{len(results)} runs of {args.events} events on loopback through the fault proxy: "
        f"{exact}/{len(results)} delivered exactly once and in order "
        f"({100 * exact / len(results):.2f} %)"
    )
    print(
        f"{sum(r.published for r in results):,} events published, "
        f"{sum(r.delivered for r in results):,} delivered, "
        f"{sum(r.gaps for r in results)} gaps, "
        f"{sum(r.faults for r in results):,} faults injected, "
        f"{sum(r.reconnections for r in results):,} reconnections, "
        f"{time.monotonic() - started:.1f} s wall"
    )
    for result in results:
        if not result.is_exact:
            print(f"  FAILED seed {result.seed}: {result}")
    return 0 if exact == len(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
