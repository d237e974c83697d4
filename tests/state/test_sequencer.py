"""Tests for sse_core._sequencer.Sequencer."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from sse_core._errors import InvalidConfigError, LocalProtocolError
from sse_core._sequencer import (
    GapReason,
    Released,
    Sequencer,
    SequencerConfig,
    SequencerRecord,
    Skipped,
)
from sse_core._validators import ClockError

Item = tuple[int, int]  # (number, push index): lets a test tell which copy was delivered
Record = SequencerRecord[Item]


class Model:
    """The obviously-correct version: sorted() and min() over a plain dict, no heap."""

    def __init__(self, max_buffered: int, gap_timeout: float, next_expected: int | None):
        self.max_buffered = max_buffered
        self.gap_timeout = gap_timeout
        self.next = next_expected
        self.buffer: dict[int, tuple[Item, float]] = {}  # insertion order = arrival order
        self.latest = float("-inf")

    def _clock(self, now: float) -> float:
        self.latest = max(self.latest, now)
        return self.latest

    def _drain(self, out: list[Record]) -> None:
        assert self.next is not None
        while self.next in self.buffer:
            out.append(Released(number=self.next, item=self.buffer.pop(self.next)[0]))
            self.next += 1

    def _release_through(self, target: int, reason: GapReason, out: list[Record]) -> None:
        assert self.next is not None
        for n in sorted(self.buffer):
            if n > target:
                break
            if n > self.next:
                out.append(Skipped(first=self.next, last=n - 1, reason=reason))
            out.append(Released(number=n, item=self.buffer.pop(n)[0]))
            self.next = n + 1
        self._drain(out)

    def _expire(self, now: float, out: list[Record]) -> None:
        while self.buffer:
            arrival = min(a for _, a in self.buffer.values())
            if arrival + self.gap_timeout > now:
                return
            oldest = next(n for n, (_, a) in self.buffer.items() if a == arrival)
            self._release_through(oldest, GapReason.TIMEOUT, out)

    def push(self, number: int, item: Item, now: float) -> list[Record]:
        now = self._clock(now)
        out: list[Record] = []
        if self.next is None:
            self.next = number
        if number == self.next:
            out.append(Released(number=number, item=item))
            self.next += 1
            self._drain(out)
        elif number > self.next and number not in self.buffer:
            self.buffer[number] = (item, now)
            if len(self.buffer) > self.max_buffered:
                self._release_through(min(self.buffer), GapReason.OVERFLOW, out)
        self._expire(now, out)
        return out

    def poll(self, now: float) -> list[Record]:
        out: list[Record] = []
        self._expire(self._clock(now), out)
        return out

    def flush(self) -> list[Record]:
        out: list[Record] = []
        if self.buffer:
            self._release_through(max(self.buffer), GapReason.FLUSH, out)
        return out


class Ledger:
    """Checks the laws on everything a sequencer returns, record by record."""

    def __init__(self, seq: Sequencer[Item]) -> None:
        self.seq = seq
        self.pushes = 0
        self.pushed: set[int] = set()
        self.first_item: dict[int, Item] = {}
        self.delivered: list[int] = []
        self.covered_until: int | None = seq.next_expected  # end of the tiled range
        self.gap_numbers = 0

    def note_push(self, number: int, item: Item) -> None:
        if self.covered_until is None:
            self.covered_until = number
        self.pushes += 1
        self.pushed.add(number)
        if number >= self.covered_until:
            self.first_item.setdefault(number, item)

    def note(self, records: list[Record]) -> None:
        for record in records:
            # Records tile the number line: each starts where the previous one ended.
            assert self.covered_until is not None
            if isinstance(record, Skipped):
                assert record.first == self.covered_until
                assert record.last >= record.first
                assert record.count == record.last - record.first + 1
                # A gap never hides a number that is waiting to be delivered.
                self.gap_numbers += record.count
                self.covered_until = record.last + 1
            else:
                assert record.number == self.covered_until
                # The delivered copy is the first one that arrived in time.
                assert record.item == self.first_item[record.number]
                if self.delivered:
                    assert record.number > self.delivered[-1]
                self.delivered.append(record.number)
                self.covered_until = record.number + 1
        self.check_books()

    def check_books(self) -> None:
        seq = self.seq
        # No silent loss: every push is delivered, counted as dropped, or still waiting.
        assert self.pushes == (
            seq.delivered_count + seq.duplicate_count + seq.late_count + seq.buffered_count
        )
        assert seq.delivered_count == len(self.delivered)
        assert seq.missed_count == self.gap_numbers
        assert seq.next_expected == self.covered_until
        assert seq.buffered_count <= seq.config.max_buffered


class SequencerMachine(RuleBasedStateMachine):
    """Random pushes, clock moves, polls and flushes give the model's records exactly, and
    every result obeys the laws (ordering, tiling, no silent loss, bounds)."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.seq: Sequencer[Item] | None = None
        self.model: Model | None = None
        self.ledger: Ledger | None = None
        self.index = 0

    @precondition(lambda self: self.seq is None)
    @rule(
        max_buffered=st.integers(0, 5),
        gap_timeout=st.sampled_from([0.0, 1.0, 2.5]),
        next_expected=st.one_of(st.none(), st.integers(-3, 3)),
    )
    def build(self, max_buffered: int, gap_timeout: float, next_expected: int | None) -> None:
        config = SequencerConfig(max_buffered=max_buffered, gap_timeout=gap_timeout)
        self.seq = Sequencer(config, next_expected=next_expected)
        self.model = Model(max_buffered, gap_timeout, next_expected)
        self.ledger = Ledger(self.seq)

    def _check(self, got: list[Record], want: list[Record]) -> None:
        assert self.ledger is not None
        assert got == want
        self.ledger.note(got)

    @precondition(lambda self: self.seq is not None)
    @rule(offset=st.integers(-3, 8))
    def push(self, offset: int) -> None:
        assert self.seq is not None and self.model is not None and self.ledger is not None
        base = self.seq.next_expected if self.seq.next_expected is not None else 0
        number = base + offset
        item = (number, self.index)
        self.index += 1
        self.ledger.note_push(number, item)
        self._check(self.seq.push(number, item, self.now), self.model.push(number, item, self.now))

    @precondition(lambda self: self.seq is not None)
    @rule(delay=st.sampled_from([0.0, 0.5, 1.0, 3.0]))
    def advance(self, delay: float) -> None:
        self.now += delay

    @precondition(lambda self: self.seq is not None)
    @rule(number=st.integers(0, 30))
    def clock_backwards(self, number: int) -> None:
        """A now earlier than the latest given is refused and changes nothing: the model
        never sees these calls and the records that follow still match it."""
        self.poll()  # the sequencer has now been given self.now
        assert self.seq is not None
        with pytest.raises(ClockError):
            self.seq.push(number, (number, -1), self.now - 1.0)
        with pytest.raises(ClockError):
            self.seq.poll(self.now - 1.0)

    @precondition(lambda self: self.seq is not None)
    @rule()
    def poll(self) -> None:
        assert self.seq is not None and self.model is not None
        self._check(self.seq.poll(self.now), self.model.poll(self.now))

    @precondition(lambda self: self.seq is not None)
    @rule()
    def poll_at_deadline(self) -> None:
        """Polling at next_deadline() releases at least the item that waited longest."""
        assert self.seq is not None and self.model is not None
        deadline = self.seq.next_deadline()
        if deadline is None:
            assert self.seq.buffered_count == 0
            return
        self.now = max(self.now, deadline)
        before = self.seq.buffered_count
        self._check(self.seq.poll(self.now), self.model.poll(self.now))
        assert self.seq.buffered_count < before

    @precondition(lambda self: self.seq is not None)
    @rule()
    def flush(self) -> None:
        assert self.seq is not None and self.model is not None
        self._check(self.seq.flush(), self.model.flush())
        assert self.seq.buffered_count == 0
        assert self.seq.next_deadline() is None

    @invariant()
    def deadline_matches_model(self) -> None:
        if self.seq is None or self.model is None:
            return
        if self.model.buffer:
            oldest = min(a for _, a in self.model.buffer.values())
            assert self.seq.next_deadline() == oldest + self.model.gap_timeout
        else:
            assert self.seq.next_deadline() is None


