"""Tests for sse_core._chunking: split_message and ChunkAssembler."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from sse_core._chunking import (
    CHUNK_EVENT,
    AssemblerOutput,
    ChunkAssembler,
    ChunkConfig,
    ChunkLimitExceeded,
    DropReason,
    MessageDropped,
    split_message,
)
from sse_core._errors import (
    InvalidConfigError,
    InvalidFieldError,
    LimitExceeded,
    LocalProtocolError,
    RemoteProtocolError,
)
from sse_core._events import Comment, Event, Retry
from sse_core._parser import Parser
from sse_core._serializer import serialize_many
from sse_core._validators import ClockError


def normalised(text: str) -> str:
    """What a stream delivers for ``text`` sent as data: CRLF and CR become LF."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def chunk(data: str, *, id: str | None = None, last_event_id: str = "") -> Event:
    """A chunk event with hand-written data."""
    return Event(data=data, event=CHUNK_EVENT, id=id, last_event_id=last_event_id)


def records(out: list[AssemblerOutput]) -> list[MessageDropped]:
    return [item for item in out if isinstance(item, MessageDropped)]


def summary(item: object) -> object:
    """A record without its free-text detail, for comparing with the model."""
    if isinstance(item, MessageDropped):
        return (item.reason, item.message_id, item.event, item.received, item.count)
    return item


# --- split_message ---------------------------------------------------------------------------


def test_documented_wire_bytes() -> None:
    """The module docstring's example gives exactly the documented bytes."""
    events = split_message(
        "hello, wörld", message_id="m1", max_chunk_size=5, event="greeting", id="7"
    )
    assert serialize_many(events) == (
        "event: sse-chunk\ndata: m1 0 3 13 greeting\ndata: hello\n\n"
        "event: sse-chunk\ndata: m1 1 3 13 greeting\ndata: , wö\n\n"
        "id: 7\nevent: sse-chunk\ndata: m1 2 3 13 greeting\ndata: rld\n\n"
    ).encode()


def test_empty_payload_is_one_empty_chunk() -> None:
    """An empty payload is sent as one chunk with empty text, and comes back empty."""
    (only,) = split_message("", message_id="e", max_chunk_size=4)
    assert only.data == "e 0 1 0 message\n"
    (out,) = ChunkAssembler().feed(only, now=0.0)
    assert out == Event(data="", event="message")


@given(payload=st.text(), max_chunk_size=st.integers(4, 40))
def test_chunks_respect_size_and_code_points(payload: str, max_chunk_size: int) -> None:
    """Each chunk's text fits max_chunk_size UTF-8 bytes, is never empty unless the payload
    is, and the texts concatenate to the normalised payload; the header counts are right."""
    events = split_message(payload, message_id="x", max_chunk_size=max_chunk_size, id="i")
    total = len(normalised(payload).encode())
    texts = []
    for index, event in enumerate(events):
        header, text = event.data.split("\n", 1)
        assert header == f"x {index} {len(events)} {total} message"
        assert event.event == CHUNK_EVENT
        assert event.id == ("i" if index == len(events) - 1 else None)
        assert len(text.encode()) <= max_chunk_size
        assert text or total == 0
        texts.append(text)
    assert "".join(texts) == normalised(payload)


def test_split_cuts_before_multibyte_characters() -> None:
    """A cut never falls inside a code point's UTF-8 sequence."""
    events = split_message("a€€😀", message_id="m", max_chunk_size=5)
    assert [e.data.split("\n", 1)[1] for e in events] == ["a€", "€", "😀"]


def test_split_normalises_cr() -> None:
    """CR and CRLF become LF before cutting, so a CRLF across a cut is still one LF."""
    events = split_message("abc\r\ndef\rg", message_id="m", max_chunk_size=4)
    assert [e.data for e in events] == ["m 0 3 9 message\nabc\n", "m 1 3 9 message\ndef\n",
                                        "m 2 3 9 message\ng"]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"payload": b"x"}, InvalidFieldError),
        ({"payload": "a\ud800b"}, InvalidFieldError),
        ({"message_id": ""}, InvalidFieldError),
        ({"message_id": "a b"}, InvalidFieldError),
        ({"message_id": "é"}, InvalidFieldError),
        ({"message_id": "x" * 65}, InvalidFieldError),
        ({"message_id": 5}, InvalidFieldError),
        ({"max_chunk_size": 3}, InvalidConfigError),
        ({"max_chunk_size": 4.0}, InvalidConfigError),
        ({"max_chunk_size": True}, InvalidConfigError),
        ({"event": ""}, InvalidFieldError),
        ({"event": "a\nb"}, InvalidFieldError),
        ({"event": "t" * 257}, InvalidFieldError),
        ({"event": CHUNK_EVENT}, InvalidFieldError),
        ({"chunk_event": "c\r"}, InvalidFieldError),
        ({"id": "a\x00"}, InvalidFieldError),
    ],
)
def test_split_rejects_bad_arguments(kwargs: dict[str, Any], error: type[Exception]) -> None:
    """Bad arguments raise a LocalProtocolError that is also a ValueError."""
    arguments: dict[str, Any] = {"payload": "data", "message_id": "m", "max_chunk_size": 8}
    arguments.update(kwargs)
    with pytest.raises(error) as info:
        split_message(**arguments)
    assert isinstance(info.value, LocalProtocolError)
    assert isinstance(info.value, ValueError)


