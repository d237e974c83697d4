"""Tests for sse_core._backoff: the reconnection schedule, limits, and its model."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from sse_core._backoff import (
    Backoff,
    BackoffConfig,
    BackoffState,
    GiveUp,
    GiveUpReason,
    Jitter,
    Reconnect,
)
from sse_core._errors import InvalidConfigError, InvalidFieldError, LocalProtocolError
from sse_core._events import Retry


def delays(backoff: Backoff, now: float, count: int) -> list[float]:
    """Fail ``count`` connection attempts in a row at ``now`` and collect the delays."""
    out = []
    for _ in range(count):
        outcome = backoff.on_disconnected(now)
        assert isinstance(outcome, Reconnect)
        out.append(outcome.delay)
    return out


# --- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base_delay": -1.0},
        {"base_delay": math.nan},
        {"base_delay": math.inf},
        {"base_delay": "3"},
        {"base_delay": True},
        {"min_base_delay": -0.1},
        {"max_delay": -1},
        {"max_delay": math.inf},
        {"multiplier": 0.5},
        {"multiplier": math.nan},
        {"multiplier": True},
        {"healthy_after": -1},
        {"max_attempts": -1},
        {"max_attempts": 1.5},
        {"max_attempts": True},
        {"max_elapsed": -1.0},
        {"max_elapsed": math.nan},
        {"jitter": "full"},
        {"is_first_retry_immediate": 1},
        {"is_first_retry_immediate": True, "healthy_after": 0},
    ],
)
def test_config_rejects_bad_values(kwargs: dict[str, object]) -> None:
    """Every out-of-range or mistyped knob raises InvalidConfigError, a ValueError."""
    with pytest.raises(InvalidConfigError) as info:
        BackoffConfig(**kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, LocalProtocolError)


def test_config_defaults() -> None:
    """Defaults: 3 s base, x2 growth, 60 s cap, equal jitter, no immediate retry, no limits."""
    config = BackoffConfig()
    assert (config.base_delay, config.multiplier, config.max_delay) == (3.0, 2.0, 60.0)
    assert config.jitter is Jitter.EQUAL
    assert config.is_first_retry_immediate is False
    assert config.max_attempts is None
    assert config.max_elapsed is None


def test_config_is_frozen_and_keyword_only() -> None:
    """The config cannot be changed after construction nor built positionally."""
    config = BackoffConfig()
    with pytest.raises(AttributeError):
        config.base_delay = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        BackoffConfig(1.0)  # type: ignore[call-arg]


def test_constructor_requires_config_and_rng() -> None:
    """rng has no default, and config must be a BackoffConfig."""
    with pytest.raises(TypeError):
        Backoff(BackoffConfig())  # type: ignore[call-arg]
    with pytest.raises(InvalidConfigError):
        Backoff({"base_delay": 1.0}, rng=random.Random(0))  # type: ignore[arg-type]


# --- the schedule -------------------------------------------------------------------------


def test_no_jitter_grows_exponentially_up_to_the_cap() -> None:
    """Without jitter the delays are base * 2**n, capped at max_delay."""
    backoff = Backoff(BackoffConfig(jitter=Jitter.NONE), rng=random.Random(0))
    assert delays(backoff, 0.0, 7) == [3.0, 6.0, 12.0, 24.0, 48.0, 60.0, 60.0]
    assert backoff.attempts == 7


def test_reconnect_record_carries_instant_and_attempt_number() -> None:
    """Reconnect.at is now + delay and attempt counts from 1 within the outage."""
    backoff = Backoff(BackoffConfig(jitter=Jitter.NONE, base_delay=1.0), rng=random.Random(0))
    assert backoff.on_disconnected(10.0) == Reconnect(delay=1.0, at=11.0, attempt=1)
    assert backoff.on_disconnected(11.5) == Reconnect(delay=2.0, at=13.5, attempt=2)
    assert backoff.state is BackoffState.WAITING
    assert backoff.outage_started_at == 10.0


def test_huge_attempt_counts_do_not_overflow() -> None:
    """After thousands of failures the ceiling stays at the cap instead of overflowing."""
    config = BackoffConfig(jitter=Jitter.NONE, multiplier=10.0, max_delay=30.0)
    backoff = Backoff(config, rng=random.Random(0))
    assert delays(backoff, 0.0, 2000)[-1] == 30.0


def test_multiplier_one_keeps_the_delay_constant() -> None:
    """multiplier=1 means a constant reconnection time, as in a plain EventSource."""
    config = BackoffConfig(jitter=Jitter.NONE, multiplier=1.0, base_delay=2.5)
    assert delays(Backoff(config, rng=random.Random(0)), 0.0, 5) == [2.5] * 5


@pytest.mark.parametrize(
    ("jitter", "low", "high"),
    [
        (Jitter.FULL, 0.0, 1.0),
        (Jitter.EQUAL, 0.5, 1.0),
    ],
)
def test_jitter_spreads_within_its_range(jitter: Jitter, low: float, high: float) -> None:
    """Full jitter spans [0, ceiling], equal jitter [ceiling/2, ceiling], and both spread."""
    config = BackoffConfig(jitter=jitter, base_delay=4.0, multiplier=1.0)
    rng = random.Random(7)
    seen = [Backoff(config, rng=rng).on_disconnected(0.0) for _ in range(500)]
    values = [outcome.delay for outcome in seen if isinstance(outcome, Reconnect)]
    assert len(values) == 500
    assert all(low * 4.0 <= value <= high * 4.0 for value in values)
    # Spread: both halves of the range are used.
    middle = (low + high) / 2 * 4.0
    assert any(value < middle for value in values)
    assert any(value > middle for value in values)


def test_decorrelated_jitter_follows_the_aws_definition() -> None:
    """Decorrelated: each delay is within [base, 3 * previous], capped."""
    config = BackoffConfig(jitter=Jitter.DECORRELATED, base_delay=1.0, max_delay=20.0)
    backoff = Backoff(config, rng=random.Random(3))
    previous = 1.0
    for value in delays(backoff, 0.0, 50):
        assert 1.0 <= value <= min(20.0, previous * 3)
        previous = value
    assert previous <= 20.0


def test_decorrelated_jitter_restarts_from_base_after_a_healthy_connection() -> None:
    """A new outage starts decorrelated jitter again from the base, not the old delay."""
    config = BackoffConfig(jitter=Jitter.DECORRELATED, base_delay=1.0, max_delay=1000.0)
    backoff = Backoff(config, rng=random.Random(5))
    delays(backoff, 0.0, 20)
    backoff.on_connected(1.0)
    first = backoff.on_disconnected(100.0)
    assert isinstance(first, Reconnect)
    assert 1.0 <= first.delay <= 3.0


class WildRandom:
    """A RandomSource that ignores its bounds (a misbehaving implementation)."""

    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value

    def uniform(self, a: float, b: float, /) -> float:
        return self.value


@pytest.mark.parametrize("value", [-5.0, 1e9])
@pytest.mark.parametrize("jitter", [Jitter.FULL, Jitter.EQUAL, Jitter.DECORRELATED])
def test_delays_are_clamped_even_with_a_bad_random_source(value: float, jitter: Jitter) -> None:
    """Whatever the random source returns, delays stay within [0, max_delay]."""
    backoff = Backoff(BackoffConfig(jitter=jitter, max_delay=10.0), rng=WildRandom(value))
    assert all(0.0 <= delay <= 10.0 for delay in delays(backoff, 0.0, 5))


# --- the server's reconnection time ------------------------------------------------------


def test_retry_record_and_milliseconds_both_set_the_base() -> None:
    """on_retry takes a Retry record or milliseconds; both become the schedule's base."""
    for value in (Retry(milliseconds=1500), 1500):
        backoff = Backoff(BackoffConfig(jitter=Jitter.NONE), rng=random.Random(0))
        backoff.on_retry(value)
        assert backoff.reconnection_time == 1.5
        assert delays(backoff, 0.0, 3) == [1.5, 3.0, 6.0]