TestSequencerMachine = SequencerMachine.TestCase
TestSequencerMachine.settings = settings(stateful_step_count=50)


pushes = st.lists(
    st.tuples(st.integers(0, 40), st.sampled_from([0.0, 0.0, 0.1, 1.0, 4.0])), max_size=120
)


@given(
    max_buffered=st.integers(0, 8),
    gap_timeout=st.sampled_from([0.0, 0.5, 2.0, 1e9]),
    steps=pushes,
)
def test_no_silent_loss_and_strict_order(
    max_buffered: int, gap_timeout: float, steps: list[tuple[int, float]]
) -> None:
    """Every pushed number is delivered exactly once, counted as duplicate/late, or lies in a
    reported gap; delivered numbers strictly increase; the buffer never exceeds its bound."""
    seq: Sequencer[Item] = Sequencer(
        SequencerConfig(max_buffered=max_buffered, gap_timeout=gap_timeout), next_expected=0
    )
    ledger = Ledger(seq)
    now = 0.0
    for i, (number, delay) in enumerate(steps):
        now += delay
        ledger.note_push(number, (number, i))
        ledger.note(seq.push(number, (number, i), now))
    ledger.note(seq.flush())
    delivered = set(ledger.delivered)
    assert len(delivered) == len(ledger.delivered)
    # After a flush nothing waits, so every distinct pushed number was delivered or skipped.
    gaps_and_deliveries = ledger.covered_until
    for number in ledger.pushed:
        assert number in delivered or number < (gaps_and_deliveries or 0)
    assert seq.buffered_count == 0


