"""Tests of the client's transport fallback machine, TransportSwitch, on its own: its table
(and the docs' copy), its timers, its decisions, and random runs against a model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from sse_core import ClientConfig, LocalProtocolError, ReportTransport, Transport
from sse_core._transport import LEG_TRANSITIONS, Leg, LegInput, TransportSwitch

URL = "https://example.test/stream"
POLL_URL = "https://example.test/poll"
IDLE = (Leg.STREAMING_IDLE, Leg.POLLING_IDLE)


def switch(**overrides: Any) -> TransportSwitch:
    config = {
        "url": URL, "long_poll_url": POLL_URL, "stall_timeout": 30.0,
        "first_byte_timeout": 5.0, "switch_after": 2, "retry_streaming_after": 100.0,
        "long_poll_timeout": 20.0, "min_poll_interval": 1.0, **overrides,
    }
    return TransportSwitch(ClientConfig(**config))


def to_polling(s: TransportSwitch, now: float = 0.0) -> float:
    """Drive a switch through switch_after silent 200 streams; return the time it switched."""
    s.apply(LegInput.START, now)
    while True:
        s.on_head(now)
        now += 5.0
        due = s.due(now, is_stalled=False)
        assert due in (LegInput.BLOCKED, LegInput.SWITCH)
        s.apply(due, now, "blocked")
        if due is LegInput.SWITCH:
            return now
        s.apply(LegInput.CONNECT, now)


def reach(target: Leg) -> TransportSwitch:
    """A switch brought to ``target`` through the table (a shortest path of inputs)."""
    for initial in (Transport.STREAMING, Transport.LONG_POLLING):
        paths: dict[Leg, list[LegInput]] = {switch(initial_transport=initial).leg: []}
        frontier = list(paths)
        while frontier:
            leg = frontier.pop(0)
            for (source, event), new in LEG_TRANSITIONS.items():
                if source is leg and new not in paths:
                    paths[new] = [*paths[leg], event]
                    frontier.append(new)
        if target in paths:
            s = switch(initial_transport=initial)
            for event in paths[target]:
                s.apply(event, 0.0)
            assert s.leg is target
            return s
    raise AssertionError(f"{target} is unreachable")


# --- the table ----------------------------------------------------------------------------


def test_docs_leg_table_is_the_real_one() -> None:
    """The table on docs/longpoll.rst is exactly LEG_TRANSITIONS."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "longpoll.rst").read_text()
    table = text.split(".. list-table:: Transport legs", 1)[1]
    lines = []
    for line in table.splitlines()[1:]:
        if line and not line.startswith(" "):
            break  # the next paragraph or heading
        lines.append(line)
    cells = [line.split("- ", 1)[1] for line in lines if "- " in line]
    rows = {(cells[i], cells[i + 1]): cells[i + 2] for i in range(3, len(cells), 3)}
    assert len(cells) == 3 * (len(LEG_TRANSITIONS) + 1)
    assert rows == {(g.value, i.value): n.value for (g, i), n in LEG_TRANSITIONS.items()}


def test_every_leg_is_reachable_and_can_end() -> None:
    """From the two idle legs every leg is reachable; every leg that is not idle takes END
    (so the session can always close) and END always lands on the idle leg of its transport."""
    reached = set(IDLE)
    while True:
        more = {new for (leg, _), new in LEG_TRANSITIONS.items() if leg in reached} - reached
        if not more:
            break
        reached |= more
    assert reached == set(Leg)
    for leg in Leg:
        if leg in IDLE:
            assert (leg, LegInput.END) not in LEG_TRANSITIONS
        else:
            idle = Leg.STREAMING_IDLE if leg.transport is Transport.STREAMING else Leg.POLLING_IDLE
            assert LEG_TRANSITIONS[(leg, LegInput.END)] is idle


