"""The public hypothesis strategies draw what they promise, and drive the parser, the
serializer and the simulator as documented."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sse_core import Event, Parser, serialize
from sse_core.testing import Scenario, simulate
from sse_core.testing.strategies import (
    EncodedStream,
    chunkings,
    event_data,
    events,
    fault_schedules,
    scenarios,
    streams,
)


@given(events())
def test_events_round_trip(event: Event) -> None:
    """Every drawn event serializes and parses back to itself."""
    assert Parser().feed(serialize(event)) == [event]


@given(event_data())
def test_event_data_is_carriable(data: str) -> None:
    """Drawn data never holds CR and always encodes as UTF-8."""
    assert "\r" not in data
    data.encode("utf-8")


@given(events(is_id_drawn=False, is_type_drawn=False))
def test_events_can_be_plain_messages(event: Event) -> None:
    """With ids and types turned off, events are plain messages."""
    assert (event.id, event.event, event.last_event_id) == (None, "message", "")


@given(st.data(), streams())
def test_streams_parse_to_their_items_under_any_chunking(
    data: st.DataObject, stream: EncodedStream
) -> None:
    """A drawn stream, split by a drawn chunking, parses to exactly its items."""
    chunks = data.draw(chunkings(stream.data))
    assert b"".join(chunks) == stream.data
    parser = Parser()
    items = [item for chunk in chunks for item in parser.feed(chunk)]
    assert tuple(items) == stream.items


@given(streams(is_comment_drawn=False, is_retry_drawn=False, is_line_ending_drawn=False))
def test_streams_options_narrow_the_draw(stream: EncodedStream) -> None:
    """Turning options off leaves only events with LF line endings."""
    assert all(isinstance(item, Event) for item in stream.items)
    assert b"\r" not in stream.data


@given(st.binary(max_size=50).flatmap(lambda b: st.tuples(st.just(b), chunkings(b, max_chunks=4))))
def test_chunkings_join_back(case: tuple[bytes, list[bytes]]) -> None:
    """Chunks always join back to the input, at most max_chunks unless byte by byte."""
    data, chunks = case
    assert b"".join(chunks) == data
    assert len(chunks) <= 4 or all(len(chunk) == 1 for chunk in chunks)


@given(fault_schedules(start=1.0, end=5.0, max_faults=3))
def test_fault_schedules_are_ordered_and_bounded(faults: tuple[object, ...]) -> None:
    """Schedules hold at most max_faults faults, in time order, within the window."""
    times = [fault.at for fault in faults]  # type: ignore[attr-defined]
    assert len(faults) <= 3
    assert times == sorted(times)
    assert all(1.0 <= at <= 5.0 for at in times)


@given(scenarios(max_events=15, duration=30.0))
def test_drawn_scenarios_keep_the_invariant(scenario: Scenario) -> None:
    """Every drawn scenario, streaming or falling back to long-polling, runs to completion
    without breaking the invariant."""
    result = simulate(scenario)
    assert result.violation is None, result.violation
    assert result.completed
    assert result.published == result.delivered + result.missed
    if scenario.transport == "stream":
        assert result.polls == result.transport_switches == 0


@given(scenarios(max_events=3, duration=10.0, is_long_poll_drawn=False))
def test_scenarios_can_leave_long_polling_out(scenario: Scenario) -> None:
    """With is_long_poll_drawn=False every scenario only streams."""
    assert scenario.transport == "stream" and scenario.client.long_poll_url is None


def test_scenarios_draw_long_polling() -> None:
    """By default both transports are drawn, and "auto" clients have a long-poll URL."""
    seen: set[str] = set()

    @settings(max_examples=50, database=None)
    @given(scenarios(max_events=3, duration=10.0))
    def collect(scenario: Scenario) -> None:
        seen.add(scenario.transport)
        assert (scenario.client.long_poll_url is not None) == (scenario.transport == "auto")

    collect()
    assert seen == {"stream", "auto"}
