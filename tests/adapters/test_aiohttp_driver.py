"""What only the aiohttp driver (sse_core.adapters.aiohttp) does, against real servers; what
every driver does (events, resumption through the fault proxy, errors, stalls, timeouts,
closing, the LLM case, gzip either way, the user's proxy through tinyproxy) runs for it in
``test_drivers.py``, and the iteration rules in ``test_iteration.py``."""

from __future__ import annotations

import asyncio
import json

import pytest

from sse_core import EndCause, InvalidConfigError, StreamError, serialize_event
from sse_core.adapters import IncomingRequest

aiohttp = pytest.importorskip("aiohttp", reason="aiohttp is in the peers extra")

from sse_core.adapters.aiohttp import EventSource  # noqa: E402

from .test_asyncio import EVENT_STREAM_HEAD, Scripted, config, run  # noqa: E402


def test_the_client_must_be_an_aiohttp_client_session() -> None:
    """Anything but an ``aiohttp.ClientSession`` is refused at construction."""
    with pytest.raises(InvalidConfigError, match=r"aiohttp\.ClientSession"):
        EventSource(object(), "http://127.0.0.1:1/events")  # type: ignore[arg-type]


async def _cut_with_the_head(
    peer: Scripted, index: int, request: IncomingRequest, writer: asyncio.StreamWriter
) -> None:
    """The head, three events and the end of the connection in one write, the chunked body
    never finished: a cut that arrives with the last bytes before it."""
    events = b"".join(serialize_event(json.dumps({"n": n})) for n in range(3))
    writer.write(
        EVENT_STREAM_HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n%s\r\n" % (len(events), events)
    )
    writer.write_eof()


def test_the_bytes_that_came_with_a_cut_are_delivered_before_it() -> None:
    """aiohttp raises a cut before it hands out the bytes that came with it; the driver
    still delivers them: a POST answer cut in the same segment as its events yields the
    three events, then StreamError (NOT_RESUMABLE, no ids), and is not sent again."""

    async def main() -> None:
        async with Scripted(_cut_with_the_head) as peer, aiohttp.ClientSession() as client:
            source = EventSource(client, config(peer.url(), method="POST", body=b"{}"))
            got: list[int] = []
            with pytest.raises(StreamError) as caught:
                async with source:
                    async for event in source:
                        got.append(json.loads(event.data)["n"])
            assert got == [0, 1, 2]
            assert caught.value.report.cause is EndCause.NOT_RESUMABLE
            assert "ClientPayloadError" in caught.value.reason
            assert peer.connections == 1

    run(main)
