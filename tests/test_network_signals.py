"""The platform's network signals on a ClientSession (offline, online, a network change),
and the simulator's Offline and Handoff faults."""

from __future__ import annotations

import pytest

from sse_core import ClientSession, ClientState, Connect, Disconnect, EndCause, ReportFailure
from sse_core.state import BackoffConfig, Jitter
from sse_core.testing import Handoff, Offline, Reset, Scenario, simulate
from tests.test_client import SSE_HEADERS, header, kinds, open_stream, session, statuses


def streaming(**overrides: object) -> ClientSession:
    """A session streaming, with event id ``"7"`` delivered at 1.0."""
    client = session(**overrides)
    open_stream(client)
    client.on_data(b"id: 7\ndata: x\n\n", 1.0)
    return client


def test_offline_drops_the_stream_and_tries_nothing_until_online() -> None:
    """Offline while streaming: the connection goes, the state is OFFLINE with the reason,
    and there is no deadline at all -- however long the network stays away, no attempt is
    made. Online connects at once, resuming from the last event id."""
    client = streaming()
    actions = client.on_offline(2.0)
    assert kinds(actions) == ["Disconnect", "ReportStatus"]
    assert statuses(actions) == [ClientState.OFFLINE]
    assert actions[-1].reason == "the network is offline"
    assert client.next_deadline() is None
    assert client.on_timer(500.0) == []
    attempts = client.metrics.connection_attempts
    actions = client.on_online(600.0)
    assert statuses(actions) == [ClientState.CONNECTING]
    [connect] = [a for a in actions if isinstance(a, Connect)]
    assert header(connect.request.headers, "Last-Event-ID") == "7"
    assert client.metrics.connection_attempts == attempts + 1
    client.on_response(200, SSE_HEADERS, 600.1)
    assert client.metrics.reconnections == 1
    assert client.metrics.time_to_reconnect.maximum == pytest.approx(598.1)


def test_offline_spends_no_backoff_attempt() -> None:
    """With a backoff that gives up at the first loss, going offline and online again does
    not give up: the network signal is no failed attempt. A real loss afterwards does."""
    client = streaming(backoff=BackoffConfig(max_attempts=0))
    client.on_offline(2.0)
    client.on_online(3.0)
    client.on_response(200, SSE_HEADERS, 3.1)
    assert client.state is ClientState.CONNECTED
    actions = client.on_connection_lost(4.0)
    assert statuses(actions) == [ClientState.CLOSED]
    assert [a.cause for a in actions if isinstance(a, ReportFailure)] == [EndCause.GAVE_UP]


def test_offline_while_reconnecting_calls_off_the_wait_and_online_skips_it() -> None:
    """Offline during the backoff delay: no deadline is left (the wait is called off).
    Online while reconnecting connects at once, without the rest of the delay."""
    client = streaming(backoff=BackoffConfig(base_delay=30.0, jitter=Jitter.NONE))
    client.on_eof(2.0)
    assert client.state is ClientState.RECONNECTING and client.next_deadline() == 32.0
    client.on_offline(3.0)
    assert client.state is ClientState.OFFLINE and client.next_deadline() is None
    client.on_online(4.0)
    assert client.state is ClientState.CONNECTING
    client.on_response(503, SSE_HEADERS, 4.1)  # not retryable here: closes
    other = streaming(backoff=BackoffConfig(base_delay=30.0, jitter=Jitter.NONE))
    other.on_eof(2.0)
    actions = other.on_online(3.0)  # a spurious "online" while waiting: go now
    assert statuses(actions) == [ClientState.CONNECTING]
    assert "Connect" in kinds(actions)


def test_network_change_replaces_the_connection_at_once() -> None:
    """A handoff while streaming: disconnect and connect again in the same step (no
    waiting for the stall timeout), with Last-Event-ID; one status, CONNECTING, saying why."""
    client = streaming(stall_timeout=45.0)
    actions = client.on_network_changed(2.0)
    assert kinds(actions) == ["Disconnect", "ReportStatus", "Connect"]
    assert statuses(actions) == [ClientState.CONNECTING]
    assert actions[1].reason == "the network changed"
    [connect] = [a for a in actions if isinstance(a, Connect)]
    assert header(connect.request.headers, "Last-Event-ID") == "7"


def test_network_change_while_reconnecting_connects_now() -> None:
    """A handoff during the backoff delay: the new network is worth a try at once."""
    client = streaming(backoff=BackoffConfig(base_delay=30.0, jitter=Jitter.NONE))
    client.on_eof(2.0)
    actions = client.on_network_changed(3.0)
    assert statuses(actions) == [ClientState.CONNECTING]
    assert "Connect" in kinds(actions)


