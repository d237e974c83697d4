"""Real loopback TCP under injected faults: every event exactly once, in order, or a gap.

The asyncio server and client run with a :class:`~sse_core.testing.FaultProxy` between them:
200 randomized runs of 1,000 events (``benchmarks.fault_runs``), an outage of a few seconds
(the simulator covers 30 s ones), and server restarts with and without the replay log.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from benchmarks.fault_runs import RunResult, run_batch
from sse_core import (
    ClientConfig,
    ClientState,
    Deliver,
    EndCause,
    Event,
    GapError,
    ReportGap,
    ReportStatus,
    ServerConfig,
    StreamError,
    serialize_event,
)
from sse_core.adapters.asyncio import EventSource, EventStreamServer
from sse_core.state import BackoffConfig, ReplayConfig, ReplayLog
from sse_core.testing import CutAfter, FaultProxy, Pass, Refuse, ResetAfter
from tests.adapters.test_iteration import NO_CONTENT, Scripted, chunk, post, stream_head

RUNS = 200
EVENTS = 1000
BATCH = 20


@pytest.mark.parametrize("first_seed", range(0, RUNS, BATCH))
def test_randomized_fault_runs(first_seed: int) -> None:
    """Each seeded run (random cuts, resets and stalls after random byte counts, latency,
    refusals, live cuts and resets while publishing) delivers all 1,000 events exactly once
    and in order; the replay window keeps everything, so no gap is allowed either."""
    seeds = list(range(first_seed, first_seed + BATCH))
    results: list[RunResult] = asyncio.run(run_batch(seeds, EVENTS))
    failed = [result for result in results if not result.is_exact or result.gaps]
    assert failed == []
    assert sum(result.faults for result in results) >= BATCH  # the faults really happened
    assert sum(result.reconnections for result in results) >= BATCH // 2
    print(
        f"fault runs {seeds[0]}-{seeds[-1]}: {len(results)}/{len(results)} exact, "
        f"{sum(r.faults for r in results)} faults, "
        f"{sum(r.reconnections for r in results)} reconnections"
    )


class Harness:
    """A server behind a fault proxy, a client through it, and what the client saw."""

    def __init__(self, log: ReplayLog | None) -> None:
        self.log = log
        self.config = ServerConfig(heartbeat_interval=0.2)
        self.server = EventStreamServer(log, config=self.config)
        self.proxy: FaultProxy | None = None
        self.published: list[str] = []
        self.received: list[str] = []
        self.gaps: list[ReportGap] = []
        self.states: list[tuple[float, ClientState]] = []

    async def start(self) -> EventSource:
        await self.server.start()
        self.proxy = FaultProxy(upstream=self.server.address)
        await self.proxy.start()
        host, port = self.proxy.address
        config = ClientConfig(
            url=f"http://{host}:{port}/events",
            stall_timeout=1.0,
            backoff=BackoffConfig(base_delay=0.2, max_delay=1.0),
        )
        return EventSource(config)

    async def consume(self, source: EventSource, count: int) -> None:
        async for report in source.reports():
            if isinstance(report, Deliver):
                self.received.append(report.event.id or "")
                if len(self.received) >= count:
                    return
            elif isinstance(report, ReportGap):
                self.gaps.append(report)
            elif isinstance(report, ReportStatus):
                self.states.append((time.monotonic(), report.state))

    async def publish(self, count: int, interval: float) -> None:
        for n in range(count):
            self.published.append(self.server.publish(Event(data=f"n={n}")).id)
            await asyncio.sleep(interval)

    async def subscribed(self) -> None:
        while len(self.server.broadcaster) == 0:
            await asyncio.sleep(0.005)

    async def restart(self, log: ReplayLog | None) -> None:
        assert self.proxy is not None
        await self.server.aclose(grace=0.0)
        self.log = log
        self.server = EventStreamServer(log, config=self.config)
        await self.server.start()
        self.proxy.upstream = self.server.address

    async def close(self) -> None:
        if self.proxy is not None:
            await self.proxy.close()
        await self.server.aclose(grace=0.0)

    async def run(self, count: int, script: Callable[[EventSource], Awaitable[None]]) -> None:
        """Start, let ``script`` act once the client is subscribed, wait for ``count``
        deliveries, and close everything whatever happens."""
        source = await self.start()
        try:
            async with source:
                consumer = asyncio.create_task(self.consume(source, count))
                await self.subscribed()
                await script(source)
                await asyncio.wait_for(consumer, 30.0)
        finally:
            await self.close()

    async def received_at_least(self, count: int) -> None:
        while len(self.received) < count:
            await asyncio.sleep(0.01)


#: How long the network refuses every connection in the outage test. The simulator takes
#: 30 s outages on a virtual clock (tests/test_simulation.py); on real sockets a few seconds
#: prove the same plumbing: refused connects, backoff, one resumption with Last-Event-ID.
OUTAGE = 3.0


def test_outage_of_three_seconds() -> None:
    """The network refuses every connection for 3 s while the server keeps publishing; the
    client keeps trying through it, then resumes and has every event exactly once, in
    order."""
    harness = Harness(ReplayLog(ReplayConfig(max_events=10_000)))
    during = round(OUTAGE / 0.1)

    async def script(source: EventSource) -> None:
        assert harness.proxy is not None
        await harness.publish(3, 0.01)
        harness.proxy.default = Refuse()
        outage_started = time.monotonic()
        await harness.proxy.reset_all()
        await harness.publish(during, 0.1)  # events nobody can receive
        assert time.monotonic() - outage_started >= OUTAGE
        assert harness.proxy.stats.refusals >= 2  # it kept trying (backoff capped at 1 s)
        harness.proxy.default = Pass()
        await harness.publish(3, 0.01)
        await harness.received_at_least(during + 6)
        assert source.metrics.reconnections == 1
        assert source.metrics.time_to_reconnect.maximum >= OUTAGE

    asyncio.run(harness.run(during + 6, script))
    assert harness.received == harness.published
    assert harness.gaps == []
    states = [state for _, state in harness.states]
    assert states.count(ClientState.RECONNECTING) >= 1
    assert states[-1] is ClientState.STREAMING


def test_server_restart_with_the_replay_log() -> None:
    """The server restarts on another port with its replay log kept (as a durable log
    would): the client resumes from its Last-Event-ID and nothing is lost or repeated."""
    harness = Harness(ReplayLog(ReplayConfig(max_events=10_000)))

    async def script(source: EventSource) -> None:
        await harness.publish(50, 0.002)
        await harness.restart(harness.log)
        await harness.publish(50, 0.002)  # published while the client is away
        await harness.subscribed()
        await harness.publish(50, 0.002)

    asyncio.run(harness.run(150, script))
    assert harness.received == harness.published
    assert harness.gaps == []


def test_server_restart_without_the_replay_log() -> None:
    """The server restarts with an empty log (a new epoch): the client's id is unknown, so
    it gets an explicit gap report, then every event the new server publishes once it is
    back, once, in order."""
    harness = Harness(ReplayLog(ReplayConfig(max_events=10_000, epoch="a")))

    async def script(source: EventSource) -> None:
        await harness.publish(50, 0.002)
        await harness.received_at_least(50)
        # A new log with an epoch of its own, as every server start should have.
        await harness.restart(ReplayLog(ReplayConfig(max_events=10_000, epoch="b")))
        # An unknown id gets the gap and the live tail: events the new server published
        # before the client came back would be missed (inside the reported gap).
        await harness.subscribed()
        await harness.publish(50, 0.002)  # the new server's events

    asyncio.run(harness.run(100, script))
    assert [gap.reason for gap in harness.gaps] == ["unknown"]
    assert harness.received == harness.published


def test_restart_with_the_default_log_reports_a_gap() -> None:
    """A server using the default log restarts (losing it): its ids carry a per-start epoch,
    so the client's id reads as unknown -- a gap report, never a silent loss."""
    harness = Harness(None)

    async def script(source: EventSource) -> None:
        await harness.publish(20, 0.002)
        await harness.received_at_least(20)
        await harness.restart(None)
        await harness.subscribed()
        await harness.publish(20, 0.002)

    asyncio.run(harness.run(40, script))
    assert [gap.reason for gap in harness.gaps] == ["unknown"]
    assert harness.received == harness.published


