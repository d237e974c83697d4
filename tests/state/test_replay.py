"""Tests for sse_core._replay.ReplayLog."""

from __future__ import annotations

import random

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from sse_core._errors import InvalidConfigError, InvalidFieldError, LocalProtocolError
from sse_core._events import Event, _make_event
from sse_core._replay import (
    Replay,
    ReplayConfig,
    ReplayLog,
    ReplayResult,
    StoredEvent,
    TooOld,
    UnknownId,
)
from sse_core._serializer import serialize
from sse_core._validators import ClockError


@attrs.define
class Appended:
    seq: int
    id: str
    size: int
    stored_at: float


class Model:
    """The obviously-correct version: the full history in a list, kept events a suffix of it."""

    def __init__(self, config: ReplayConfig) -> None:
        self.config = config
        self.prefix = config.epoch + "-" if config.epoch else ""
        self.history: list[Appended] = []
        self.first = 0  # history[first:] is kept
        self.latest = float("-inf")

    def kept(self) -> list[Appended]:
        return self.history[self.first :]

    def _clock(self, now: float) -> float:
        self.latest = max(self.latest, now)
        return self.latest

    def _expire(self, now: float) -> None:
        if self.config.max_age is not None:
            while self.kept() and self.kept()[0].stored_at <= now - self.config.max_age:
                self.first += 1

    def append(self, id: str | None, size_of: Event, now: float) -> str:
        """Return the id the event gets, or raise InvalidFieldError like the log."""
        now = self._clock(now)
        kept_ids = {a.id for a in self.kept()}
        seq = len(self.history)
        if id is None:
            id = f"{self.prefix}{seq}"
            if id in kept_ids:
                raise InvalidFieldError("id", id, "collision")
        elif id == "" or id in kept_ids or id == f"{self.prefix}start":
            raise InvalidFieldError("id", id, "refused")
        size = len(serialize(attrs.evolve(size_of, id=id)))
        self._expire(now)
        self.history.append(Appended(seq, id, size, now))
        max_bytes = self.config.max_bytes
        if max_bytes is not None and size > max_bytes:
            self.first = len(self.history)
            return id
        while len(self.kept()) > self.config.max_events or (
            max_bytes is not None and sum(a.size for a in self.kept()) > max_bytes
        ):
            self.first += 1
        return id

    def resume(self, last_event_id: str, now: float) -> tuple[str, object]:
        self._expire(self._clock(now))
        kept = self.kept()
        for i, a in enumerate(kept):
            if a.id == last_event_id:
                return ("replay", [x.id for x in kept[i + 1 :]])
        if self.first > 0 and self.history[self.first - 1].id == last_event_id:
            return ("replay", [x.id for x in kept])
        digits = last_event_id[len(self.prefix) :]
        if (
            last_event_id.startswith(self.prefix)
            and digits.isascii()
            and digits.isdigit()
            and len(digits) < 100
            and str(int(digits)) == digits
            and int(digits) < self.first - 1
        ):
            return ("too_old", self.first - int(digits) - 1)
        return ("unknown", None)


def shape(result: ReplayResult) -> tuple[str, object]:
    match result:
        case Replay(events=events):
            return ("replay", [e.id for e in events])
        case TooOld(missed=missed):
            return ("too_old", missed)
        case UnknownId():
            return ("unknown", None)
    raise AssertionError(result)  # pragma: no cover


app_ids = st.sampled_from(["x", "y", "z", "0", "1", "3", "e-1", "e-2", "007", ""])
datas = st.sampled_from(["", "a", "hello world", "line1\nline2", "x" * 40, "é" * 30])