def test_transport_changes_only_on_switch_and_a_tries_bytes() -> None:
    """In the table the transport changes on exactly two rows: SWITCH, and a try's BYTES."""
    changes = {
        (leg, event) for (leg, event), new in LEG_TRANSITIONS.items()
        if new.transport is not leg.transport
    }
    assert changes == {(Leg.STREAM, LegInput.SWITCH), (Leg.PROBE, LegInput.BYTES)}


@pytest.mark.parametrize("leg", list(Leg), ids=lambda leg: leg.name)
def test_inputs_outside_the_table_are_misuse(leg: Leg) -> None:
    """An input with no row for the current leg raises LocalProtocolError, naming both, and
    leaves the leg as it was."""
    s = reach(leg)
    for event in LegInput:
        if (leg, event) in LEG_TRANSITIONS:
            continue
        with pytest.raises(LocalProtocolError, match=f"{event.value!r} is not allowed"):
            s.apply(event, 0.0)
        assert s.leg is leg


# --- decisions and timers -----------------------------------------------------------------


def test_initial_leg_follows_initial_transport() -> None:
    """A switch starts idle on the configured transport."""
    assert switch().leg is Leg.STREAMING_IDLE
    s = switch(initial_transport=Transport.LONG_POLLING)
    assert s.leg is Leg.POLLING_IDLE and s.transport is Transport.LONG_POLLING
    assert s.apply(LegInput.START, 0.0) is None and s.leg is Leg.POLL


def test_off_without_long_poll_url() -> None:
    """Without long_poll_url a head arms no first-byte deadline: a silent stream is only
    ever a stall (END), never BLOCKED or SWITCH."""
    s = switch(long_poll_url=None)
    s.apply(LegInput.START, 0.0)
    s.on_head(0.1)
    assert s.next_deadline() is None
    assert s.due(1000.0, is_stalled=False) is None
    assert s.due(1000.0, is_stalled=True) is LegInput.END


def test_blocked_streams_switch_after_a_count() -> None:
    """switch_after silent streams in a row switch (with a report); bytes restart the count."""
    s = switch(switch_after=3)
    s.apply(LegInput.START, 0.0)
    s.on_head(0.0)
    assert s.next_deadline() == 5.0 and s.due(4.9, is_stalled=False) is None
    assert s.due(5.0, is_stalled=False) is LegInput.BLOCKED
    assert s.apply(LegInput.BLOCKED, 5.0) is None and s.blocked_in_a_row == 1
    s.apply(LegInput.CONNECT, 6.0)
    s.on_head(6.0)
    assert s.apply(LegInput.BYTES, 6.5) is None and s.blocked_in_a_row == 0
    assert s.next_deadline() is None  # bytes disarm the first-byte deadline
    s.apply(LegInput.END, 7.0)
    for _ in range(2):
        s.apply(LegInput.CONNECT, 8.0)
        s.on_head(8.0)
        assert s.due(8.0, is_stalled=True) is LegInput.BLOCKED  # a stall counts the same
        s.apply(LegInput.BLOCKED, 8.0)
    s.apply(LegInput.CONNECT, 9.0)
    s.on_head(9.0)
    assert s.due(14.0, is_stalled=False) is LegInput.SWITCH
    report = s.apply(LegInput.SWITCH, 14.0, "no bytes")
    assert report == ReportTransport(transport=Transport.LONG_POLLING, since=14.0,
                                     reason="no bytes")
    assert s.leg is Leg.POLLING_IDLE and s.blocked_in_a_row == 0


def test_poll_deadline_is_fixed_at_the_start() -> None:
    """A poll is given up long_poll_timeout + stall_timeout after it started (END); without a
    stall timeout never."""
    s = switch(initial_transport=Transport.LONG_POLLING)
    s.apply(LegInput.START, 10.0)
    assert s.poll_started_at == 10.0 and s.next_deadline() == 60.0
    s.on_head(11.0)  # a poll's head arms nothing
    assert s.next_deadline() == 60.0
    assert s.due(59.9, is_stalled=False) is None
    assert s.due(60.0, is_stalled=False) is LegInput.END
    endless = switch(initial_transport=Transport.LONG_POLLING, stall_timeout=None)
    endless.apply(LegInput.START, 0.0)
    assert endless.next_deadline() is None and endless.due(1e9, is_stalled=False) is None


