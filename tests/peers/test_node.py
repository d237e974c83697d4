"""sse_core's asyncio adapters against Node peers nobody here wrote.

* The npm ``eventsource`` client (a WHATWG EventSource on Node's fetch) reads our
  ``EventStreamServer``: ``node/eventsource_client.mjs`` prints each event as a JSON line.
  It applies an ``id`` only to a block that carries data, so the position block a new
  client gets must carry a (empty) ``data:`` line under its own event type.
* Our asyncio ``EventSource`` reads a ``better-sse`` server: ``node/better_sse_server.mjs``
  (which writes ``field:value`` with no space and JSON-encodes ``data``).

``.ci/peers.sh`` installs the npm packages; without them (or without node) these tests skip.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from sse_core import ClientConfig, ServerConfig
from sse_core.adapters.asyncio import EventSource
from sse_core.state import POSITION_EVENT_TYPE, StoredEvent

from ._support import (
    CUTS,
    NODE_DIR,
    PEER_TIMEOUT,
    POSITION_CUT_CONFIG,
    Stream,
    events_to_publish,
    node_or_skip,
    read_json_line,
    running,
)

#: Reconnect quickly (the npm client honours ``retry:``); a padding comment first and
#: heartbeat comments every 50 ms, which the client must skip.
CONFIG = ServerConfig(retry=100, padding=2048, heartbeat_interval=0.05)


def _seen(stored: StoredEvent) -> dict[str, str]:
    """What the npm client prints for an event."""
    return {"type": stored.event.event, "id": stored.id, "data": stored.event.data}


async def _next_event(process: Any, others: list[Any]) -> Any:
    """The next event line, keeping the other lines (open, error) in ``others``."""
    while True:
        record = await read_json_line(process)
        if "type" in record:
            return record
        others.append(record)


async def _wait_for_open(process: Any, others: list[Any]) -> None:
    """Read until the client says a connection is open (errors before it are kept)."""
    while True:
        record = await read_json_line(process)
        assert "type" not in record, f"an event before the connection opened: {record}"
        others.append(record)
        if record.get("open"):
            return


async def _exit_code(process: Any) -> int:
    code: int = await asyncio.wait_for(process.wait(), PEER_TIMEOUT)
    return code


def test_npm_eventsource_gets_every_event_once_in_order() -> None:
    """The npm client gets a burst of varied events (named type, multi-line, non-ASCII,
    empty) exactly as published, with the ids the replay log assigned, and exits."""
    node = node_or_skip()

    async def main() -> None:
        stream = Stream(CONFIG)
        await stream.start()
        try:
            events = events_to_publish("e", 30)
            script = str(NODE_DIR / "eventsource_client.mjs")
            async with running(node, script, stream.url, str(len(events)), cwd=NODE_DIR) as peer:
                others: list[Any] = []
                await _wait_for_open(peer, others)
                assert stream.live_last_event_ids() == [""]
                assert stream.content_encodings() == ["gzip"]  # Node's fetch asks for it
                stored = [stream.publish(event) for event in events]
                received = [await _next_event(peer, others) for _ in stored]
                assert received == [_seen(item) for item in stored]
                assert await _exit_code(peer) == 0
                assert others == [{"open": True}]
        finally:
            await stream.aclose()

    asyncio.run(main())


@pytest.mark.parametrize("how", CUTS)
def test_npm_eventsource_resumes_after_a_server_side_cut(how: str) -> None:
    """After the server ends its connection (restart on the same port with the same log,
    send-queue drop, TCP reset), the npm client reconnects with the Last-Event-ID of the
    last event it got and receives what it missed exactly once, then the live events."""
    node = node_or_skip()

    async def main() -> None:
        stream = Stream(CONFIG, with_proxy=how == "reset")
        await stream.start()
        try:
            before = events_to_publish("a", 4)
            missed = events_to_publish("b", 3)
            after = events_to_publish("c", 2)
            count = len(before) + len(missed) + len(after) + (how == "drop")
            script = str(NODE_DIR / "eventsource_client.mjs")
            async with running(node, script, stream.url, str(count), cwd=NODE_DIR) as peer:
                others: list[Any] = []
                await _wait_for_open(peer, others)
                received = []
                for event in before:  # in lockstep: each is seen before the next is sent
                    stored = stream.publish(event)
                    received.append(await _next_event(peer, others))
                    assert received[-1] == _seen(stored)
                expected = [*received]

                stored_missed = await stream.cut(how, missed)
                await _wait_for_open(peer, others)
                assert stream.live_last_event_ids() == [expected[-1]["id"]]
                expected += [_seen(item) for item in stored_missed]
                received += [await _next_event(peer, others) for _ in stored_missed]
                stored_after = [stream.publish(event) for event in after]
                expected += [_seen(item) for item in stored_after]
                received += [await _next_event(peer, others) for _ in stored_after]

                assert received == expected
                assert await _exit_code(peer) == 0
                opens = [record for record in others if record.get("open")]
                assert len(opens) == 2, others
        finally:
            await stream.aclose()

    asyncio.run(main())


def test_npm_eventsource_resumes_from_the_position_after_a_cut_before_its_first_event() -> None:
    """A new npm client whose first connection ends right after the head and the log's
    position, before any event, comes back with that position as Last-Event-ID and gets the
    events published while it was away, then the live ones, each once and in order. The
    position reaches only a listener of its own type (once), never ``message``."""
    node = node_or_skip()

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
            script = str(NODE_DIR / "eventsource_client.mjs")
            argv = (node, script, stream.url, count, POSITION_EVENT_TYPE)
            async with running(*argv, cwd=NODE_DIR) as peer:
                others: list[Any] = []
                await _wait_for_open(peer, others)
                stored = await stream.publish_while_away(missed)
                await _wait_for_open(peer, others)
                assert stream.live_last_event_ids() == [position]
                stored += [stream.publish(event) for event in after]
                received = [await _next_event(peer, others) for _ in stored]
                assert received == [_seen(item) for item in stored]
                assert await _exit_code(peer) == 0
            assert [record for record in others if "position" in record] == [
                {"position": position, "data": ""}
            ]
            assert len([record for record in others if record.get("open")]) == 2, others
        finally:
            await stream.aclose()

    asyncio.run(main())


def test_asyncio_client_resumes_from_better_sse_after_a_cut_mid_event() -> None:
    """Our asyncio EventSource reads a better-sse stream (``field:value`` without a space,
    JSON data, named events). The server sends 5 events, half of a 6th (its ``id:`` line
    complete, its data cut inside a UTF-8 character) and closes the socket without ending
    the chunked body: the half event is not delivered, the client reconnects
    with ``Last-Event-ID: 5`` (not the unfinished block's id) and gets 6 to 12 once;
    leaving the ``async with`` block closes the connection (the server sees it go)."""
    node = node_or_skip()
    total, cut_after = 12, 5

    async def main() -> None:
        script = str(NODE_DIR / "better_sse_server.mjs")
        async with running(node, script, str(total), str(cut_after), cwd=NODE_DIR) as peer:
            port = (await read_json_line(peer))["port"]
            config = ClientConfig(url=f"http://127.0.0.1:{port}/events")
            received = []
            async with EventSource(config) as source:

                async def collect() -> None:
                    async for event in source:
                        received.append(event)
                        if len(received) == total:
                            return

                await asyncio.wait_for(collect(), PEER_TIMEOUT)
                last_event_id = source.session.last_event_id
                reconnections = source.metrics.reconnections
            # What the server saw, up to the end of the second connection (aclose() above).
            requests: list[Any] = []
            while {"closed": 2} not in requests:
                requests.append(await read_json_line(peer))

        expected = [
            ("tick" if n % 3 == 0 else "message", str(n), {"n": n, "text": f"évènement {n} <&>"})
            for n in range(1, total + 1)
        ]
        assert [(e.event, e.id, json.loads(e.data)) for e in received] == expected
        assert [record for record in requests if "request" in record] == [
            {"request": 1, "lastEventId": None},
            {"request": 2, "lastEventId": str(cut_after)},
        ]
        second = requests.index({"request": 2, "lastEventId": str(cut_after)})
        assert requests.index({"closed": 1}) < second  # the first was gone before it
        assert last_event_id == str(total)
        assert reconnections == 1

    asyncio.run(main())