class ReplayMachine(RuleBasedStateMachine):
    """Random appends, lookups and clock moves match the model, and every Replay answer is
    exactly the history after the client's event (never a silent skip)."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.log: ReplayLog | None = None
        self.model: Model | None = None
        self.stored: list[StoredEvent] = []

    @precondition(lambda self: self.log is None)
    @rule(
        max_events=st.integers(1, 6),
        max_bytes=st.one_of(st.none(), st.integers(20, 150)),
        max_age=st.one_of(st.none(), st.sampled_from([1.0, 2.5])),
        epoch=st.sampled_from(["", "e"]),
    )
    def build(
        self, max_events: int, max_bytes: int | None, max_age: float | None, epoch: str
    ) -> None:
        config = ReplayConfig(
            max_events=max_events, max_bytes=max_bytes, max_age=max_age, epoch=epoch
        )
        self.log = ReplayLog(config)
        self.model = Model(config)

    @precondition(lambda self: self.log is not None)
    @rule(id=st.one_of(st.none(), app_ids), data=datas, kind=st.sampled_from(["message", "t"]))
    def append(self, id: str | None, data: str, kind: str) -> None:
        assert self.log is not None and self.model is not None
        event = Event(data=data, event=kind, id=id)
        try:
            want = self.model.append(id, event, self.now)
        except InvalidFieldError:
            before = (len(self.log), self.log.total_bytes, self.log.events())
            with pytest.raises(InvalidFieldError):
                self.log.append(event, self.now)
            assert (len(self.log), self.log.total_bytes, self.log.events()) == before
            return
        stored = self.log.append(event, self.now)
        assert stored.id == want
        assert stored.event == Event(data=data, event=kind, id=want, last_event_id=want)
        assert stored.encoded == serialize(stored.event)
        self.stored.append(stored)

    @precondition(lambda self: self.log is not None)
    @rule(
        pick=st.integers(0, 1000),
        junk=st.sampled_from(
            ["", "nope", "0", "1", "e-0", "e-1", "e-99", "99", "007", "9" * 5000, "e-x", None]
        ),
    )
    def resume(self, pick: int, junk: str | None) -> None:
        assert self.log is not None and self.model is not None
        if junk is None and self.stored:
            last_event_id = self.stored[pick % len(self.stored)].id
        else:
            last_event_id = junk or ""
        result = self.log.resume(last_event_id, self.now)
        assert shape(result) == self.model.resume(last_event_id, self.now)
        if isinstance(result, Replay):
            # The law: a Replay is exactly every event appended after the client's one.
            later = [s for s in self.stored if s.id == last_event_id]
            assert later, "Replay for an id never issued"
            position = max(i for i, s in enumerate(self.stored) if s.id == last_event_id)
            assert list(result.events) == self.stored[position + 1 :]
            assert result.encoded == b"".join(s.encoded for s in self.stored[position + 1 :])

    @precondition(lambda self: self.log is not None)
    @rule(delay=st.sampled_from([0.0, 0.5, 1.0, 3.0]))
    def advance(self, delay: float) -> None:
        self.now += delay

    @precondition(lambda self: self.log is not None)
    @rule()
    def clock_backwards(self) -> None:
        """A now earlier than the latest given is refused and changes nothing: the model
        never sees these calls and the invariant still holds."""
        self.expire()  # the log has now been given self.now
        assert self.log is not None
        earlier = self.now - 1.0
        with pytest.raises(ClockError):
            self.log.append(Event(data="x"), earlier)
        with pytest.raises(ClockError):
            self.log.resume("0", earlier)
        with pytest.raises(ClockError):
            self.log.expire(earlier)

    @precondition(lambda self: self.log is not None)
    @rule()
    def expire(self) -> None:
        assert self.log is not None and self.model is not None
        before = len(self.model.kept())
        self.model._expire(self.model._clock(self.now))
        assert self.log.expire(self.now) == before - len(self.model.kept())

    @invariant()
    def kept_matches_model_and_bounds(self) -> None:
        if self.log is None or self.model is None:
            return
        kept = self.log.events()
        assert [e.id for e in kept] == [a.id for a in self.model.kept()]
        assert len(self.log) == len(kept) <= self.log.config.max_events
        assert self.log.total_bytes == sum(len(e.encoded) for e in kept)
        max_bytes = self.log.config.max_bytes
        assert max_bytes is None or self.log.total_bytes <= max_bytes


TestReplayMachine = ReplayMachine.TestCase
TestReplayMachine.settings = settings(stateful_step_count=50)


@given(
    max_events=st.integers(1, 30),
    max_bytes=st.one_of(st.none(), st.integers(1, 400)),
    datas=st.lists(
        st.text(max_size=60).map(lambda s: s.encode("utf-8", "replace").decode()), max_size=80
    ),
)
def test_bounds_hold_for_any_events(
    max_events: int, max_bytes: int | None, datas: list[str]
) -> None:
    """Count and byte bounds hold after every append, internal storage stays proportional to
    what is kept, and the newest event that fits is always kept."""
    log = ReplayLog(ReplayConfig(max_events=max_events, max_bytes=max_bytes))
    for i, data in enumerate(datas):
        stored = log.append(Event(data=data), float(i))
        assert len(log) <= max_events
        assert max_bytes is None or log.total_bytes <= max_bytes
        assert log.total_bytes == sum(len(e.encoded) for e in log.events())
        assert len(log._entries) <= 2 * len(log) + 64
        fits = max_bytes is None or len(stored.encoded) <= max_bytes
        assert (log.events()[-1:] == (stored,)) == fits


@given(st.lists(st.integers(0, 3), min_size=1, max_size=60), st.integers(1, 10))
def test_every_issued_id_is_answered_without_silent_skip(
    delays: list[int], max_events: int
) -> None:
    """For every id ever issued, resume() answers Replay with exactly the events after it, or
    TooOld with the number of events the client lost; never a shorter Replay."""
    log = ReplayLog(ReplayConfig(max_events=max_events, max_age=5.0, epoch="boot"))
    issued: list[StoredEvent] = []
    now = 0.0
    for d in delays:
        now += d
        issued.append(log.append(Event(data="x"), now))
    kept = log.events()
    for position, stored in enumerate(issued):
        result = log.resume(stored.id, now)
        after = issued[position + 1 :]
        if isinstance(result, Replay):
            assert list(result.events) == after
        else:
            assert isinstance(result, TooOld)
            assert result.missed == len(after) - len(kept) > 0


def test_assigned_ids_are_counters_with_epoch() -> None:
    """Assigned ids are '<epoch>-<n>' (or '<n>' without an epoch), n counting from 0."""
    log = ReplayLog(ReplayConfig(epoch="7f3a"))
    assert [log.append(Event(data="d"), 0.0).id for _ in range(3)] == [
        "7f3a-0",
        "7f3a-1",
        "7f3a-2",
    ]
    plain = ReplayLog()
    plain.append(Event(data="d", id="app"), 0.0)
    assert plain.append(Event(data="d"), 0.0).id == "1"  # app ids consume a number too


def test_encoded_once_with_the_assigned_id() -> None:
    """The stored bytes are the serializer's output for the event carrying its id."""
    log = ReplayLog()
    stored = log.append(Event(data="hi", event="greet"), 0.0)
    assert stored.encoded == b"id: 0\nevent: greet\ndata: hi\n\n"