def test_split_accepts_grammar_extremes() -> None:
    """A 64-character id and a 256-character type with spaces are accepted and round-trip."""
    mid = "Az09-._~" * 8
    kind = " x y " * 51 + "z"
    events = split_message("payload", message_id=mid, max_chunk_size=4, event=kind)
    assembler = ChunkAssembler()
    out = [item for e in events for item in assembler.feed(e, now=0.0)]
    assert out == [Event(data="payload", event=kind)]


# --- round trips -----------------------------------------------------------------------------


@st.composite
def traffic(draw: st.DrawFn) -> tuple[list[Event], list[str], list[Event], int]:
    """Several messages split, shuffled, interleaved with plain events and partly repeated.

    Returns the stream, the payloads, the plain events in order, and how many repeats were
    inserted. Repeats of a chunk are placed after it and before its message completes, which
    is when the assembler still holds the message.
    """
    payloads = draw(st.lists(st.text(max_size=60), min_size=1, max_size=5))
    rng = draw(st.randoms(use_true_random=False))
    stream: list[tuple[int, Event]] = []
    for number, payload in enumerate(payloads):
        size = draw(st.integers(4, 24))
        for event in split_message(
            payload, message_id=f"m{number}", max_chunk_size=size, event=f"t{number}",
            id=f"id{number}",
        ):
            stream.append((number, event))
    rng.shuffle(stream)
    plain = [Event(data=f"plain {n}", event="message") for n in range(draw(st.integers(0, 4)))]
    positions = sorted(rng.randrange(len(stream) + 1) for _ in plain)
    for offset, (position, event) in enumerate(zip(positions, plain, strict=True)):
        stream.insert(position + offset, (-1, event))
    repeats = draw(st.integers(0, 6))
    inserted = 0
    for _ in range(repeats):
        position = rng.randrange(len(stream))
        number, event = stream[position]
        if number < 0:
            continue
        last = max(i for i, (n, _) in enumerate(stream) if n == number)
        if position >= last:
            continue
        stream.insert(rng.randint(position + 1, last), (number, event))
        inserted += 1
    return [event for _, event in stream], payloads, plain, inserted


@given(case=traffic())
def test_round_trip_shuffled_interleaved_repeated(
    case: tuple[list[Event], list[str], list[Event], int],
) -> None:
    """Any payloads, any chunk sizes, chunks in any order, interleaved with other messages
    and plain events, some repeated: every payload comes back once, intact (CR normalised),
    with its type and id; plain events pass through in order; repeats are counted."""
    stream, payloads, plain, inserted = case
    assembler = ChunkAssembler(ChunkConfig(max_chunks=100, max_pending=5))
    now = 0.0
    out: list[AssemblerOutput] = []
    for event in stream:
        out.extend(assembler.feed(event, now))
        now += 0.01
    assert records(out) == []
    assert [e for e in out if e.event == "message"] == plain
    rebuilt = {e.event: e for e in out if isinstance(e, Event) and e.event != "message"}
    assert len(rebuilt) + len(plain) == len(out)
    assert rebuilt == {
        f"t{n}": Event(data=normalised(p), event=f"t{n}", id=f"id{n}")
        for n, p in enumerate(payloads)
    }
    assert assembler.duplicates == inserted
    assert len(assembler) == 0 and assembler.buffered_size == 0 and assembler.reserved_size == 0
    assert assembler.next_deadline() is None


@given(case=traffic(), seed=st.integers(0, 2**32))
def test_round_trip_through_the_wire(
    case: tuple[list[Event], list[str], list[Event], int], seed: int
) -> None:
    """Serialized, cut at random byte positions and parsed, the chunks still assemble."""
    stream, payloads, plain, _ = case
    wire = serialize_many(stream)
    rng = random.Random(seed)
    cuts = sorted(rng.randrange(len(wire) + 1) for _ in range(rng.randrange(6)))
    parser = Parser()
    assembler = ChunkAssembler(ChunkConfig(max_chunks=100, max_pending=5))
    out: list[AssemblerOutput] = []
    for start, end in zip([0, *cuts], [*cuts, len(wire)], strict=True):
        for item in parser.feed(wire[start:end]):
            out.extend(assembler.feed(item, now=1.0))
    assert records(out) == []
    assert [e.data for e in out if e.event == "message"] == [e.data for e in plain]
    assert {e.event: e.data for e in out if e.event != "message"} == {
        f"t{n}": normalised(p) for n, p in enumerate(payloads)
    }


