"""Counters a session keeps about its streams (floor 2: state object).

A session counts with a :class:`MetricsRecorder` -- plain integers and running histograms,
updated in place on the hot path -- and hands the application a :class:`Metrics`: a frozen
snapshot, validated when it is taken, exported with :meth:`Metrics.as_dict` (flat keys,
always the same, ready for a log line) or read field by field by an exporter (a Prometheus
collector, OpenTelemetry instruments). The application can read a snapshot but never change
what the session counts. A :class:`~sse_core.state.Broadcaster` hands out
:class:`ServerMetrics` the same way.

Memory is constant: a :class:`Histogram` keeps one count per fixed bucket, the sum, the
minimum and the maximum, never the samples.
"""

from __future__ import annotations

import itertools
import math
from bisect import bisect_left as _bisect_left

import attrs

from ._errors import InvalidConfigError, LocalProtocolError
from ._validators import Check, non_negative_int, non_negative_number

__all__ = [
    "CONNECTION_DURATION_BOUNDS",
    "LATENCY_BOUNDS",
    "TIME_TO_RECONNECT_BOUNDS",
    "Histogram",
    "Metrics",
    "MetricsRecorder",
    "ServerMetrics",
]

#: Bucket upper bounds (seconds) of :attr:`Metrics.connections`: a second to a day.
CONNECTION_DURATION_BOUNDS: tuple[float, ...] = (
    1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0,
)
#: Bucket upper bounds (seconds) of :attr:`Metrics.time_to_reconnect`: 100 ms to 5 min.
TIME_TO_RECONNECT_BOUNDS: tuple[float, ...] = (
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
)
#: Bucket upper bounds (seconds) of :attr:`Metrics.latency`: 5 ms to 10 s.
LATENCY_BOUNDS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)

_count = non_negative_int
# Snapshots hold what the recorder summed: floats only.
_seconds = Check(
    lambda v: type(v) is float and math.isfinite(v) and v >= 0, "a finite float >= 0"
)
_bounds = Check(
    lambda v: type(v) is tuple
    and len(v) > 0
    and all(type(b) is float and math.isfinite(b) and b > 0 for b in v)
    and all(a < b for a, b in itertools.pairwise(v)),
    "a non-empty tuple of finite floats > 0, strictly ascending",
)
_counts = Check(
    lambda v: type(v) is tuple and all(type(c) is int and c >= 0 for c in v),
    "a tuple of ints >= 0",
)


