"""Tests for sse_core._health: the pure health monitor over metrics snapshots."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sse_core import (
    Action,
    ClientConfig,
    ClientSession,
    ClockError,
    InvalidConfigError,
    LocalProtocolError,
    Metrics,
)
from sse_core._metrics import MetricsRecorder
from sse_core.state import HealthConfig, HealthMonitor, HealthRule, RaiseAlert, ResolveAlert
from sse_core.testing import Cut, Scenario, simulate

Script = Callable[[MetricsRecorder], None]


def _reconnect(recorder: MetricsRecorder, seconds: float = 1.0) -> None:
    recorder.record_attempt()
    recorder.record_reconnection(seconds)


def _run(
    steps: list[tuple[float, Script]], config: HealthConfig | None = None
) -> list[RaiseAlert | ResolveAlert]:
    """Check a monitor after each scripted step; return every action it gave."""
    recorder = MetricsRecorder()
    monitor = HealthMonitor(config)
    actions: list[RaiseAlert | ResolveAlert] = []
    for now, step in steps:
        step(recorder)
        actions += monitor.check(recorder.snapshot(), now)
    return actions


def _nothing(recorder: MetricsRecorder) -> None:
    pass


# --- each rule, with the brief's defaults ----------------------------------------------------


def test_eleven_reconnections_in_five_minutes_alert_with_their_figures() -> None:
    """Ten reconnections in the window are fine; the eleventh raises an alert that says how
    many and over which span."""
    steps: list[tuple[float, Script]] = [(0.0, _nothing)]
    steps += [(10.0 * n, _reconnect) for n in range(1, 11)]
    assert _run(steps) == []
    steps.append((110.0, _reconnect))
    (alert,) = _run(steps)
    assert isinstance(alert, RaiseAlert)
    assert (alert.rule, alert.at, alert.value, alert.threshold) == (
        HealthRule.RECONNECTIONS, 110.0, 11, 10)
    assert alert.figure("window") == 110.0
    assert alert.figure("reconnections") == 11


def test_reconnections_spread_over_more_than_the_window_never_alert() -> None:
    """Eleven reconnections 40 s apart never put more than ten inside five minutes."""
    steps: list[tuple[float, Script]] = [(0.0, _nothing)]
    steps += [(40.0 * n, _reconnect) for n in range(1, 12)]
    assert _run(steps) == []


def test_the_alert_resolves_once_clear_for_resolve_after() -> None:
    """After the burst leaves the window the rule is clear; it resolves resolve_after (60 s)
    later, not before, and the resolve names when the alert was raised."""
    steps: list[tuple[float, Script]] = [(0.0, _nothing)]
    steps += [(float(n), _reconnect) for n in range(1, 12)]  # alert at 11 s
    steps += [(float(t), _nothing) for t in range(20, 500, 10)]
    actions = _run(steps)
    assert [type(a) for a in actions] == [RaiseAlert, ResolveAlert]
    resolve = actions[1]
    assert isinstance(resolve, ResolveAlert)
    # The window from t=310 no longer holds 11 of them (the first left at 301 s): clear at
    # 310, resolved at 370.
    assert (resolve.raised_at, resolve.at) == (11.0, 370.0)
    assert resolve.value is not None and resolve.value <= 10


def test_completion_below_99_percent_alerts() -> None:
    """98 delivered and 2 missed in the window is 98 %: an alert with the counts."""
    def lossy(recorder: MetricsRecorder) -> None:
        recorder.record_messages(98)
        recorder.record_gap(2)

    (alert,) = _run([(0.0, _nothing), (5.0, lossy)])
    assert isinstance(alert, RaiseAlert) and alert.rule is HealthRule.STREAM_COMPLETION
    assert alert.value == pytest.approx(0.98)
    assert (alert.figure("delivered"), alert.figure("missed")) == (98, 2)


def test_a_gap_of_unknown_size_counts_as_incomplete() -> None:
    """A gap nobody can size within the window fires the completion rule, value unknown."""
    def unknown_gap(recorder: MetricsRecorder) -> None:
        recorder.record_messages(1000)
        recorder.record_gap(None)

    (alert,) = _run([(0.0, _nothing), (5.0, unknown_gap)])
    assert isinstance(alert, RaiseAlert) and alert.rule is HealthRule.STREAM_COMPLETION
    assert alert.value is None and alert.figure("gaps_of_unknown_size") == 1


def test_a_too_old_gap_that_says_how_many_gives_the_completion_its_figures() -> None:
    """A client session reads a server's too_old gap signal with ``missed``: the completion
    rule fires with a number (300 delivered of 304, under 99 %), not an unknown."""
    session = ClientSession(ClientConfig(url="http://example.test/"), rng=random.Random(1))
    session.start(0.0)
    session.on_response(200, [("Content-Type", "text/event-stream")], 0.0)
    monitor = HealthMonitor()
    assert monitor.check(session.metrics, 0.0) == []
    signal = b'{"last_event_id": "3", "reason": "too_old", "missed": 4}'
    session.on_data(b"event: sse-core-gap\ndata: " + signal + b"\n\n" + b"data: x\n\n" * 300, 1.0)
    (alert,) = monitor.check(session.metrics, 1.0)
    assert isinstance(alert, RaiseAlert) and alert.rule is HealthRule.STREAM_COMPLETION
    assert alert.value == pytest.approx(300 / 304)
    assert (alert.figure("delivered"), alert.figure("missed")) == (300, 4)


def test_slow_reconnections_alert() -> None:
    """Reconnections that took 40 s on average are above 30 s."""
    (alert,) = _run([(0.0, _nothing), (100.0, lambda r: _reconnect(r, 40.0))])
    assert isinstance(alert, RaiseAlert) and alert.rule is HealthRule.RECONNECT_TIME
    assert alert.value == 40.0


def test_a_full_buffer_alerts_and_names_the_buffers() -> None:
    """1,001 messages held is above 1,000; the figures say where they are held."""
    monitor = HealthMonitor()
    full = Metrics(buffered_in_sequencer=1000, buffered_in_batcher=1)
    (alert,) = monitor.check(full, 0.0)
    assert alert.rule is HealthRule.BUFFER_SIZE and alert.value == 1001
    assert dict(alert.figures) == {"sequencer": 1000, "assembler": 0, "batcher": 1}
    assert monitor.alerting == {HealthRule.BUFFER_SIZE}
    assert monitor.check(Metrics(buffered_in_batcher=1000), 1.0) == []  # not above


def test_failing_connections_alert_once_enough_attempts_were_made() -> None:
    """One failed attempt of two is no trend (min_attempts = 3); one of three is 33 %."""
    def fail(recorder: MetricsRecorder) -> None:
        recorder.record_attempt()
        recorder.record_failed_attempt()

    def succeed(recorder: MetricsRecorder) -> None:
        recorder.record_attempt()

    assert _run([(0.0, _nothing), (1.0, fail), (2.0, succeed)]) == []
    (alert,) = _run([(0.0, _nothing), (1.0, fail), (2.0, succeed), (3.0, succeed)])
    assert alert.rule is HealthRule.CONNECTION_FAILURES
    assert alert.value == pytest.approx(1 / 3)
    assert (alert.figure("attempts"), alert.figure("failures")) == (3, 1)


def test_every_threshold_is_settable() -> None:
    """A config with other thresholds moves each rule's line."""
    config = HealthConfig(max_reconnections=1, max_buffer_size=5)
    alerts = _run([(0.0, _nothing), (1.0, _reconnect), (2.0, _reconnect)], config)
    assert [a.rule for a in alerts] == [HealthRule.RECONNECTIONS]
    assert [a.rule for a in HealthMonitor(config).check(Metrics(buffered_in_batcher=6), 0.0)] == [
        HealthRule.BUFFER_SIZE]


