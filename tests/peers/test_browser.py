"""sse_core's asyncio ``EventStreamServer`` against a real browser: headless Chromium.

A small page server (another origin, so the stream is read cross-origin with
``Access-Control-Allow-Origin``) serves a page that opens ``new EventSource(url)``, reports
each event, each position block (sse_core's :data:`~sse_core.state.POSITION_EVENT_TYPE`, which
only a listener of that type sees) and each ``open``/``error`` back to the page server with
``fetch("/ack?...")`` (the test's live view, used to publish in lockstep and to see
reconnections) and, when a ``done`` event comes, closes the source and writes everything it
got into the DOM, which ``chromium --dump-dom`` prints.

``.ci/peers.sh`` installs Debian's chromium; without ``/usr/bin/chromium`` these tests skip.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from sse_core import Event, ServerConfig
from sse_core.state import POSITION_EVENT_TYPE, StoredEvent

from ._support import (
    CUTS,
    PEER_TIMEOUT,
    POSITION_CUT_CONFIG,
    Stream,
    events_to_publish,
    running,
)

#: Reconnect quickly (the page reconnects after ``retry:`` of virtual time), allow the
#: page's origin to read the stream, and send a padding comment first and heartbeat
#: comments every 50 ms, which the browser must skip.
CONFIG = ServerConfig(
    retry=100,
    padding=2048,
    heartbeat_interval=0.05,
    headers=(("Access-Control-Allow-Origin", "*"),),
)

#: The flags TEST-INFRA.md lists for root with no network, then a virtual time budget that
#: only runs down while the page is idle (an open stream keeps it waiting).
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=30000",
)

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>waiting</title></head>
<body><pre id="result"></pre>
<script>
const received = [];
const errors = [];
const positions = [];
const source = new EventSource(STREAM_URL);
function ack(record) {
  fetch("/ack?" + encodeURIComponent(JSON.stringify(record)), {cache: "no-store"});
}
function onEvent(event) {
  const record = {type: event.type, id: event.lastEventId, data: event.data};
  received.push(record);
  ack(record);
}
source.addEventListener("message", onEvent);
source.addEventListener("tick", onEvent);
source.addEventListener(POSITION_TYPE, (event) => {
  positions.push({id: event.lastEventId, data: event.data});
  ack({position: event.lastEventId});
});
source.addEventListener("open", () => ack({open: true}));
source.addEventListener("error", () => {
  errors.push(source.readyState);
  ack({error: source.readyState});
});
source.addEventListener("done", () => {
  source.close();
  document.getElementById("result").textContent = JSON.stringify({received, errors, positions});
  document.title = "done";
});
</script></body></html>
"""

RESULT = re.compile(r'<pre id="result">(.*?)</pre>', re.DOTALL)


def _chromium_or_skip() -> str:
    chromium = shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )
    if chromium is None:
        pytest.skip("chromium is not installed (CI installs it with .ci/peers.sh)")
    return chromium