def test_retry_rejects_negative_milliseconds() -> None:
    """A negative or non-int retry value is refused by the Retry record's validation."""
    backoff = Backoff(BackoffConfig(), rng=random.Random(0))
    with pytest.raises(InvalidFieldError):
        backoff.on_retry(-1)
    with pytest.raises(InvalidFieldError):
        backoff.on_retry(1.5)  # type: ignore[arg-type]
    assert backoff.reconnection_time == 3.0


def test_retry_zero_is_floored_so_it_cannot_loop() -> None:
    """retry: 0 still backs off from min_base_delay instead of reconnecting in a loop."""
    backoff = Backoff(BackoffConfig(jitter=Jitter.NONE), rng=random.Random(0))
    backoff.on_retry(0)
    assert delays(backoff, 0.0, 3) == [0.1, 0.2, 0.4]


def test_retry_zero_is_followed_literally_when_the_floor_is_zero() -> None:
    """With min_base_delay=0 the server's retry: 0 means no delay at all."""
    config = BackoffConfig(jitter=Jitter.NONE, min_base_delay=0.0)
    backoff = Backoff(config, rng=random.Random(0))
    backoff.on_retry(Retry(milliseconds=0))
    assert delays(backoff, 0.0, 3) == [0.0, 0.0, 0.0]