def test_fire_after_waits_for_a_lasting_breach() -> None:
    """With fire_after, a breach that goes away in time raises nothing; one that lasts
    raises once, fire_after after it began."""
    monitor = HealthMonitor(HealthConfig(fire_after=10.0))
    full, empty = Metrics(buffered_in_batcher=2000), Metrics()
    assert monitor.check(full, 0.0) == []
    assert monitor.check(empty, 5.0) == []
    assert monitor.check(full, 6.0) == []
    assert monitor.check(full, 15.0) == []
    (alert,) = monitor.check(full, 16.0)
    assert alert.at == 16.0


# --- misuse ----------------------------------------------------------------------------------


def test_metrics_going_backwards_are_refused() -> None:
    """Snapshots of two sessions mixed up make counters go backwards: refused, loudly."""
    monitor = HealthMonitor()
    monitor.check(Metrics(reconnections=5), 0.0)
    with pytest.raises(LocalProtocolError, match="backwards"):
        monitor.check(Metrics(reconnections=4), 1.0)
    with pytest.raises(LocalProtocolError):
        monitor.check({"reconnections": 5}, 2.0)  # type: ignore[arg-type]
    with pytest.raises(ClockError):
        monitor.check(Metrics(reconnections=5), 0.5)


@pytest.mark.parametrize(
    "fields", [{"window": 0}, {"min_stream_completion": 1.5}, {"max_buffer_size": -1},
               {"max_connection_failure_rate": True}, {"resolve_after": -1.0},
               {"max_samples": 0}],
)
def test_config_is_validated(fields: dict[str, object]) -> None:
    """Out-of-range thresholds are refused on construction."""
    with pytest.raises(InvalidConfigError):
        HealthConfig(**fields)  # type: ignore[arg-type]
    with pytest.raises(InvalidConfigError):
        HealthMonitor("strict")  # type: ignore[arg-type]