def test_answers_poll_again_wait_or_try_streaming() -> None:
    """After an answer: a quick empty one waits until min_poll_interval after the poll's
    start; otherwise poll at once; once retry_streaming_after passed, try the stream."""
    s = switch(initial_transport=Transport.LONG_POLLING, min_poll_interval=2.0)
    s.apply(LegInput.START, 0.0)
    assert s.after_answer(0.5, is_empty=False) is LegInput.ANSWERED
    assert s.after_answer(2.0, is_empty=True) is LegInput.ANSWERED
    assert s.after_answer(0.5, is_empty=True) is LegInput.EARLY
    s.apply(LegInput.EARLY, 0.5)
    assert s.leg is Leg.POLL_WAIT and s.next_deadline() == 2.0
    assert s.due(1.9, is_stalled=False) is None
    assert s.due(2.0, is_stalled=False) is LegInput.POLL_DUE
    s.apply(LegInput.POLL_DUE, 2.0)
    assert s.after_answer(99.0, is_empty=True) is LegInput.ANSWERED
    assert s.after_answer(100.0, is_empty=True) is LegInput.PROBE_DUE
    s.apply(LegInput.PROBE_DUE, 100.0)
    assert s.leg is Leg.PROBE and s.next_deadline() is None
    assert s.after_answer(1e9, is_empty=False) is LegInput.ANSWERED  # no try scheduled now


def test_a_try_succeeds_or_fails_back() -> None:
    """A try that shows no byte within first_byte_timeout (or stalls) fails back to polling
    and is tried again retry_streaming_after later; one whose bytes arrive streams again."""
    s = switch()
    switched = to_polling(s)
    s.apply(LegInput.CONNECT, switched + 1.0)
    assert s.after_answer(switched + 99.0, is_empty=False) is LegInput.ANSWERED
    at = switched + 100.0
    assert s.after_answer(at, is_empty=False) is LegInput.PROBE_DUE
    s.apply(LegInput.PROBE_DUE, at)
    s.on_head(at)
    assert s.next_deadline() == at + 5.0
    assert s.due(at + 1.0, is_stalled=True) is LegInput.PROBE_FAILED
    assert s.due(at + 5.0, is_stalled=False) is LegInput.PROBE_FAILED
    assert s.apply(LegInput.PROBE_FAILED, at + 5.0) is None and s.leg is Leg.POLL
    assert s.after_answer(at + 104.0, is_empty=False) is LegInput.ANSWERED
    again = at + 105.0
    assert s.after_answer(again, is_empty=False) is LegInput.PROBE_DUE
    s.apply(LegInput.PROBE_DUE, again)
    s.on_head(again)
    report = s.apply(LegInput.BYTES, again + 1.0, "bytes")
    assert report == ReportTransport(transport=Transport.STREAMING, since=again + 1.0,
                                     reason="bytes")
    assert s.leg is Leg.STREAM and s.next_deadline() is None


def test_never_retries_streaming_when_off() -> None:
    """retry_streaming_after=None: once polling, the stream is never tried again."""
    s = switch(retry_streaming_after=None)
    to_polling(s)
    s.apply(LegInput.CONNECT, 20.0)
    assert s.after_answer(1e12, is_empty=False) is LegInput.ANSWERED


# --- random runs against a model ----------------------------------------------------------