def test_retry_above_the_cap_is_cut_to_the_cap() -> None:
    """A server asking for more than max_delay gets max_delay."""
    backoff = Backoff(BackoffConfig(jitter=Jitter.NONE, max_delay=10.0), rng=random.Random(0))
    backoff.on_retry(120_000)
    assert delays(backoff, 0.0, 2) == [10.0, 10.0]


# --- connected, healthy, and the tight loop ----------------------------------------------


def test_accept_and_drop_keeps_backing_off() -> None:
    """A server that accepts and drops at once never resets the counter: delays keep growing."""
    backoff = Backoff(BackoffConfig(jitter=Jitter.NONE), rng=random.Random(0))
    now = 0.0
    seen = []
    for _ in range(5):
        backoff.on_connected(now)
        outcome = backoff.on_disconnected(now + 0.01)
        assert isinstance(outcome, Reconnect)
        seen.append(outcome.delay)
        now = outcome.at
    assert seen == [3.0, 6.0, 12.0, 24.0, 48.0]


def test_immediate_first_retry_applies_once_per_outage() -> None:
    """With the flag, only the first drop after a healthy period reconnects at once."""
    config = BackoffConfig(jitter=Jitter.NONE, is_first_retry_immediate=True)
    backoff = Backoff(config, rng=random.Random(0))
    backoff.on_connected(0.0)
    seen = []
    now = 100.0
    for _ in range(4):
        outcome = backoff.on_disconnected(now)
        assert isinstance(outcome, Reconnect)
        seen.append(outcome.delay)
        backoff.on_connected(outcome.at)
        now = outcome.at + 0.5  # dropped again before healthy_after
    # The exponential schedule starts at the base after the free immediate retry.
    assert seen == [0.0, 3.0, 6.0, 12.0]


def test_immediate_first_retry_needs_a_connection_that_was_up() -> None:
    """A first connection attempt that fails is not retried immediately."""
    config = BackoffConfig(jitter=Jitter.NONE, is_first_retry_immediate=True)
    backoff = Backoff(config, rng=random.Random(0))
    assert delays(backoff, 0.0, 2) == [3.0, 6.0]


def test_without_the_flag_the_first_retry_waits_the_reconnection_time() -> None:
    """By default a dropped connection waits the reconnection time, like EventSource."""
    backoff = Backoff(BackoffConfig(jitter=Jitter.NONE), rng=random.Random(0))
    backoff.on_connected(0.0)
    assert backoff.on_disconnected(100.0) == Reconnect(delay=3.0, at=103.0, attempt=1)


def test_counter_resets_only_after_healthy_after_seconds() -> None:
    """A connection up for healthy_after seconds resets the counter; a shorter one does not."""
    config = BackoffConfig(jitter=Jitter.NONE, healthy_after=10.0)
    backoff = Backoff(config, rng=random.Random(0))
    delays(backoff, 0.0, 3)
    backoff.on_connected(50.0)
    assert backoff.healthy_at == 60.0
    outcome = backoff.on_disconnected(59.999)
    assert outcome == Reconnect(delay=24.0, at=59.999 + 24.0, attempt=4)
    assert backoff.healthy_at is None
    backoff.on_connected(100.0)
    outcome = backoff.on_disconnected(110.0)  # exactly healthy_after: counts as healthy
    assert outcome == Reconnect(delay=3.0, at=113.0, attempt=1)
    assert backoff.outage_started_at == 110.0