# --- properties: no storm, windowed counts as a model says ----------------------------------

steps_strategy = st.lists(
    st.tuples(st.floats(0.0, 40.0), st.integers(0, 3), st.integers(0, 1500)),
    min_size=1, max_size=60,
)


@settings(max_examples=200)
@given(steps_strategy, st.floats(0.0, 120.0), st.floats(0.0, 30.0))
def test_alerts_alternate_and_never_storm(
    steps: list[tuple[float, int, int]], resolve_after: float, fire_after: float
) -> None:
    """For any script: per rule, raise and resolve alternate starting with a raise; a
    resolve comes at least resolve_after after its raise; two raises of one rule are more
    than resolve_after apart; and the reconnection rule's figure is what a brute-force model
    of the window counts."""
    config = HealthConfig(resolve_after=resolve_after, fire_after=fire_after, window=60.0)
    monitor = HealthMonitor(config)
    recorder = MetricsRecorder()
    now = 0.0
    history: list[tuple[float, int]] = []
    last: dict[HealthRule, RaiseAlert | ResolveAlert] = {}
    for dt, reconnections, buffered in steps:
        now += dt
        for _ in range(reconnections):
            _reconnect(recorder)
        history.append((now, recorder.reconnections))
        snapshot = Metrics(reconnections=recorder.reconnections,
                           time_to_reconnect=recorder.snapshot().time_to_reconnect,
                           buffered_in_sequencer=buffered)
        for action in monitor.check(snapshot, now):
            previous = last.get(action.rule)
            if isinstance(action, RaiseAlert):
                assert previous is None or isinstance(previous, ResolveAlert)
                if action.rule is HealthRule.RECONNECTIONS:
                    older = [count for at, count in history if at <= now - 60.0]
                    base = older[-1] if older else history[0][1]
                    assert action.value == recorder.reconnections - base
            else:
                assert isinstance(previous, RaiseAlert)
                assert action.raised_at == previous.at
                assert action.at - previous.at >= resolve_after
            last[action.rule] = action
        assert monitor.alerting == {
            rule for rule, action in last.items() if isinstance(action, RaiseAlert)
        }


# --- in the simulator: a burst of faults raises the alert, calm resolves it -----------------


def test_the_reconnection_alert_fires_and_resolves_in_the_simulator() -> None:
    """Twelve cuts in a minute make twelve reconnections: the monitor, checked at every
    input of the simulated client, raises the reconnection alert during the burst and
    resolves it once the burst has left the window and resolve_after has passed; the
    exactly-once verdict of the run still holds."""
    checks: list[tuple[float, RaiseAlert | ResolveAlert]] = []

    class MonitoredClient(ClientSession):
        """A client session checked by a monitor after every input that carries ``now``."""

        monitor = HealthMonitor()

        def on_data(
            self, data: bytes, now: float, *, wall_now: float | None = None
        ) -> list[Action]:
            actions = super().on_data(data, now, wall_now=wall_now)
            checks.extend((now, action) for action in self.monitor.check(self.metrics, now))
            return actions

    def factory(config: object, rng: random.Random) -> ClientSession:
        return MonitoredClient(config, rng=rng)  # type: ignore[arg-type]

    cuts = tuple(Cut(at=10.0 + 5.0 * n, after_bytes=0) for n in range(12))
    scenario = Scenario(seed=3, publish_at=tuple(float(t) for t in range(1, 600, 2)), faults=cuts)
    result = simulate(scenario, client_factory=factory)
    assert result.is_ok, result.violation
    assert result.reconnects >= 11
    kinds = [(type(action).__name__, action.rule) for _, action in checks]
    assert kinds == [("RaiseAlert", HealthRule.RECONNECTIONS),
                     ("ResolveAlert", HealthRule.RECONNECTIONS)]
    (raised_at, _), (resolved_at, _) = checks
    assert 10.0 < raised_at < 70.0  # during the burst
    assert resolved_at > 300.0 + 60.0  # the burst left the window, then resolve_after