class PageServer:
    """Serves the page at ``/`` and collects its ``/ack`` reports (one request per
    connection; everything it opened is closed by :meth:`aclose`)."""

    def __init__(self, stream_url: str) -> None:
        page = PAGE.replace("STREAM_URL", json.dumps(stream_url))
        self._page = page.replace("POSITION_TYPE", json.dumps(POSITION_EVENT_TYPE)).encode()
        self.acks: asyncio.Queue[Any] = asyncio.Queue(maxsize=1000)
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}/"

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        if self._server is not None:
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            target = head.split(b" ", 2)[1].decode("ascii")
            path, _, query = target.partition("?")
            status, body = b"200 OK", b""
            if path == "/":
                body = self._page
            elif path == "/ack":
                self.acks.put_nowait(json.loads(unquote(query)))
            else:
                status = b"404 Not Found"
            writer.write(
                b"HTTP/1.1 " + status + b"\r\nContent-Type: text/html; charset=utf-8\r\n"
                b"Cache-Control: no-store\r\nConnection: close\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body) + body
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass  # a speculative connection that never sent a request, closed at the end
        finally:
            self._writers.discard(writer)
            writer.close()

    async def next_ack(self, others: list[Any], *, until: str = "type") -> Any:
        """The next report that has the key ``until`` (others are kept in ``others``)."""
        while True:
            try:
                record = await asyncio.wait_for(self.acks.get(), PEER_TIMEOUT)
            except asyncio.TimeoutError:
                raise AssertionError(f"no report from the page for {PEER_TIMEOUT} s") from None
            if until in record:
                return record
            others.append(record)


def _seen(stored: StoredEvent) -> dict[str, str]:
    """What the page records for an event."""
    return {"type": stored.event.event, "id": stored.id, "data": stored.event.data}


async def _run_browser(stream: Stream, tmp_path: Path, scenario: Any) -> dict[str, Any]:
    """Start Chromium on the page, run ``scenario(pages)`` (which ends with a ``done``
    event) and return what the page wrote into the DOM."""
    chromium = _chromium_or_skip()
    pages = PageServer(stream.url)
    page_url = await pages.start()
    try:
        argv = (chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path}", "--dump-dom", page_url)
        async with running(*argv) as browser:
            await scenario(pages)
            try:
                dom, stderr = await asyncio.wait_for(browser.communicate(), PEER_TIMEOUT)
            except asyncio.TimeoutError:
                raise AssertionError("chromium did not finish") from None
            assert browser.returncode == 0, stderr.decode()[-2000:]
    finally:
        await pages.aclose()
    text = dom.decode()
    assert "<title>done</title>" in text, text[-2000:]
    match = RESULT.search(text)
    assert match is not None, text[-2000:]
    result: dict[str, Any] = json.loads(html.unescape(match.group(1)))
    return result


def test_chromium_gets_every_event_once_in_order(tmp_path: Path) -> None:
    """Chromium's EventSource gets a burst of varied events (named type, multi-line,
    non-ASCII, markup, empty data) exactly as published, with their ids, through a gzip
    body, cross-origin, with no error."""

    async def main() -> None:
        stream = Stream(CONFIG)
        await stream.start()
        stored: list[StoredEvent] = []

        async def scenario(pages: PageServer) -> None:
            others: list[Any] = []
            await pages.next_ack(others, until="open")
            assert stream.live_last_event_ids() == [""]
            assert stream.content_encodings() == ["gzip"]
            stored.extend(stream.publish(event) for event in events_to_publish("e", 60))
            stream.publish(Event(data="", event="done"))

        try:
            result = await _run_browser(stream, tmp_path, scenario)
        finally:
            await stream.aclose()
        assert result["received"] == [_seen(item) for item in stored]
        assert result["errors"] == []

    asyncio.run(main())


@pytest.mark.parametrize("how", CUTS)
def test_chromium_resumes_after_a_server_side_cut(how: str, tmp_path: Path) -> None:
    """After the server ends its connection (restart on the same port with the same log,
    send-queue drop, TCP reset), Chromium reconnects with the Last-Event-ID of the last
    event it got and receives what it missed exactly once, then the live events; its
    EventSource never gives up (every error leaves it CONNECTING)."""

    async def main() -> None:
        stream = Stream(CONFIG, with_proxy=how == "reset")
        await stream.start()
        expected: list[dict[str, str]] = []

        async def scenario(pages: PageServer) -> None:
            others: list[Any] = []
            await pages.next_ack(others, until="open")
            for event in events_to_publish("a", 4):  # lockstep: each seen before the next
                stored = stream.publish(event)
                assert await pages.next_ack(others) == _seen(stored)
                expected.append(_seen(stored))
            stored_missed = await stream.cut(how, events_to_publish("b", 3))
            await pages.next_ack(others, until="open")
            assert stream.live_last_event_ids() == [expected[-1]["id"]]
            expected.extend(_seen(item) for item in stored_missed)
            stored_after = [stream.publish(event) for event in events_to_publish("c", 2)]
            expected.extend(_seen(item) for item in stored_after)
            stream.publish(Event(data="", event="done"))

        try:
            result = await _run_browser(stream, tmp_path, scenario)
        finally:
            await stream.aclose()
        assert result["received"] == expected
        assert result["errors"] and set(result["errors"]) == {0}

    asyncio.run(main())


def test_chromium_resumes_from_the_position_after_a_cut_before_its_first_event(
    tmp_path: Path,
) -> None:
    """A new page whose first connection ends right after the head and the log's position,
    before any event, comes back with that position as Last-Event-ID and gets the events
    published while it was away, then the live ones, each once and in order. The position
    block reaches only the listener of its own type, once, never ``message``."""

    async def main() -> None:
        stream = Stream(POSITION_CUT_CONFIG, with_proxy=True)
        await stream.start()
        expected: list[dict[str, str]] = []
        for event in events_to_publish("old", 3):  # before the page: not owed to it
            stream.publish(event)
        position = await stream.arm_position_cut()

        async def scenario(pages: PageServer) -> None:
            others: list[Any] = []
            await pages.next_ack(others, until="open")
            stored = await stream.publish_while_away(events_to_publish("b", 3))
            await pages.next_ack(others, until="open")
            assert stream.live_last_event_ids() == [position]
            stored += [stream.publish(event) for event in events_to_publish("c", 2)]
            expected.extend(_seen(item) for item in stored)
            stream.publish(Event(data="", event="done"))

        try:
            result = await _run_browser(stream, tmp_path, scenario)
        finally:
            await stream.aclose()
        assert result["received"] == expected
        assert result["positions"] == [{"id": position, "data": ""}]
        assert result["errors"] == [0]

    asyncio.run(main())
