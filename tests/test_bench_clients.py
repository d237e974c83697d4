"""Smoke test of benchmarks/bench_clients.py at a tiny size: every contender reads every
event of every workload from the blasting server. No timing is asserted."""

from __future__ import annotations

import pytest

for _peer in ("httpx", "httpx_sse", "trio", "aiohttp"):
    pytest.importorskip(_peer, reason=f"benchmark peer {_peer} is not installed (bench extra)")

from benchmarks import bench_clients as bench  # noqa: E402


def test_every_contender_reads_every_event_of_every_workload() -> None:
    """``run`` checks each contender's last event against the workload's (it raises when
    one differs); all contenders ran on all workloads, with a positive rate."""
    results = bench.run(200, 1, list(bench.WORKLOADS))
    assert {(r.contender.name, r.workload) for r in results} == {
        (c.name, w) for c in bench.CONTENDERS for w in bench.WORKLOADS
    }
    assert all(r.rate > 0 and r.events == bench.count(r.workload, 200) for r in results)


def test_the_body_has_the_events_it_says() -> None:
    """Each workload's body parses to its count of events, the last one's data as checked."""
    from sse_core import Parser

    for workload in bench.WORKLOADS:
        events = Parser().feed(bench.body(workload, 50))
        assert len(events) == bench.count(workload, 50)
        assert events[-1].data == bench.payload(len(events) - 1, bench.WORKLOADS[workload][0])


def test_clients_picks_contenders_by_name_prefix() -> None:
    """``--clients`` (``run``'s ``chosen``): only the contenders whose names start with one
    of the prefixes run (here sse_core's blocking client and both httpx-sse ones)."""
    results = bench.run(50, 1, ["small"], ["sse_core sync", "httpx-sse"])
    assert sorted(r.contender.name for r in results) == [
        "httpx-sse async", "httpx-sse sync", "sse_core sync"]
