"""Tests for sse_core._metrics: the recorder a session counts with, and its frozen snapshot."""

from __future__ import annotations

import math
import random

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from sse_core import ClientConfig, ClientSession, Metrics
from sse_core._errors import LocalProtocolError
from sse_core._metrics import MetricsRecorder
from sse_core.state import (
    CONNECTION_DURATION_BOUNDS,
    LATENCY_BOUNDS,
    Histogram,
)


def _histogram_keys(prefix: str) -> list[str]:
    return [f"{prefix}_{part}" for part in ("count", "total", "min", "max", "mean", "p99")]


KEYS = [
    "connection_attempts",
    "connection_failures",
    *_histogram_keys("connection_duration"),
    "messages_received",
    "messages_deduplicated",
    "reconnections",
    *_histogram_keys("time_to_reconnect"),
    "gaps_reported",
    "events_missed",
    "gaps_of_unknown_size",
    *_histogram_keys("latency"),
    "latency_skewed",
    "buffered_in_sequencer",
    "buffered_in_assembler",
    "buffered_in_batcher",
    "buffer_size",
    "stream_completion_rate",
    "connection_failure_rate",
]
RATES = ("stream_completion_rate", "connection_failure_rate")


# --- examples -----------------------------------------------------------------------------


def test_fresh_snapshot_is_all_zero_with_the_documented_keys() -> None:
    """A new recorder's snapshot exports every documented key, in order, all zero (the
    rates, undefined with nothing counted, are NaN)."""
    exported = MetricsRecorder().snapshot().as_dict()
    assert list(exported) == KEYS
    assert all(value == 0 for key, value in exported.items() if key not in RATES)
    assert all(math.isnan(exported[key]) for key in RATES)
    assert Metrics() == MetricsRecorder().snapshot()


def test_record_methods_update_their_counters() -> None:
    """Each record_* method moves exactly its own counters."""
    recorder = MetricsRecorder()
    recorder.record_attempt()
    recorder.record_attempt()
    recorder.record_messages()
    recorder.record_messages(4)
    recorder.record_duplicates(2)
    recorder.record_gap(3)
    recorder.record_gap(0)
    recorder.record_failed_attempt()
    exported = recorder.snapshot().as_dict()
    assert exported["connection_attempts"] == 2
    assert exported["connection_failures"] == 1
    assert exported["connection_failure_rate"] == 0.5
    assert exported["messages_received"] == 5
    assert exported["messages_deduplicated"] == 2
    assert exported["gaps_reported"] == 2
    assert exported["events_missed"] == 3
    assert exported["stream_completion_rate"] == 5 / 8
    assert exported["reconnections"] == 0
    assert exported["connection_duration_count"] == 0


def test_durations_are_summarised_without_keeping_samples() -> None:
    """Connection durations and reconnect times keep count/total/min/max/mean."""
    recorder = MetricsRecorder()
    for duration in (2.0, 10.0, 6.0):
        recorder.record_connection(duration)
    recorder.record_reconnection(1.5)
    recorder.record_reconnection(0.5)
    snapshot = recorder.snapshot()
    # Buckets 1 < x <= 5 and 5 < x <= 15 (upper bound included).
    assert snapshot.connections == Histogram(
        bounds=CONNECTION_DURATION_BOUNDS, counts=(0, 1, 2, 0, 0, 0, 0, 0, 0, 0), count=3,
        total=18.0, minimum=2.0, maximum=10.0,
    )
    assert snapshot.connections.mean == 6.0
    exported = snapshot.as_dict()
    assert exported["reconnections"] == 2
    assert exported["time_to_reconnect_mean"] == 1.0
    assert exported["time_to_reconnect_min"] == 0.5


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf, "1", None])
def test_bad_durations_are_refused_and_change_nothing(bad: object) -> None:
    """A negative, non-finite or non-numeric duration raises and leaves the counters alone."""
    recorder = MetricsRecorder()
    before = recorder.snapshot()
    with pytest.raises(LocalProtocolError):
        recorder.record_connection(bad)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        recorder.record_reconnection(bad)  # type: ignore[arg-type]
    assert recorder.snapshot() == before


def test_a_snapshot_is_frozen_and_does_not_follow_the_recorder() -> None:
    """Snapshots cannot be changed, and later recording does not alter one already taken."""
    recorder = MetricsRecorder()
    snapshot = recorder.snapshot()
    recorder.record_attempt()
    assert snapshot.connection_attempts == 0
    assert recorder.snapshot().connection_attempts == 1
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        snapshot.connection_attempts = 5  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        snapshot.connections.count = 5  # type: ignore[misc]


