"""The gap signal's ``missed`` end to end: a real server whose log evicted what a client
resumes from, and every client adapter and driver reading it (asyncio, trio, sync, the
blocking httpx driver, the aiohttp driver): the gap says how many events were lost, and the
client's completion rate is a number after it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sse_core import ClientConfig, Event, ServerConfig
from sse_core.adapters import sync as sse_sync
from sse_core.state import ReplayConfig, ReplayLog
from tests.adapters.test_iteration import FAST, KINDS, plain_loop


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param in ("trio", "aiohttp"):
        pytest.importorskip(request.param)
    if request.param == "httpx-sync":
        pytest.importorskip("httpx")
    yield request.param


def test_completion_rate_is_known_after_a_too_old_gap(kind: str) -> None:
    """The server published 10 events and keeps the newest 3; a client that last saw the
    second resumes: it is told 5 were lost (the gap's ``missed``), gets the 3 kept, and its
    completion rate is 3 of 8 -- not unknown."""
    log = ReplayLog(ReplayConfig(max_events=3, epoch="t"))
    with sse_sync.EventStreamServer(log, config=ServerConfig(heartbeat_interval=None)) as server:
        ids = [server.publish(Event(data=f"e{n}")).id for n in range(10)]
        host, port = server.address
        config = ClientConfig(url=f"http://{host}:{port}/events", last_event_id=ids[1],
                              backoff=FAST)
        sources: list[Any] = []
        outcome = plain_loop(kind, config, stop_after=3, sources=sources)
    assert outcome.error is None
    assert [(gap.reason, gap.last_event_id, gap.missed) for gap in outcome.gaps] == [
        ("too_old", ids[1], 5)
    ]
    assert [event.data for event in outcome.events] == ["e7", "e8", "e9"]
    metrics = sources[0].metrics
    assert (metrics.messages_received, metrics.events_missed) == (3, 5)
    assert metrics.gaps_of_unknown_size == 0
    assert metrics.stream_completion_rate == pytest.approx(3 / 8)