@given(
    gap_timeout=st.sampled_from([0.5, 2.0]),
    steps=pushes,
)
def test_no_item_waits_longer_than_gap_timeout(
    gap_timeout: float, steps: list[tuple[int, float]]
) -> None:
    """Polling at each deadline, an early item is released no later than gap_timeout after it
    arrived: delivery never stalls."""
    seq: Sequencer[int] = Sequencer(
        SequencerConfig(max_buffered=1000, gap_timeout=gap_timeout), next_expected=0
    )
    arrived: dict[int, float] = {}
    now = 0.0

    def released(records: list[SequencerRecord[int]]) -> None:
        for r in records:
            if isinstance(r, Released) and r.number in arrived:
                # The deadline is arrival + gap_timeout in floats; subtracting back may round up.
                assert now - arrived.pop(r.number) <= gap_timeout + 1e-9

    for number, delay in steps:
        target = now + delay
        deadline = seq.next_deadline()
        while deadline is not None and deadline <= target:
            now = deadline
            released(seq.poll(now))
            deadline = seq.next_deadline()
        now = target
        if seq.next_expected is not None and number > seq.next_expected:
            arrived.setdefault(number, now)
        released(seq.push(number, number, now))
        # Nothing left waiting is overdue.
        deadline = seq.next_deadline()
        assert deadline is None or deadline > now


def test_in_order_delivery_passes_straight_through() -> None:
    """In-order items come out immediately, one Released each, with no deadline."""
    seq: Sequencer[str] = Sequencer(next_expected=1)
    assert seq.push(1, "a", 0.0) == [Released(number=1, item="a")]
    assert seq.push(2, "b", 0.0) == [Released(number=2, item="b")]
    assert seq.next_expected == 3
    assert seq.next_deadline() is None


def test_first_seen_sets_the_start() -> None:
    """Without next_expected the first pushed number starts the sequence; an earlier number
    that arrives afterwards is late."""
    seq: Sequencer[str] = Sequencer()
    assert seq.next_expected is None
    assert seq.push(5, "e", 0.0) == [Released(number=5, item="e")]
    assert seq.push(4, "d", 0.0) == []
    assert seq.late_count == 1


def test_reordering_is_repaired() -> None:
    """An early item waits for the missing one, then both come out in order."""
    seq: Sequencer[str] = Sequencer(next_expected=0)
    assert seq.push(1, "b", 0.0) == []
    assert seq.next_deadline() == 5.0
    assert seq.push(0, "a", 1.0) == [Released(number=0, item="a"), Released(number=1, item="b")]
    assert seq.next_deadline() is None


def test_timeout_reports_gap() -> None:
    """A hole not filled within gap_timeout becomes a TIMEOUT gap, and the number arriving
    afterwards is counted late, not delivered."""
    seq: Sequencer[str] = Sequencer(SequencerConfig(gap_timeout=2.0), next_expected=0)
    assert seq.push(3, "d", 10.0) == []
    assert seq.poll(11.9) == []
    assert seq.poll(12.0) == [
        Skipped(first=0, last=2, reason=GapReason.TIMEOUT),
        Released(number=3, item="d"),
    ]
    assert seq.missed_count == 3
    assert seq.push(1, "b", 13.0) == []
    assert seq.late_count == 1


def test_timeout_releases_only_up_to_the_expired_item() -> None:
    """When the oldest waiting item expires, items above it that still have time keep waiting
    for their own holes."""
    seq: Sequencer[str] = Sequencer(SequencerConfig(gap_timeout=1.0), next_expected=0)
    seq.push(2, "c", 0.0)
    seq.push(5, "f", 0.5)
    assert seq.poll(1.0) == [
        Skipped(first=0, last=1, reason=GapReason.TIMEOUT),
        Released(number=2, item="c"),
    ]
    assert seq.next_deadline() == 1.5
    assert seq.push(3, "d", 1.2) == [Released(number=3, item="d")]
    assert seq.poll(1.5) == [
        Skipped(first=4, last=4, reason=GapReason.TIMEOUT),
        Released(number=5, item="f"),
    ]