def test_healthy_after_zero_restarts_the_schedule_at_each_drop() -> None:
    """With healthy_after=0 every connection counts as healthy: each drop starts afresh."""
    config = BackoffConfig(jitter=Jitter.NONE, healthy_after=0.0)
    backoff = Backoff(config, rng=random.Random(0))
    for now in (0.0, 10.0, 20.0):
        backoff.on_connected(now)
        assert backoff.on_disconnected(now) == Reconnect(delay=3.0, at=now + 3.0, attempt=1)


def test_attempts_survive_connect_until_the_disconnect() -> None:
    """Connecting alone leaves attempts untouched (no reset on connect or first byte)."""
    backoff = Backoff(BackoffConfig(), rng=random.Random(0))
    delays(backoff, 0.0, 3)
    backoff.on_connected(1.0)
    assert backoff.attempts == 3
    assert backoff.state is BackoffState.CONNECTED


# --- giving up ---------------------------------------------------------------------------


def test_max_attempts_gives_up_with_a_record() -> None:
    """After max_attempts reconnects, the next failure returns GiveUp, not an exception."""
    config = BackoffConfig(jitter=Jitter.NONE, base_delay=1.0, max_attempts=3)
    backoff = Backoff(config, rng=random.Random(0))
    assert delays(backoff, 5.0, 3) == [1.0, 2.0, 4.0]
    outcome = backoff.on_disconnected(12.0)
    assert outcome == GiveUp(reason=GiveUpReason.MAX_ATTEMPTS, attempts=3, elapsed=7.0)
    assert backoff.state is BackoffState.GAVE_UP


def test_max_attempts_zero_never_reconnects() -> None:
    """max_attempts=0 gives up at the first disconnect."""
    backoff = Backoff(BackoffConfig(max_attempts=0), rng=random.Random(0))
    assert backoff.on_disconnected(1.0) == GiveUp(
        reason=GiveUpReason.MAX_ATTEMPTS, attempts=0, elapsed=0.0
    )


def test_max_elapsed_refuses_a_reconnect_past_the_deadline() -> None:
    """No reconnect is scheduled to start more than max_elapsed after the outage began."""
    config = BackoffConfig(jitter=Jitter.NONE, base_delay=1.0, max_elapsed=10.0)
    backoff = Backoff(config, rng=random.Random(0))
    now = 0.0
    ats = []
    while True:
        outcome = backoff.on_disconnected(now)
        if isinstance(outcome, GiveUp):
            break
        ats.append(outcome.at)
        now = outcome.at
    # 1, 3, 7 are within 10 s; the next one would be at 15.
    assert ats == [1.0, 3.0, 7.0]
    assert outcome == GiveUp(reason=GiveUpReason.MAX_ELAPSED, attempts=3, elapsed=7.0)


def test_give_up_is_sticky_until_reset() -> None:
    """After GiveUp every disconnect repeats it and on_connected is refused until reset()."""
    backoff = Backoff(BackoffConfig(max_attempts=0), rng=random.Random(0))
    first = backoff.on_disconnected(1.0)
    assert backoff.on_disconnected(2.0) is first
    with pytest.raises(LocalProtocolError):
        backoff.on_connected(3.0)
    backoff.reset()
    assert backoff.state is BackoffState.IDLE
    backoff.on_connected(3.0)
    assert backoff.state is BackoffState.CONNECTED  # type: ignore[comparison-overlap]


def test_reset_keeps_a_live_connection_and_the_servers_retry() -> None:
    """reset() clears the outage but not the connection or the server's reconnection time."""
    backoff = Backoff(BackoffConfig(jitter=Jitter.NONE), rng=random.Random(0))
    backoff.on_retry(500)
    delays(backoff, 0.0, 4)
    backoff.on_connected(1.0)
    backoff.reset()
    assert backoff.state is BackoffState.CONNECTED
    assert backoff.attempts == 0
    assert backoff.outage_started_at is None
    assert backoff.on_disconnected(1.1) == Reconnect(delay=0.5, at=1.6, attempt=1)


