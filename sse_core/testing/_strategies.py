"""Hypothesis strategies for SSE records, byte streams, chunkings and simulator scenarios
(floor 4; needs ``hypothesis``).

Import them from :mod:`sse_core.testing.strategies`.
"""

from __future__ import annotations

import attrs
from hypothesis import strategies as st

from .._actions import Transport
from .._backoff import BackoffConfig, Jitter
from .._client import ClientConfig
from .._events import Comment, Event, Retry, StreamItem
from .._longpoll import LongPollConfig
from .._replay import ReplayConfig
from .._serializer import serialize
from .._server import ServerConfig
from ._simulator import (
    BufferingProxy,
    Cut,
    Deploy,
    Fault,
    Handoff,
    Offline,
    Partition,
    Reset,
    Restart,
    Scenario,
    SlowLink,
    Stall,
)

__all__ = [
    "EncodedStream",
    "chunkings",
    "event_data",
    "events",
    "fault_schedules",
    "scenarios",
    "streams",
]

# Text that a stream can carry: no CR (it comes back as LF), no lone surrogates (UTF-8
# cannot encode them). Multi-byte characters and U+0000 are in.
_LINE_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"),
    max_size=20,
)
_LINE_TEXT_NO_NUL = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n\x00"),
    max_size=20,
)
_MULTI_BYTE = st.sampled_from(["é", "世界", "🎉", "\u2028", "\ufeff", " ", ":", "\x00", "data"])


def event_data(*, max_lines: int = 4) -> st.SearchStrategy[str]:
    """Data strings an event can carry and get back: unicode (multi-byte characters often),
    several lines joined with LF, leading spaces and colons; never CR or lone surrogates.

    Args:
        max_lines: Most lines in one data string.

    Returns:
        A strategy of str.
    """
    line = st.one_of(
        _LINE_TEXT,
        st.lists(_MULTI_BYTE, max_size=6).map("".join),
    )
    return st.lists(line, min_size=1, max_size=max_lines).map("\n".join)


def events(
    *, is_id_drawn: bool = True, is_type_drawn: bool = True, max_lines: int = 4
) -> st.SearchStrategy[Event]:
    """Valid :class:`~sse_core.Event` records, as a parser reports them after a fresh start.

    ``id`` is ``None``, ``""`` (an explicit reset) or text; ``event`` is ``"message"`` or a
    drawn type; ``last_event_id`` equals ``id`` (or ``""``), so that
    ``Parser().feed(serialize(e)) == [e]``.

    Args:
        is_id_drawn: Draw ids; when false every event has ``id=None``.
        is_type_drawn: Draw event types; when false every event is a ``"message"``.
        max_lines: Most data lines.

    Returns:
        A strategy of :class:`~sse_core.Event`.
    """
    ids: st.SearchStrategy[str | None] = (
        st.one_of(st.none(), st.just(""), _LINE_TEXT_NO_NUL) if is_id_drawn else st.none()
    )
    types = (
        st.one_of(st.just("message"), _LINE_TEXT.filter(bool)) if is_type_drawn
        else st.just("message")
    )

    def build(data: str, event: str, id: str | None) -> Event:
        return Event(data=data, event=event, id=id, last_event_id=id or "")

    return st.builds(build, event_data(max_lines=max_lines), types, ids)


@attrs.frozen(kw_only=True)
class EncodedStream:
    """A ``text/event-stream`` body and what a parser must report for it.

    Attributes:
        data: The bytes.
        items: The events, comments and retry fields a WHATWG parser reports, in order, with
            each event's ``last_event_id`` as it stands after it.
    """

    data: bytes
    items: tuple[StreamItem, ...]


