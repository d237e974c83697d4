"""The health monitor: alert and resolve records from metrics snapshots (floor 3).

:class:`HealthMonitor` is given a client session's :class:`~sse_core.Metrics` with ``now``
(every few seconds, say) and answers with :class:`RaiseAlert` when one of its rules starts
to fire and :class:`ResolveAlert` when it has stopped. It reads no clock and sends nothing:
the application logs, pages or shows what it returns.

The rules, with the defaults of :class:`HealthConfig` (each settable):

* ``RECONNECTIONS``: more than 10 reconnections within the window (5 minutes);
* ``STREAM_COMPLETION``: the stream completion rate within the window below 99 % (a gap of
  unknown size within the window counts as below: events were lost and nobody counted them);
* ``RECONNECT_TIME``: the average time to reconnect within the window above 30 s;
* ``BUFFER_SIZE``: more than 1,000 messages held in the client's buffers now;
* ``CONNECTION_FAILURES``: more than 10 % of the connection attempts within the window
  failed (once at least ``min_attempts`` were made).

Figures "within the window" are the difference between the snapshot given now and the
newest one given at least ``window`` seconds earlier (the oldest one kept while the monitor
is younger than that). No alert storm: a rule alerts once when it starts to fire (after
firing ``fire_after`` seconds at every check), and resolves only after it has been clear at
every check for ``resolve_after`` seconds; a rule that flaps meanwhile stays alerted. So a
rule raises at most one alert per ``resolve_after`` seconds.
"""

from __future__ import annotations

import collections
import enum

import attrs

from ._errors import LocalProtocolError
from ._metrics import Metrics
from ._validators import (
    Check,
    MonotonicNow,
    instance_of,
    non_negative_int,
    non_negative_number,
    positive_int,
    positive_number,
)

__all__ = ["HealthConfig", "HealthMonitor", "HealthRule", "RaiseAlert", "ResolveAlert"]

_fraction = Check(
    lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1,
    "a number from 0 to 1",
)


class HealthRule(enum.Enum):
    """What a :class:`HealthMonitor` watches (see the module's documentation)."""

    RECONNECTIONS = "reconnections"  # more than max_reconnections within the window
    STREAM_COMPLETION = "stream completion"  # below min_stream_completion, or unknown loss
    RECONNECT_TIME = "reconnect time"  # average above max_average_reconnect_time
    BUFFER_SIZE = "buffer size"  # more than max_buffer_size held now
    CONNECTION_FAILURES = "connection failures"  # above max_connection_failure_rate


@attrs.frozen(kw_only=True)
class HealthConfig:
    """Thresholds and hold times of a :class:`HealthMonitor`.

    Attributes:
        window: Seconds the windowed figures cover.
        max_reconnections: ``RECONNECTIONS`` fires above this many within the window.
        min_stream_completion: ``STREAM_COMPLETION`` fires below this rate (0 to 1).
        max_average_reconnect_time: ``RECONNECT_TIME`` fires above this many seconds.
        max_buffer_size: ``BUFFER_SIZE`` fires above this many messages held.
        max_connection_failure_rate: ``CONNECTION_FAILURES`` fires above this rate (0 to
            1), once ``min_attempts`` were made within the window.
        min_attempts: The fewest attempts within the window for the failure rate to count
            (a single failed attempt is no trend).
        fire_after: Seconds a rule must fire, at every check, before it alerts (0: at once).
        resolve_after: Seconds a rule must be clear, at every check, before it resolves.
        max_samples: Most snapshots kept for the window; check at least every
            ``window / max_samples`` seconds apart for the whole window to be covered.

    Raises:
        InvalidConfigError: on construction, when a value is out of range or of the wrong type.
    """

    window: float = attrs.field(default=300.0, validator=positive_number)
    max_reconnections: int = attrs.field(default=10, validator=non_negative_int)
    min_stream_completion: float = attrs.field(default=0.99, validator=_fraction)
    max_average_reconnect_time: float = attrs.field(default=30.0, validator=non_negative_number)
    max_buffer_size: int = attrs.field(default=1000, validator=non_negative_int)
    max_connection_failure_rate: float = attrs.field(default=0.10, validator=_fraction)
    min_attempts: int = attrs.field(default=3, validator=positive_int)
    fire_after: float = attrs.field(default=0.0, validator=non_negative_number)
    resolve_after: float = attrs.field(default=60.0, validator=non_negative_number)
    max_samples: int = attrs.field(default=1024, validator=positive_int)