@attrs.frozen(kw_only=True)
class Histogram:
    """Durations in fixed buckets: one count per bucket, the sum, minimum and maximum.

    Bucket ``i`` holds the samples ``bounds[i-1] < x <= bounds[i]`` (upper bound included,
    the first from 0); the last count, ``counts[len(bounds)]``, holds those above the last
    bound. The counts are *per bucket*, not cumulative: that is the shape of an
    OpenTelemetry explicit-bucket histogram point (``explicit_bounds``, ``bucket_counts``)
    as it is; a Prometheus histogram's cumulative ``le`` buckets come from
    :meth:`cumulative`.

    Attributes:
        bounds: The buckets' upper bounds in seconds, strictly ascending.
        counts: ``len(bounds) + 1`` counts, per bucket.
        count: How many samples were added (the sum of ``counts``).
        total: Their sum, in seconds.
        minimum: The smallest one (0.0 while ``count`` is 0).
        maximum: The largest one (0.0 while ``count`` is 0).

    Raises:
        InvalidConfigError: on construction, a field of the wrong kind, ``counts`` of the
            wrong length, or ``count`` not their sum.
    """

    bounds: tuple[float, ...] = attrs.field(validator=_bounds)
    counts: tuple[int, ...] = attrs.field(validator=_counts)
    count: int = attrs.field(default=0, validator=_count)
    total: float = attrs.field(default=0.0, validator=_seconds)
    minimum: float = attrs.field(default=0.0, validator=_seconds)
    maximum: float = attrs.field(default=0.0, validator=_seconds)

    def __attrs_post_init__(self) -> None:
        if len(self.counts) != len(self.bounds) + 1:
            raise _invalid(f"counts must hold len(bounds) + 1 = {len(self.bounds) + 1} counts,"
                           f" got {len(self.counts)}")
        if sum(self.counts) != self.count:
            raise _invalid(f"count must be the sum of counts ({sum(self.counts)}),"
                           f" got {self.count}")

    @classmethod
    def empty(cls, bounds: tuple[float, ...]) -> Histogram:
        """A histogram with no samples over ``bounds``."""
        return cls(bounds=bounds, counts=(0,) * (len(bounds) + 1))

    @property
    def mean(self) -> float:
        """The average sample in seconds (0.0 while ``count`` is 0)."""
        if self.count == 0:
            return 0.0
        # Clamped: float rounding of the total must not put the mean outside [min, max].
        return min(self.maximum, max(self.minimum, self.total / self.count))

    def cumulative(self) -> tuple[tuple[float, int], ...]:
        """The buckets as Prometheus counts them: ``(le, samples <= le)``, the last with
        ``le = math.inf`` and the total count."""
        out: list[tuple[float, int]] = []
        running = 0
        for bound, count in zip((*self.bounds, math.inf), self.counts, strict=True):
            running += count
            out.append((bound, running))
        return tuple(out)

    def quantile(self, q: float) -> float | None:
        """An estimate of the ``q`` quantile (``0.99`` for p99), or ``None`` with no samples.

        As Prometheus' ``histogram_quantile`` does: find the bucket holding the rank
        ``q * count`` and interpolate linearly inside it; the bucket's ends are narrowed to
        the minimum and maximum seen, so the answer is never outside them. The error is at
        most the width of that bucket.

        Raises:
            InvalidConfigError: ``q`` is not a number from 0 to 1.
        """
        if not (isinstance(q, (int, float)) and 0 <= q <= 1):
            raise _invalid(f"q must be a number from 0 to 1, got {q!r}")
        if self.count == 0:
            return None
        rank = q * self.count
        below = 0
        lower = 0.0
        for bound, count in zip((*self.bounds, math.inf), self.counts, strict=True):
            if count and below + count >= rank:
                low = max(lower, self.minimum)
                high = min(bound, self.maximum)
                return low + (high - low) * max(0.0, rank - below) / count
            below += count
            lower = bound
        return self.maximum  # pragma: no cover  (rank <= count always finds a bucket)

    def as_dict(self, prefix: str) -> dict[str, float | int]:
        """The histogram as flat ``{prefix}_count/_total/_min/_max/_mean/_p99`` keys.

        Args:
            prefix: Put in front of every key.

        Returns:
            Six keys, always the same for a given prefix (``_p99`` is 0.0 with no samples).
        """
        p99 = self.quantile(0.99)
        return {
            f"{prefix}_count": self.count,
            f"{prefix}_total": self.total,
            f"{prefix}_min": self.minimum,
            f"{prefix}_max": self.maximum,
            f"{prefix}_mean": self.mean,
            f"{prefix}_p99": 0.0 if p99 is None else p99,
        }


