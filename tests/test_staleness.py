"""How old a client's data may be: last_byte_at, last_event_at and ReportStale
(ClientConfig.stale_after)."""

from __future__ import annotations

import attrs
from hypothesis import given
from hypothesis import strategies as st

from sse_core import ClientState, ReportStale
from sse_core.testing import Scenario, Stall, simulate
from tests.test_client import SSE_HEADERS, open_stream, session


def stale_reports(actions: list[object]) -> list[ReportStale]:
    return [a for a in actions if isinstance(a, ReportStale)]


def test_heartbeats_that_stop_turn_the_data_stale_before_the_stall_timeout() -> None:
    """Heartbeats every 5 s, then none: stale 12 s after the last one (stale_after), long
    before the 45 s stall timeout replaces the connection; the next byte is fresh again."""
    client = session(stale_after=12.0, stall_timeout=45.0)
    open_stream(client)
    for at in (5.0, 10.0, 15.0):
        assert stale_reports(client.on_data(b":\n", at)) == []
    assert client.next_deadline() == 27.0
    assert client.on_timer(26.9) == []
    assert client.on_timer(27.0) == [ReportStale(is_stale=True, since=15.0)]
    assert client.state is ClientState.STREAMING and client.is_stale
    assert client.next_deadline() == 60.0  # the stall timeout, 45 s after the last line
    assert stale_reports(client.on_data(b":\n", 30.0)) == [ReportStale(is_stale=False, since=30.0)]
    assert not client.is_stale and client.last_byte_at == 30.0


def test_reconnecting_turns_the_data_stale_too() -> None:
    """The stream ends and the backoff waits long: the data goes stale while reconnecting."""
    client = session(stale_after=3.0)
    open_stream(client)
    client.on_data(b"data: x\n\n", 1.0)
    client.on_eof(1.5)
    assert client.state is ClientState.RECONNECTING
    actions = client.on_timer(4.0)
    assert stale_reports(actions) == [ReportStale(is_stale=True, since=1.0)]
    assert client.last_event_at == 1.0


def test_before_any_byte_the_age_counts_from_the_start() -> None:
    """No byte yet: last_byte_at is None, and staleness counts from start()."""
    client = session(stale_after=2.0)
    client.start(10.0)
    assert client.last_byte_at is None and client.last_event_at is None
    client.on_response(200, SSE_HEADERS, 10.5)
    assert stale_reports(client.on_timer(12.0)) == [ReportStale(is_stale=True, since=10.0)]


def test_without_stale_after_nothing_is_reported_but_times_are_kept() -> None:
    """The default reports nothing and adds no deadline; the times are there all the same."""
    client = session(stall_timeout=None)
    open_stream(client)
    client.on_data(b"data: x\n\n", 3.0)
    assert client.next_deadline() is None
    assert client.last_byte_at == client.last_event_at == 3.0
    assert not client.is_stale


def test_closed_sessions_do_not_turn_stale() -> None:
    """After close() there is no deadline and no report, whatever the time."""
    client = session(stale_after=1.0)
    open_stream(client)
    client.close(0.5)
    assert client.next_deadline() is None
    assert client.on_timer(100.0) == []


@given(st.lists(st.tuples(st.sampled_from(["byte", "event", "wait", "eof"]),
                          st.floats(0.0, 5.0)), max_size=40))
def test_reports_alternate_and_follow_the_rule(steps: list[tuple[str, float]]) -> None:
    """Whatever happens: stale and fresh reports alternate, starting with stale; a stale
    report comes only once stale_after passed since the last byte, a fresh one only with a
    byte; is_stale always matches the last report."""
    stale_after = 2.0
    client = session(stale_after=stale_after, stall_timeout=None)
    open_stream(client)
    now, last_byte, reports = 0.0, 0.0, []
    for kind, step in steps:
        now += step
        if client.state is ClientState.CLOSED:
            break
        if kind == "wait":
            got = stale_reports(client.on_timer(now))
            assert all(r.is_stale and now >= last_byte + stale_after for r in got)
        elif client.state in (ClientState.CONNECTED, ClientState.STREAMING):
            if kind == "eof":
                got = stale_reports(client.on_eof(now))
                assert got == []
            else:
                data = b":\n" if kind == "byte" else b"data: e\n\n"
                got = stale_reports(client.on_data(data, now))
                assert all(not r.is_stale and r.since == now for r in got)
                last_byte = now
        else:
            got = stale_reports(client.on_timer(now))
            if client.state is ClientState.CONNECTING:
                client.on_response(200, SSE_HEADERS, now)
        reports += got
        assert client.is_stale == (bool(reports) and reports[-1].is_stale)
    assert [r.is_stale for r in reports] == [n % 2 == 0 for n in range(len(reports))]


def test_the_simulator_sees_stale_reports_and_delivers_everything() -> None:
    """A stalled stream in the simulator with stale_after below the stall timeout: every
    event still arrives once, in order (the stale deadline moves when woken)."""
    scenario = Scenario(seed=4, publish_at=tuple(float(n) for n in range(1, 30)),
                        faults=(Stall(at=10.0),))
    scenario = attrs.evolve(scenario, client=attrs.evolve(scenario.client, stale_after=1.0))
    result = simulate(scenario)
    assert result.is_ok and result.delivered == result.published