Figures = tuple[tuple[str, float | int | None], ...]


class _WithFigures:
    """What both alert records offer: a figure by name."""

    __slots__ = ()
    figures: Figures

    def figure(self, name: str) -> float | int | None:
        """One of the record's ``figures`` by name.

        Raises:
            KeyError: no figure of that name.
        """
        return dict(self.figures)[name]


@attrs.frozen(kw_only=True)
class RaiseAlert(_WithFigures):
    """A rule started to fire: tell someone.

    Attributes:
        rule: Which rule.
        at: The ``now`` of the check that raised it.
        value: The figure the rule compares (a count, a rate, seconds), or ``None`` when it
            is unknown (a completion rate after a gap of unknown size).
        threshold: What it was compared with.
        figures: The figures behind it, as ``(name, value)`` pairs: the window's span in
            seconds and the counts the value was computed from.
    """

    rule: HealthRule
    at: float
    value: float | int | None
    threshold: float | int
    figures: Figures = ()


@attrs.frozen(kw_only=True)
class ResolveAlert(_WithFigures):
    """A rule that alerted has been clear for ``resolve_after`` seconds.

    Attributes:
        rule: Which rule.
        at: The ``now`` of the check that resolved it.
        raised_at: When its alert was raised.
        value: The figure at this check.
        threshold: What it was compared with.
        figures: The figures behind it, as in :class:`RaiseAlert`.
    """

    rule: HealthRule
    at: float
    raised_at: float
    value: float | int | None
    threshold: float | int
    figures: Figures = ()


HealthAction = RaiseAlert | ResolveAlert


@attrs.frozen
class _Verdict:
    is_firing: bool
    value: float | int | None
    threshold: float | int
    figures: Figures


class _RuleState:
    """Where one rule stands: firing since (not yet alerted), alerted since, clear since."""

    __slots__ = ("alerted_at", "clear_since", "firing_since")

    def __init__(self) -> None:
        self.firing_since: float | None = None
        self.alerted_at: float | None = None
        self.clear_since: float | None = None


