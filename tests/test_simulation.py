"""The deterministic simulator: thousands of seeded fault scenarios (streaming, and falling
back to long-polling) keep the resumption invariant, and the simulator really catches a
client that loses, repeats or corrupts events.

``SSE_CORE_SCENARIOS`` sets how many random scenarios run (default 10000, split in 100
blocks so that ``pytest -n 2`` spreads them).
"""

from __future__ import annotations

import ast
import inspect
import os
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

import sse_core.testing
from sse_core import (
    Action,
    ClientConfig,
    ClientSession,
    Deliver,
    Event,
    InvalidConfigError,
    ReportGap,
    ReportStatus,
    ReportTransport,
    Transport,
)
from sse_core.state import BackoffConfig, ReplayConfig
from sse_core.testing import (
    BufferingProxy,
    Cut,
    Deploy,
    Fault,
    Partition,
    Recorded,
    Reset,
    Restart,
    Scenario,
    SimulationResult,
    SlowLink,
    Stall,
    check_record,
    random_scenario,
    simulate,
)

SCENARIOS = int(os.environ.get("SSE_CORE_SCENARIOS", "10000"))
BLOCKS = 100
PER_BLOCK = -(-SCENARIOS // BLOCKS)

TEST_CLIENT = ClientConfig(
    url="https://sim.test/events",
    retry_statuses=frozenset({502, 503}),
    stall_timeout=5.0,
    is_gzip_accepted=False,
    backoff=BackoffConfig(base_delay=0.5, max_delay=4.0, healthy_after=1.0),
)


POLLING_CLIENT = attrs.evolve(
    TEST_CLIENT, long_poll_url="https://sim.test/poll", first_byte_timeout=2.0, switch_after=2,
    retry_streaming_after=10.0, long_poll_timeout=5.0, min_poll_interval=0.5,
)

#: Holds stream bodies for 30 s (the whole body: more than any stream sends).
PROXY = BufferingProxy(at=0.0, duration=30.0, threshold=1 << 20)

#: One event a second for 40 s.
EVERY_SECOND = tuple(0.5 + i for i in range(40))


def scenario(**fields: Any) -> Scenario:
    """A hand-made scenario: uncompressed, and the first event before any fault."""
    base = Scenario(client=TEST_CLIENT, data=("ä😀-", "two\nlines é", "世界 3"))
    return attrs.evolve(base, **fields)


def polling_scenario(**fields: Any) -> Scenario:
    """A hand-made scenario whose client may fall back to long-polling: it switches after
    two streams show no byte for 2 s, and tries streaming again every 10 s."""
    base = scenario(transport="auto", client=POLLING_CLIENT, publish_at=EVERY_SECOND)
    return attrs.evolve(base, **fields)


def transports(result: SimulationResult) -> list[tuple[Transport, float]]:
    """The client's transport switches: (transport, when)."""
    return [(e.transport, at) for at, e in result.record if isinstance(e, ReportTransport)]


def assert_ok(result: SimulationResult) -> None:
    assert result.violation is None, result.violation
    assert result.completed


# --- many random scenarios -----------------------------------------------------------------


@pytest.mark.parametrize("block", range(BLOCKS))
def test_random_scenarios_keep_the_invariant(
    block: int, record_property: Callable[[str, object], None]
) -> None:
    """Each seeded scenario (cuts, resets, stalls, restarts, deploys, partitions, slow links,
    buffering proxies; about one in five falling back to long-polling, with faults while it
    polls) ends with every event delivered once, in order, or inside a reported gap -- and
    the client catches up after the network heals."""
    seeds = range(block * PER_BLOCK, min((block + 1) * PER_BLOCK, SCENARIOS))
    failures = []
    completed = 0
    for seed in seeds:
        result = simulate(random_scenario(seed))
        if result.is_ok:
            completed += 1
        else:
            failures.append((seed, result.violation))
    record_property("scenarios", len(seeds))
    record_property("completed", completed)
    assert failures == []
    assert completed == len(seeds)


def test_blocks_cover_the_configured_count() -> None:
    """The blocks run exactly SSE_CORE_SCENARIOS distinct seeds."""
    seeds = [
        seed for block in range(BLOCKS)
        for seed in range(block * PER_BLOCK, min((block + 1) * PER_BLOCK, SCENARIOS))
    ]
    assert len(seeds) == len(set(seeds)) == SCENARIOS


def test_random_scenarios_mostly_complete() -> None:
    """A sample of scenarios completes, and the faults really bite: reconnections, gaps of
    both kinds and missed events all occur. About one in five may long-poll: most of those
    switch, many come back to streaming, some fall into gaps while polling."""
    scenarios = [random_scenario(seed) for seed in range(300)]
    results = [simulate(s) for s in scenarios]
    ok = [r for r in results if r.is_ok]
    assert len(ok) >= 0.9 * len(results)
    assert sum(r.reconnects > 0 for r in ok) > 100
    reasons = {e.reason for r in ok for _, e in r.record if isinstance(e, ReportGap)}
    assert reasons == {"unknown", "too_old"}
    assert sum(r.missed for r in ok) > 0
    assert sum(r.published for r in ok) == sum(r.delivered + r.missed for r in ok)
    auto = [r for s, r in zip(scenarios, results, strict=True) if s.transport == "auto"]
    assert 0.1 * len(results) < len(auto) < 0.3 * len(results)
    assert all(r.polls == 0 for s, r in zip(scenarios, results, strict=True)
               if s.transport == "stream")
    switched = [r for r in auto if r.transport_switches]
    assert len(switched) > 0.6 * len(auto)
    assert sum(transports(r)[-1][0] is Transport.STREAMING for r in switched) > 0.3 * len(auto)
    gaps_while_polling = 0
    for r in switched:
        transport = Transport.STREAMING
        for _, e in r.record:
            if isinstance(e, ReportTransport):
                transport = e.transport
            gaps_while_polling += isinstance(e, ReportGap) and transport is Transport.LONG_POLLING
    assert gaps_while_polling > 10


def test_simulation_is_deterministic() -> None:
    """The same scenario gives an equal result, record included."""
    for seed in (3, 77, 1234):
        assert simulate(random_scenario(seed)) == simulate(random_scenario(seed))
        assert random_scenario(seed) == random_scenario(seed)


# --- each fault ------------------------------------------------------------------------------


def test_calm_network_delivers_everything() -> None:
    """Without faults every event arrives once, in order, on one connection."""
    result = simulate(scenario(publish_at=(0.5, 1.0, 1.5, 2.0)))
    assert_ok(result)
    assert (result.published, result.delivered, result.connections) == (4, 4, 1)
    delivered = [e.event.data for _, e in result.record if isinstance(e, Deliver)]
    assert delivered == ["ä😀-", "two\nlines é", "世界 3", "ä😀-"]


@pytest.mark.parametrize("after_bytes", range(0, 90, 3))
@pytest.mark.parametrize("is_eof", [False, True])
def test_cut_at_any_byte_resumes(after_bytes: int, is_eof: bool) -> None:
    """A cut anywhere -- mid-field, mid-character -- reconnects and resumes without loss or
    repeat; the partial event is dropped and replayed."""
    result = simulate(scenario(
        publish_at=(0.5, 1.1, 1.2, 1.3, 4.0),
        faults=(Cut(at=1.0, after_bytes=after_bytes, is_eof=is_eof),),
    ))
    assert_ok(result)
    assert result.delivered == 5 and result.connections == 2


def test_reset_loses_bytes_in_flight_but_no_event() -> None:
    """A reset drops what was in flight; the replay brings it back."""
    result = simulate(scenario(publish_at=(0.5, 0.99, 1.5, 2.0), faults=(Reset(at=1.0),),
                               latency=0.05))
    assert_ok(result)
    assert result.delivered == 4 and result.reconnects == 1


def test_stall_is_detected_by_the_client() -> None:
    """A connection that goes silent is replaced once the stall timeout passes."""
    result = simulate(scenario(publish_at=(0.5, 2.0, 3.0), faults=(Stall(at=1.0),)))
    assert_ok(result)
    assert result.delivered == 3 and result.reconnects == 1
    first_late = [at for at, e in result.record if isinstance(e, Deliver)][1]
    assert first_late >= 1.0 + 5.0  # not before the stall timeout


def test_restart_keeping_the_log_replays() -> None:
    """A restart with the log kept replays what was published while down: no gap."""
    result = simulate(scenario(publish_at=(0.5, 1.5, 2.5, 6.0),
                               faults=(Restart(at=1.0, downtime=3.0),)))
    assert_ok(result)
    assert (result.delivered, result.gaps) == (4, 0)


def test_restart_losing_the_log_reports_a_gap() -> None:
    """A restart that loses the log: the new epoch does not know the client's id, so the
    application is told of a gap; events lost with the old log, and those the new epoch
    published before the client came back (an unknown id gets the live tail), count as
    missed."""
    result = simulate(scenario(publish_at=(0.5, 0.9, 6.0, 7.0),
                               faults=(Partition(at=0.6, duration=0.5),
                                       Restart(at=1.0, downtime=1.0, is_log_kept=False))))
    assert_ok(result)
    gaps = [e for _, e in result.record if isinstance(e, ReportGap)]
    assert [(g.last_event_id, g.reason) for g in gaps] == [("e0-0", "unknown")]
    delivered = [e.event.id for _, e in result.record if isinstance(e, Deliver)]
    assert delivered == ["e0-0", "e1-1"] and result.missed == 2


def test_deploy_503_is_retried() -> None:
    """During a deploy the gateway answers 503; the client retries and resumes."""
    result = simulate(scenario(publish_at=(0.5, 2.0, 9.0), faults=(Deploy(at=1.0, duration=5.0),)))
    assert_ok(result)
    assert result.delivered == 3 and result.connections > 2


def test_long_outage_outlives_a_small_replay_window() -> None:
    """A partition longer than the replay window holds: the client hears "too old" and the
    evicted events count as missed, the rest arrive."""
    times = (0.5, *[2.0 + i for i in range(10)], 40.0)
    result = simulate(scenario(publish_at=times, faults=(Partition(at=1.0, duration=20.0),),
                               replay=ReplayConfig(max_events=3)))
    assert_ok(result)
    gaps = [e for _, e in result.record if isinstance(e, ReportGap)]
    assert [g.reason for g in gaps] == ["too_old"]
    assert result.missed == 7 and result.delivered == 5


#: A 30 s outage from t=1: three events before it, one every 0.1 s during it, three after.
OUTAGE_PUBLISH_AT = (0.5, 0.6, 0.7, *[1.05 + i / 10 for i in range(300)], 32.0, 32.1, 32.2)


@pytest.mark.parametrize(
    "outage", [Restart(at=1.0, downtime=30.0), Partition(at=1.0, duration=30.0)],
    ids=["refused", "partitioned"],
)
def test_thirty_second_outage_with_the_log_holding_it_all(outage: Fault) -> None:
    """Through a 30 s outage (every connection refused, or timing out across a partition)
    while 300 events are published, the client keeps trying, reconnects once the network is
    back and gets every event exactly once, in order, with no gap: the replay log holds
    them all. (tests/adapters/test_fault_runs.py checks a few seconds of it on real
    sockets.)"""
    result = simulate(scenario(publish_at=OUTAGE_PUBLISH_AT, faults=(outage,),
                               replay=ReplayConfig(max_events=10_000)))
    assert_ok(result)
    assert (result.published, result.delivered, result.gaps, result.missed) == (306, 306, 0, 0)
    assert result.reconnects == 1
    assert result.connections >= 1 + 5  # tried all along (the backoff is capped at 4 s)
    delivered = [(at, e.event.id) for at, e in result.record if isinstance(e, Deliver)]
    assert [id for _, id in delivered] == list(result.published_ids)
    assert delivered[2][0] < 1.0 and delivered[3][0] >= 31.0  # nothing while it lasted


def test_slow_link_and_buffering_proxy() -> None:
    """Tiny delayed chunks and a proxy that holds bytes back (on the connection made after a
    reset) still deliver everything."""
    result = simulate(scenario(
        publish_at=(0.5, 1.5, 2.5, 3.5),
        faults=(SlowLink(at=0.0, duration=5.0, max_chunk=1, delay=0.01),
                BufferingProxy(at=1.0, duration=1.0, threshold=300), Reset(at=1.1)),
    ))
    assert_ok(result)
    assert result.delivered == 4
    late = [at for at, e in result.record if isinstance(e, Deliver)][1]
    assert late > 1.1 + 5.0  # held by the proxy until the stall timeout replaced it


class _StallWatch(ClientSession):
    """A client session that keeps the reasons of the stalls it reports (they come out of
    on_timer)."""

    def __init__(self, config: ClientConfig, *, rng: random.Random) -> None:
        super().__init__(config, rng=rng)
        self.stalls: list[tuple[float, str]] = []

    def on_timer(self, now: float) -> list[Action]:
        actions = super().on_timer(now)
        self.stalls += [
            (now, a.reason) for a in actions
            if isinstance(a, ReportStatus) and a.reason and a.reason.startswith("stalled")
        ]
        return actions


def test_drip_is_a_stall() -> None:
    """A link that drips one byte a second (slower per line than the 5 s stall timeout,
    faster per byte) stalls each connection it carries; once it heals, every event
    arrives exactly once."""
    watches: list[_StallWatch] = []

    def factory(config: ClientConfig, rng: random.Random) -> ClientSession:
        watches.append(_StallWatch(config, rng=rng))
        return watches[-1]

    drip = SlowLink(at=2.0, duration=25.0, max_chunk=1, delay=1.0)
    result = simulate(scenario(publish_at=(0.5, 10.0, 40.0), faults=(drip,)),
                      client_factory=factory)
    assert_ok(result)
    assert result.delivered == result.published == 3
    (watch,) = watches
    assert watch.stalls, "the drip kept the client streaming"
    assert {reason for _, reason in watch.stalls} == {"stalled: no complete line for 5 s"}
    assert all(at < drip.at + drip.duration + 5.0 for at, _ in watch.stalls)
    assert result.reconnects >= 1


def test_buffering_proxy_from_the_start() -> None:
    """A fault at time 0 meets the first request: a proxy that holds everything keeps the
    client's first position from it until the stall timeout replaces the connection."""
    result = simulate(scenario(
        publish_at=(0.5, 6.0, 7.0),
        faults=(BufferingProxy(at=0.0, duration=1.0, threshold=1 << 20),),
    ))
    assert_ok(result)
    assert (result.published, result.delivered, result.connections) == (2, 2, 2)


# --- the long-polling fallback ---------------------------------------------------------------


def test_switch_to_polling_behind_a_buffering_proxy_and_back() -> None:
    """Behind a proxy that holds stream bodies the client switches to long-polling (the
    proxy passes each poll's answer as it ends), gets every event exactly once while
    polling, fails back from tries at streaming while the proxy lasts, and streams again
    once it is gone."""
    result = simulate(polling_scenario(publish_at=tuple(0.5 + i for i in range(60)),
                                       faults=(PROXY,)))
    assert_ok(result)
    assert result.delivered == result.published > 50
    switches = transports(result)
    assert [t for t, _ in switches] == [Transport.LONG_POLLING, Transport.STREAMING]
    (_, polling_at), (_, streaming_at) = switches
    assert polling_at < 2 * (2.0 + 4.0)  # two blocked streams (first byte timeout, backoff)
    assert PROXY.at + PROXY.duration < streaming_at < PROXY.at + PROXY.duration + 10.0 + 5.0
    assert result.transport_switches == 2
    assert result.polls > 20 and result.connections > result.polls
    while_polling = [at for at, e in result.record
                     if isinstance(e, Deliver) and polling_at < at < streaming_at]
    assert len(while_polling) > 30
    after = [at for at, e in result.record if isinstance(e, Deliver) and at > streaming_at]
    assert after  # and by streaming again


def test_polling_gets_through_a_proxy_that_never_goes() -> None:
    """With the proxy there for the whole run and no tries at streaming, every event still
    arrives, by long-polling."""
    result = simulate(polling_scenario(
        client=attrs.evolve(POLLING_CLIENT, retry_streaming_after=None),
        faults=(BufferingProxy(at=0.0, duration=60.0),),
    ))
    assert_ok(result)
    assert result.delivered == result.published > 30
    assert [t for t, _ in transports(result)] == [Transport.LONG_POLLING]
    assert result.polls >= 30


def test_the_stream_client_never_polls() -> None:
    """Under the same proxy, a "stream" scenario's client keeps streaming (and its stall
    timeout replaces each held stream): no poll, no transport switch."""
    result = simulate(scenario(publish_at=EVERY_SECOND, faults=(PROXY,)))
    assert_ok(result)
    assert (result.polls, result.transport_switches) == (0, 0)


def test_starting_by_long_polling() -> None:
    """A client configured to start by polling streams again once it tries and sees bytes."""
    client = attrs.evolve(POLLING_CLIENT, initial_transport=Transport.LONG_POLLING)
    result = simulate(polling_scenario(client=client, publish_at=EVERY_SECOND[:20]))
    assert_ok(result)
    assert result.delivered == result.published == 20
    assert [t for t, _ in transports(result)] == [Transport.STREAMING]


BASELINE = simulate(polling_scenario(faults=(PROXY,)))


@pytest.mark.parametrize(
    "fault",
    [
        Cut(at=15.0, after_bytes=30),
        Cut(at=15.0, after_bytes=30, is_eof=True),
        Cut(at=15.0, after_bytes=0, is_eof=True),
        Reset(at=15.0),
        Stall(at=15.0),
        Deploy(at=15.0, duration=5.0),
        Partition(at=15.0, duration=8.0),
        SlowLink(at=15.0, duration=5.0, max_chunk=1, delay=0.01),
        Restart(at=15.0, downtime=2.0),
    ],
    ids=lambda fault: type(fault).__name__ + (
        "-eof" if getattr(fault, "is_eof", False) else ""),
)
def test_faults_while_polling(fault: Fault) -> None:
    """A fault that strikes a poll (a cut answer, a reset, a silent poll, 503s, a partition,
    a slow link, a restart) costs a retry but no event: all arrive once, in order."""
    result = simulate(polling_scenario(faults=(PROXY, fault)))
    assert_ok(result)
    assert result.delivered == result.published == BASELINE.published
    assert result.gaps == 0
    switched_at = transports(result)[0][1]
    assert transports(result)[0][0] is Transport.LONG_POLLING and switched_at < fault.at
    # One failed poll, one reconnection through the backoff (a slow answer is only late).
    retries = 0 if isinstance(fault, SlowLink) else 1
    assert result.reconnects == BASELINE.reconnects + retries


def test_restart_losing_the_log_while_polling_reports_a_gap() -> None:
    """A restart that loses the log while the client polls: the next poll's id is unknown
    to the new epoch, the answer carries the gap, the event lost with the old log counts as
    missed, and the new epoch's events arrive."""
    publish_at = tuple(sorted((*EVERY_SECOND, 15.3)))
    result = simulate(polling_scenario(
        publish_at=publish_at,
        faults=(PROXY, Partition(at=15.2, duration=1.0),
                Restart(at=15.4, downtime=1.0, is_log_kept=False)),
    ))
    assert_ok(result)
    gaps = [(at, e) for at, e in result.record if isinstance(e, ReportGap)]
    assert [(g.last_event_id, g.reason) for _, g in gaps] == [("e0-14", "unknown")]
    polling_at = transports(result)[0][1]
    assert polling_at < gaps[0][0] < PROXY.at + PROXY.duration  # told by a poll's answer
    # Missed: the event lost with the old log, and the new epoch's events from before the
    # poll that met the gap (an unknown id gets only what is published afterwards).
    assert result.missed >= 1 and result.missed + result.delivered == result.published
    assert any(isinstance(e, Deliver) and e.event.id.startswith("e1-") for _, e in result.record)


def test_long_outage_while_polling_is_too_old() -> None:
    """A partition while polling that outlasts a small replay window: the answer after it
    reports "too old", and the evicted events count as missed."""
    result = simulate(polling_scenario(replay=ReplayConfig(max_events=3),
                                       faults=(PROXY, Partition(at=15.2, duration=10.0))))
    assert_ok(result)
    assert [e.reason for _, e in result.record if isinstance(e, ReportGap)] == ["too_old"]
    assert result.missed > 5 and result.delivered + result.missed == result.published


def test_gap_before_any_event_names_a_position() -> None:
    """Given the positions the server could have handed out, a gap report before the first
    delivery must name one of them (or a start marker)."""
    gap = ReportGap(last_event_id="z", reason="unknown")
    record: list[tuple[float, Recorded]] = [(1.5, gap), (2, d("b")), (3, d("c"))]
    assert check_record(P[1:], record) is None  # any unknown id, by default
    assert check_record(P[1:], record, positions={"z", "a"}) is None
    found = check_record(P[1:], record, positions={"a"})
    assert found is not None and "gap report resumes from 'z'" in found
    start = ReportGap(last_event_id="e3-start", reason="unknown")
    assert check_record(P[1:], [(1.5, start), *record[1:]], positions=set()) is None


def test_transport_reports_do_not_count_in_the_verdict() -> None:
    """check_record skips ReportTransport entries wherever they fall."""
    switch = ReportTransport(transport=Transport.LONG_POLLING, since=1.5)
    record: list[tuple[float, Recorded]] = [
        (1, d("a")), (1.5, switch), (2, d("b")), (2.5, switch), (3, d("c")),
    ]
    assert check_record(P, record) is None
    assert "silently lost" in (check_record(P, [(1, d("a")), (1.5, switch), (3, d("c"))]) or "")


@pytest.mark.parametrize(
    ("transport", "client"),
    [("auto", TEST_CLIENT), ("stream", POLLING_CLIENT), ("poll", TEST_CLIENT),
     ("auto", attrs.evolve(POLLING_CLIENT, long_poll_url="https://sim.test/events?x=1"))],
)
def test_transport_must_match_the_client(transport: str, client: ClientConfig) -> None:
    """"auto" needs a client with a long_poll_url (not the stream's URL), "stream" one
    without; nothing else is a transport."""
    with pytest.raises(InvalidConfigError):
        Scenario(transport=transport, client=client)  # type: ignore[arg-type]


def test_default_auto_client() -> None:
    """Scenario(transport="auto") builds a client that may poll, quick to switch."""
    client = Scenario(transport="auto").client
    assert client.long_poll_url is not None and client.first_byte_timeout <= 5.0
    assert Scenario().client.long_poll_url is None


# --- the simulator catches broken clients ----------------------------------------------------


class _Tampering(ClientSession):
    """A client that rewrites its own Deliver actions (to prove the checker sees it)."""

    def tamper(self, actions: list[Action]) -> list[Action]:
        return actions

    def on_data(self, data: bytes, now: float) -> list[Action]:
        return self.tamper(super().on_data(data, now))

    def on_eof(self, now: float) -> list[Action]:
        return self.tamper(super().on_eof(now))  # a poll's events come out here


class DroppingClient(_Tampering):
    def tamper(self, actions: list[Action]) -> list[Action]:
        return [a for a in actions if not (isinstance(a, Deliver) and a.event.id == "e0-1")]


class DuplicatingClient(_Tampering):
    def tamper(self, actions: list[Action]) -> list[Action]:
        return [b for a in actions for b in ([a, a] if isinstance(a, Deliver) else [a])]


class CorruptingClient(_Tampering):
    def tamper(self, actions: list[Action]) -> list[Action]:
        return [
            Deliver(event=attrs.evolve(a.event, data=a.event.data[:-1]))
            if isinstance(a, Deliver) and a.event.data else a
            for a in actions
        ]


class ExcusingClient(_Tampering):
    """Drops an event but reports a gap from the wrong place."""

    def tamper(self, actions: list[Action]) -> list[Action]:
        out: list[Action] = []
        for a in actions:
            if isinstance(a, Deliver) and a.event.id == "e0-1":
                out.append(ReportGap(last_event_id="elsewhere", reason="unknown"))
            else:
                out.append(a)
        return out


@pytest.mark.parametrize(
    ("client", "expected"),
    [
        (DroppingClient, "silently lost 1 event(s) before 'e0-2'"),
        (DuplicatingClient, "delivered 'e0-0' again"),
        (CorruptingClient, "data of 'e0-0' corrupted"),
        (ExcusingClient, "gap report resumes from 'elsewhere'"),
    ],
)
def test_broken_clients_are_caught(client: type[ClientSession], expected: str) -> None:
    """A client that drops, repeats, corrupts or mislabels events is flagged."""

    def factory(config: ClientConfig, rng: random.Random) -> ClientSession:
        return client(config, rng=rng)

    result = simulate(scenario(publish_at=(0.5, 1.0, 1.5)), client_factory=factory)
    assert result.violation is not None and expected in result.violation
    assert not result.completed
    assert simulate(scenario(publish_at=(0.5, 1.0, 1.5))).is_ok
    # The same while long-polling, behind a proxy.
    polling = polling_scenario(publish_at=(0.5, 10.0, 11.0, 12.0), faults=(PROXY,))
    assert simulate(polling).is_ok
    result = simulate(polling, client_factory=factory)
    assert result.violation is not None and expected.replace("e0-0", "e0-1") in result.violation
    assert transports(result)[0][0] is Transport.LONG_POLLING


def test_a_client_that_gives_up_does_not_complete() -> None:
    """A client that stops reconnecting never catches up: not completed, reported."""
    config = attrs.evolve(TEST_CLIENT, backoff=BackoffConfig(max_attempts=0))
    result = simulate(scenario(publish_at=(0.5, 2.0), faults=(Reset(at=1.0),), client=config,
                               settle_timeout=30.0))
    assert not result.completed
    assert result.violation is not None and "not caught up" in result.violation
    assert result.virtual_duration <= 2.0 + 30.0


# --- the checker on its own ------------------------------------------------------------------

P = [("a", "A", 1.0), ("b", "B", 2.0), ("c", "C", 3.0)]


def d(event_id: str, data: str | None = None) -> Deliver:
    return Deliver(event=Event(data=data or event_id.upper(), id=event_id))


@pytest.mark.parametrize(
    ("record", "violation"),
    [
        ([(1, d("a")), (2, d("b")), (3, d("c"))], None),
        ([(1, d("a")), (5, ReportGap(last_event_id="a", reason="too_old")), (5, d("c"))], None),
        ([(1, d("a")), (5, ReportGap(last_event_id="a", reason="unknown"))], None),
        ([(1, d("a")), (3, d("c"))], "silently lost 1 event(s) before 'c'"),
        ([(1, d("a")), (2, d("b")), (3, d("b"))], "delivered 'b' again"),
        ([(1, d("a")), (3, d("c")), (3, d("b"))], "silently lost"),
        ([(1, d("a")), (2, d("b", "X"))], "corrupted"),
        ([(1, d("z"))], "not published"),
        ([(1, d("a")), (2, d("b"))], "not caught up"),
        # A gap reported before the events were even published cannot explain them.
        ([(1, d("a")), (1.5, ReportGap(last_event_id="a", reason="unknown"))],
         "not caught up"),
        ([(2.5, ReportGap(last_event_id="a", reason="unknown")), (3, d("c"))],
         "gap report resumes from 'a'"),
    ],
)
def test_check_record(record: list[tuple[float, Deliver | ReportGap]], violation: str | None
                      ) -> None:
    """The invariant, case by case."""
    found = check_record(P, record)
    if violation is None:
        assert found is None
    else:
        assert found is not None and violation in found


# --- regressions -------------------------------------------------------------------------------


def test_regression_seed_10() -> None:
    """Seed 10 (of the first scenario generator, frozen here): a restart that loses the log
    before the client saw any event. It used to reconnect without Last-Event-ID and lose the
    events published meanwhile silently; now the server gives every new client the log's
    position (ReplayLog.position), so the restart shows as an unknown id and a gap."""
    assert_ok(simulate(Scenario(
        publish_at=(5.08, 6.52, 16.396),
        faults=(Restart(at=4.213, downtime=2.682, is_log_kept=False),),
    )))


def test_regression_no_event_id_yet() -> None:
    """Minimal form of the same bug: connected, no event yet, reset, one event published
    while reconnecting -- it must arrive (or be reported as a gap)."""
    assert_ok(simulate(Scenario(publish_at=(1.1,), faults=(Reset(at=1.0),))))


def test_regression_event_published_as_the_request_arrives() -> None:
    """Found by the strategies: an event published at the very instant the first request
    reaches the server, just before it, is not owed (the position the client gets is that
    event's id). The simulator used to compare times and owed it."""
    result = simulate(Scenario(publish_at=(0.02, 1.0), latency=0.02))
    assert_ok(result)
    assert (result.published, result.delivered) == (1, 1)


@pytest.mark.parametrize(
    ("last_event_id", "delivered", "gaps"),
    [("e0-0", ["e0-1", "e0-2"], []), ("e0-start", ["e0-0", "e0-1", "e0-2"], []),
     ("bogus", ["e0-2"], ["bogus"])],
)
@pytest.mark.parametrize("is_polling", [False, True])
def test_regression_client_starting_with_an_id(
    last_event_id: str, delivered: list[str], gaps: list[str], is_polling: bool
) -> None:
    """A client that starts with an id (streaming, or by long-polling) is owed what follows
    it, even what was published before its first request; with an id the server does not
    know, a gap report and what is published afterwards. The simulator used to owe only
    what came after the first request."""
    client = TEST_CLIENT
    if is_polling:
        client = attrs.evolve(POLLING_CLIENT, initial_transport=Transport.LONG_POLLING)
    result = simulate(scenario(
        transport="auto" if is_polling else "stream", publish_at=(0.0, 0.01, 1.0),
        client=attrs.evolve(client, last_event_id=last_event_id),
    ))
    assert_ok(result)
    assert [e.event.id for _, e in result.record if isinstance(e, Deliver)] == delivered
    assert [e.last_event_id for _, e in result.record if isinstance(e, ReportGap)] == gaps
    assert (result.polls > 0) == is_polling


# --- the package's shape -----------------------------------------------------------------------

TESTING = Path(sse_core.testing.__file__).resolve().parent
FORBIDDEN = {"time", "asyncio", "trio", "socket", "ssl", "selectors", "threading", "os",
             "subprocess", "multiprocessing", "datetime"}


@pytest.mark.parametrize(
    "path",
    sorted(path for path in TESTING.glob("*.py") if path.stem != "_proxy"),
    ids=lambda p: p.stem,
)
def test_testing_package_does_no_io(path: Path) -> None:
    """The simulator reads no clock and touches no OS: only seeded random.Random; only the
    strategies import hypothesis. (The package's one I/O module is the real TCP proxy,
    ``_proxy``, for tests on loopback.)"""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            imported.add(node.module.split(".")[0])
    assert imported & FORBIDDEN == set()
    if path.stem not in ("_strategies", "strategies"):
        assert "hypothesis" not in imported
    assert "__all__" in {t.id for n in tree.body if isinstance(n, ast.Assign)
                         for t in n.targets if isinstance(t, ast.Name)}


def test_importable_without_hypothesis() -> None:
    """import sse_core.testing works when hypothesis is missing; the strategies say so."""
    code = (
        "import sys; sys.modules['hypothesis'] = None\n"
        "import sse_core.testing as t; assert t.simulate(t.random_scenario(1)).published\n"
        "try:\n    import sse_core.testing.strategies\nexcept ImportError: print('no')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "no"


def test_not_reexported_from_sse_core() -> None:
    """The testing names stay out of sse_core's namespace."""
    import sse_core

    assert not set(sse_core.testing.__all__) & set(sse_core.__all__)
    for name in sse_core.testing.__all__:
        obj = getattr(sse_core.testing, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__doc__, name


def test_benchmark_script_reports(capsys: pytest.CaptureFixture[str]) -> None:
    """benchmarks/simulate.py runs scenarios and prints the completion figures."""
    from benchmarks import simulate as bench

    code = bench.main(["--seed", "0", "-n", "20"])
    out = capsys.readouterr().out
    assert "scenarios:  20" in out and "completed:" in out and "long-poll:" in out
    summary = bench.run(0, 20)
    assert 0 < summary.long_poll_scenarios < 20
    assert summary.switched_back <= summary.switched <= summary.long_poll_scenarios
    assert code == (1 if summary.violations else 0)
    assert summary.completed + sum(n for n, _ in summary.violations.values()) == 20
