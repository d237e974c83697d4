"""Counters a session keeps about its streams (floor 2: state object).

:class:`Metrics` is a small mutable bag of plain attributes -- counters, two bounded duration
summaries and high-water gauges for named buffers -- that sessions update as things happen
and that an application exports with :meth:`Metrics.as_dict` (flat keys, the same keys for
the whole life of the object, ready for Prometheus, StatsD or a log line).

Memory is constant: a :class:`DurationSummary` keeps count, total, minimum and maximum, never
the samples; the buffer gauges exist only for the names declared at construction.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import attrs

from ._errors import InvalidConfigError, LocalProtocolError
from ._validators import non_negative_int, non_negative_number

__all__ = ["BufferGauge", "DurationSummary", "Metrics"]

_BUFFER_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")


def _buffer_names(value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, (str, bytes)):
        raise InvalidConfigError(f"buffer_names must be a sequence of names, got {value!r}")
    try:
        return tuple(value)
    except TypeError:
        raise InvalidConfigError(
            f"buffer_names must be a sequence of names, got {value!r}"
        ) from None


def _count(name: str, value: int) -> int:
    return non_negative_int.check(name, value, error=LocalProtocolError)


@attrs.define(kw_only=True)
class DurationSummary:
    """A bounded summary of durations: count, total, minimum and maximum (no samples kept).

    Attributes:
        count: How many durations were added.
        total: Their sum, in seconds.
        minimum: The smallest one (0.0 while ``count`` is 0).
        maximum: The largest one (0.0 while ``count`` is 0).
    """

    count: int = 0
    total: float = 0.0
    minimum: float = 0.0
    maximum: float = 0.0

    @property
    def mean(self) -> float:
        """The average duration in seconds (0.0 while ``count`` is 0)."""
        if self.count == 0:
            return 0.0
        # Clamped: float rounding of the total must not put the mean outside [min, max].
        return min(self.maximum, max(self.minimum, self.total / self.count))

    def add(self, duration: float) -> None:
        """Add one duration.

        Args:
            duration: Seconds, finite and ``>= 0``.

        Raises:
            LocalProtocolError: when ``duration`` is negative, not finite or not a number.
        """
        duration = float(non_negative_number.check("duration", duration, error=LocalProtocolError))
        if self.count == 0:
            self.minimum = self.maximum = duration
        else:
            self.minimum = min(self.minimum, duration)
            self.maximum = max(self.maximum, duration)
        self.count += 1
        self.total += duration

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


@attrs.define(kw_only=True)
class BufferGauge:
    """The current size of one buffer and the largest size it ever had.

    Attributes:
        current: The size last reported (in the buffer's own unit: bytes or items).
        high_water: The largest size ever reported.
    """

    current: int = 0
    high_water: int = 0

    def update(self, size: int) -> None:
        """Report the buffer's size now.

        Args:
            size: The current size, an int ``>= 0``.

        Raises:
            LocalProtocolError: when ``size`` is not an int ``>= 0``.
        """
        self.current = _count("size", size)
        self.high_water = max(self.high_water, size)


@attrs.define(kw_only=True)
class Metrics:
    """Counters about a session's streams, exported with :meth:`as_dict`.

    Every attribute is plain and public; sessions update them through the ``record_*``
    methods, which refuse negative values, so counters never go down. Nothing is ever reset
    implicitly: subtract two :meth:`as_dict` snapshots to get rates.

    Args:
        buffer_names: The buffers to track (e.g. ``("parser", "replay")``): lower-case
            letters, digits and ``_``, starting with a letter. Each gets a
            :class:`BufferGauge`; only these names are accepted by :meth:`record_buffer`, which
            keeps memory bounded and the exported keys fixed.

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
        buffers: A :class:`BufferGauge` per declared buffer name.

    Raises:
        InvalidConfigError: when a buffer name is malformed or repeated.
    """

    buffer_names: tuple[str, ...] = attrs.field(default=(), converter=_buffer_names)
    connection_attempts: int = attrs.field(default=0, init=False)
    connections: DurationSummary = attrs.field(factory=DurationSummary, init=False)
    messages_received: int = attrs.field(default=0, init=False)
    messages_deduplicated: int = attrs.field(default=0, init=False)
    reconnections: int = attrs.field(default=0, init=False)
    time_to_reconnect: DurationSummary = attrs.field(factory=DurationSummary, init=False)
    gaps_reported: int = attrs.field(default=0, init=False)
    events_missed: int = attrs.field(default=0, init=False)
    buffers: dict[str, BufferGauge] = attrs.field(factory=dict, init=False)

    def __attrs_post_init__(self) -> None:
        for name in self.buffer_names:
            if not isinstance(name, str) or not _BUFFER_NAME.match(name):
                raise InvalidConfigError(f"buffer names must match [a-z][a-z0-9_]*, got {name!r}")
            if name in self.buffers:
                raise InvalidConfigError(f"buffer name {name!r} is declared twice")
            self.buffers[name] = BufferGauge()

    # --- recording ------------------------------------------------------------------------

    def record_attempt(self) -> None:
        """Count one connection attempt."""
        self.connection_attempts += 1

    def record_connection(self, duration: float) -> None:
        """Record a connection that was up for ``duration`` seconds and has ended.

        Raises:
            LocalProtocolError: when ``duration`` is negative or not finite.
        """
        self.connections.add(duration)

    def record_messages(self, count: int = 1) -> None:
        """Count events delivered to the application.

        Raises:
            LocalProtocolError: when ``count`` is not an int ``>= 0``.
        """
        self.messages_received += _count("count", count)

    def record_duplicates(self, count: int = 1) -> None:
        """Count events dropped as duplicates.

        Raises:
            LocalProtocolError: when ``count`` is not an int ``>= 0``.
        """
        self.messages_deduplicated += _count("count", count)

    def record_reconnection(self, time_to_reconnect: float) -> None:
        """Count a reconnection that took ``time_to_reconnect`` seconds from loss to up.

        Raises:
            LocalProtocolError: when ``time_to_reconnect`` is negative or not finite.
        """
        self.time_to_reconnect.add(time_to_reconnect)
        self.reconnections += 1

    def record_buffer(self, name: str, size: int) -> None:
        """Report the current size of a declared buffer (the high-water mark follows).

        Args:
            name: One of the ``buffer_names`` declared at construction.
            size: The buffer's size now, an int ``>= 0``.

        Raises:
            LocalProtocolError: when ``name`` was not declared or ``size`` is not an int
                ``>= 0``.
        """
        gauge = self.buffers.get(name)
        if gauge is None:
            raise LocalProtocolError(
                f"unknown buffer {name!r}; declared: {', '.join(self.buffer_names) or 'none'}"
            )
        gauge.update(size)

    def record_gap(self, missed: int) -> None:
        """Count a reported gap that lost ``missed`` events (0 when the number is unknown).

        Raises:
            LocalProtocolError: when ``missed`` is not an int ``>= 0``.
        """
        self.events_missed += _count("missed", missed)
        self.gaps_reported += 1

    # --- export ---------------------------------------------------------------------------

    def as_dict(self) -> dict[str, float | int]:
        """Every metric under a flat, stable key.

        Returns:
            A new dict, in a fixed order, whose keys are the same for the whole life of this
            object: ``connection_attempts``, ``connection_duration_{count,total,min,max,mean}``,
            ``messages_received``, ``messages_deduplicated``, ``reconnections``,
            ``time_to_reconnect_{count,total,min,max,mean}``, ``gaps_reported``,
            ``events_missed``, then ``buffer_<name>_current`` and ``buffer_<name>_high_water``
            for each declared buffer. Counts are ints, durations float seconds.
        """
        out: dict[str, float | int] = {"connection_attempts": self.connection_attempts}
        out.update(self.connections.as_dict("connection_duration"))
        out["messages_received"] = self.messages_received
        out["messages_deduplicated"] = self.messages_deduplicated
        out["reconnections"] = self.reconnections
        out.update(self.time_to_reconnect.as_dict("time_to_reconnect"))
        out["gaps_reported"] = self.gaps_reported
        out["events_missed"] = self.events_missed
        for name, gauge in self.buffers.items():
            out[f"buffer_{name}_current"] = gauge.current
            out[f"buffer_{name}_high_water"] = gauge.high_water
        return out