class HealthMonitor(MonotonicNow):
    """Raises and resolves alerts from a client session's metrics (see the module's
    documentation for the rules and the hold times).

    Args:
        config: Thresholds and hold times; ``HealthConfig()`` when omitted.

    Raises:
        InvalidConfigError: ``config`` is not a :class:`HealthConfig`.
    """

    def __init__(self, config: HealthConfig | None = None) -> None:
        MonotonicNow.__init__(self)
        self._config = HealthConfig() if config is None else config
        instance_of(HealthConfig).check("config", self._config)
        self._samples: collections.deque[tuple[float, Metrics]] = collections.deque(
            maxlen=self._config.max_samples
        )
        self._rules = {rule: _RuleState() for rule in HealthRule}

    @property
    def config(self) -> HealthConfig:
        """The thresholds and hold times."""
        return self._config

    @property
    def alerting(self) -> frozenset[HealthRule]:
        """The rules whose alert is raised and not resolved."""
        rules = self._rules.items()
        return frozenset(rule for rule, state in rules if state.alerted_at is not None)

    def check(self, metrics: Metrics, now: float) -> list[HealthAction]:
        """Judge a snapshot taken at ``now``.

        Args:
            metrics: The session's ``metrics`` at ``now``.
            now: The current monotonic time.

        Returns:
            A :class:`RaiseAlert` for each rule that starts to fire and a
            :class:`ResolveAlert` for each that resolves, in :class:`HealthRule` order.

        Raises:
            ClockError: ``now`` is not finite or is earlier than a previous ``now``.
            LocalProtocolError: ``metrics`` is no :class:`~sse_core.Metrics`, or a counter
                went backwards (a snapshot of another session?).
        """
        self._take_now(now)
        if not isinstance(metrics, Metrics):
            raise LocalProtocolError(f"metrics must be a Metrics, got {metrics!r}")
        base_at, base = self._baseline(now, metrics)
        self._samples.append((now, metrics))
        actions: list[HealthAction] = []
        for rule, verdict in self._judge(metrics, base, now - base_at).items():
            action = self._step(rule, verdict, now)
            if action is not None:
                actions.append(action)
        return actions

    # --- internals ------------------------------------------------------------------------

    def _baseline(self, now: float, metrics: Metrics) -> tuple[float, Metrics]:
        """The newest sample at least ``window`` old (the oldest one when none is)."""
        samples = self._samples
        if samples and _went_backwards(samples[-1][1], metrics):
            raise LocalProtocolError(
                "metrics went backwards: give one monitor the snapshots of one session"
            )
        horizon = now - self._config.window
        while len(samples) > 1 and samples[1][0] <= horizon:
            samples.popleft()
        return samples[0] if samples else (now, metrics)

    def _judge(self, new: Metrics, old: Metrics, span: float) -> dict[HealthRule, _Verdict]:
        config = self._config
        reconnections = new.reconnections - old.reconnections
        delivered = new.messages_received - old.messages_received
        missed = new.events_missed - old.events_missed
        unknown = new.gaps_of_unknown_size - old.gaps_of_unknown_size
        sent = delivered + missed
        completion = None if unknown or not sent else delivered / sent
        reconnect_count = new.time_to_reconnect.count - old.time_to_reconnect.count
        reconnect_total = max(0.0, new.time_to_reconnect.total - old.time_to_reconnect.total)
        average = reconnect_total / reconnect_count if reconnect_count else None
        attempts = new.connection_attempts - old.connection_attempts
        failures = new.connection_failures - old.connection_failures
        failure_rate = failures / attempts if attempts else None
        window = ("window", span)
        return {
            HealthRule.RECONNECTIONS: _Verdict(
                reconnections > config.max_reconnections, reconnections,
                config.max_reconnections, (window, ("reconnections", reconnections)),
            ),
            HealthRule.STREAM_COMPLETION: _Verdict(
                bool(unknown) or (completion is not None
                                  and completion < config.min_stream_completion),
                completion, config.min_stream_completion,
                (window, ("delivered", delivered), ("missed", missed),
                 ("gaps_of_unknown_size", unknown)),
            ),
            HealthRule.RECONNECT_TIME: _Verdict(
                average is not None and average > config.max_average_reconnect_time,
                average, config.max_average_reconnect_time,
                (window, ("reconnections", reconnect_count), ("total", reconnect_total)),
            ),
            HealthRule.BUFFER_SIZE: _Verdict(
                new.buffer_size > config.max_buffer_size, new.buffer_size,
                config.max_buffer_size,
                (("sequencer", new.buffered_in_sequencer),
                 ("assembler", new.buffered_in_assembler),
                 ("batcher", new.buffered_in_batcher)),
            ),
            HealthRule.CONNECTION_FAILURES: _Verdict(
                attempts >= config.min_attempts and failure_rate is not None
                and failure_rate > config.max_connection_failure_rate,
                failure_rate, config.max_connection_failure_rate,
                (window, ("attempts", attempts), ("failures", failures)),
            ),
        }

    def _step(self, rule: HealthRule, verdict: _Verdict, now: float) -> HealthAction | None:
        """One rule's hold-time machine: firing -> (fire_after) alert; clear -> (resolve_after)
        resolve."""
        state = self._rules[rule]
        config = self._config
        if verdict.is_firing:
            state.clear_since = None
            if state.alerted_at is not None:
                return None
            if state.firing_since is None:
                state.firing_since = now
            if now - state.firing_since < config.fire_after:
                return None
            state.alerted_at = now
            return RaiseAlert(rule=rule, at=now, value=verdict.value,
                              threshold=verdict.threshold, figures=verdict.figures)
        state.firing_since = None
        if state.alerted_at is None:
            return None
        if state.clear_since is None:
            state.clear_since = now
        if now - state.clear_since < config.resolve_after:
            return None
        raised_at, state.alerted_at, state.clear_since = state.alerted_at, None, None
        return ResolveAlert(rule=rule, at=now, raised_at=raised_at, value=verdict.value,
                            threshold=verdict.threshold, figures=verdict.figures)


def _went_backwards(old: Metrics, new: Metrics) -> bool:
    return (
        new.connection_attempts < old.connection_attempts
        or new.connection_failures < old.connection_failures
        or new.reconnections < old.reconnections
        or new.messages_received < old.messages_received
        or new.events_missed < old.events_missed
        or new.gaps_of_unknown_size < old.gaps_of_unknown_size
        or new.time_to_reconnect.count < old.time_to_reconnect.count
    )