def test_session_metrics_cannot_be_broken_from_outside() -> None:
    """The application gets a snapshot: assigning to it raises, and the session carries on
    (before, ``session.metrics.connections = None`` made the next ``on_eof`` crash)."""
    client = ClientSession(ClientConfig(url="http://example.test/"), rng=random.Random(1))
    client.start(0.0)
    metrics = client.metrics
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        metrics.connections = None  # type: ignore[misc,assignment]
    client.on_response(200, [("content-type", "text/event-stream")], 0.1)
    client.on_data(b"data: x\n\n", 0.2)
    client.on_eof(0.3)
    after = client.metrics
    assert (after.connection_attempts, after.messages_received, after.connections.count) == (
        1, 1, 1)
    assert metrics.connection_attempts == 1 and metrics.messages_received == 0


@pytest.mark.parametrize(
    "fields",
    [{"messages_received": -1}, {"gaps_reported": 1.0}, {"events_missed": True},
     {"connection_attempts": None}],
)
def test_snapshots_validate_their_counts(fields: dict[str, object]) -> None:
    """A snapshot holds ints >= 0 only (validated once, when it is made)."""
    with pytest.raises(ValueError):
        Metrics(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "fields",
    [{"total": -1.0}, {"minimum": math.nan}, {"maximum": math.inf}, {"total": 1},
     {"count": 1}, {"counts": (0, 0)}, {"counts": (0, -1, 1)}, {"bounds": (2.0, 1.0)},
     {"bounds": ()}, {"bounds": (0.0, 1.0)}, {"bounds": [1.0, 2.0]}],
)
def test_histograms_validate_their_fields(fields: dict[str, object]) -> None:
    """A histogram holds ascending positive bounds, one count per bucket plus the overflow,
    a count equal to their sum, and finite float seconds >= 0."""
    good: dict[str, object] = {"bounds": (1.0, 2.0), "counts": (0, 0, 0)}
    with pytest.raises(ValueError):
        Histogram(**{**good, **fields})  # type: ignore[arg-type]


def test_histogram_of_nothing_is_zero() -> None:
    """An empty histogram reports 0.0 for min, max and mean, and no quantile."""
    histogram = Histogram.empty(LATENCY_BOUNDS)
    assert (histogram.count, histogram.total, histogram.minimum, histogram.maximum) == (
        0, 0.0, 0.0, 0.0)
    assert histogram.mean == 0.0
    assert histogram.quantile(0.99) is None
    assert histogram.as_dict("x")["x_p99"] == 0.0


def test_bucket_bounds_are_inclusive_and_the_last_bucket_is_open() -> None:
    """A sample equal to a bound goes into that bound's bucket (Prometheus ``le``, OTel
    explicit bounds); one above every bound goes into the overflow bucket."""
    recorder = MetricsRecorder()
    for value in (0.0, 1.0, 1.0000001, 86400.0, 1e6):
        recorder.record_connection(value)
    histogram = recorder.snapshot().connections
    assert histogram.counts == (2, 1, 0, 0, 0, 0, 0, 0, 1, 1)
    assert histogram.cumulative() == (
        (1.0, 2), (5.0, 3), (15.0, 3), (60.0, 3), (300.0, 3), (900.0, 3), (3600.0, 3),
        (14400.0, 3), (86400.0, 4), (math.inf, 5),
    )


def test_quantile_interpolates_inside_the_bucket_and_stays_within_min_max() -> None:
    """p50 of 100 samples spread over one bucket is interpolated; p99 and p100 never exceed
    the maximum seen, p0 never goes below the minimum."""
    histogram = Histogram(bounds=(1.0, 2.0), counts=(0, 100, 0), count=100, total=150.0,
                          minimum=1.0, maximum=2.0)
    assert histogram.quantile(0.5) == pytest.approx(1.5)
    assert histogram.quantile(1.0) == 2.0
    assert histogram.quantile(0.0) == 1.0
    lopsided = Histogram(bounds=(1.0, 10.0), counts=(0, 0, 3), count=3, total=60.0,
                         minimum=15.0, maximum=25.0)
    assert 15.0 <= (lopsided.quantile(0.99) or 0) <= 25.0
    with pytest.raises(ValueError):
        histogram.quantile(1.5)


def test_completion_rate_is_unknown_after_a_gap_of_unknown_size() -> None:
    """delivered / (delivered + missed); a gap nobody can size makes it ``None`` (NaN in
    ``as_dict``), and so does having nothing to count."""
    recorder = MetricsRecorder()
    assert recorder.snapshot().stream_completion_rate is None
    recorder.record_messages(99)
    recorder.record_gap(1)
    assert recorder.snapshot().stream_completion_rate == 0.99
    recorder.record_gap(None)
    snapshot = recorder.snapshot()
    assert snapshot.stream_completion_rate is None
    assert (snapshot.gaps_reported, snapshot.gaps_of_unknown_size) == (2, 1)
    assert math.isnan(snapshot.as_dict()["stream_completion_rate"])


