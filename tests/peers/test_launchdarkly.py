"""sse_core's asyncio ``EventStreamServer`` against launchdarkly-eventsource (Python).

``ld_eventsource_client.py`` runs the library's ``SSEClient`` in a subprocess and prints each
connection, event and fault as a JSON line. The client applies an ``id`` only to a block that
carries data and yields every event whatever its type; the position block (an ``id``, the
type :data:`~sse_core.state.POSITION_EVENT_TYPE` and an empty ``data:`` line) must reach it all the
same, and an application that reads its own types must see nothing else.

Installed by the ``peers`` extra; without it these tests skip.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

from sse_core.state import POSITION_EVENT_TYPE, StoredEvent

from ._support import (
    PEER_TIMEOUT,
    POSITION_CUT_CONFIG,
    Stream,
    events_to_publish,
    read_json_line,
    running,
)

pytest.importorskip("ld_eventsource")

SCRIPT = str(Path(__file__).parent / "ld_eventsource_client.py")


def _seen(stored: StoredEvent) -> dict[str, str]:
    """What the client prints for an event."""
    return {"type": stored.event.event, "id": stored.id, "data": stored.event.data}


async def _next_record(process: Any, records: list[Any], until: str) -> Any:
    """Read lines, keeping each in ``records``, until one has the key ``until``."""
    while True:
        record = await read_json_line(process)
        records.append(record)
        if until in record:
            return record


def test_launchdarkly_resumes_from_the_position_after_a_cut_before_its_first_event() -> None:
    """A new client whose first connection ends right after the head and the log's position,
    before any event, comes back with that position as Last-Event-ID and gets the events
    published while it was away, then the live ones, each once and in order. It yields the
    position as an event of the position type (once, before the cut) and nothing else
    besides the application's events."""

    async def main() -> None:
        stream = Stream(POSITION_CUT_CONFIG, with_proxy=True)
        await stream.start()
        try:
            for event in events_to_publish("old", 3):  # before the client: not owed to it
                stream.publish(event)
            position = await stream.arm_position_cut()
            missed = events_to_publish("b", 3)
            after = events_to_publish("c", 2)
            count = str(len(missed) + len(after))
            async with running(sys.executable, SCRIPT, stream.url, count) as peer:
                records: list[Any] = []
                await _next_record(peer, records, "open")
                stored = await stream.publish_while_away(missed)
                await _next_record(peer, records, "error")
                await _next_record(peer, records, "open")
                assert stream.live_last_event_ids() == [position]
                stored += [stream.publish(event) for event in after]
                for _ in stored:
                    await _next_record(peer, records, "type")
                assert await asyncio.wait_for(peer.wait(), PEER_TIMEOUT) == 0

            events = [record for record in records if "type" in record]
            assert [r for r in events if r["type"] != POSITION_EVENT_TYPE] == [
                _seen(item) for item in stored
            ]
            assert [r for r in events if r["type"] == POSITION_EVENT_TYPE] == [
                {"type": POSITION_EVENT_TYPE, "id": position, "data": ""}
            ]
            assert [next(iter(r)) for r in records[:4]] == ["open", "type", "error", "open"]
        finally:
            await stream.aclose()

    asyncio.run(main())
