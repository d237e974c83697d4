"""Plumbing of the per-request StreamResponse (ASGI and WSGI), driven in-process.

What the real servers cannot show deterministically: the items rule case by case, a client
that stops reading (``send_timeout``), an item that breaks the rule, the replay log, the
framework's extra headers and background task, and the WSGI body's thread hand-over. The
behaviour under real servers is in test_response_servers.py.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest

from sse_core import Event, InvalidConfigError, InvalidFieldError, LocalProtocolError, ServerConfig
from sse_core import Retry as RetryRecord
from sse_core.adapters import ServerOptions
from sse_core.adapters._response import event_of
from sse_core.adapters.asgi import StreamResponse
from sse_core.adapters.wsgi import StreamResponse as WSGIStreamResponse
from sse_core.state import ReplayLog

NO_HEARTBEAT = ServerConfig(heartbeat_interval=None)

# --- the items rule -------------------------------------------------------------------------

ITEMS = [
    (Event(data="x", event="e", id="1"), None, Event(data="x", event="e", id="1")),
    ("two\nlines", None, Event(data="two\nlines")),
    ({"data": "d"}, None, Event(data="d")),
    ({"data": "d", "event": "e", "id": "7", "retry": 3000}, RetryRecord(milliseconds=3000),
     Event(data="d", event="e", id="7")),
    ({"retry": 0}, RetryRecord(milliseconds=0), None),
    ({"event": "ping"}, None, Event(data="", event="ping")),
]


@pytest.mark.parametrize(("item", "hint", "event"), ITEMS)
def test_items_rule_what_each_item_sends(item: Any, hint: Any, event: Any) -> None:
    """Each allowed kind of item becomes the documented retry hint and event."""
    assert event_of(item) == (hint, event)


@pytest.mark.parametrize(
    ("item", "words"),
    [
        (b"bytes", "not bytes"),
        (None, "not NoneType"),
        (3, "not int"),
        ({"data": "d", "comment": "c"}, "['comment']"),
        ({"data": {"a": 1}}, "json.dumps"),
        ({"retry": "3000"}, "int of milliseconds"),
        ({"retry": True}, "int of milliseconds"),
    ],
)
def test_items_rule_refuses_everything_else(item: Any, words: str) -> None:
    """Anything but Event, str or a mapping of the four fields is a TypeError that says
    what was expected and what was seen."""
    with pytest.raises(TypeError, match=words.replace("[", r"\[").replace("]", r"\]")):
        event_of(item)


def test_items_rule_checks_field_text() -> None:
    """A mapping's id with a line break is refused as the Event record refuses it."""
    with pytest.raises(InvalidFieldError):
        event_of({"data": "d", "id": "a\nb"})


# --- ASGI, in-process -----------------------------------------------------------------------


class Peer:
    """An in-process ASGI server side for one request: records what is sent; ``stall``
    makes every body send after the head hang; ``leave`` sends ``http.disconnect``."""

    def __init__(self, *, stall: bool = False) -> None:
        self.sent: list[dict[str, Any]] = []
        self.stall = stall
        self.left = anyio.Event()

    async def receive(self) -> dict[str, Any]:
        await self.left.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Any) -> None:
        self.sent.append(message)
        if self.stall and message["type"] == "http.response.body":
            await anyio.sleep_forever()

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent)

    @property
    def is_ended(self) -> bool:
        return self.sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}


def scope(method: str = "GET", headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": "/s", "query_string": b"",
            "headers": headers or []}


def test_asgi_a_client_that_stops_reading_is_let_go_after_send_timeout() -> None:
    """A send held for longer than send_timeout ends the response and closes the
    generator (its finally runs) instead of holding them for ever."""
    closed = []

    async def source() -> AsyncIterator[str]:
        try:
            while True:
                yield "x"
        finally:
            closed.append(True)

    async def main() -> None:
        peer = Peer(stall=True)
        response = StreamResponse(source(), config=NO_HEARTBEAT,
                                  options=ServerOptions(send_timeout=0.3))
        with anyio.fail_after(10):
            await response(scope(), peer.receive, peer.send)
        assert closed == [True]
        assert peer.sent[0]["type"] == "http.response.start"

    anyio.run(main)