def test_overflow_skips_lowest_hole() -> None:
    """When the buffer would exceed max_buffered, the hole below the lowest waiting item is
    reported as an OVERFLOW gap and the run from that item is delivered."""
    seq: Sequencer[int] = Sequencer(SequencerConfig(max_buffered=2), next_expected=0)
    assert seq.push(2, 2, 0.0) == []
    assert seq.push(3, 3, 0.0) == []
    assert seq.push(6, 6, 0.0) == [
        Skipped(first=0, last=1, reason=GapReason.OVERFLOW),
        Released(number=2, item=2),
        Released(number=3, item=3),
    ]
    assert seq.buffered_count == 1


def test_zero_buffer_never_waits() -> None:
    """With max_buffered=0 an early item skips the hole at once."""
    seq: Sequencer[int] = Sequencer(SequencerConfig(max_buffered=0), next_expected=0)
    assert seq.push(2, 2, 0.0) == [
        Skipped(first=0, last=1, reason=GapReason.OVERFLOW),
        Released(number=2, item=2),
    ]


def test_duplicates_are_dropped_and_counted() -> None:
    """A second copy of a waiting number is a duplicate; a copy of a delivered one is late.
    The first copy is the one delivered."""
    seq: Sequencer[str] = Sequencer(next_expected=0)
    seq.push(1, "first", 0.0)
    assert seq.push(1, "second", 0.0) == []
    assert seq.duplicate_count == 1
    assert seq.push(0, "zero", 0.0)[1] == Released(number=1, item="first")
    assert seq.push(0, "again", 0.0) == []
    assert seq.late_count == 1


def test_flush_releases_everything() -> None:
    """flush() delivers every waiting item, with FLUSH gaps for the holes."""
    seq: Sequencer[int] = Sequencer(next_expected=0)
    seq.push(2, 2, 0.0)
    seq.push(4, 4, 0.0)
    assert seq.flush() == [
        Skipped(first=0, last=1, reason=GapReason.FLUSH),
        Released(number=2, item=2),
        Skipped(first=3, last=3, reason=GapReason.FLUSH),
        Released(number=4, item=4),
    ]
    assert seq.flush() == []
    assert seq.next_expected == 5


def test_huge_jump_costs_one_record() -> None:
    """A far-ahead number is reported as one Skipped, not one record per missing number."""
    seq: Sequencer[int] = Sequencer(SequencerConfig(max_buffered=0), next_expected=0)
    records = seq.push(10**18, 0, 0.0)
    assert records[0] == Skipped(first=0, last=10**18 - 1, reason=GapReason.OVERFLOW)
    assert len(records) == 2


def test_stale_arrival_entries_stay_bounded() -> None:
    """Items delivered from behind a long-waiting one do not pile up internal bookkeeping."""
    seq: Sequencer[int] = Sequencer(SequencerConfig(gap_timeout=1e9), next_expected=0)
    seq.push(10**9, 0, 0.0)  # waits for ever, at the front of the arrival order
    for n in range(0, 20_000, 2):
        seq.push(n + 1, n + 1, 0.0)
        seq.push(n, n, 0.0)
        seq.next_deadline()
    assert len(seq._arrivals) <= 2 * seq.buffered_count + 17


def test_seeded_random_load_matches_model() -> None:
    """A long seeded run with reordering, loss and duplicates agrees with the model."""
    rng = random.Random(99)
    seq: Sequencer[Item] = Sequencer(
        SequencerConfig(max_buffered=20, gap_timeout=0.5), next_expected=0
    )
    model = Model(20, 0.5, 0)
    ledger = Ledger(seq)
    now = 0.0
    for i in range(4000):
        now += rng.choice([0.0, 0.01, 0.05])
        number = i // 2 + rng.randrange(-5, 30)
        item = (number, i)
        ledger.note_push(number, item)
        got = seq.push(number, item, now)
        assert got == model.push(number, item, now)
        ledger.note(got)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_buffered": -1},
        {"max_buffered": 1.0},
        {"max_buffered": False},
        {"gap_timeout": -0.1},
        {"gap_timeout": float("inf")},
        {"gap_timeout": float("nan")},
        {"gap_timeout": None},
        {"gap_timeout": True},
    ],
)
def test_bad_config_is_refused(kwargs: dict[str, object]) -> None:
    """Out-of-range limits raise InvalidConfigError, a LocalProtocolError and ValueError."""
    with pytest.raises(InvalidConfigError) as info:
        SequencerConfig(**kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, LocalProtocolError)
    assert isinstance(info.value, ValueError)