def test_negative_latency_counts_as_skew() -> None:
    """A stamp later than its arrival (clock skew) is counted apart, not in the histogram."""
    recorder = MetricsRecorder()
    recorder.record_latency(-0.2)
    recorder.record_latency(0.02)
    snapshot = recorder.snapshot()
    assert snapshot.latency_skewed == 1
    assert snapshot.latency.count == 1
    assert snapshot.latency.counts[LATENCY_BOUNDS.index(0.025)] == 1


# --- properties ---------------------------------------------------------------------------

durations = st.floats(min_value=0.0, max_value=1e9, allow_nan=False)


@given(st.lists(durations, min_size=1, max_size=50))
def test_summary_bounds(values: list[float]) -> None:
    """min <= mean <= max <= total, count matches, and min/max are the true extremes."""
    recorder = MetricsRecorder()
    for value in values:
        recorder.record_connection(value)
    summary = recorder.snapshot().connections
    assert summary.count == len(values) == summary.cumulative()[-1][1]
    p99 = summary.quantile(0.99)
    assert p99 is not None and summary.minimum <= p99 <= summary.maximum
    assert summary.minimum == min(values)
    assert summary.maximum == max(values)
    assert summary.minimum <= summary.mean <= summary.maximum
    assert summary.maximum <= summary.total * (1 + 1e-12)
    assert math.isclose(summary.total, math.fsum(values), rel_tol=1e-9, abs_tol=1e-9)


# --- stateful test against a model ------------------------------------------------------


class MetricsMachine(RuleBasedStateMachine):
    """Drives a recorder and a model made of plain lists and ints, and compares snapshots."""

    def __init__(self) -> None:
        super().__init__()
        self.recorder = MetricsRecorder()
        self.model: dict[str, int] = dict.fromkeys(
            ["connection_attempts", "connection_failures", "messages_received",
             "messages_deduplicated", "gaps_reported", "events_missed",
             "gaps_of_unknown_size"], 0
        )
        self.connections: list[float] = []
        self.reconnects: list[float] = []

    @rule()
    def attempt(self) -> None:
        self.recorder.record_attempt()
        self.model["connection_attempts"] += 1

    @rule(duration=durations)
    def connection(self, duration: float) -> None:
        self.recorder.record_connection(duration)
        self.connections.append(duration)

    @rule(count=st.integers(0, 50))
    def messages(self, count: int) -> None:
        self.recorder.record_messages(count)
        self.model["messages_received"] += count

    @rule(count=st.integers(0, 50))
    def duplicates(self, count: int) -> None:
        self.recorder.record_duplicates(count)
        self.model["messages_deduplicated"] += count

    @rule(duration=durations)
    def reconnection(self, duration: float) -> None:
        self.recorder.record_reconnection(duration)
        self.reconnects.append(duration)

    @rule(missed=st.none() | st.integers(0, 1000))
    def gap(self, missed: int | None) -> None:
        self.recorder.record_gap(missed)
        self.model["gaps_reported"] += 1
        if missed is None:
            self.model["gaps_of_unknown_size"] += 1
        else:
            self.model["events_missed"] += missed

    @rule()
    def failed_attempt(self) -> None:
        self.recorder.record_attempt()
        self.recorder.record_failed_attempt()
        self.model["connection_attempts"] += 1
        self.model["connection_failures"] += 1

    @invariant()
    def matches_model(self) -> None:
        exported = self.recorder.snapshot().as_dict()
        assert list(exported) == KEYS
        for key, value in self.model.items():
            assert exported[key] == value
        assert exported["reconnections"] == len(self.reconnects)
        for prefix, samples in (
            ("connection_duration", self.connections),
            ("time_to_reconnect", self.reconnects),
        ):
            assert exported[f"{prefix}_count"] == len(samples)
            assert exported[f"{prefix}_min"] == (min(samples) if samples else 0.0)
            assert exported[f"{prefix}_max"] == (max(samples) if samples else 0.0)
            total = math.fsum(samples)
            assert math.isclose(exported[f"{prefix}_total"], total, rel_tol=1e-9, abs_tol=1e-9)
            mean = total / len(samples) if samples else 0.0
            assert math.isclose(exported[f"{prefix}_mean"], mean, rel_tol=1e-9, abs_tol=1e-9)
        snapshot = self.recorder.snapshot()
        buckets = [0] * (len(CONNECTION_DURATION_BOUNDS) + 1)
        for sample in self.connections:
            buckets[sum(1 for bound in CONNECTION_DURATION_BOUNDS if bound < sample)] += 1
        assert snapshot.connections.counts == tuple(buckets)
        model = self.model
        sent = model["messages_received"] + model["events_missed"]
        expected = None if model["gaps_of_unknown_size"] or not sent else (
            model["messages_received"] / sent)
        assert snapshot.stream_completion_rate == expected


MetricsMachine.TestCase.settings = settings(stateful_step_count=30)
TestMetricsMachine = MetricsMachine.TestCase