def test_asgi_a_client_stuck_on_a_heartbeat_is_let_go_too() -> None:
    """The source is silent, so the stuck send is a heartbeat's: after send_timeout the
    response ends and the generator is closed (its finally runs)."""
    closed = []

    async def source() -> AsyncIterator[str]:
        try:
            await anyio.sleep_forever()
            yield "never"
        finally:
            closed.append(True)

    async def main() -> None:
        peer = Peer(stall=True)
        response = StreamResponse(source(), config=ServerConfig(heartbeat_interval=0.05),
                                  options=ServerOptions(send_timeout=0.3))
        with anyio.fail_after(10):
            await response(scope(), peer.receive, peer.send)
        assert closed == [True]
        assert peer.sent[-1]["body"] == b":\n\n"

    anyio.run(main)


def test_asgi_heartbeats_between_gzip_events_keep_the_stream_whole() -> None:
    """With gzip, heartbeats sent by the timer between the source's events come out in
    stream order: the whole body decompresses to the events with comments between."""
    import gzip

    async def source() -> AsyncIterator[str]:
        for n in range(3):
            yield f"e{n}"
            await anyio.sleep(0.25)

    async def main() -> None:
        peer = Peer()
        await StreamResponse(source(), config=ServerConfig(heartbeat_interval=0.05))(
            scope(headers=[(b"accept-encoding", b"gzip")]), peer.receive, peer.send)
        text = gzip.decompress(peer.body).decode()
        blocks = text.split("\n\n")
        assert [b for b in blocks if b.startswith("data")] == ["data: e0", "data: e1", "data: e2"]
        assert blocks.count(":") >= 3, text

    anyio.run(main)


def test_asgi_an_item_against_the_rule_ends_cleanly_and_raises() -> None:
    """An item of another kind ends the body cleanly, closes the generator, and its
    TypeError propagates to the ASGI server."""
    closed = []

    async def source() -> AsyncIterator[Any]:
        try:
            yield "ok"
            yield b"raw bytes"
            yield "never"
        finally:
            closed.append(True)

    async def main() -> None:
        peer = Peer()
        with pytest.raises(TypeError, match="bytes"):
            await StreamResponse(source(), config=NO_HEARTBEAT)(scope(), peer.receive, peer.send)
        assert peer.body == b"data: ok\n\n"
        assert peer.is_ended
        assert closed == [True]

    anyio.run(main)


def test_asgi_replay_log_serves_the_resume_then_the_new_events() -> None:
    """With a replay log, what the first request streamed is appended to it; a second
    request with Last-Event-ID gets the events after it from the log, then its own."""
    log = ReplayLog()

    async def first() -> AsyncIterator[Event]:
        for n in range(3):
            yield Event(data=f"a{n}")

    async def second(last_event_id: str) -> AsyncIterator[str]:
        yield f"new after {last_event_id}"

    async def main() -> None:
        peer = Peer()
        await StreamResponse(first(), config=NO_HEARTBEAT, replay_log=log)(
            scope(), peer.receive, peer.send)
        ids = [line[4:] for line in peer.body.decode().splitlines() if line.startswith("id: ")]
        assert len(ids) == 4  # the position for a new client, then one per event
        peer = Peer()
        response = StreamResponse(second, config=NO_HEARTBEAT, replay_log=log)
        await response(scope(headers=[(b"last-event-id", ids[1].encode())]),
                       peer.receive, peer.send)
        assert response.last_event_id == ids[1]
        text = peer.body.decode()
        assert text.index("data: a1") < text.index("data: a2") < text.index("new after")
        assert "data: a0" not in text

    anyio.run(main)


def test_asgi_framework_headers_background_and_any_method() -> None:
    """A POST is served; headers a framework put in raw_headers join the session's head
    (its own Content-Type stays); a background task runs after the stream."""
    ran = []

    async def source() -> AsyncIterator[str]:
        yield "x"

    async def background() -> None:
        ran.append(True)

    async def main() -> None:
        peer = Peer()
        response = StreamResponse(source(), config=NO_HEARTBEAT)
        response.raw_headers = [(b"Set-Cookie", b"a=1"), (b"content-type", b"text/html")]
        response.background = background  # type: ignore[assignment]
        await response(scope("POST"), peer.receive, peer.send)
        headers = peer.sent[0]["headers"]
        assert (b"set-cookie", b"a=1") in headers
        assert [v for n, v in headers if n == b"content-type"] == [
            b"text/event-stream; charset=utf-8"]
        assert ran == [True]

    anyio.run(main)


