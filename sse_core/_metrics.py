"""Counters a session keeps about its streams (floor 2: state object).

A session counts with a :class:`MetricsRecorder` -- plain integers and two running duration
summaries, updated in place on the hot path -- and hands the application a
:class:`Metrics`: a frozen snapshot, validated when it is taken, exported with
:meth:`Metrics.as_dict` (flat keys, always the same, ready for Prometheus, StatsD or a log
line). The application can read a snapshot but never change what the session counts.

Memory is constant: a duration summary keeps count, total, minimum and maximum, never the
samples.
"""

from __future__ import annotations

import math

import attrs

from ._errors import LocalProtocolError
from ._validators import Check, non_negative_int, non_negative_number

__all__ = ["DurationSummary", "Metrics", "MetricsRecorder"]


_count = non_negative_int
# Snapshots hold what the recorder summed: floats only.
_seconds = Check(
    lambda v: type(v) is float and math.isfinite(v) and v >= 0, "a finite float >= 0"
)


@attrs.frozen(kw_only=True)
class DurationSummary:
    """A bounded summary of durations: count, total, minimum and maximum (no samples kept).

    Attributes:
        count: How many durations were added.
        total: Their sum, in seconds.
        minimum: The smallest one (0.0 while ``count`` is 0).
        maximum: The largest one (0.0 while ``count`` is 0).
    """

    count: int = attrs.field(default=0, validator=_count)
    total: float = attrs.field(default=0.0, validator=_seconds)
    minimum: float = attrs.field(default=0.0, validator=_seconds)
    maximum: float = attrs.field(default=0.0, validator=_seconds)

    @property
    def mean(self) -> float:
        """The average duration in seconds (0.0 while ``count`` is 0)."""
        if self.count == 0:
            return 0.0
        # Clamped: float rounding of the total must not put the mean outside [min, max].
        return min(self.maximum, max(self.minimum, self.total / self.count))

    def as_dict(self, prefix: str) -> dict[str, float | int]:
        """The summary as flat ``{prefix}_count/_total/_min/_max/_mean`` keys.

        Args:
            prefix: Put in front of every key.

        Returns:
            Five keys, always the same for a given prefix.
        """
        return {
            f"{prefix}_count": self.count,
            f"{prefix}_total": self.total,
            f"{prefix}_min": self.minimum,
            f"{prefix}_max": self.maximum,
            f"{prefix}_mean": self.mean,
        }


@attrs.frozen(kw_only=True)
class Metrics:
    """A snapshot of a session's counters, taken by ``session.metrics``.

    Frozen: changing it would not change what the session counts. Nothing is ever reset
    implicitly; subtract two snapshots' :meth:`as_dict` to get rates.

    Attributes:
        connection_attempts: Connection attempts started, successful or not.
        connections: Durations of connections that were up and then ended.
        messages_received: Events delivered to the application.
        messages_deduplicated: Events dropped as duplicates (already seen ids).
        reconnections: Connections re-established after a loss.
        time_to_reconnect: For each reconnection, seconds from losing the connection to
            having the new one up (backoff delays and failed attempts included).
        gaps_reported: Gaps in the event sequence reported to the application.
        events_missed: Events those gaps are known to have lost, in total.
    """

    connection_attempts: int = attrs.field(default=0, validator=_count)
    connections: DurationSummary = attrs.field(factory=DurationSummary)
    messages_received: int = attrs.field(default=0, validator=_count)
    messages_deduplicated: int = attrs.field(default=0, validator=_count)
    reconnections: int = attrs.field(default=0, validator=_count)
    time_to_reconnect: DurationSummary = attrs.field(factory=DurationSummary)
    gaps_reported: int = attrs.field(default=0, validator=_count)
    events_missed: int = attrs.field(default=0, validator=_count)

    def as_dict(self) -> dict[str, float | int]:
        """Every metric under a flat, stable key.

        Returns:
            A new dict, in a fixed order, with the same keys for every snapshot:
            ``connection_attempts``, ``connection_duration_{count,total,min,max,mean}``,
            ``messages_received``, ``messages_deduplicated``, ``reconnections``,
            ``time_to_reconnect_{count,total,min,max,mean}``, ``gaps_reported``,
            ``events_missed``. Counts are ints, durations float seconds.
        """
        out: dict[str, float | int] = {"connection_attempts": self.connection_attempts}
        out.update(self.connections.as_dict("connection_duration"))
        out["messages_received"] = self.messages_received
        out["messages_deduplicated"] = self.messages_deduplicated
        out["reconnections"] = self.reconnections
        out.update(self.time_to_reconnect.as_dict("time_to_reconnect"))
        out["gaps_reported"] = self.gaps_reported
        out["events_missed"] = self.events_missed
        return out


class _Durations:
    """The running form of a :class:`DurationSummary`."""

    __slots__ = ("count", "maximum", "minimum", "total")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.minimum = 0.0
        self.maximum = 0.0

    def add(self, duration: float) -> None:
        duration = float(non_negative_number.check("duration", duration, error=LocalProtocolError))
        if self.count == 0:
            self.minimum = self.maximum = duration
        else:
            self.minimum = min(self.minimum, duration)
            self.maximum = max(self.maximum, duration)
        self.count += 1
        self.total += duration

    def snapshot(self) -> DurationSummary:
        return DurationSummary(
            count=self.count, total=self.total, minimum=self.minimum, maximum=self.maximum
        )


class MetricsRecorder:
    """What a session counts with: plain counters, updated in place (not public).

    The ``record_*`` methods are called by the sessions with values they computed, so the
    counters are plain integer increments; :meth:`snapshot` validates everything once.
    """

    __slots__ = (
        "_connections",
        "_time_to_reconnect",
        "connection_attempts",
        "events_missed",
        "gaps_reported",
        "messages_deduplicated",
        "messages_received",
        "reconnections",
    )

    def __init__(self) -> None:
        self.connection_attempts = 0
        self.messages_received = 0
        self.messages_deduplicated = 0
        self.reconnections = 0
        self.gaps_reported = 0
        self.events_missed = 0
        self._connections = _Durations()
        self._time_to_reconnect = _Durations()

    def record_attempt(self) -> None:
        """Count one connection attempt."""
        self.connection_attempts += 1

    def record_connection(self, duration: float) -> None:
        """Record a connection that was up for ``duration`` seconds and has ended."""
        self._connections.add(duration)

    def record_messages(self, count: int = 1) -> None:
        """Count events delivered to the application."""
        self.messages_received += count

    def record_duplicates(self, count: int = 1) -> None:
        """Count events dropped as duplicates."""
        self.messages_deduplicated += count

    def record_reconnection(self, time_to_reconnect: float) -> None:
        """Count a reconnection that took ``time_to_reconnect`` seconds from loss to up."""
        self._time_to_reconnect.add(time_to_reconnect)
        self.reconnections += 1

    def record_gap(self, missed: int) -> None:
        """Count a reported gap that lost ``missed`` events (0 when the number is unknown)."""
        self.events_missed += missed
        self.gaps_reported += 1

    def snapshot(self) -> Metrics:
        """The counters now, as a frozen, validated :class:`Metrics`."""
        return Metrics(
            connection_attempts=self.connection_attempts,
            connections=self._connections.snapshot(),
            messages_received=self.messages_received,
            messages_deduplicated=self.messages_deduplicated,
            reconnections=self.reconnections,
            time_to_reconnect=self._time_to_reconnect.snapshot(),
            gaps_reported=self.gaps_reported,
            events_missed=self.events_missed,
        )