# --- misuse ------------------------------------------------------------------------------


def test_connecting_twice_is_misuse() -> None:
    """on_connected while connected raises LocalProtocolError and changes nothing."""
    backoff = Backoff(BackoffConfig(), rng=random.Random(0))
    backoff.on_connected(1.0)
    with pytest.raises(LocalProtocolError):
        backoff.on_connected(2.0)
    assert backoff.healthy_at == 1.0 + 5.0


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_now_must_be_finite(bad: float) -> None:
    """A non-finite now is refused."""
    backoff = Backoff(BackoffConfig(), rng=random.Random(0))
    with pytest.raises(LocalProtocolError):
        backoff.on_disconnected(bad)
    with pytest.raises(LocalProtocolError):
        backoff.on_connected(bad)


def test_now_must_not_go_backwards() -> None:
    """An earlier now than a previous input (e.g. a wall clock) is refused."""
    backoff = Backoff(BackoffConfig(), rng=random.Random(0))
    backoff.on_disconnected(10.0)
    with pytest.raises(LocalProtocolError):
        backoff.on_connected(9.0)
    assert backoff.attempts == 1


# --- properties ---------------------------------------------------------------------------

durations = st.floats(min_value=0.0, max_value=100.0, allow_nan=False)
config_kwargs = st.fixed_dictionaries(
    {
        "base_delay": st.floats(min_value=0.0, max_value=20.0),
        "min_base_delay": st.floats(min_value=0.0, max_value=2.0),
        "multiplier": st.floats(min_value=1.0, max_value=5.0),
        "max_delay": durations,
        "jitter": st.sampled_from(Jitter),
        "is_first_retry_immediate": st.booleans(),
        "healthy_after": st.floats(min_value=0.0, max_value=30.0),
        "max_attempts": st.none() | st.integers(min_value=0, max_value=8),
        "max_elapsed": st.none() | st.floats(min_value=0.0, max_value=300.0),
    }
)
configs = config_kwargs.filter(
    lambda kw: not (kw["is_first_retry_immediate"] and kw["healthy_after"] == 0)
).map(lambda kw: BackoffConfig(**kw))
# An input script: ("c", dt) connect, ("d", dt) disconnect, ("r", ms) retry.
steps = st.lists(
    st.tuples(st.sampled_from("cdr"), st.floats(min_value=0.0, max_value=50.0)), max_size=40
)


def run_script(config: BackoffConfig, seed: int, script: list[tuple[str, float]]) -> list[object]:
    """Drive a Backoff through a script, skipping misuse; return every outcome in order."""
    backoff = Backoff(config, rng=random.Random(seed))
    now = 0.0
    out: list[object] = []
    for kind, value in script:
        if kind == "r":
            backoff.on_retry(int(value * 1000))
            continue
        now += value
        if kind == "c":
            if backoff.state in (BackoffState.CONNECTED, BackoffState.GAVE_UP):
                continue
            backoff.on_connected(now)
        else:
            out.append(backoff.on_disconnected(now))
    return out


@given(config=configs, seed=st.integers(0, 2**32), script=steps)
def test_delays_always_within_zero_and_cap(
    config: BackoffConfig, seed: int, script: list[tuple[str, float]]
) -> None:
    """For any config and any input sequence, every delay is in [0, max_delay]."""
    for outcome in run_script(config, seed, script):
        if isinstance(outcome, Reconnect):
            assert 0.0 <= outcome.delay <= config.max_delay
            assert outcome.attempt >= 1
        else:
            assert isinstance(outcome, GiveUp)
            assert outcome.elapsed >= 0.0


@given(config=configs, seed=st.integers(0, 2**32), script=steps)
def test_same_seed_same_schedule(
    config: BackoffConfig, seed: int, script: list[tuple[str, float]]
) -> None:
    """Two Backoffs with the same seed and inputs produce identical outcomes."""
    assert run_script(config, seed, script) == run_script(config, seed, script)


