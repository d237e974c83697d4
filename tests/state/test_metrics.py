"""Tests for sse_core._metrics: counters, summaries, gauges and the flat export."""

from __future__ import annotations

import math
from typing import cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from sse_core._errors import InvalidConfigError, LocalProtocolError
from sse_core._metrics import BufferGauge, DurationSummary, Metrics

BASE_KEYS = [
    "connection_attempts",
    "connection_duration_count",
    "connection_duration_total",
    "connection_duration_min",
    "connection_duration_max",
    "connection_duration_mean",
    "messages_received",
    "messages_deduplicated",
    "reconnections",
    "time_to_reconnect_count",
    "time_to_reconnect_total",
    "time_to_reconnect_min",
    "time_to_reconnect_max",
    "time_to_reconnect_mean",
    "gaps_reported",
    "events_missed",
]


# --- examples -----------------------------------------------------------------------------


def test_fresh_metrics_are_all_zero_with_the_documented_keys() -> None:
    """A new Metrics exports every documented key, in order, all zero."""
    metrics = Metrics(buffer_names=("parser",))
    exported = metrics.as_dict()
    assert list(exported) == [*BASE_KEYS, "buffer_parser_current", "buffer_parser_high_water"]
    assert all(value == 0 for value in exported.values())


def test_record_methods_update_their_counters() -> None:
    """Each record_* method moves exactly its own counters."""
    metrics = Metrics()
    metrics.record_attempt()
    metrics.record_attempt()
    metrics.record_messages()
    metrics.record_messages(4)
    metrics.record_duplicates(2)
    metrics.record_gap(3)
    metrics.record_gap(0)
    exported = metrics.as_dict()
    assert exported["connection_attempts"] == 2
    assert exported["messages_received"] == 5
    assert exported["messages_deduplicated"] == 2
    assert exported["gaps_reported"] == 2
    assert exported["events_missed"] == 3
    assert exported["reconnections"] == 0
    assert exported["connection_duration_count"] == 0


def test_durations_are_summarised_without_keeping_samples() -> None:
    """Connection durations and reconnect times keep count/total/min/max/mean."""
    metrics = Metrics()
    for duration in (2.0, 10.0, 6.0):
        metrics.record_connection(duration)
    metrics.record_reconnection(1.5)
    metrics.record_reconnection(0.5)
    exported = metrics.as_dict()
    assert exported["connection_duration_count"] == 3
    assert exported["connection_duration_total"] == 18.0
    assert exported["connection_duration_min"] == 2.0
    assert exported["connection_duration_max"] == 10.0
    assert exported["connection_duration_mean"] == 6.0
    assert exported["reconnections"] == 2
    assert exported["time_to_reconnect_mean"] == 1.0
    assert exported["time_to_reconnect_min"] == 0.5


def test_buffer_gauge_keeps_the_high_water_mark() -> None:
    """The gauge reports the latest size and the largest ever."""
    metrics = Metrics(buffer_names=["replay"])
    for size in (10, 50, 20, 0):
        metrics.record_buffer("replay", size)
    assert metrics.buffers["replay"] == BufferGauge(current=0, high_water=50)
    assert metrics.as_dict()["buffer_replay_high_water"] == 50


def test_unknown_buffer_names_are_refused() -> None:
    """Only declared buffers can be reported: memory and keys stay bounded."""
    metrics = Metrics(buffer_names=("parser",))
    with pytest.raises(LocalProtocolError, match="unknown buffer 'other'"):
        metrics.record_buffer("other", 1)
    assert list(metrics.buffers) == ["parser"]


@pytest.mark.parametrize(
    "names", ["parser", b"parser", 5, ["Parser"], ["1st"], ["a-b"], ["a", "a"], [1], [""]]
)
def test_bad_buffer_names_are_a_config_error(names: object) -> None:
    """Buffer names must be a sequence of distinct [a-z][a-z0-9_]* strings."""
    with pytest.raises(InvalidConfigError) as info:
        Metrics(buffer_names=names)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf, "1", True, None])