# --- the model and the state machine ---------------------------------------------------------


class LimitRaised(Exception):
    def __init__(self, limit: str, items: list[object]) -> None:
        self.limit = limit
        self.items = items


def model_parse(data: str) -> tuple[str, int, int, int, str, str] | None:
    """Parse the header the slow, obvious way."""
    if "\n" not in data:
        return None
    header, text = data.split("\n", 1)
    fields = header.split(" ", 4)
    if len(fields) != 5:
        return None
    mid, index, count, total, kind = fields
    allowed = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
    if not 1 <= len(mid) <= 64 or not set(mid) <= allowed:
        return None
    for number in (index, count, total):
        if not (number.isascii() and number.isdigit() and str(int(number)) == number):
            return None
        if len(number) > 18:
            return None
    if not 1 <= len(kind) <= 256 or "\r" in kind or kind == CHUNK_EVENT:
        return None
    if int(index) >= int(count):
        return None
    return mid, int(index), int(count), int(total), kind, text


class Model:
    """The obviously-correct assembler: plain dicts, sums recomputed, expiry by sorting."""

    def __init__(self, config: ChunkConfig) -> None:
        self.config = config
        # mid -> [count, total, kind, {index: text}, final_id, deadline, progress_number]
        self.pending: dict[str, list[Any]] = {}
        self.latest = float("-inf")
        self.duplicates = 0
        self.progress = 0

    def size(self, mid: str) -> int:
        return sum(len(t.encode("utf-8", "surrogatepass")) for t in self.pending[mid][3].values())

    def dropped(self, reason: DropReason, mid: str) -> object:
        count, _, kind, chunks, *_ = self.pending.pop(mid)
        return (reason, mid, kind, len(chunks), count)

    def expire(self, now: float) -> list[object]:
        due = sorted(
            (p[6], mid) for mid, p in self.pending.items() if p[5] <= now
        )
        return [self.dropped(DropReason.EXPIRED, mid) for _, mid in due]

    def next_deadline(self) -> float | None:
        return min((p[5] for p in self.pending.values()), default=None)

    def poll(self, now: float) -> list[object]:
        self.latest = now = max(now, self.latest)
        return self.expire(now)

    def feed(self, item: Event, now: float) -> list[object]:
        self.latest = now = max(now, self.latest)
        out = self.expire(now)
        if item.event != CHUNK_EVENT:
            return [*out, item]
        parsed = model_parse(item.data)
        if parsed is None:
            return [*out, (DropReason.MALFORMED, None, None, 0, None)]
        mid, index, count, total, kind, text = parsed
        size = len(text.encode("utf-8", "surrogatepass"))
        c = self.config
        if mid not in self.pending:
            if count > c.max_chunks:
                raise LimitRaised("max_chunks", out)
            if total > c.max_message_size:
                raise LimitRaised("max_message_size", out)
            if size > total or (count == 1 and size != total):
                return [*out, (DropReason.SIZE_MISMATCH, mid, kind, 0, count)]
            if count == 1:
                return [*out, Event(data=text, event=kind, id=item.id,
                                    last_event_id=item.last_event_id)]
            if len(self.pending) >= c.max_pending:
                raise LimitRaised("max_pending", out)
            reserved = sum(p[1] for p in self.pending.values())
            if c.max_buffered_size is not None and reserved + total > c.max_buffered_size:
                raise LimitRaised("max_buffered_size", out)
            self.pending[mid] = [count, total, kind, {}, None, None, None]
        p = self.pending[mid]
        if (p[0], p[1], p[2]) != (count, total, kind):
            return [*out, self.dropped(DropReason.INCONSISTENT, mid)]
        if index in p[3]:
            if p[3][index] == text:
                self.duplicates += 1
                return out
            return [*out, self.dropped(DropReason.CONFLICT, mid)]
        if self.size(mid) + size > total:
            return [*out, self.dropped(DropReason.SIZE_MISMATCH, mid)]
        p[3][index] = text
        if index == count - 1:
            p[4] = item.id
        p[5] = now + c.timeout
        self.progress += 1
        p[6] = self.progress
        if len(p[3]) < count:
            return out
        if self.size(mid) != total:
            return [*out, self.dropped(DropReason.SIZE_MISMATCH, mid)]
        del self.pending[mid]
        data = "".join(p[3][i] for i in range(count))
        return [*out, Event(data=data, event=kind, id=p[4], last_event_id=item.last_event_id)]

    def clear(self) -> list[object]:
        order = sorted((p[6], mid) for mid, p in self.pending.items())
        return [self.dropped(DropReason.CLEARED, mid) for _, mid in order]