@given(config=configs, seed=st.integers(0, 2**32), script=steps)
def test_attempts_never_exceed_max_attempts(
    config: BackoffConfig, seed: int, script: list[tuple[str, float]]
) -> None:
    """No Reconnect ever carries an attempt number above max_attempts."""
    for outcome in run_script(config, seed, script):
        if isinstance(outcome, Reconnect) and config.max_attempts is not None:
            assert outcome.attempt <= config.max_attempts


# --- stateful test against a model ------------------------------------------------------

EPS = 1e-9


class BackoffMachine(RuleBasedStateMachine):
    """Drives a Backoff and a plain model side by side and compares them after every step."""

    @initialize(config=configs, seed=st.integers(0, 2**32))
    def setup(self, config: BackoffConfig, seed: int) -> None:
        self.config = config
        self.backoff = Backoff(config, rng=random.Random(seed))
        self.now = 0.0
        # The model.
        self.state: BackoffState = BackoffState.IDLE
        self.attempts = 0
        self.step = 0
        self.outage_at: float | None = None
        self.connected_at: float | None = None
        self.server_time: float | None = None
        self.previous: float | None = None
        self.gave_up: GiveUp | None = None

    def clear_outage(self) -> None:
        self.attempts = 0
        self.step = 0
        self.outage_at = None
        self.previous = None

    @rule(dt=durations)
    def connect(self, dt: float) -> None:
        self.now += dt
        if self.state in (BackoffState.CONNECTED, BackoffState.GAVE_UP):
            with pytest.raises(LocalProtocolError):
                self.backoff.on_connected(self.now)
            return
        self.backoff.on_connected(self.now)
        self.state = BackoffState.CONNECTED
        self.connected_at = self.now

    @rule(ms=st.integers(0, 30_000))
    def retry(self, ms: int) -> None:
        self.backoff.on_retry(ms)
        self.server_time = ms / 1000

    @rule()
    def reset(self) -> None:
        self.backoff.reset()
        self.clear_outage()
        self.gave_up = None
        if self.state is not BackoffState.CONNECTED:
            self.state = BackoffState.IDLE

    @precondition(lambda self: self.state is BackoffState.CONNECTED)
    @rule(dt=st.floats(min_value=0.0, max_value=0.5))
    def quick_drop(self, dt: float) -> None:
        """Accept-and-drop: the connection dies well before it is healthy."""
        self.disconnect(dt)

    @rule(dt=durations)
    def disconnect(self, dt: float) -> None:
        self.now += dt
        now = self.now
        outcome = self.backoff.on_disconnected(now)
        config = self.config
        if self.state is BackoffState.GAVE_UP:
            assert outcome is self.gave_up
            return
        was_up = self.state is BackoffState.CONNECTED
        if was_up:
            assert self.connected_at is not None
            if now - self.connected_at >= config.healthy_after:
                self.clear_outage()
            self.connected_at = None
        if self.outage_at is None:
            self.outage_at = now
        elapsed = now - self.outage_at

        if config.max_attempts is not None and self.attempts >= config.max_attempts:
            expected = GiveUp(
                reason=GiveUpReason.MAX_ATTEMPTS, attempts=self.attempts, elapsed=elapsed
            )
            assert outcome == expected
            self.give_up(outcome)
            return

        # Bounds of the delay the model allows.
        immediate = config.is_first_retry_immediate and was_up and self.attempts == 0
        if immediate:
            low = high = 0.0
        else:
            base = max(
                config.base_delay if self.server_time is None else self.server_time,
                config.min_base_delay,
            )
            ceiling = base
            for _ in range(self.step):
                ceiling = min(config.max_delay, ceiling * config.multiplier)
            ceiling = min(config.max_delay, ceiling)
            match config.jitter:
                case Jitter.NONE:
                    low = high = ceiling
                case Jitter.FULL:
                    low, high = 0.0, ceiling
                case Jitter.EQUAL:
                    low, high = ceiling / 2, ceiling
                case Jitter.DECORRELATED:
                    previous = base if self.previous is None else self.previous
                    low = min(config.max_delay, base)
                    high = min(config.max_delay, max(base, previous * 3))
            self.step += 1

        if isinstance(outcome, GiveUp):
            assert config.max_elapsed is not None
            assert outcome.reason is GiveUpReason.MAX_ELAPSED
            assert outcome.attempts == self.attempts
            assert outcome.elapsed == elapsed
            # Giving up is right only if the latest allowed delay crosses the deadline.
            assert elapsed + high * (1 + EPS) + EPS > config.max_elapsed
            self.give_up(outcome)
            return

        assert isinstance(outcome, Reconnect)
        assert low * (1 - EPS) - EPS <= outcome.delay <= high * (1 + EPS) + EPS
        assert 0.0 <= outcome.delay <= config.max_delay
        assert outcome.at == now + outcome.delay
        if config.max_elapsed is not None:
            assert elapsed + outcome.delay <= config.max_elapsed
            # The model only allows a reconnect when the earliest delay fits.
            assert elapsed + low * (1 - EPS) - EPS <= config.max_elapsed
        if not immediate:
            self.previous = outcome.delay
        self.attempts += 1
        assert outcome.attempt == self.attempts
        self.state = BackoffState.WAITING

    def give_up(self, outcome: GiveUp) -> None:
        self.gave_up = outcome
        self.state = BackoffState.GAVE_UP

    @invariant()
    def matches_model(self) -> None:
        assert self.backoff.state is self.state
        assert self.backoff.attempts == self.attempts
        assert self.backoff.outage_started_at == self.outage_at
        expected_healthy = (
            None if self.connected_at is None else self.connected_at + self.config.healthy_after
        )
        assert self.backoff.healthy_at == expected_healthy