def test_bad_durations_are_refused_and_change_nothing(bad: object) -> None:
    """A negative, non-finite or non-numeric duration raises and leaves the counters alone."""
    metrics = Metrics()
    before = metrics.as_dict()
    with pytest.raises(LocalProtocolError):
        metrics.record_connection(bad)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        metrics.record_reconnection(bad)  # type: ignore[arg-type]
    assert metrics.as_dict() == before


@pytest.mark.parametrize("bad", [-1, 1.0, True, None])
def test_bad_counts_are_refused_and_change_nothing(bad: object) -> None:
    """Negative or non-int counts and sizes raise and leave the counters alone."""
    metrics = Metrics(buffer_names=("b",))
    before = metrics.as_dict()
    with pytest.raises(LocalProtocolError):
        metrics.record_messages(bad)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        metrics.record_duplicates(bad)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        metrics.record_gap(bad)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        metrics.record_buffer("b", bad)  # type: ignore[arg-type]
    assert metrics.as_dict() == before


def test_counters_are_not_constructor_arguments() -> None:
    """Counters start at zero; only buffer_names is accepted (keyword-only)."""
    with pytest.raises(TypeError):
        Metrics(messages_received=5)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Metrics(("a",))  # type: ignore[call-arg]


def test_as_dict_is_a_fresh_snapshot() -> None:
    """as_dict returns a new dict; changing it or recording later does not alter it."""
    metrics = Metrics()
    snapshot = metrics.as_dict()
    metrics.record_attempt()
    assert snapshot["connection_attempts"] == 0
    snapshot["connection_attempts"] = 99
    assert metrics.as_dict()["connection_attempts"] == 1


def test_summary_of_nothing_is_zero() -> None:
    """An empty summary reports 0.0 for min, max and mean."""
    summary = DurationSummary()
    assert (summary.count, summary.total, summary.minimum, summary.maximum) == (0, 0.0, 0.0, 0.0)
    assert summary.mean == 0.0


# --- properties ---------------------------------------------------------------------------

durations = st.floats(min_value=0.0, max_value=1e9, allow_nan=False)


@given(st.lists(durations, min_size=1, max_size=50))
def test_summary_bounds(values: list[float]) -> None:
    """min <= mean <= max <= total, count matches, and min/max are the true extremes."""
    summary = DurationSummary()
    for value in values:
        summary.add(value)
    assert summary.count == len(values)
    assert summary.minimum == min(values)
    assert summary.maximum == max(values)
    assert summary.minimum <= summary.mean <= summary.maximum
    assert summary.maximum <= summary.total * (1 + 1e-12)
    assert math.isclose(summary.total, math.fsum(values), rel_tol=1e-9, abs_tol=1e-9)


names = st.lists(st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True), max_size=5, unique=True)
# Anything a caller might try, valid or not.
operations = st.lists(
    st.one_of(
        st.tuples(st.just("attempt"), st.none()),
        st.tuples(st.just("connection"), st.floats(-10, 1e6) | st.just(math.nan)),
        st.tuples(st.just("messages"), st.integers(-5, 100)),
        st.tuples(st.just("duplicates"), st.integers(-5, 100)),
        st.tuples(st.just("reconnection"), st.floats(-10, 1e6) | st.just(math.inf)),
        st.tuples(st.just("gap"), st.integers(-5, 100)),
        st.tuples(st.just("buffer"), st.tuples(st.integers(0, 5), st.integers(-5, 10**6))),
    ),
    max_size=40,
)


def apply(metrics: Metrics, operation: tuple[str, object]) -> None:
    """Apply one operation, swallowing the refusal of invalid values."""
    kind, value = operation
    try:
        match kind:
            case "attempt":
                metrics.record_attempt()
            case "connection":
                metrics.record_connection(value)  # type: ignore[arg-type]
            case "messages":
                metrics.record_messages(value)  # type: ignore[arg-type]
            case "duplicates":
                metrics.record_duplicates(value)  # type: ignore[arg-type]
            case "reconnection":
                metrics.record_reconnection(value)  # type: ignore[arg-type]
            case "gap":
                metrics.record_gap(value)  # type: ignore[arg-type]
            case "buffer":
                index, size = cast(tuple[int, int], value)
                declared = metrics.buffer_names
                name = declared[index % len(declared)] if declared else "missing"
                metrics.record_buffer(name, size)
    except LocalProtocolError:
        pass