# Well-formed messages the machine sends chunk by chunk (same id, same content each time).
MESSAGES = {
    "a": split_message("hello wörld", message_id="a", max_chunk_size=4, event="t", id="A"),
    "b": split_message("", message_id="b", max_chunk_size=4, event="u"),
    "c": split_message("x\ny\r\nz\rw", message_id="c", max_chunk_size=4, event="t", id="C"),
    "d": split_message("€€€€", message_id="d", max_chunk_size=4, event="v"),
}
MALFORMED = [
    "no header line",
    "a 0 2 5 t",  # no LF
    "a 0 2 5\nx",  # no type
    "a 00 2 5 t\nx",  # leading zero
    "a +0 2 5 t\nx",
    "a 0 2 \uff15 t\nx",  # FULLWIDTH DIGIT FIVE: not an ASCII digit
    "a 2 2 5 t\nx",  # index >= count
    "a 0 0 5 t\nx",  # count 0
    "a  0 2 5 t\nx",
    "é 0 2 5 t\nx",
    f"a 0 2 5 {CHUNK_EVENT}\nx",
    "a 0 2 1000000000000000000 t\nx",  # 19 digits
    "x" * 65 + " 0 1 0 t\n",
]


class AssemblerMachine(RuleBasedStateMachine):
    """Random chunk traffic gives the same outputs, limit errors and state as the model."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.assembler: ChunkAssembler | None = None
        self.model: Model | None = None

    @precondition(lambda self: self.assembler is None)
    @rule(
        max_chunks=st.sampled_from([6, 5, 4, 2]),
        max_message_size=st.sampled_from([16, 14, 12, 5]),
        max_pending=st.integers(1, 3),
        extra=st.one_of(st.none(), st.integers(0, 16)),
        timeout=st.sampled_from([0.5, 1.0, 2.0]),
    )
    def build(
        self, max_chunks: int, max_message_size: int, max_pending: int, extra: int | None,
        timeout: float,
    ) -> None:
        config = ChunkConfig(
            max_chunks=max_chunks,
            max_message_size=max_message_size,
            max_pending=max_pending,
            max_buffered_size=None if extra is None else max_message_size + extra,
            timeout=timeout,
        )
        self.assembler = ChunkAssembler(config)
        self.model = Model(config)

    def compare_feed(self, item: Event) -> None:
        assert self.assembler is not None and self.model is not None
        try:
            expected = self.model.feed(item, self.now)
        except LimitRaised as raised:
            with pytest.raises(ChunkLimitExceeded) as info:
                self.assembler.feed(item, self.now)
            assert info.value.limit == raised.limit
            assert [summary(r) for r in info.value.items] == raised.items
            return
        assert [summary(x) for x in self.assembler.feed(item, self.now)] == expected

    @precondition(lambda self: self.assembler is not None)
    @rule(mid=st.sampled_from(sorted(MESSAGES)), index=st.integers(0, 10),
          last_event_id=st.sampled_from(["", "L"]))
    def send_chunk(self, mid: str, index: int, last_event_id: str) -> None:
        events = MESSAGES[mid]
        event = events[index % len(events)]
        self.compare_feed(
            Event(data=event.data, event=event.event, id=event.id, last_event_id=last_event_id)
        )

    @precondition(lambda self: self.assembler is not None)
    @rule(
        mid=st.sampled_from(["a", "c", "z"]),
        index=st.integers(0, 4),
        count=st.integers(1, 5),
        total=st.one_of(st.integers(0, 12), st.just(10**17)),
        kind=st.sampled_from(["t", "u"]),
        text=st.sampled_from(["", "h", "ell", "o w", "x\ny", "€", "\ud800"]),
    )
    def send_raw(self, mid: str, index: int, count: int, total: int, kind: str, text: str) -> None:
        self.compare_feed(chunk(f"{mid} {index} {count} {total} {kind}\n{text}"))

    @precondition(lambda self: self.assembler is not None)
    @rule(mid=st.sampled_from(sorted(MESSAGES)), index=st.integers(0, 10),
          extra=st.sampled_from(["", "!", "é"]))
    def send_altered(self, mid: str, index: int, extra: str) -> None:
        events = MESSAGES[mid]
        header, text = events[index % len(events)].data.split("\n", 1)
        self.compare_feed(chunk(f"{header}\n{text[1:]}{extra}"))

    @precondition(lambda self: self.assembler is not None)
    @rule(data=st.sampled_from(MALFORMED))
    def send_malformed(self, data: str) -> None:
        self.compare_feed(chunk(data))

    @precondition(lambda self: self.assembler is not None)
    @rule(kind=st.sampled_from(["message", "t", "sse-chunk-not"]))
    def send_plain(self, kind: str) -> None:
        self.compare_feed(Event(data="a 0 1 1 t\nx", event=kind))

    @precondition(lambda self: self.assembler is not None)
    @rule(delay=st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.5]))
    def advance(self, delay: float) -> None:
        self.now += delay

    @precondition(lambda self: self.assembler is not None)
    @rule(back=st.sampled_from([0.5, 3.0]))
    def clock_backwards(self, back: float) -> None:
        """A now earlier than the latest given is refused and changes nothing: the model
        never sees these calls and the state still matches it."""
        self.poll(0.0)  # the assembler has now been given self.now
        assert self.assembler is not None
        with pytest.raises(ClockError):
            self.assembler.feed(chunk("a 0 2 2 t\nx"), self.now - back)
        with pytest.raises(ClockError):
            self.assembler.poll(self.now - back)

    @precondition(lambda self: self.assembler is not None)
    @rule(delay=st.sampled_from([0.0, 1.0, 2.5]))
    def poll(self, delay: float) -> None:
        assert self.assembler is not None and self.model is not None
        self.now += delay
        expected = self.model.poll(self.now)
        assert [summary(r) for r in self.assembler.poll(self.now)] == expected

    @precondition(lambda self: self.assembler is not None)
    @rule()
    def clear(self) -> None:
        assert self.assembler is not None and self.model is not None
        assert [summary(r) for r in self.assembler.clear()] == self.model.clear()

    @invariant()
    def same_state(self) -> None:
        if self.assembler is None or self.model is None:
            return
        model = self.model
        assert len(self.assembler) == len(model.pending)
        assert self.assembler.next_deadline() == model.next_deadline()
        assert self.assembler.duplicates == model.duplicates
        assert self.assembler.buffered_size == sum(model.size(m) for m in model.pending)
        assert self.assembler.reserved_size == sum(p[1] for p in model.pending.values())


TestAssemblerMachine = AssemblerMachine.TestCase
TestAssemblerMachine.settings = settings(stateful_step_count=50)


# --- bounds ----------------------------------------------------------------------------------

raw_chunks = st.builds(
    lambda mid, index, count, total, kind, text: chunk(
        f"{mid} {index} {count} {total} {kind}\n{text}"
    ),
    mid=st.sampled_from(["a", "b", "c", "d", "e"]),
    index=st.integers(0, 8),
    count=st.one_of(st.integers(1, 9), st.just(10**17)),
    total=st.one_of(st.integers(0, 40), st.just(10**17)),
    kind=st.sampled_from(["t", "u"]),
    text=st.text(max_size=12),
)


@given(
    steps=st.lists(st.tuples(raw_chunks, st.sampled_from([0.0, 0.1, 1.0, 3.0])), max_size=60),
    max_pending=st.integers(1, 4),
    max_message_size=st.integers(1, 30),
    extra=st.one_of(st.none(), st.integers(0, 40)),
)
def test_memory_stays_within_limits(
    steps: list[tuple[Event, float]], max_pending: int, max_message_size: int, extra: int | None
) -> None:
    """Whatever chunks arrive (huge announced counts and sizes included), the assembler holds
    at most max_pending messages, each within its announced size, count and the limits, and
    all of them within max_buffered_size; only ChunkLimitExceeded ever escapes."""
    config = ChunkConfig(
        max_chunks=5,
        max_message_size=max_message_size,
        max_pending=max_pending,
        max_buffered_size=None if extra is None else max_message_size + extra,
        timeout=2.0,
    )
    assembler = ChunkAssembler(config)
    now = 0.0
    for event, delay in steps:
        now += delay
        try:
            assembler.feed(event, now)
        except ChunkLimitExceeded as error:
            assert error.value > error.maximum
            assert error.limit in {"max_chunks", "max_message_size", "max_pending",
                                   "max_buffered_size"}
        pending = assembler._pending  # white box: the per-message bounds
        assert len(pending) == len(assembler) <= max_pending
        total_size = 0
        for message in pending.values():
            size = sum(len(t.encode("utf-8", "surrogatepass")) for t in message.chunks.values())
            assert size == message.size <= message.total <= max_message_size
            assert len(message.chunks) < message.count <= config.max_chunks
            total_size += size
        assert assembler.buffered_size == total_size <= assembler.reserved_size
        assert assembler.reserved_size == sum(m.total for m in pending.values())
        if config.max_buffered_size is not None:
            assert assembler.reserved_size <= config.max_buffered_size


@given(
    deliveries=st.lists(
        st.tuples(st.text(max_size=30), st.integers(4, 8), st.integers(0, 2**32)),
        min_size=1, max_size=6,
    ),
    seed=st.integers(0, 2**32),
)
def test_abandoned_messages_are_reported(
    deliveries: list[tuple[str, int, int]], seed: int
) -> None:
    """Messages that miss chunks are reported EXPIRED once, at their deadline and not before;
    complete ones are assembled; afterwards nothing is held."""
    rng = random.Random(seed)
    assembler = ChunkAssembler(ChunkConfig(max_pending=6, timeout=5.0))
    stream = []
    incomplete = set()
    complete = set()
    for number, (payload, size, keep_seed) in enumerate(deliveries):
        events = split_message(payload, message_id=f"m{number}", max_chunk_size=size,
                               event=f"t{number}")
        keep = random.Random(keep_seed)
        kept = [e for e in events if keep.random() < 0.7]
        (incomplete if len(kept) < len(events) else complete).add(f"m{number}")
        stream.extend(kept)
    rng.shuffle(stream)
    now = 0.0
    out: list[AssemblerOutput] = []
    for event in stream:
        out.extend(assembler.feed(event, now))
        now += 0.01
    assert records(out) == []
    assert {e.event for e in out} == {"t" + m[1:] for m in complete}
    holding = {m for m in incomplete if any(e.data.startswith(m + " ") for e in stream)}
    assert len(assembler) == len(holding)
    deadline = assembler.next_deadline()
    if not holding:
        assert deadline is None
        return
    assert deadline is not None
    assert assembler.poll(deadline - 0.001) == []
    reported = assembler.poll(deadline) + assembler.poll(deadline + 1000.0)
    assert sorted(r.message_id or "" for r in reported) == sorted(holding)
    assert all(r.reason is DropReason.EXPIRED for r in reported)
    assert all(0 < r.received < (r.count or 0) for r in reported)
    assert len(assembler) == 0 and assembler.next_deadline() is None


# --- examples --------------------------------------------------------------------------------


def feed_all(assembler: ChunkAssembler, items: list[Event], now: float = 0.0) -> list[Any]:
    return [out for item in items for out in assembler.feed(item, now)]


def test_non_chunk_items_pass_through() -> None:
    """Plain events, other types, comments and retries come back unchanged and in order."""
    items = [Event(data="x"), Event(data="m 0 1 1 t\nx", event="other"), Comment(text="hb"),
             Retry(milliseconds=5)]
    assembler = ChunkAssembler()
    assert [assembler.feed(item, now=0.0) for item in items] == [[item] for item in items]


def test_assembled_event_fields() -> None:
    """The assembled event has the message's type, the final chunk's id (even when it was not
    the last to arrive), and the last_event_id of the chunk that completed it."""
    first, final = split_message("abcdefgh", message_id="m", max_chunk_size=4, event="t",
                                 id="42")
    assembler = ChunkAssembler()
    assert assembler.feed(Event(data=final.data, event=CHUNK_EVENT, id="42",
                                last_event_id="42"), now=0.0) == []
    (out,) = assembler.feed(Event(data=first.data, event=CHUNK_EVENT, last_event_id="43"), 1.0)
    assert out == Event(data="abcdefgh", event="t", id="42", last_event_id="43")


def test_repeated_chunk_same_text_is_counted() -> None:
    """A repeat with the same text is ignored, counted, and does not extend the deadline."""
    events = split_message("abcdefgh", message_id="m", max_chunk_size=4)
    assembler = ChunkAssembler(ChunkConfig(timeout=10.0))
    assert assembler.feed(events[0], now=0.0) == []
    assert assembler.feed(events[0], now=5.0) == []
    assert assembler.duplicates == 1
    assert assembler.next_deadline() == 10.0
    (out,) = assembler.feed(events[1], now=6.0)
    assert out == Event(data="abcdefgh")


def test_repeated_chunk_different_text_drops_the_message() -> None:
    """A repeat with different text drops the message with a CONFLICT record; other messages
    go on."""
    assembler = ChunkAssembler()
    other = split_message("12345678", message_id="o", max_chunk_size=4)
    assert feed_all(assembler, [chunk("m 0 2 8 t\nabcd"), other[0]]) == []
    (record,) = assembler.feed(chunk("m 0 2 8 t\nabce"), now=0.0)
    assert record.reason is DropReason.CONFLICT
    assert (record.message_id, record.event, record.received, record.count) == ("m", "t", 1, 2)
    assert "chunk 0" in record.detail
    assert len(assembler) == 1 and assembler.reserved_size == 8
    assert assembler.feed(other[1], now=0.0) == [Event(data="12345678")]


@pytest.mark.parametrize(
    "changed",
    ["m 1 3 8 t\nefgh", "m 1 2 9 t\nefgh", "m 1 2 8 u\nefgh"],
    ids=["count", "size", "type"],
)
def test_inconsistent_header_drops_the_message(changed: str) -> None:
    """A chunk whose count, size or type differ from the first chunk's drops the message
    (INCONSISTENT); nothing of it is kept."""
    assembler = ChunkAssembler()
    assembler.feed(chunk("m 0 2 8 t\nabcd"), now=0.0)
    (record,) = assembler.feed(chunk(changed), now=0.0)
    assert record.reason is DropReason.INCONSISTENT and record.message_id == "m"
    assert len(assembler) == 0 and assembler.buffered_size == 0 and assembler.reserved_size == 0


@pytest.mark.parametrize(
    ("chunks", "received"),
    [
        (["m 0 1 3 t\nab"], 0),  # single chunk too short
        (["m 0 1 1 t\nab"], 0),  # single chunk too long
        (["m 0 2 3 t\nabcd"], 0),  # first chunk alone exceeds the size
        (["m 0 2 4 t\nabc", "m 1 2 4 t\nde"], 1),  # adds up to more
        (["m 0 2 9 t\nabc", "m 1 2 9 t\nde"], 2),  # all in, adds up to less
        (["m 0 2 3 t\nab", "m 1 2 3 t\n€"], 1),  # sizes are UTF-8 bytes, not code points
    ],
)
def test_size_mismatch(chunks: list[str], received: int) -> None:
    """Texts that add up to more (or, once all are in, less) than the announced size drop
    the message with SIZE_MISMATCH."""
    assembler = ChunkAssembler()
    out = feed_all(assembler, [chunk(data) for data in chunks])
    (record,) = out
    assert record.reason is DropReason.SIZE_MISMATCH
    assert (record.message_id, record.received) == ("m", received)
    assert len(assembler) == 0 and assembler.reserved_size == 0


@pytest.mark.parametrize("data", MALFORMED)
def test_malformed_chunk_is_reported_and_nothing_else_changes(data: str) -> None:
    """A chunk that breaks the header grammar is reported MALFORMED; held messages stay."""
    assembler = ChunkAssembler()
    assembler.feed(chunk("a 0 2 5 t\nab"), now=0.0)
    (record,) = assembler.feed(chunk(data), now=0.0)
    assert record == MessageDropped(reason=DropReason.MALFORMED, message_id=None, event=None,
                                    received=0, count=None, detail=record.detail)
    assert len(assembler) == 1 and assembler.buffered_size == 2
    assert assembler.feed(chunk("a 1 2 5 t\ncde"), now=0.0) == [Event(data="abcde", event="t")]


def test_header_search_is_bounded() -> None:
    """A chunk whose first LF is beyond the longest possible header is malformed."""
    data = "m 0 1 0 " + "t" * 400 + "\n"
    (record,) = ChunkAssembler().feed(chunk(data), now=0.0)
    assert record.reason is DropReason.MALFORMED


@pytest.mark.parametrize(
    ("config", "data", "limit", "value", "maximum"),
    [
        (ChunkConfig(max_chunks=3), "n 0 4 8 t\nab", "max_chunks", 4, 3),
        (ChunkConfig(max_message_size=100), "n 0 2 101 t\nab", "max_message_size", 101, 100),
        (ChunkConfig(), f"n 0 2 {10**17} t\nab", "max_message_size", 10**17, 4 * 1024 * 1024),
        (ChunkConfig(max_pending=1), "n 0 2 8 t\nab", "max_pending", 2, 1),
        (ChunkConfig(max_message_size=10, max_buffered_size=15), "n 0 2 8 t\nab",
         "max_buffered_size", 18, 15),
    ],
)
def test_limits_raise_and_leave_the_assembler_consistent(
    config: ChunkConfig, data: str, limit: str, value: int, maximum: int
) -> None:
    """A chunk announcing more than a limit allows raises ChunkLimitExceeded naming the limit
    keyword and the message; it is not stored and the message already held still completes."""
    assembler = ChunkAssembler(config)
    assembler.feed(chunk("m 0 2 10 t\nabcde"), now=0.0)
    with pytest.raises(ChunkLimitExceeded) as info:
        assembler.feed(chunk(data), now=1.0)
    error = info.value
    assert isinstance(error, LimitExceeded) and isinstance(error, RemoteProtocolError)
    assert (error.limit, error.value, error.maximum, error.message_id) == (
        limit, value, maximum, "n")
    assert error.items == []
    assert "'n'" in str(error) and limit in str(error)
    assert len(assembler) == 1 and assembler.buffered_size == 5 and assembler.reserved_size == 10
    assert assembler.feed(chunk("m 1 2 10 t\nfghij"), now=2.0) == [
        Event(data="abcdefghij", event="t")
    ]


def test_single_chunk_message_needs_no_pending_slot() -> None:
    """A one-chunk message completes at once, even when the pending table is full."""
    assembler = ChunkAssembler(ChunkConfig(max_pending=1, max_message_size=10,
                                           max_buffered_size=10))
    assembler.feed(chunk("m 0 2 10 t\nabcde"), now=0.0)
    assert assembler.feed(chunk("n 0 1 3 u\nxyz"), now=0.0) == [Event(data="xyz", event="u")]


def test_limit_error_carries_expiry_records() -> None:
    """Messages expired by the call that then raised are in the exception's items."""
    assembler = ChunkAssembler(ChunkConfig(max_chunks=2, timeout=1.0))
    assembler.feed(chunk("m 0 2 4 t\nab"), now=0.0)
    with pytest.raises(ChunkLimitExceeded) as info:
        assembler.feed(chunk("n 0 3 4 t\nab"), now=5.0)
    (record,) = info.value.items
    assert (record.reason, record.message_id, record.received) == (DropReason.EXPIRED, "m", 1)
    assert len(assembler) == 0