BackoffMachine.TestCase.settings = settings(stateful_step_count=30)
TestBackoffMachine = BackoffMachine.TestCase


# --- the herd simulation behind the docs' table -----------------------------------------


def test_peak_in_window_counts_half_open_windows() -> None:
    """The benchmark's peak counts instants within [t, t + window)."""
    from benchmarks.backoff_herd import peak_in_window

    assert peak_in_window([], 0.1) == 0
    assert peak_in_window([0.0, 0.25, 0.5, 0.75, 1.5], 0.5) == 2
    assert peak_in_window([1.0] * 5 + [2.0], 0.1) == 5


def test_herd_without_jitter_comes_back_together() -> None:
    """Without jitter the whole herd retries at 3, 9 and 21 s; with jitter the peak drops."""
    from benchmarks.backoff_herd import HerdResult, simulate

    def herd(jitter: Jitter) -> HerdResult:
        config = BackoffConfig(jitter=jitter)
        return simulate(config, label="", clients=200, down_for=10.0, window=0.1, seed=1)

    flat = herd(Jitter.NONE)
    assert (flat.peak, flat.attempts, flat.all_back_at) == (200, 600, 21.0)
    spread = herd(Jitter.EQUAL)
    assert spread.peak < 100
    assert 10.0 <= spread.median_back_at <= spread.all_back_at <= 10.0 + 12.0


# --- the docs example --------------------------------------------------------------------


def test_on_dropped_counts_no_attempt() -> None:
    """A connection dropped for a network signal: no attempt counted, the state back to
    IDLE (so the next on_connected is accepted); a healthy connection's drop ends the
    outage as a disconnect would; after a give-up nothing changes."""
    config = BackoffConfig(base_delay=1.0, jitter=Jitter.NONE, healthy_after=5.0)
    backoff = Backoff(config, rng=random.Random(0))
    backoff.on_disconnected(0.0)  # an outage: attempt 1
    backoff.on_connected(1.0)
    backoff.on_dropped(2.0)  # up 1 s only: the outage goes on, still one attempt
    assert backoff.state is BackoffState.IDLE and backoff.attempts == 1
    backoff.on_connected(3.0)
    backoff.on_dropped(9.0)  # up 6 s: healthy, the outage is over
    assert backoff.attempts == 0 and backoff.outage_started_at is None
    backoff.on_dropped(10.0)  # idle already: fine
    gave_up = Backoff(BackoffConfig(max_attempts=0), rng=random.Random(0))
    outcome = gave_up.on_disconnected(0.0)
    gave_up.on_dropped(1.0)
    assert gave_up.state is BackoffState.GAVE_UP and gave_up.on_disconnected(2.0) == outcome