@given(buffer_names=names, script=operations)
def test_counters_never_negative_and_keys_stable(
    buffer_names: list[str], script: list[tuple[str, object]]
) -> None:
    """Whatever is recorded (invalid values included), no exported value is negative or NaN,
    and the exported keys never change."""
    metrics = Metrics(buffer_names=buffer_names)
    keys = list(metrics.as_dict())
    assert len(keys) == len(BASE_KEYS) + 2 * len(buffer_names)
    assert len(set(keys)) == len(keys)
    for operation in script:
        apply(metrics, operation)
        exported = metrics.as_dict()
        assert list(exported) == keys
        assert all(value >= 0 and math.isfinite(value) for value in exported.values())
        assert exported["connection_duration_max"] >= exported["connection_duration_mean"]
        assert exported["time_to_reconnect_max"] >= exported["time_to_reconnect_mean"]
        for name in buffer_names:
            assert exported[f"buffer_{name}_high_water"] >= exported[f"buffer_{name}_current"]


# --- stateful test against a model ------------------------------------------------------


class MetricsMachine(RuleBasedStateMachine):
    """Drives a Metrics and a model made of plain lists and ints, and compares exports."""

    @initialize(buffer_names=names)
    def setup(self, buffer_names: list[str]) -> None:
        self.metrics = Metrics(buffer_names=buffer_names)
        self.model: dict[str, int] = dict.fromkeys(
            ["connection_attempts", "messages_received", "messages_deduplicated"], 0
        )
        self.model.update(gaps_reported=0, events_missed=0)
        self.connections: list[float] = []
        self.reconnects: list[float] = []
        self.sizes: dict[str, list[int]] = {name: [] for name in buffer_names}

    @rule()
    def attempt(self) -> None:
        self.metrics.record_attempt()
        self.model["connection_attempts"] += 1

    @rule(duration=durations)
    def connection(self, duration: float) -> None:
        self.metrics.record_connection(duration)
        self.connections.append(duration)

    @rule(count=st.integers(0, 50))
    def messages(self, count: int) -> None:
        self.metrics.record_messages(count)
        self.model["messages_received"] += count

    @rule(count=st.integers(0, 50))
    def duplicates(self, count: int) -> None:
        self.metrics.record_duplicates(count)
        self.model["messages_deduplicated"] += count

    @rule(duration=durations)
    def reconnection(self, duration: float) -> None:
        self.metrics.record_reconnection(duration)
        self.reconnects.append(duration)

    @rule(missed=st.integers(0, 1000))
    def gap(self, missed: int) -> None:
        self.metrics.record_gap(missed)
        self.model["gaps_reported"] += 1
        self.model["events_missed"] += missed

    @rule(index=st.integers(0, 10), size=st.integers(0, 10**6))
    def buffer(self, index: int, size: int) -> None:
        if not self.sizes:
            with pytest.raises(LocalProtocolError):
                self.metrics.record_buffer("nothing_declared", size)
            return
        name = list(self.sizes)[index % len(self.sizes)]
        self.metrics.record_buffer(name, size)
        self.sizes[name].append(size)

    @invariant()
    def matches_model(self) -> None:
        exported = self.metrics.as_dict()
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
        for name, sizes in self.sizes.items():
            assert exported[f"buffer_{name}_current"] == (sizes[-1] if sizes else 0)
            assert exported[f"buffer_{name}_high_water"] == max(sizes, default=0)


MetricsMachine.TestCase.settings = settings(stateful_step_count=30)
TestMetricsMachine = MetricsMachine.TestCase


# --- the docs example --------------------------------------------------------------------