def test_expiry_timer() -> None:
    """next_deadline is timeout after the last new chunk of the oldest message; poll reports
    expired messages earliest first; feed expires before it takes its item."""
    assembler = ChunkAssembler(ChunkConfig(timeout=10.0))
    assert assembler.next_deadline() is None
    assembler.feed(chunk("a 0 3 3 t\nx"), now=0.0)
    assembler.feed(chunk("b 0 2 2 t\nx"), now=1.0)
    assert assembler.next_deadline() == 10.0
    assembler.feed(chunk("a 1 3 3 t\ny"), now=2.0)  # progress moves a's deadline
    assert assembler.next_deadline() == 11.0
    assert assembler.poll(10.999) == []
    (expired,) = assembler.poll(11.0)
    assert (expired.reason, expired.message_id, expired.received, expired.count) == (
        DropReason.EXPIRED, "b", 1, 2)
    assert assembler.next_deadline() == 12.0
    out = assembler.feed(chunk("a 2 3 3 t\nz"), now=12.0)
    assert [summary(x) for x in out] == [(DropReason.EXPIRED, "a", "t", 2, 3)]
    assert len(assembler) == 1  # the late chunk starts message a afresh


def test_time_does_not_run_backwards() -> None:
    """An earlier now than one already given is refused, and the chunk is not stored."""
    assembler = ChunkAssembler(ChunkConfig(timeout=10.0))
    assembler.poll(100.0)
    with pytest.raises(ClockError, match=r"now went backwards: got 5\.0 after 100\.0"):
        assembler.feed(chunk("a 0 2 2 t\nx"), now=5.0)
    assert len(assembler) == 0 and assembler.next_deadline() is None
    assembler.feed(chunk("a 0 2 2 t\nx"), now=100.0)  # the same now again is fine
    assert assembler.next_deadline() == 110.0