class SwitchMachine(RuleBasedStateMachine):
    """Random inputs, in and out of the table: the leg follows LEG_TRANSITIONS exactly (and
    stays put on misuse); a report comes exactly when the transport changes; a switch comes
    only after switch_after blocked streams in a row; a try comes only retry_streaming_after
    after the switch or the last failed try; deadlines never lie."""

    SWITCH_AFTER = 3
    RETRY_STREAMING_AFTER = 50.0

    def __init__(self) -> None:
        super().__init__()
        self.s = switch(switch_after=self.SWITCH_AFTER,
                        retry_streaming_after=self.RETRY_STREAMING_AFTER,
                        stall_timeout=30.0, first_byte_timeout=5.0, min_poll_interval=1.0)
        self.now = 0.0
        self.leg = Leg.STREAMING_IDLE
        self.blocked = 0
        self.probe_at: float | None = None

    def take(self, event: LegInput) -> None:
        """Apply one input to the switch and to the model, and compare."""
        old = self.leg
        new = LEG_TRANSITIONS.get((old, event))
        if new is None:
            with pytest.raises(LocalProtocolError):
                self.s.apply(event, self.now)
            assert self.s.leg is old
            return
        report = self.s.apply(event, self.now, "why")
        if new.transport is old.transport:
            assert report is None
        else:
            assert report == ReportTransport(transport=new.transport, since=self.now,
                                             reason="why")
        self.leg = new
        if event is LegInput.BLOCKED:
            self.blocked += 1
        elif event in (LegInput.SWITCH, LegInput.BYTES):
            self.blocked = 0
        if event in (LegInput.SWITCH, LegInput.PROBE_FAILED) or (
            event is LegInput.START and new is Leg.POLL
        ):
            self.probe_at = self.now + self.RETRY_STREAMING_AFTER
        elif event in (LegInput.PROBE_DUE, LegInput.BYTES):
            self.probe_at = None

    @rule(delay=st.floats(0, 20))
    def wait(self, delay: float) -> None:
        self.now += delay

    @rule(event=st.sampled_from(list(LegInput)))
    def any_input(self, event: LegInput) -> None:
        self.take(event)  # also the inputs the switch decides itself (see timer, answered)

    @precondition(lambda self: self.leg.is_in_flight)
    @rule()
    def head(self) -> None:
        self.s.on_head(self.now)

    @rule(is_stalled=st.booleans())
    def timer(self, is_stalled: bool) -> None:
        due = self.s.due(self.now, is_stalled=is_stalled)
        if due is LegInput.SWITCH:
            assert self.blocked + 1 >= self.SWITCH_AFTER
        elif due is LegInput.BLOCKED:
            assert self.blocked + 1 < self.SWITCH_AFTER
        elif due is LegInput.PROBE_DUE:
            assert self.probe_at is not None and self.now >= self.probe_at
        if due is not None:
            self.take(due)

    @precondition(lambda self: self.leg is Leg.POLL)
    @rule(is_empty=st.booleans())
    def answered(self, is_empty: bool) -> None:
        after = self.s.after_answer(self.now, is_empty=is_empty)
        is_probe_due = self.probe_at is not None and self.now >= self.probe_at
        assert (after is LegInput.PROBE_DUE) == is_probe_due
        if after is LegInput.EARLY:
            assert is_empty and self.now < self.s.poll_started_at + 1.0
        self.take(after)

    @invariant()
    def follows_the_model(self) -> None:
        assert self.s.leg is self.leg
        assert self.s.transport is self.leg.transport
        assert self.s.blocked_in_a_row == self.blocked

    @invariant()
    def deadlines_never_lie(self) -> None:
        deadline = self.s.next_deadline()
        if self.leg in IDLE:
            assert deadline is None
        if self.leg is Leg.POLL_WAIT:
            assert deadline is not None
        if self.s.due(self.now, is_stalled=False) is not None:
            assert deadline is not None and self.now >= deadline
        elif deadline is not None:
            assert self.now < deadline


TestSwitchMachine = SwitchMachine.TestCase
TestSwitchMachine.settings = settings(stateful_step_count=50, max_examples=200, deadline=None)