def test_signals_that_change_nothing_are_ignored() -> None:
    """Platforms send signals at any time: one that changes nothing returns no action and
    is no misuse (the session goes on normally afterwards)."""
    client = streaming()
    assert client.on_online(2.0) == []
    client.on_offline(3.0)
    assert client.on_offline(4.0) == []
    assert client.on_network_changed(5.0) == []  # offline: wait for "online"
    closed = session()
    assert closed.on_offline(0.0) == closed.on_online(0.0) == []
    assert closed.on_network_changed(0.0) == []
    assert closed.state is ClientState.CLOSED
    closed.start(1.0)  # not failed by the signals
    assert client.close(6.0)[-1].state is ClientState.CLOSED


def test_a_post_that_cannot_resume_keeps_its_stream_on_a_change_and_ends_offline() -> None:
    """A POST without ids may not be sent again: a network change keeps its stream (the
    stall timeout still guards it); going offline ends it (NOT_RESUMABLE), as a cut would."""
    client = session(method="POST", body=b"{}")
    open_stream(client)
    client.on_data(b"data: token\n\n", 1.0)
    assert client.on_network_changed(2.0) == []
    assert client.state is ClientState.STREAMING
    actions = client.on_offline(3.0)
    assert kinds(actions)[0] == "Disconnect"
    assert [a.cause for a in actions if isinstance(a, ReportFailure)] == [EndCause.NOT_RESUMABLE]
    assert statuses(actions) == [ClientState.CLOSED]


def test_a_post_with_ids_is_replaced_on_a_change() -> None:
    """A POST whose stream carries ids resumes: a network change replaces it."""
    client = streaming(method="POST", body=b"{}")
    actions = client.on_network_changed(2.0)
    assert isinstance(actions[0], Disconnect) and "Connect" in kinds(actions)


# --- the simulator ------------------------------------------------------------------------


def one_per_second(count: int) -> tuple[float, ...]:
    return tuple(float(n) for n in range(1, count + 1))


def test_simulated_offline_makes_no_attempt_while_signalled() -> None:
    """A signalled 60 s offline in the middle of a stream: every event once, in order, and
    no connection attempt while offline (a client that is not told makes several)."""
    publish = one_per_second(80)
    told = simulate(Scenario(seed=1, publish_at=publish,
                             faults=(Offline(at=10.0, duration=60.0),)))
    blind = simulate(Scenario(seed=1, publish_at=publish,
                              faults=(Offline(at=10.0, duration=60.0, is_signalled=False),)))
    assert told.is_ok and blind.is_ok
    assert told.delivered == told.published == 80 and told.missed == 0
    assert told.connections == 2  # the first, and one when the network is back
    assert blind.connections > told.connections + 3


def test_simulated_handoff_resumes_before_the_stall_timeout() -> None:
    """A signalled handoff: the client resumes at once, and the event published right after
    it arrives well before the stall timeout (6 s here) would have noticed the dead
    connection; unsignalled, it arrives only after that timeout. Both exactly once."""
    publish = (*one_per_second(10), 10.5, *one_per_second(20)[10:])
    results = {}
    for is_signalled in (True, False):
        result = simulate(Scenario(seed=2, publish_at=publish,
                                   faults=(Handoff(at=10.2, is_signalled=is_signalled),)))
        assert result.is_ok and result.delivered == result.published == len(publish)
        [at] = [t for t, entry in result.record if getattr(entry, "event", None)
                and entry.event.data == "event 10"]
        results[is_signalled] = at
    assert results[True] < 10.5 + 1.0
    assert results[False] > 10.2 + 5.0


@pytest.mark.parametrize("seed", range(40))
def test_random_network_faults_keep_exactly_once(seed: int) -> None:
    """Offline and handoff faults, signalled or not, mixed with resets: the invariant holds."""
    faults = tuple(sorted(
        (Offline(at=5.0 + seed % 7, duration=1.0 + seed % 13, is_signalled=seed % 3 != 0),
         Handoff(at=3.0 + seed % 11, is_signalled=seed % 2 == 0),
         Reset(at=4.0 + seed % 5)),
        key=lambda fault: fault.at,
    ))
    result = simulate(Scenario(seed=seed, publish_at=one_per_second(30), faults=faults))
    assert result.is_ok, result.violation
    assert result.delivered + result.missed == result.published



def test_a_refusal_being_read_stands() -> None:
    """A refused response (401) whose body is being read: a network change does not turn it
    into a new attempt; going offline reports the refusal with the body read so far."""
    client = session()
    client.start(0.0)
    client.on_response(401, [("Content-Type", "application/json")], 0.1)
    client.on_data(b'{"error": ', 0.2)
    assert client.on_network_changed(0.3) == []
    actions = client.on_offline(0.4)
    [failure] = [a for a in actions if isinstance(a, ReportFailure)]
    assert failure.cause is EndCause.REFUSED and failure.status == 401
    assert failure.body == b'{"error": '
    assert statuses(actions) == [ClientState.CLOSED]