def test_clear_reports_every_held_message() -> None:
    """clear() forgets everything and reports each message as CLEARED."""
    assembler = ChunkAssembler()
    feed_all(assembler, [chunk("a 0 2 2 t\nx"), chunk("b 1 3 3 u\ny")])
    assert [(r.reason, r.message_id, r.event) for r in assembler.clear()] == [
        (DropReason.CLEARED, "a", "t"), (DropReason.CLEARED, "b", "u")]
    assert len(assembler) == 0 and assembler.reserved_size == 0 and assembler.buffered_size == 0
    assert assembler.clear() == []


def test_custom_chunk_event() -> None:
    """Both sides may agree on another chunk event type; the default one then passes
    through."""
    events = split_message("abcdef", message_id="m", max_chunk_size=4, chunk_event="part")
    assembler = ChunkAssembler(ChunkConfig(chunk_event="part"))
    other = chunk("x 0 1 1 t\nx")
    assert assembler.feed(other, 0.0) == [other]
    assert feed_all(assembler, events) == [Event(data="abcdef")]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_chunks": 0},
        {"max_chunks": 1.0},
        {"max_message_size": 0},
        {"max_pending": True},
        {"max_buffered_size": 0},
        {"max_message_size": 10, "max_buffered_size": 9},
        {"timeout": 0},
        {"timeout": float("inf")},
        {"timeout": float("nan")},
        {"timeout": True},
        {"timeout": "1"},
        {"chunk_event": ""},
        {"chunk_event": "message"},
        {"chunk_event": "a\nb"},
        {"chunk_event": None},
    ],
)
def test_config_validation(kwargs: dict[str, Any]) -> None:
    """Out-of-range or mistyped config values raise InvalidConfigError (a ValueError)."""
    with pytest.raises(InvalidConfigError):
        ChunkConfig(**kwargs)


def test_default_config() -> None:
    """The assembler exposes its config; the defaults are the documented ones."""
    assembler = ChunkAssembler()
    assert assembler.config == ChunkConfig(
        max_chunks=1024, max_message_size=4 * 1024 * 1024, max_pending=16,
        max_buffered_size=None, timeout=30.0, chunk_event="sse-chunk",
    )
