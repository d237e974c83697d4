"""Tests for sse_core._dedup.DedupWindow."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from sse_core._dedup import DedupConfig, DedupWindow
from sse_core._errors import InvalidConfigError, LocalProtocolError
from sse_core._validators import ClockError

# A small alphabet makes repeats common; long ids exercise the digest path.
ids = st.one_of(
    st.sampled_from(["a", "b", "c", "d", "e", "f", "", "1", "2"]),
    st.text(alphabet="xy", min_size=5, max_size=12),
)


class Model:
    """The obviously-correct version: a list of (id, first_seen), oldest first."""

    def __init__(self, max_ids: int, max_age: float | None) -> None:
        self.max_ids = max_ids
        self.max_age = max_age
        self.entries: list[tuple[str, float]] = []
        self.latest = float("-inf")

    def check(self, id: str, now: float) -> bool:
        now = max(now, self.latest)
        self.latest = now
        if self.max_age is not None:
            self.entries = [(i, t) for i, t in self.entries if now - t < self.max_age]
        if any(i == id for i, _ in self.entries):
            return True
        if len(self.entries) >= self.max_ids:
            self.entries.pop(0)
        self.entries.append((id, now))
        return False


class DedupMachine(RuleBasedStateMachine):
    """Random check sequences give the same verdicts as the model."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.window: DedupWindow | None = None
        self.model: Model | None = None

    @precondition(lambda self: self.window is None)
    @rule(
        max_ids=st.integers(1, 6),
        max_age=st.one_of(st.none(), st.sampled_from([0.5, 1.0, 3.0])),
        max_id_length=st.integers(1, 8),
    )
    def build(self, max_ids: int, max_age: float | None, max_id_length: int) -> None:
        self.window = DedupWindow(
            DedupConfig(max_ids=max_ids, max_age=max_age, max_id_length=max_id_length)
        )
        self.model = Model(max_ids, max_age)

    @precondition(lambda self: self.window is not None)
    @rule(id=ids)
    def check(self, id: str) -> None:
        assert self.window is not None and self.model is not None
        assert self.window.check(id, self.now) == self.model.check(id, self.now)

    @precondition(lambda self: self.window is not None)
    @rule(delay=st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0]))
    def advance(self, delay: float) -> None:
        self.now += delay

    @precondition(lambda self: self.window is not None)
    @rule(back=st.sampled_from([0.25, 1.0]), id=ids)
    def clock_backwards(self, back: float, id: str) -> None:
        """A now earlier than the latest given is refused and changes nothing: the model
        never sees these calls and the invariant still holds."""
        self.expire()  # the window has now been given self.now
        assert self.window is not None
        with pytest.raises(ClockError):
            self.window.check(id, self.now - back)
        with pytest.raises(ClockError):
            self.window.expire(self.now - back)

    @precondition(lambda self: self.window is not None)
    @rule()
    def expire(self) -> None:
        assert self.window is not None and self.model is not None
        before = len(self.window)
        dropped = self.window.expire(self.now)
        assert len(self.window) == before - dropped
        # Drive the model's expiry the same way (through a no-op filter).
        now = max(self.now, self.model.latest)
        self.model.latest = now
        if self.model.max_age is not None:
            self.model.entries = [
                (i, t) for i, t in self.model.entries if now - t < self.model.max_age
            ]

    @invariant()
    def same_size_and_bounded(self) -> None:
        if self.window is not None and self.model is not None:
            assert len(self.window) == len(self.model.entries)
            assert len(self.window) <= self.window.config.max_ids


TestDedupMachine = DedupMachine.TestCase
TestDedupMachine.settings = settings(stateful_step_count=40)


@given(
    max_ids=st.integers(1, 20),
    checks=st.lists(st.tuples(st.text(max_size=50), st.floats(0, 100)), max_size=200),
)
def test_memory_never_exceeds_max_ids(max_ids: int, checks: list[tuple[str, float]]) -> None:
    """Whatever ids and times come in, at most max_ids ids are held."""
    window = DedupWindow(DedupConfig(max_ids=max_ids, max_id_length=8))
    times = sorted(now for _, now in checks)  # a monotonic clock
    for (id, _), now in zip(checks, times, strict=True):
        window.check(id, now)
        assert len(window) <= max_ids
        # Long ids are stored as 16-byte digests, so no key exceeds the length bound.
        assert all(len(k) <= 16 for k in window._seen)