def test_resume_returns_events_after_the_id() -> None:
    """A kept id gives Replay of every later event; the newest id gives an empty Replay."""
    log = ReplayLog()
    ids = [log.append(Event(data=str(i)), 0.0).id for i in range(5)]
    result = log.resume(ids[1], 0.0)
    assert isinstance(result, Replay)
    assert [e.id for e in result.events] == ids[2:]
    assert log.resume(ids[-1], 0.0) == Replay(events=())


def test_too_old_after_count_eviction() -> None:
    """An assigned id whose successors were evicted is TooOld, with the count missed."""
    log = ReplayLog(ReplayConfig(max_events=3, epoch="b"))
    for _ in range(10):
        log.append(Event(data="x"), 0.0)
    # Kept: b-7, b-8, b-9. A client at b-2 missed b-3..b-6.
    assert log.resume("b-2", 0.0) == TooOld(last_event_id="b-2", missed=4)
    # A client at b-6 missed nothing that is gone: exact resumption.
    result = log.resume("b-6", 0.0)
    assert isinstance(result, Replay)
    assert [e.id for e in result.events] == ["b-7", "b-8", "b-9"]


def test_unknown_ids() -> None:
    """Ids never issued here -- another epoch, the future, junk, '' -- are UnknownId."""
    log = ReplayLog(ReplayConfig(max_events=2, epoch="new"))
    for _ in range(5):
        log.append(Event(data="x"), 0.0)
    for junk in ["old-1", "new-5", "new-01", "new-", "", "new-" + "9" * 10_000, "new-\u0661"]:
        assert log.resume(junk, 0.0) == UnknownId(last_event_id=junk)


def test_evicted_application_id_is_unknown_except_the_last() -> None:
    """An evicted application id cannot be placed (UnknownId) -- except the most recently
    evicted one, from which resumption is still exact."""
    log = ReplayLog(ReplayConfig(max_events=2))
    for name in ["a", "b", "c", "d"]:
        log.append(Event(data="x", id=name), 0.0)
    assert log.resume("a", 0.0) == UnknownId(last_event_id="a")
    result = log.resume("b", 0.0)
    assert isinstance(result, Replay)
    assert [e.id for e in result.events] == ["c", "d"]