@st.composite
def _streams(
    draw: st.DrawFn, is_comment_drawn: bool, is_retry_drawn: bool, is_line_ending_drawn: bool,
    max_items: int,
) -> EncodedStream:
    kinds: list[st.SearchStrategy[StreamItem]] = [events()]
    if is_comment_drawn:
        kinds.append(st.builds(Comment, text=_LINE_TEXT))
    if is_retry_drawn:
        kinds.append(st.builds(Retry, milliseconds=st.integers(0, 10**6)))
    drawn = draw(st.lists(st.one_of(kinds), max_size=max_items))
    ending = draw(st.sampled_from(["\n", "\r\n", "\r"])) if is_line_ending_drawn else "\n"
    has_bom = draw(st.booleans())
    items: list[StreamItem] = []
    parts = []
    last_event_id = ""
    for item in drawn:
        if isinstance(item, Event):
            if item.id is not None:
                last_event_id = item.id
            item = Event(data=item.data, event=item.event, id=item.id,
                         last_event_id=last_event_id)
        items.append(item)
        parts.append(serialize(item))
    data = b"".join(parts)
    if ending != "\n":
        data = data.replace(b"\n", ending.encode())
    if has_bom:
        data = "\ufeff".encode() + data
    return EncodedStream(data=data, items=tuple(items))


def streams(
    *,
    is_comment_drawn: bool = True,
    is_retry_drawn: bool = True,
    is_line_ending_drawn: bool = True,
    max_items: int = 8,
) -> st.SearchStrategy[EncodedStream]:
    """Byte streams of serialized items, with the items a parser must give back.

    Events come from :func:`events`; comments and ``retry:`` fields are mixed in; the line
    ending is LF, CRLF or CR throughout; a BOM may lead the stream.

    Args:
        is_comment_drawn: Mix in comments.
        is_retry_drawn: Mix in ``retry:`` fields.
        is_line_ending_drawn: Draw CRLF or CR line endings as well as LF.
        max_items: Most items in one stream.

    Returns:
        A strategy of :class:`EncodedStream`.
    """
    return _streams(is_comment_drawn, is_retry_drawn, is_line_ending_drawn, max_items)


@st.composite
def _chunkings(draw: st.DrawFn, data: bytes, max_chunks: int) -> list[bytes]:
    if draw(st.integers(0, 9)) == 0:
        return [data[i : i + 1] for i in range(len(data))]  # byte by byte
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=max_chunks - 1)))
    chunks = []
    start = 0
    for cut in [*cuts, len(data)]:
        chunks.append(data[start:cut])
        start = cut
    return chunks


def chunkings(data: bytes, *, max_chunks: int = 16) -> st.SearchStrategy[list[bytes]]:
    """Ways to split ``data`` into chunks, as a network delivers them.

    Chunks join back to ``data``; some may be empty; cuts fall anywhere (inside a UTF-8
    character, between CR and LF). One draw in ten is byte by byte.

    Args:
        data: The bytes to split.
        max_chunks: Most chunks when not splitting byte by byte. At least 1.

    Returns:
        A strategy of lists of bytes.
    """
    return _chunkings(data, max(1, max_chunks))


def _faults(start: float, end: float) -> st.SearchStrategy[Fault]:
    at = st.floats(start, end, allow_nan=False, allow_infinity=False)
    window = st.floats(0.5, 30.0)
    return st.one_of(
        st.builds(Cut, at=at, after_bytes=st.integers(0, 200), is_eof=st.booleans()),
        st.builds(Reset, at=at),
        st.builds(Stall, at=at),
        st.builds(Restart, at=at, downtime=st.floats(0.0, 5.0), is_log_kept=st.booleans()),
        st.builds(Deploy, at=at, duration=window),
        st.builds(Partition, at=at, duration=window),
        st.builds(SlowLink, at=at, duration=window, max_chunk=st.integers(1, 8),
                  delay=st.floats(0.0, 0.02)),
        st.builds(BufferingProxy, at=at, duration=window, threshold=st.integers(1, 4096)),
        st.builds(Offline, at=at, duration=window, is_signalled=st.booleans()),
        st.builds(Handoff, at=at, is_signalled=st.booleans()),
    )


def fault_schedules(
    *, start: float = 0.0, end: float = 60.0, max_faults: int = 4
) -> st.SearchStrategy[tuple[Fault, ...]]:
    """Schedules of simulator faults, each starting between ``start`` and ``end``.

    Args:
        start: Earliest fault time.
        end: Latest fault time.
        max_faults: Most faults in one schedule.

    Returns:
        A strategy of fault tuples, ordered by time.
    """
    return st.lists(_faults(start, end), max_size=max_faults).map(
        lambda faults: tuple(sorted(faults, key=lambda fault: fault.at))
    )