def test_outage_past_the_replay_window_raises_a_gap_in_the_plain_loop() -> None:
    """The README's loop under an outage: the network refuses every connection while the
    server publishes more than its replay log keeps, so the client's resume id falls out of
    the log. The plain ``async for`` raises GapError (``too_old``, with the id it resumed
    from and how many events were lost) instead of skipping the lost events silently, and
    iterating again goes on with the events published after the client is back."""
    harness = Harness(ReplayLog(ReplayConfig(max_events=20)))
    received: list[str] = []
    ids: list[str] = []
    gaps: list[ReportGap] = []

    async def consume(source: EventSource) -> None:
        while True:
            try:
                async for event in source:
                    received.append(event.data)
                    ids.append(event.id or "")
                    if event.data == "back":
                        return
                return
            except GapError as gap:
                gaps.append(gap.report)

    async def main() -> None:
        source = await harness.start()
        try:
            async with source:
                consumer = asyncio.create_task(consume(source))
                await harness.subscribed()
                await harness.publish(3, 0.01)
                while len(received) < 3:
                    await asyncio.sleep(0.01)
                assert harness.proxy is not None
                harness.proxy.default = Refuse()
                await harness.proxy.reset_all()
                while len(harness.server.broadcaster) > 0:
                    await asyncio.sleep(0.01)
                await harness.publish(60, 0.005)  # 60 events into a log that keeps 20
                harness.proxy.default = Pass()
                await harness.subscribed()
                harness.server.publish(Event(data="back"))
                await asyncio.wait_for(consumer, 30.0)
        finally:
            await harness.close()

    asyncio.run(main())
    assert received[:3] == ["n=0", "n=1", "n=2"]
    assert received[-1] == "back"
    assert [(gap.reason, gap.last_event_id) for gap in gaps] == [
        ("too_old", harness.published[2])
    ]
    lost = [id_ for id_ in harness.published[3:] if id_ not in ids]
    assert len(lost) >= 40  # events 3..42 at least fell out of the 20-event log
    assert gaps[0].missed == len(lost)  # the gap signal said how many
    assert ids[:-1] == [id_ for id_ in harness.published if id_ in ids]  # once, in order