def _invalid(message: str) -> InvalidConfigError:
    return InvalidConfigError(message)


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@attrs.frozen(kw_only=True)
class Metrics:
    """A snapshot of a client session's counters, taken by ``session.metrics``.

    Frozen: changing it would not change what the session counts. Counters only grow and
    nothing is reset implicitly: subtract two snapshots to get the figures of a window
    (:class:`~sse_core.state.HealthMonitor` does). The ``buffered_*`` fields are gauges: what
    is held at the moment of the snapshot.

    Attributes:
        connection_attempts: Connection attempts started, successful or not.
        connection_failures: Attempts that ended before their response was accepted
            (refused, lost, timed out, a retryable status, or given up for a network signal).
        connections: Durations of connections that were up and then ended.
        messages_received: Events delivered to the application.
        messages_deduplicated: Events dropped as duplicates (already seen ids).
        reconnections: Connections re-established after a loss.
        time_to_reconnect: For each reconnection, seconds from losing the connection to
            having the new one up (backoff delays and failed attempts included).
        gaps_reported: Gaps in the event sequence reported to the application.
        events_missed: Events the gaps of known size lost, in total (a sequencer's skip, a
            server's ``too_old`` gap signal with its ``missed``, a dropped chunked message).
        gaps_of_unknown_size: Gaps whose size nobody knows (the server did not know the id or
            did not say how many, a long-poll gap): while any,
            :attr:`stream_completion_rate` is ``None``.
        latency: Seconds from the server's stamp to the arrival of the bytes, for events the
            server stamped (``ServerConfig.is_send_time_stamped``, ``ClientConfig.
            is_latency_measured``).
        latency_skewed: Stamps later than their arrival (the server's clock ahead of the
            client's): not in :attr:`latency`.
        buffered_in_sequencer: Events the sequencer holds, waiting for a hole to fill.
        buffered_in_assembler: Chunked messages the assembler holds, incomplete.
        buffered_in_batcher: Events waiting for their batch to go out.
    """

    connection_attempts: int = attrs.field(default=0, validator=_count)
    connection_failures: int = attrs.field(default=0, validator=_count)
    connections: Histogram = attrs.field(
        factory=lambda: Histogram.empty(CONNECTION_DURATION_BOUNDS)
    )
    messages_received: int = attrs.field(default=0, validator=_count)
    messages_deduplicated: int = attrs.field(default=0, validator=_count)
    reconnections: int = attrs.field(default=0, validator=_count)
    time_to_reconnect: Histogram = attrs.field(
        factory=lambda: Histogram.empty(TIME_TO_RECONNECT_BOUNDS)
    )
    gaps_reported: int = attrs.field(default=0, validator=_count)
    events_missed: int = attrs.field(default=0, validator=_count)
    gaps_of_unknown_size: int = attrs.field(default=0, validator=_count)
    latency: Histogram = attrs.field(factory=lambda: Histogram.empty(LATENCY_BOUNDS))
    latency_skewed: int = attrs.field(default=0, validator=_count)
    buffered_in_sequencer: int = attrs.field(default=0, validator=_count)
    buffered_in_assembler: int = attrs.field(default=0, validator=_count)
    buffered_in_batcher: int = attrs.field(default=0, validator=_count)

    @property
    def stream_completion_rate(self) -> float | None:
        """Events delivered ÷ events the server sent for this client.

        The server sent what was delivered plus what the gaps of known size lost
        (:attr:`events_missed`); duplicates are resends and count in neither. ``None`` when
        that is unknown: a gap of unknown size was reported, or nothing was sent yet.
        """
        if self.gaps_of_unknown_size:
            return None
        return _ratio(self.messages_received, self.messages_received + self.events_missed)

    @property
    def connection_failure_rate(self) -> float | None:
        """Failed attempts ÷ attempts, or ``None`` before the first attempt (an attempt in
        flight counts as not failed)."""
        return _ratio(self.connection_failures, self.connection_attempts)

    @property
    def buffer_size(self) -> int:
        """Messages held in all the client's buffers now (sequencer, assembler, batcher)."""
        return self.buffered_in_sequencer + self.buffered_in_assembler + self.buffered_in_batcher

    def as_dict(self) -> dict[str, float | int]:
        """Every metric under a flat, stable key.

        Returns:
            A new dict, in a fixed order, with the same keys for every snapshot: the counters
            under their field names, each histogram as ``{name}_{count,total,min,max,mean,
            p99}`` (``connections`` as ``connection_duration_*``), ``buffer_size``, and the
            two rates (``nan`` while unknown). Counts are ints, durations float seconds.
        """
        out: dict[str, float | int] = {
            "connection_attempts": self.connection_attempts,
            "connection_failures": self.connection_failures,
        }
        out.update(self.connections.as_dict("connection_duration"))
        out["messages_received"] = self.messages_received
        out["messages_deduplicated"] = self.messages_deduplicated
        out["reconnections"] = self.reconnections
        out.update(self.time_to_reconnect.as_dict("time_to_reconnect"))
        out["gaps_reported"] = self.gaps_reported
        out["events_missed"] = self.events_missed
        out["gaps_of_unknown_size"] = self.gaps_of_unknown_size
        out.update(self.latency.as_dict("latency"))
        out["latency_skewed"] = self.latency_skewed
        out["buffered_in_sequencer"] = self.buffered_in_sequencer
        out["buffered_in_assembler"] = self.buffered_in_assembler
        out["buffered_in_batcher"] = self.buffered_in_batcher
        out["buffer_size"] = self.buffer_size
        for name in ("stream_completion_rate", "connection_failure_rate"):
            rate = getattr(self, name)
            out[name] = math.nan if rate is None else rate
        return out


@attrs.frozen(kw_only=True)
class ServerMetrics:
    """A snapshot of a :class:`~sse_core.state.Broadcaster`'s counters (``.metrics``).

    Attributes:
        connected_clients: Subscribers now (a gauge).
        events_published: Events published, in all.
        bytes_sent: Body bytes handed out to subscribers and long polls, in all (after
            compression).
        queue_drops: Subscribers dropped for falling behind (their queue passed its bound,
            or a long replay was not taken in time).
        replays_served: Clients that resumed from an id the log knew, with something to
            replay: a stream's replay, a long poll answered at once from the log after its
            id (not one held and answered by a publish).
        too_old_resumes: Resumptions whose events the log had evicted (a ``too_old`` gap
            signal was sent), including those found during a long replay; a long poll
            answered with a ``too_old`` gap counts too.
        unknown_id_resumes: Resumptions from an id the log cannot place (a stream's, or a
            long poll answered with an ``unknown`` gap).
        replays_put_off: Clients asked to come back later (``max_replays`` reached).
        send_timeouts: Clients let go because a write waited past the adapter's
            ``send_timeout`` (counted by the adapter through
            :meth:`~sse_core.state.Broadcaster.count_send_timeout`).
    """

    connected_clients: int = attrs.field(default=0, validator=_count)
    events_published: int = attrs.field(default=0, validator=_count)
    bytes_sent: int = attrs.field(default=0, validator=_count)
    queue_drops: int = attrs.field(default=0, validator=_count)
    replays_served: int = attrs.field(default=0, validator=_count)
    too_old_resumes: int = attrs.field(default=0, validator=_count)
    unknown_id_resumes: int = attrs.field(default=0, validator=_count)
    replays_put_off: int = attrs.field(default=0, validator=_count)
    send_timeouts: int = attrs.field(default=0, validator=_count)

    def as_dict(self) -> dict[str, int]:
        """Every counter under its field name, in a fixed order."""
        return attrs.asdict(self)