@st.composite
def _scenarios(
    draw: st.DrawFn, max_events: int, duration: float, is_long_poll_drawn: bool
) -> Scenario:
    times = draw(st.lists(st.floats(0.05, duration), min_size=1, max_size=max_events))
    publish_at = tuple(sorted(round(at, 3) for at in times))
    data = tuple(draw(st.lists(event_data(max_lines=3), min_size=1, max_size=len(times))))
    stall_timeout = draw(st.floats(2.0, 10.0))
    client = ClientConfig(
        url="https://sim.test/events",
        retry_statuses=frozenset({502, 503}),
        stall_timeout=stall_timeout,
        is_gzip_accepted=draw(st.booleans()),
        backoff=BackoffConfig(
            base_delay=draw(st.floats(0.1, 1.0)),
            max_delay=draw(st.floats(2.0, 8.0)),
            jitter=draw(st.sampled_from(list(Jitter))),
            healthy_after=draw(st.floats(0.5, 5.0)),
        ),
    )
    server = ServerConfig(
        heartbeat_interval=stall_timeout / draw(st.floats(2.0, 4.0)),
        retry=draw(st.one_of(st.none(), st.integers(0, 2000))),
        padding=draw(st.sampled_from([0, 2048])),
    )
    scenario = Scenario(
        seed=draw(st.integers(0, 2**32 - 1)),
        publish_at=publish_at,
        data=data,
        faults=draw(fault_schedules(end=duration)),
        client=client,
        server=server,
        replay=ReplayConfig(max_events=draw(st.sampled_from([2, 5, 50, 1000]))),
        latency=draw(st.floats(0.0, 0.2)),
    )
    if is_long_poll_drawn and draw(st.booleans()):
        scenario = draw(_long_polling(scenario, duration))
    return scenario


@st.composite
def _long_polling(draw: st.DrawFn, scenario: Scenario, duration: float) -> Scenario:
    """The scenario with a client that may fall back to long-polling, mostly behind a
    buffering proxy that holds streams for a while from the start."""
    client = attrs.evolve(
        scenario.client,
        long_poll_url="https://sim.test/poll",
        first_byte_timeout=draw(st.floats(0.5, 8.0)),
        switch_after=draw(st.integers(1, 3)),
        retry_streaming_after=draw(st.one_of(st.none(), st.floats(2.0, 40.0))),
        long_poll_timeout=draw(st.one_of(st.just(0.0), st.floats(0.5, 10.0))),
        min_poll_interval=draw(st.floats(0.1, 2.0)),
        initial_transport=draw(st.sampled_from(list(Transport))),
    )
    long_poll = LongPollConfig(
        max_hold=draw(st.floats(0.5, 15.0)),
        max_events=draw(st.sampled_from([1, 3, 100])),
        max_bytes=draw(st.sampled_from([None, 300, 1 << 20])),
        retry=draw(st.one_of(st.none(), st.integers(0, 2000))),
    )
    faults = scenario.faults
    if draw(st.integers(0, 3)):
        window = draw(st.floats(5.0, duration))
        proxy = BufferingProxy(at=0.0, duration=window, threshold=1 << 20)
        faults = (proxy, *faults)
    return attrs.evolve(scenario, transport="auto", client=client, long_poll=long_poll,
                        faults=faults)


def scenarios(
    *, max_events: int = 30, duration: float = 60.0, is_long_poll_drawn: bool = True
) -> st.SearchStrategy[Scenario]:
    """Simulator configurations: publish times, event data, faults, client, server and
    replay-log settings.

    The client retries on 502/503 and never gives up, so every drawn scenario can finish;
    :func:`~sse_core.testing.simulate` must report it completed with no violation.

    Args:
        max_events: Most published events.
        duration: Publishing and faults happen within this many virtual seconds.
        is_long_poll_drawn: Half the scenarios get ``transport="auto"``: the client may fall
            back to long-polling (drawn switch, poll and probe timings, sometimes starting by
            polling), the long-poll sessions drawn limits, and most of them a buffering
            proxy that holds streams from the start for a while.

    Returns:
        A strategy of :class:`~sse_core.testing.Scenario`.
    """
    return _scenarios(max_events, duration, is_long_poll_drawn)
