"""Tests for sse_core._timers: StallDetector and HeartbeatScheduler."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from sse_core._errors import InvalidConfigError, LocalProtocolError
from sse_core._timers import HeartbeatScheduler, StallDetector
from sse_core._validators import ClockError

Timer = StallDetector | HeartbeatScheduler


@attrs.frozen
class Kind:
    """One of the two timers, with its differently named methods."""

    make: Callable[[float], Timer]
    touch: Callable[[Timer, float], None]
    fired: Callable[[Timer, float], bool]
    last: Callable[[Timer], float | None]
    period: Callable[[Timer], float]


def _touch(timer: Timer, now: float) -> None:
    if isinstance(timer, StallDetector):
        timer.activity(now)
    else:
        timer.sent(now)


def _fired(timer: Timer, now: float) -> bool:
    if isinstance(timer, StallDetector):
        return timer.is_stalled(now)
    return timer.is_due(now)


def _last(timer: Timer) -> float | None:
    if isinstance(timer, StallDetector):
        return timer.last_activity_at
    return timer.last_sent_at


def _period(timer: Timer) -> float:
    if isinstance(timer, StallDetector):
        return timer.timeout
    return timer.interval


KINDS = {
    "stall": Kind(StallDetector, _touch, _fired, _last, _period),
    "heartbeat": Kind(HeartbeatScheduler, _touch, _fired, _last, _period),
}
kinds = pytest.mark.parametrize("kind", list(KINDS.values()), ids=list(KINDS))


# --- examples -----------------------------------------------------------------------------


@kinds
@pytest.mark.parametrize("bad", [0, -1.0, math.nan, math.inf, "5", True, None])
def test_period_must_be_a_positive_finite_number(kind: Kind, bad: object) -> None:
    """timeout / interval must be a finite number > 0; otherwise InvalidConfigError."""
    with pytest.raises(InvalidConfigError) as info:
        kind.make(bad)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)


@kinds
def test_stopped_before_start(kind: Kind) -> None:
    """Before start() a timer has no deadline, never fires, and refuses activity."""
    timer = kind.make(5.0)
    assert timer.next_deadline() is None
    assert not timer.is_running
    assert kind.last(timer) is None
    assert not kind.fired(timer, 1e9)
    with pytest.raises(LocalProtocolError):
        kind.touch(timer, 1.0)


@kinds
def test_start_arms_at_now_plus_period(kind: Kind) -> None:
    """start(now) sets the deadline to now + period; it fires exactly from the deadline on."""
    timer = kind.make(5.0)
    timer.start(10.0)
    assert timer.is_running
    assert timer.next_deadline() == 15.0
    assert not kind.fired(timer, 14.999)
    assert kind.fired(timer, 15.0)
    assert kind.fired(timer, 100.0)


@kinds
def test_touch_moves_the_deadline(kind: Kind) -> None:
    """activity()/sent() push the deadline to now + period."""
    timer = kind.make(5.0)
    timer.start(0.0)
    kind.touch(timer, 4.0)
    assert timer.next_deadline() == 9.0
    assert kind.last(timer) == 4.0
    assert not kind.fired(timer, 5.0)
    assert kind.fired(timer, 9.0)


@kinds
def test_stop_disarms_and_start_rearms(kind: Kind) -> None:
    """stop() removes the deadline; a later start() arms it again from its own now."""
    timer = kind.make(2.0)
    timer.start(0.0)
    timer.stop()
    assert timer.next_deadline() is None
    assert not kind.fired(timer, 50.0)
    with pytest.raises(LocalProtocolError):
        kind.touch(timer, 3.0)
    timer.start(60.0)
    assert timer.next_deadline() == 62.0


@kinds
def test_restart_while_running_rearms(kind: Kind) -> None:
    """start() on a running timer re-arms it from the new now."""
    timer = kind.make(2.0)
    timer.start(0.0)
    timer.start(1.5)
    assert timer.next_deadline() == 3.5


@kinds
def test_now_must_not_go_backwards(kind: Kind) -> None:
    """An input with an earlier now than before is refused and changes nothing."""
    timer = kind.make(2.0)
    timer.start(10.0)
    with pytest.raises(LocalProtocolError):
        kind.touch(timer, 9.0)
    with pytest.raises(LocalProtocolError):
        timer.start(9.0)
    assert timer.next_deadline() == 12.0


@kinds
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_now_must_be_finite(kind: Kind, bad: float) -> None:
    """A non-finite now is refused."""
    timer = kind.make(2.0)
    with pytest.raises(LocalProtocolError):
        timer.start(bad)
    timer.start(0.0)
    with pytest.raises(LocalProtocolError):
        kind.touch(timer, bad)


@kinds
def test_queries_refuse_an_earlier_now_but_do_not_move_the_clock(kind: Kind) -> None:
    """is_stalled / is_due refuse a now earlier than the last input's (the one rule for now),
    and, being queries, leave the clock where the last input put it."""
    timer = kind.make(2.0)
    timer.start(10.0)
    with pytest.raises(ClockError, match=r"now went backwards: got 0\.0 after 10\.0"):
        kind.fired(timer, 0.0)
    with pytest.raises(ClockError, match="finite"):
        kind.fired(timer, math.nan)
    assert kind.fired(timer, 20.0)
    kind.touch(timer, 11.0)  # the query at 20.0 did not move the clock
    assert timer.next_deadline() == 13.0


def test_int_periods_are_accepted_as_seconds() -> None:
    """An int period is taken as seconds and reported as a float."""
    assert StallDetector(30).timeout == 30.0
    assert HeartbeatScheduler(15).interval == 15.0


# --- StallDetector.received: what counts as progress ---------------------------------------


@pytest.mark.parametrize("data", [b"\n", b"\r", b"x\r\n", b"data: a\n\n", b":\n", b"abc\rdef"])
def test_a_line_end_is_progress(data: bytes) -> None:
    """Bytes holding a CR or LF (WHATWG's line ends) complete a line: the deadline moves."""
    stall = StallDetector(10.0)
    stall.start(0.0)
    assert stall.received(data, 4.0)
    assert stall.next_deadline() == 14.0


def test_bytes_without_a_line_end_are_no_progress() -> None:
    """A drip of bytes with no line end leaves the deadline where the last line put it."""
    stall = StallDetector(10.0)
    stall.start(0.0)
    stall.received(b"id: 1\n", 1.0)
    for step in range(1, 18):
        assert not stall.received(b"x", 1.0 + step * 0.5)
    assert stall.next_deadline() == 11.0
    assert stall.is_stalled(11.0)


def test_a_long_line_is_progress_every_progress_bytes() -> None:
    """Within a line longer than PROGRESS_BYTES, every PROGRESS_BYTES bytes count as progress,
    however they are split."""
    size = StallDetector.PROGRESS_BYTES
    assert size == 4096
    stall = StallDetector(10.0)
    stall.start(0.0)
    assert not stall.received(b"x" * (size - 1), 1.0)
    assert stall.received(b"x", 2.0)
    assert stall.next_deadline() == 12.0
    assert not stall.received(b"x" * (size // 2), 3.0)
    assert stall.received(b"x" * size * 3, 4.0)  # one big chunk: progress once
    assert not stall.received(b"x", 5.0)
    assert stall.next_deadline() == 14.0


def test_start_and_activity_forget_the_bytes_counted() -> None:
    """Bytes counted towards PROGRESS_BYTES belong to one stretch without progress: start()
    (a new connection) and activity() begin a new count."""
    size = StallDetector.PROGRESS_BYTES
    stall = StallDetector(10.0)
    stall.start(0.0)
    stall.received(b"x" * (size - 1), 1.0)
    stall.start(2.0)
    assert not stall.received(b"x", 3.0)
    stall.received(b"x" * (size - 2), 4.0)
    stall.activity(5.0)
    assert not stall.received(b"x", 6.0)
    assert stall.next_deadline() == 15.0


def test_received_is_an_input_like_activity() -> None:
    """received() is refused on a stopped detector and with a now that goes backwards, even
    for bytes that would not count."""
    stall = StallDetector(10.0)
    with pytest.raises(LocalProtocolError):
        stall.received(b"x", 0.0)
    stall.start(5.0)
    with pytest.raises(LocalProtocolError):
        stall.received(b"x", 4.0)
    with pytest.raises(LocalProtocolError):
        stall.received(b"x", math.nan)
    stall.received(b"x", 6.0)
    with pytest.raises(LocalProtocolError):
        stall.received(b"\n", 5.5)
    assert stall.next_deadline() == 15.0


@given(
    text=st.binary(max_size=600).filter(lambda b: b"\n" not in b and b"\r" not in b),
    cuts=st.lists(st.integers(0, 600), max_size=10),
    end=st.sampled_from([b"\n", b"\r", b"\r\n"]),
)
def test_only_the_chunk_with_the_line_end_moves_the_deadline(
    text: bytes, cuts: list[int], end: bytes
) -> None:
    """However a line (shorter than PROGRESS_BYTES) is split, the deadline moves exactly when
    the chunk holding its end arrives."""
    stall = StallDetector(10.0)
    stall.start(0.0)
    data = text + end
    bounds = sorted({0, len(data), *(min(c, len(data)) for c in cuts)})
    now = last_progress = 0.0
    for start, stop in itertools.pairwise(bounds):
        now += 1.0
        chunk = data[start:stop]
        has_end = b"\n" in chunk or b"\r" in chunk  # a split CRLF: both halves count
        assert stall.received(chunk, now) == has_end
        if has_end:
            last_progress = now
        assert stall.next_deadline() == last_progress + 10.0
    assert last_progress > 0.0


# --- properties ---------------------------------------------------------------------------

times = st.floats(min_value=0.0, max_value=1e6, allow_nan=False)
periods = st.floats(min_value=1e-3, max_value=1e4, allow_nan=False)


@pytest.mark.parametrize("name", list(KINDS))
@given(period=periods, start=times, gaps=st.lists(st.floats(0.0, 1e4), max_size=20))
def test_deadline_is_last_touch_plus_period(
    name: str, period: float, start: float, gaps: list[float]
) -> None:
    """After any run of activity the deadline is the last one plus the period; the timer
    fires at the deadline and never one representable instant before it."""
    kind = KINDS[name]
    timer = kind.make(period)
    timer.start(start)
    now = start
    for gap in gaps:
        now += gap
        kind.touch(timer, now)
    deadline = timer.next_deadline()
    assert deadline == now + kind.period(timer)
    assert kind.fired(timer, deadline)
    assert not kind.fired(timer, math.nextafter(deadline, -math.inf))
    assert deadline >= now


# --- stateful test against a model ------------------------------------------------------


class TimerMachine(RuleBasedStateMachine):
    """Drives one timer and a one-variable model (last touch or None) side by side."""

    @initialize(name=st.sampled_from(sorted(KINDS)), period=periods)
    def setup(self, name: str, period: float) -> None:
        self.kind = KINDS[name]
        self.timer = self.kind.make(period)
        self.period = period
        self.now = 0.0
        self.last: float | None = None

    @rule(dt=st.floats(0.0, 1e3))
    def start(self, dt: float) -> None:
        self.now += dt
        self.timer.start(self.now)
        self.last = self.now

    @rule()
    def stop(self) -> None:
        self.timer.stop()
        self.last = None

    @rule(dt=st.floats(0.0, 1e3))
    def touch(self, dt: float) -> None:
        self.now += dt
        if self.last is None:
            with pytest.raises(LocalProtocolError):
                self.kind.touch(self.timer, self.now)
            return
        self.kind.touch(self.timer, self.now)
        self.last = self.now

    @rule(dt=st.floats(0.0, 2e4))
    def wait(self, dt: float) -> None:
        """Time passes with no input; only the answer to the query may change."""
        self.now += dt

    @invariant()
    def matches_model(self) -> None:
        expected = None if self.last is None else self.last + self.period
        assert self.timer.next_deadline() == expected
        assert self.kind.last(self.timer) == self.last
        assert self.timer.is_running == (self.last is not None)
        assert self.kind.fired(self.timer, self.now) == (
            expected is not None and self.now >= expected
        )


TimerMachine.TestCase.settings = settings(stateful_step_count=30)
TestTimerMachine = TimerMachine.TestCase


# --- the docs example --------------------------------------------------------------------