def test_age_eviction_keeps_an_up_to_date_client_exact() -> None:
    """When everything aged out, a client holding the newest id resumes with an empty
    Replay, while an older client learns it is TooOld."""
    log = ReplayLog(ReplayConfig(max_age=10.0))
    for i in range(3):
        log.append(Event(data="x"), float(i))
    assert log.expire(11.5) == 2
    assert log.resume("2", 100.0) == Replay(events=())
    assert len(log) == 0
    assert log.resume("1", 100.0) == TooOld(last_event_id="1", missed=1)
    assert log.resume("0", 100.0) == TooOld(last_event_id="0", missed=2)


def test_age_boundary_is_exclusive() -> None:
    """An event appended at t is kept strictly before t + max_age and evicted from then on."""
    log = ReplayLog(ReplayConfig(max_age=10.0))
    log.append(Event(data="x"), 5.0)
    assert log.expire(14.999) == 0
    assert log.expire(15.0) == 1


def test_auto_form_id_of_an_application_slot_is_unknown() -> None:
    """An id in the log's own form whose number went to an application id was never issued:
    it is UnknownId, not a replay."""
    log = ReplayLog(ReplayConfig(max_events=1))
    log.append(Event(data="x", id="app"), 0.0)  # number 0
    log.append(Event(data="y"), 0.0)  # "1"; evicts "app"
    assert log.resume("0", 0.0) == UnknownId(last_event_id="0")
    assert log.resume("app", 0.0) == Replay(events=log.events())


def test_oversize_event_is_sent_but_not_kept() -> None:
    """An event bigger than max_bytes is returned encoded but not kept; clients behind it are
    TooOld, the client that received it resumes exactly."""
    log = ReplayLog(ReplayConfig(max_bytes=50))
    log.append(Event(data="small"), 0.0)
    big = log.append(Event(data="x" * 100), 0.0)
    assert big.encoded.endswith(b"x" * 100 + b"\n\n")
    assert len(log) == 0 and log.total_bytes == 0
    assert log.resume("0", 0.0) == TooOld(last_event_id="0", missed=1)
    assert log.resume(big.id, 0.0) == Replay(events=())
    after = log.append(Event(data="small"), 0.0)
    assert log.resume(big.id, 0.0) == Replay(events=(after,))


def test_byte_bound_evicts_oldest() -> None:
    """The byte bound evicts oldest-first until the total fits."""
    log = ReplayLog(ReplayConfig(max_bytes=40))
    sizes = [len(log.append(Event(data="y" * 10), 0.0).encoded) for _ in range(5)]
    assert sizes[0] == len(b"id: 0\ndata: " + b"y" * 10 + b"\n\n")
    assert log.total_bytes <= 40
    assert len(log) == 40 // sizes[0]


@pytest.mark.parametrize("bad", ["", "a\nb", "a\rb", "a\x00b"])
def test_bad_application_ids_are_refused(bad: str) -> None:
    """Empty ids, and ids with CR, LF or NUL (even smuggled past Event's checks), raise
    InvalidFieldError and leave the log unchanged."""
    log = ReplayLog()
    event = _make_event("d", "message", bad, "")
    with pytest.raises(InvalidFieldError) as info:
        log.append(event, 0.0)
    assert isinstance(info.value, ValueError)
    assert len(log) == 0
    assert log.append(Event(data="d"), 0.0).id == "0"  # no number was consumed


def test_duplicate_application_id_is_refused() -> None:
    """An id the log still keeps cannot be appended again."""
    log = ReplayLog()
    log.append(Event(data="d", id="x"), 0.0)
    with pytest.raises(InvalidFieldError, match="already in the replay log"):
        log.append(Event(data="e", id="x"), 0.0)
    assert len(log) == 1


def test_assigned_id_collision_is_refused() -> None:
    """Without an epoch, an application id like '1' can take the id the log would assign;
    the append is refused with advice to set an epoch."""
    log = ReplayLog()
    log.append(Event(data="d", id="1"), 0.0)
    with pytest.raises(InvalidFieldError, match="epoch"):
        log.append(Event(data="d"), 0.0)


def test_unencodable_event_leaves_log_unchanged() -> None:
    """A lone surrogate in data raises InvalidFieldError before anything changes."""
    log = ReplayLog(ReplayConfig(max_age=1.0))
    log.append(Event(data="ok"), 0.0)
    with pytest.raises(InvalidFieldError):
        log.append(Event(data="\ud800"), 5.0)
    assert len(log) == 1