class _Running:
    """The running form of a :class:`Histogram`."""

    __slots__ = ("bounds", "count", "counts", "maximum", "minimum", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.count = 0
        self.total = 0.0
        self.minimum = 0.0
        self.maximum = 0.0

    def add(self, value: float) -> None:
        self.add_valid(
            float(non_negative_number.check("duration", value, error=LocalProtocolError))
        )

    def add_valid(self, value: float) -> None:
        """Add a float already known to be finite and >= 0."""
        if value < self.minimum or not self.count:
            self.minimum = value
        if value > self.maximum:  # starts at 0.0, and value >= 0
            self.maximum = value
        self.counts[_bisect_left(self.bounds, value)] += 1
        self.count += 1
        self.total += value

    def snapshot(self) -> Histogram:
        return Histogram(
            bounds=self.bounds, counts=tuple(self.counts), count=self.count, total=self.total,
            minimum=self.minimum, maximum=self.maximum,
        )


class MetricsRecorder:
    """What a session counts with: plain counters, updated in place (not public).

    The ``record_*`` methods are called by the sessions with values they computed, so the
    counters are plain integer increments; :meth:`snapshot` validates everything once.
    """

    __slots__ = (
        "_connections",
        "_latency",
        "_time_to_reconnect",
        "connection_attempts",
        "connection_failures",
        "events_missed",
        "gaps_of_unknown_size",
        "gaps_reported",
        "latency_skewed",
        "messages_deduplicated",
        "messages_received",
        "reconnections",
    )

    def __init__(self) -> None:
        self.connection_attempts = 0
        self.connection_failures = 0
        self.messages_received = 0
        self.messages_deduplicated = 0
        self.reconnections = 0
        self.gaps_reported = 0
        self.events_missed = 0
        self.gaps_of_unknown_size = 0
        self.latency_skewed = 0
        self._connections = _Running(CONNECTION_DURATION_BOUNDS)
        self._time_to_reconnect = _Running(TIME_TO_RECONNECT_BOUNDS)
        self._latency = _Running(LATENCY_BOUNDS)

    def record_attempt(self) -> None:
        """Count one connection attempt."""
        self.connection_attempts += 1

    def record_failed_attempt(self) -> None:
        """Count an attempt that ended before its response was accepted."""
        self.connection_failures += 1

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

    def record_gap(self, missed: int | None) -> None:
        """Count a reported gap that lost ``missed`` events (``None``: nobody knows)."""
        if missed is None:
            self.gaps_of_unknown_size += 1
        else:
            self.events_missed += missed
        self.gaps_reported += 1

    def record_latency(self, latency: float) -> None:
        """Record an event's latency in seconds, a finite float the session computed from
        validated clocks (per stamped event: not checked again); a negative one (clock
        skew) is counted in ``latency_skewed`` instead."""
        if latency < 0:
            self.latency_skewed += 1
        else:
            self._latency.add_valid(latency)

    def snapshot(
        self, *, sequencer: int = 0, assembler: int = 0, batcher: int = 0
    ) -> Metrics:
        """The counters now, as a frozen, validated :class:`Metrics`.

        Args:
            sequencer: Events the sequencer holds now.
            assembler: Chunked messages the assembler holds now.
            batcher: Events waiting for their batch now.
        """
        return Metrics(
            connection_attempts=self.connection_attempts,
            connection_failures=self.connection_failures,
            connections=self._connections.snapshot(),
            messages_received=self.messages_received,
            messages_deduplicated=self.messages_deduplicated,
            reconnections=self.reconnections,
            time_to_reconnect=self._time_to_reconnect.snapshot(),
            gaps_reported=self.gaps_reported,
            events_missed=self.events_missed,
            gaps_of_unknown_size=self.gaps_of_unknown_size,
            latency=self._latency.snapshot(),
            latency_skewed=self.latency_skewed,
            buffered_in_sequencer=sequencer,
            buffered_in_assembler=assembler,
            buffered_in_batcher=batcher,
        )