@pytest.mark.parametrize("fault", ["cut", "reset"])
@pytest.mark.parametrize("has_ids", [False, True])
def test_llm_post_cut_by_the_fault_proxy(fault: str, has_ids: bool) -> None:
    """An OpenAI-style POST stream of 40 tokens through the fault proxy, cut (FIN) or reset
    in the middle of the answer. Without ids the request is made once, no token arrives
    twice and the loop raises StreamError (NOT_RESUMABLE); with ids the POST is made again
    with Last-Event-ID, the server replays the whole answer, and every token still arrives
    exactly once (the replayed ones are dropped as duplicates)."""
    words = [f"w{n} " for n in range(40)]
    body = b"".join(
        serialize_event(word, id=str(n) if has_ids else None) for n, word in enumerate(words)
    )
    answer = stream_head() + chunk(body[: len(body) // 2]) + chunk(body[len(body) // 2 :])
    answer += b"0\r\n\r\n"
    cut_at = len(stream_head()) + len(body) // 3
    plan = CutAfter(after_bytes=cut_at) if fault == "cut" else ResetAfter(after_bytes=cut_at)
    received: list[str] = []
    failures: list[StreamError] = []

    async def main() -> None:
        with Scripted([answer, answer, NO_CONTENT]) as server:
            host, port = server.url.split("//")[1].split("/")[0].split(":")
            async with FaultProxy(upstream=(host, int(port)), plan=[plan]) as proxy:
                proxy_host, proxy_port = proxy.address
                config = post(f"http://{proxy_host}:{proxy_port}/v1/chat")
                async with EventSource(config) as source:
                    try:
                        async for event in source:
                            received.append(event.data)
                    except StreamError as error:
                        failures.append(error)
            requests.extend(server.requests)

    requests: list[tuple[str, dict[str, str], bytes]] = []
    asyncio.run(asyncio.wait_for(main(), 30.0))
    assert len(received) == len(set(received))  # no token twice
    if has_ids:
        assert received == words and failures == []
        assert [method for method, _, _ in requests] == ["POST"] * 3
        resumed_from = requests[1][1].get("last-event-id")  # the last id before the cut
        assert resumed_from is not None and 0 <= int(resumed_from) < len(words) - 1
    else:
        assert 0 < len(received) < len(words) and received == words[: len(received)]
        (error,) = failures
        assert error.report.cause is EndCause.NOT_RESUMABLE
        assert len(requests) == 1