def test_seeded_random_load_matches_model() -> None:
    """A long seeded run of appends and lookups agrees with the model."""
    rng = random.Random(7)
    config = ReplayConfig(max_events=30, max_bytes=600, max_age=3.0, epoch="s")
    log = ReplayLog(config)
    model = Model(config)
    ids: list[str] = []
    now = 0.0
    for _ in range(1500):
        now += rng.choice([0.0, 0.05, 0.2])
        event = Event(data="z" * rng.randrange(0, 40))
        stored = log.append(event, now)
        assert stored.id == model.append(None, event, now)
        ids.append(stored.id)
        probe = rng.choice(ids)
        assert shape(log.resume(probe, now)) == model.resume(probe, now)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_events": 0},
        {"max_events": None},
        {"max_bytes": 0},
        {"max_bytes": 1.5},
        {"max_age": 0.0},
        {"max_age": float("inf")},
        {"max_age": True},
        {"epoch": "a\nb"},
        {"epoch": "a\x00"},
        {"epoch": "\udc80"},
        {"epoch": 3},
    ],
)
def test_bad_config_is_refused(kwargs: dict[str, object]) -> None:
    """Out-of-range limits and bad epochs raise InvalidConfigError (also ValueError)."""
    with pytest.raises(InvalidConfigError) as info:
        ReplayConfig(**kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, LocalProtocolError)
    assert isinstance(info.value, ValueError)


def test_position_marks_the_end_of_the_log() -> None:
    """position is the start marker before any event, then the newest id; resuming from it
    replays exactly what is appended afterwards."""
    log = ReplayLog(ReplayConfig(epoch="b1", max_events=2))
    assert log.position == "b1-start"
    start = log.position
    log.append(Event(data="a"), 0.0)
    assert [s.event.data for s in log.resume(start, 0.0).events] == ["a"]  # type: ignore[union-attr]
    middle = log.position
    assert middle == "b1-0"
    log.append(Event(data="b"), 0.0)
    assert [s.event.data for s in log.resume(middle, 0.0).events] == ["b"]  # type: ignore[union-attr]
    log.append(Event(data="c"), 0.0)  # evicts "a"
    assert log.resume(start, 0.0) == TooOld(last_event_id="b1-start", missed=1)


def test_start_marker_cannot_be_an_application_id() -> None:
    """An application id equal to the start marker is refused (it would be ambiguous)."""
    log = ReplayLog()
    with pytest.raises(InvalidFieldError):
        log.append(Event(data="x", id="start"), 0.0)


def test_resume_in_steps_of_max_bytes() -> None:
    """resume(max_bytes=) returns the events after the id up to the byte bound (at least one
    event), says whether they reach the newest, and resuming from the last id continues
    exactly where it stopped; oldest() does the same from the oldest kept event."""
    log = ReplayLog(ReplayConfig(max_bytes=None))
    stored = [log.append(Event(data="x" * 20), 0.0) for _ in range(10)]
    size = len(stored[-1].encoded)
    seen: list[str] = []
    cursor = stored[0].id
    while True:
        step = log.resume(cursor, 0.0, max_bytes=3 * size)
        assert isinstance(step, Replay) and 1 <= len(step.events) <= 3
        assert sum(len(e.encoded) for e in step.events) <= 3 * size
        seen += [e.id for e in step.events]
        cursor = step.events[-1].id
        if step.is_complete:
            break
    assert seen == [s.id for s in stored[1:]]
    big = log.resume(stored[0].id, 0.0, max_bytes=1)  # smaller than one event: still one
    assert [e.id for e in big.events] == [stored[1].id] and not big.is_complete  # type: ignore[union-attr]
    first = log.oldest(max_bytes=2 * size)
    assert [e.id for e in first.events] == [s.id for s in stored[:2]] and not first.is_complete
    assert log.oldest().events == log.events() and log.oldest().is_complete
    assert log.resume(stored[-1].id, 0.0, max_bytes=1) == Replay(events=(), is_complete=True)
    for bad in (0, -1, 1.5):
        with pytest.raises(InvalidConfigError):
            log.resume(stored[0].id, 0.0, max_bytes=bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidConfigError):
            log.oldest(max_bytes=bad)  # type: ignore[arg-type]