@given(st.lists(st.text(max_size=4), max_size=100))
def test_first_sighting_is_never_a_duplicate(seq: list[str]) -> None:
    """With room for everything, an id is reported duplicate exactly on its second and later
    sightings."""
    window = DedupWindow(DedupConfig(max_ids=1000))
    seen: set[str] = set()
    for id in seq:
        assert window.check(id, 0.0) == (id in seen)
        seen.add(id)


def test_duplicate_does_not_refresh_age() -> None:
    """An id's age counts from its first sighting: repeats do not extend it."""
    window = DedupWindow(DedupConfig(max_age=10.0))
    assert window.check("a", 0.0) is False
    assert window.check("a", 9.0) is True
    # 10 s after the first sighting it is forgotten, despite the repeat at 9 s.
    assert window.check("a", 10.0) is False
    assert window.check("a", 15.0) is True


def test_duplicate_does_not_refresh_eviction_order() -> None:
    """Count eviction removes the id first seen longest ago, even if it was just repeated."""
    window = DedupWindow(DedupConfig(max_ids=2))
    window.check("a", 0.0)
    window.check("b", 0.0)
    assert window.check("a", 1.0) is True
    window.check("c", 2.0)  # evicts "a", the oldest first sighting
    assert window.check("b", 3.0) is True
    assert window.check("a", 3.0) is False


def test_age_boundary_is_exclusive() -> None:
    """An id seen at t is a duplicate strictly before t + max_age and new from then on."""
    window = DedupWindow(DedupConfig(max_age=1.0))
    window.check("x", 5.0)
    assert window.check("x", 5.999) is True
    assert window.check("x", 6.0) is False


def test_expire_frees_memory_while_idle() -> None:
    """expire() drops aged-out ids and reports how many."""
    window = DedupWindow(DedupConfig(max_age=10.0))
    for i in range(5):
        window.check(str(i), float(i))
    assert len(window) == 5
    assert window.expire(13.5) == 4
    assert len(window) == 1
    assert DedupWindow().expire(100.0) == 0  # no max_age: nothing ages out


def test_long_ids_are_distinguished_by_digest() -> None:
    """Ids above max_id_length are still deduplicated exactly (by digest), and two different
    long ids are not confused."""
    window = DedupWindow(DedupConfig(max_id_length=4))
    long_a, long_b = "a" * 10_000, "a" * 9_999 + "b"
    assert window.check(long_a, 0.0) is False
    assert window.check(long_b, 0.0) is False
    assert window.check(long_a, 0.0) is True
    assert window.check("\ud800" * 10, 0.0) is False  # lone surrogates do not crash


def test_clear_forgets_everything() -> None:
    """After clear() every id is new again."""
    window = DedupWindow()
    window.check("a", 0.0)
    window.clear()
    assert len(window) == 0
    assert window.check("a", 0.0) is False


def test_seeded_random_load_matches_model() -> None:
    """A long seeded random run agrees with the model check by check."""
    rng = random.Random(1234)
    window = DedupWindow(DedupConfig(max_ids=50, max_age=5.0))
    model = Model(50, 5.0)
    now = 0.0
    for _ in range(5000):
        now += rng.choice([0.0, 0.01, 0.1])
        id = str(rng.randrange(120))
        assert window.check(id, now) == model.check(id, now)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_ids": 0},
        {"max_ids": 1.5},
        {"max_ids": True},
        {"max_age": 0},
        {"max_age": -1.0},
        {"max_age": float("nan")},
        {"max_age": float("inf")},
        {"max_age": "1"},
        {"max_id_length": 0},
    ],
)
def test_bad_config_is_refused(kwargs: dict[str, object]) -> None:
    """Out-of-range limits raise InvalidConfigError, a LocalProtocolError and ValueError."""
    with pytest.raises(InvalidConfigError) as info:
        DedupConfig(**kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, LocalProtocolError)
    assert isinstance(info.value, ValueError)


@given(st.lists(st.lists(ids, max_size=8), max_size=8),
       st.sampled_from([None, 1.0]), st.integers(1, 4))
def test_check_all_is_check_in_turn(batches: list[list[str]], max_age: float | None,
                                    max_ids: int) -> None:
    """check_all(ids, now) answers, and remembers, exactly what check() on each id in turn
    at the same now would (a repeat inside one batch included)."""
    config = DedupConfig(max_ids=max_ids, max_age=max_age)
    together, one_by_one = DedupWindow(config), DedupWindow(config)
    for n, batch in enumerate(batches):
        now = n * 0.6
        assert together.check_all(batch, now) == [one_by_one.check(i, now) for i in batch]
        together.expire(now), one_by_one.expire(now)  # an empty batch checked nothing
        assert len(together) == len(one_by_one)