def test_asgi_refuses_other_scopes_and_bad_arguments() -> None:
    """A websocket scope is misuse; a config that is not a ServerConfig, a log that is not
    a ReplayLog and a source that is not iterable are refused."""

    async def main() -> None:
        peer = Peer()
        with pytest.raises(LocalProtocolError, match="websocket"):
            await StreamResponse(["x"])({"type": "websocket"}, peer.receive, peer.send)  # type: ignore[arg-type]

    anyio.run(main)
    with pytest.raises(InvalidConfigError):
        StreamResponse([], config=object())  # type: ignore[arg-type]
    with pytest.raises(InvalidConfigError):
        StreamResponse([], replay_log=object())  # type: ignore[arg-type]
    with pytest.raises(InvalidConfigError):
        StreamResponse([], options=object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not int"):
        StreamResponse(5)  # type: ignore[arg-type]


def test_asgi_a_source_function_that_raises_ends_cleanly_and_raises() -> None:
    """The function of the last event ID raises: the client gets the head and a clean
    end, and the error propagates as it is (not wrapped in an exception group)."""

    def source(last_event_id: str) -> AsyncIterator[str]:
        raise LookupError(f"no stream after {last_event_id!r}")

    async def main() -> None:
        peer = Peer()
        with pytest.raises(LookupError, match="no stream after ''"):
            await StreamResponse(source, config=NO_HEARTBEAT)(scope(), peer.receive, peer.send)
        assert peer.sent[0]["status"] == 200
        assert peer.is_ended

    anyio.run(main)


def test_asgi_the_generator_raising_ends_cleanly_then_raises() -> None:
    """An exception from the generator reaches the ASGI server as it is, after the clean
    end of the body."""

    async def source() -> AsyncIterator[str]:
        yield "one"
        raise ValueError("model crashed")

    async def main() -> None:
        peer = Peer()
        with pytest.raises(ValueError, match="model crashed"):
            await StreamResponse(source(), config=NO_HEARTBEAT)(scope(), peer.receive, peer.send)
        assert peer.body == b"data: one\n\n"
        assert peer.is_ended

    anyio.run(main)


# --- WSGI, in-process -----------------------------------------------------------------------


def environ(**extra: str) -> dict[str, Any]:
    return {"REQUEST_METHOD": "GET", "PATH_INFO": "/s", "QUERY_STRING": "", **extra}


def test_wsgi_heartbeats_while_the_generator_waits() -> None:
    """The body yields heartbeat comments while the generator (in its own thread) sleeps,
    then the event, then the end."""

    def source() -> Iterator[str]:
        time.sleep(0.6)
        yield "late"

    status, _, body = WSGIStreamResponse(
        source(), config=ServerConfig(heartbeat_interval=0.1)).start(environ())
    assert status == "200 OK"
    chunks = list(body)
    assert chunks.count(b":\n\n") >= 2, chunks
    assert chunks[-1] == b"data: late\n\n"


def test_wsgi_close_stops_the_generator_thread() -> None:
    """Closing the body (the server does when the client goes) makes the generator's
    thread close the generator at its next yield (its finally runs)."""
    finished = threading.Event()

    def source() -> Iterator[str]:
        try:
            while True:
                yield "x"
                time.sleep(0.01)
        finally:
            finished.set()

    _, _, body = WSGIStreamResponse(source(), config=NO_HEARTBEAT).start(environ())
    assert next(body) == b"data: x\n\n"
    body.close()  # type: ignore[attr-defined]
    assert finished.wait(10)


def test_wsgi_an_error_ends_cleanly_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    """The generator raises: the body ends normally after what came before, and the error
    is logged by sse_core.server (ERROR, with the traceback and the structured keys)."""

    def source() -> Iterator[str]:
        yield "before"
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="sse_core.server"):
        _, _, body = WSGIStreamResponse(source(), config=NO_HEARTBEAT).start(environ())
        assert b"".join(body) == b"data: before\n\n"
    [record] = [r for r in caplog.records if r.exc_info and "boom" in str(r.exc_info[1])]
    assert (record.name, record.sse_event, record.sse_adapter) == (  # type: ignore[attr-defined]
        "sse_core.server", "source_failed", "wsgi"
    )


def test_wsgi_gzip_last_event_id_and_the_app_callable() -> None:
    """As a WSGI app: gzip when asked, the Last-Event-ID header handed to the function."""
    import gzip

    def source(last_event_id: str) -> Iterator[dict[str, str]]:
        yield {"data": f"after {last_event_id}", "id": "9"}

    started: list[Any] = []
    body = WSGIStreamResponse(source, config=NO_HEARTBEAT)(
        environ(HTTP_ACCEPT_ENCODING="gzip", HTTP_LAST_EVENT_ID="8", CONTENT_TYPE="text/plain"),
        lambda status, headers: started.append((status, headers)),
    )
    assert ("Content-Encoding", "gzip") in started[0][1]
    assert gzip.decompress(b"".join(body)) == b"id: 9\ndata: after 8\n\n"
