"""The iteration rules every adapter's EventSource shares (asyncio, trio and sync alike, and
the aiohttp driver over the user's ``ClientSession``).

One suite, parametrised over the three adapters, the blocking httpx driver and the aiohttp
driver, against a scripted HTTP/1.1 server on loopback (a thread with a plain socket): a
non-idempotent request is never sent twice by surprise, errors are exceptions where the
application iterates, the plain loop raises a gap and goes on after it, no status change is
lost when the loop is left early, and ``ClientOptions.timeout`` bounds an iteration.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sse_core import (
    ClientConfig,
    ClientState,
    EndCause,
    Event,
    GapError,
    HTTPStatusError,
    ReportGap,
    ReportStatus,
    StreamError,
    serialize_event,
)
from sse_core.adapters import ClientOptions
from sse_core.state import GAP_EVENT_TYPE, POSITION_EVENT_TYPE, BackoffConfig, BatchConfig, Jitter
from tests.adapters.test_sync import read_head

KINDS = ["asyncio", "trio", "sync", "httpx-sync", "aiohttp"]
# The test's premise, a body's last bytes and its end in one read, is the socket adapters':
# httpx hands a body's end out on the next step of its iterator, which the driver's response
# thread may not have taken yet when the application leaves the loop (then the session never
# saw the end, and CLOSED says so with no reason).
NOT_APPLICABLE = {"test_no_status_is_lost_when_the_loop_is_left": {"kind": {"httpx-sync"}}}
FAST = BackoffConfig(base_delay=0.02, min_base_delay=0.01, max_delay=0.1, jitter=Jitter.NONE)
LIMIT = 10.0  # seconds a scripted exchange may take before it counts as hung


def stream_head(*extra: str) -> bytes:
    """A 200 event-stream head, chunked unless ``extra`` frames it otherwise."""
    fields = ["Content-Type: text/event-stream", *extra]
    if not any(field.lower().startswith("content-length") for field in extra):
        fields.append("Transfer-Encoding: chunked")
    return ("HTTP/1.1 200 OK\r\n" + "".join(f"{f}\r\n" for f in fields) + "\r\n").encode()


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def tokens(*texts: str, first_id: int | None = None) -> bytes:
    """An LLM-style answer, one chunk per token, with ids from ``first_id`` when given."""
    return b"".join(
        chunk(serialize_event(text, id=None if first_id is None else str(first_id + n)))
        for n, text in enumerate(texts)
    )


NO_CONTENT = b"HTTP/1.1 204 No Content\r\n\r\n"


class Scripted:
    """A loopback HTTP/1.1 server in a thread: connection ``n`` gets ``answers[n]`` (the last
    one again past the end), then the server closes it (or holds it open, until the server
    closes or the client lets go of it, when the answer is ``(bytes, True)``). Every request
    head and body is recorded."""

    def __init__(self, answers: list[bytes | tuple[bytes, bool]]) -> None:
        self.answers = answers
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}/v1/chat"

    def __enter__(self) -> Scripted:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._closing.set()  # ends a held answer
        self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept (Linux)
        self._thread.join(LIMIT)
        self._listener.close()

    def _serve(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:  # shut down: the test is over
                return
            with sock:
                sock.settimeout(LIMIT)
                self._answer(sock)

    def _answer(self, sock: socket.socket) -> None:
        data = read_head(sock)
        if b"\r\n\r\n" not in data:
            return
        head, body = data.split(b"\r\n\r\n", 1)
        line, *fields = head.decode("latin-1").split("\r\n")
        headers = {n.lower(): v.strip() for n, v in (f.split(":", 1) for f in fields)}
        while len(body) < int(headers.get("content-length", "0")):
            body += sock.recv(65536)
        self.requests.append((line.split(" ", 1)[0], headers, body))
        answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        hold = isinstance(answer, tuple)
        try:
            sock.sendall(answer[0] if isinstance(answer, tuple) else answer)
        except OSError:  # the client (or a proxy between) went away: next connection
            return
        if hold:  # until the server closes or the client lets go of the connection
            deadline = time.monotonic() + LIMIT
            sock.settimeout(0.05)
            while not self._closing.is_set() and time.monotonic() < deadline:
                try:
                    if not sock.recv(65536):
                        return
                except TimeoutError:
                    continue
                except OSError:
                    return


class Outcome:
    """What the plain loop saw: events, gap reports, the exception it ended with, statuses."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.gaps: list[ReportGap] = []
        self.error: StreamError | None = None
        self.statuses: list[ReportStatus] = []
        self.seconds = 0.0
        self.breaks = 0  # loops left with break, then iterated again

    @property
    def text(self) -> str:
        return "".join(event.data for event in self.events)


def plain_loop(
    kind: str,
    config: ClientConfig,
    *,
    options: ClientOptions | None = None,
    stop_after: int | None = None,
    break_at: int | None = None,
    on_status: Callable[[ReportStatus], object] | None = None,
    events: list[Event] | None = None,
    sources: list[Any] | None = None,
) -> Outcome:
    """Run ``for event in source`` (``async for`` for the async adapters) as an application
    would: note each gap and iterate again; stop after ``stop_after`` events (then close);
    ``break`` out once after ``break_at`` events and iterate the source again. ``on_status``
    is called after the outcome noted each status; ``events``, when given, is the list the
    events are noted in; ``sources``, when given, gets the source once it is made."""
    outcome = Outcome()
    if events is not None:
        outcome.events = events

    def noted(status: ReportStatus) -> None:
        outcome.statuses.append(status)
        if on_status is not None:
            on_status(status)

    def arguments() -> dict[str, Any]:
        return {"options": options, "on_status": noted}

    def take(event: Event) -> bool:
        outcome.events.append(event)
        if len(outcome.events) == break_at:
            outcome.breaks += 1
            return True
        return stop_after is not None and len(outcome.events) >= stop_after

    started = time.monotonic()
    if kind in ("sync", "httpx-sync"):
        with _blocking_source(kind, config, **arguments()) as source:
            if sources is not None:
                sources.append(source)
            timer = threading.Timer(LIMIT, source.close)  # a watchdog only
            timer.start()
            try:
                asyncio.run(_async_loop(_Blocking(source), take, outcome))
            finally:
                timer.cancel()
    else:
        async def main() -> None:
            if kind == "trio":
                import trio

                from sse_core.adapters.trio import EventSource as TrioSource

                with trio.fail_after(LIMIT):
                    async with TrioSource(config, **arguments()) as source:
                        if sources is not None:
                            sources.append(source)
                        await _async_loop(source, take, outcome)
            elif kind == "aiohttp":
                import aiohttp

                from sse_core.adapters.aiohttp import EventSource as AiohttpSource

                async with aiohttp.ClientSession() as client, \
                        AiohttpSource(client, config, **arguments()) as source:
                    if sources is not None:
                        sources.append(source)
                    await asyncio.wait_for(_async_loop(source, take, outcome), LIMIT)
            else:
                from sse_core.adapters.asyncio import EventSource as AsyncioSource

                async with AsyncioSource(config, **arguments()) as source:
                    if sources is not None:
                        sources.append(source)
                    await asyncio.wait_for(_async_loop(source, take, outcome), LIMIT)

        if kind == "trio":
            trio = pytest.importorskip("trio")
            trio.run(main)
        else:
            asyncio.run(main())
    outcome.seconds = time.monotonic() - started
    return outcome


@contextlib.contextmanager
def _blocking_source(kind: str, config: ClientConfig, **kwargs: Any) -> Iterator[Any]:
    """The blocking socket adapter's source, or the blocking httpx driver's on a new
    ``httpx.Client``; closed (with its client) afterwards."""
    if kind == "sync":
        from sse_core.adapters.sync import EventSource as SyncSource

        with SyncSource(config, **kwargs) as source:
            yield source
        return
    httpx = pytest.importorskip("httpx", reason="httpx is in the peers extra")
    from sse_core.adapters.httpx import SyncEventSource

    with httpx.Client() as client, SyncEventSource(client, config, **kwargs) as driven:
        yield driven


class _Blocking:
    """A blocking source seen through ``async for`` (each step blocks: fine in a test), so
    that one loop below runs every adapter. Each ``async for`` asks the source for its
    iterator again, as a second ``for`` statement would."""

    def __init__(self, source: Any) -> None:
        self._source = source
        self._events: Iterator[Event] = iter(())

    def __aiter__(self) -> _Blocking:
        self._events = iter(self._source)
        return self

    async def __anext__(self) -> Event:
        try:
            return next(self._events)
        except StopIteration:
            raise StopAsyncIteration from None


async def _async_loop(source: Any, take: Callable[[Event], bool], outcome: Outcome) -> None:
    try:
        while True:
            breaks = outcome.breaks
            try:
                async for event in source:
                    if take(event):
                        break
                if outcome.breaks == breaks:
                    return  # ended, or stopped for good
            except GapError as gap:
                outcome.gaps.append(gap.report)
    except StreamError as error:
        outcome.error = error


def post(url: str, **kwargs: Any) -> ClientConfig:
    """An OpenAI-style request: POST, a JSON body, a bearer token."""
    kwargs.setdefault("backoff", FAST)
    return ClientConfig(
        url=url, method="POST", body=b'{"model": "m", "stream": true}',
        headers=(("Authorization", "Bearer sk-test"), ("Content-Type", "application/json")),
        **kwargs,
    )


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param in ("trio", "aiohttp"):
        pytest.importorskip(request.param)
    yield request.param


ANSWER = ("Hello", ", w", "\u00f6rld")


def test_a_post_cut_mid_answer_is_not_sent_again(kind: str) -> None:
    """The LLM case: a POST answer without ids is cut mid-way (the connection closes in the
    middle of the chunked body). The request is made once, every token arrives once, and the
    loop raises StreamError (NOT_RESUMABLE) with the reason, after the tokens."""
    cut = stream_head() + tokens(*ANSWER)  # no terminating chunk: cut
    with Scripted([cut]) as server:
        outcome = plain_loop(kind, post(server.url))
        time.sleep(0.2)  # a re-sent request (20 ms backoff) would have come by now
    assert outcome.text == "Hello, w\u00f6rld"
    assert len(server.requests) == 1
    assert isinstance(outcome.error, StreamError)
    assert not isinstance(outcome.error, HTTPStatusError)
    assert outcome.error.report.cause is EndCause.NOT_RESUMABLE
    assert "POST request is not sent again" in str(outcome.error)
    assert outcome.statuses[-1].state is ClientState.CLOSED


def test_a_post_with_ids_resumes_with_last_event_id(kind: str) -> None:
    """The same answer with ids: after the cut the POST is made again with Last-Event-ID
    and its body, and the resumed tokens complete the text once; a 204 then ends quietly."""
    first = stream_head() + tokens(*ANSWER[:2], first_id=1)
    rest = stream_head() + tokens(ANSWER[2], first_id=3) + b"0\r\n\r\n"
    with Scripted([first, rest, NO_CONTENT]) as server:
        outcome = plain_loop(kind, post(server.url))
    assert outcome.error is None
    assert outcome.text == "Hello, w\u00f6rld"
    assert [request[0] for request in server.requests] == ["POST"] * 3
    assert server.requests[1][1].get("last-event-id") == "2"
    assert server.requests[1][2] == b'{"model": "m", "stream": true}'


def test_resend_opt_in_sends_the_post_again(kind: str) -> None:
    """With is_resend_allowed the cut POST without ids is sent again (the user said it is
    safe); a 204 then ends the iteration quietly."""
    cut = stream_head() + tokens(*ANSWER)
    with Scripted([cut, NO_CONTENT]) as server:
        outcome = plain_loop(kind, post(server.url, is_resend_allowed=True))
    assert outcome.error is None
    assert len(server.requests) == 2
    assert outcome.statuses[-1].state is ClientState.CLOSED


def test_an_error_status_raises_with_status_headers_and_body(kind: str) -> None:
    """A wrong API key: 401 with a JSON body raises HTTPStatusError carrying the status, the
    headers and the body (read before the connection closes); nothing is retried."""
    body = json.dumps({"error": {"message": "Incorrect API key provided"}}).encode()
    answer = (
        b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n"
        b"WWW-Authenticate: Bearer\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    with Scripted([answer]) as server:
        outcome = plain_loop(kind, post(server.url))
    error = outcome.error
    assert isinstance(error, HTTPStatusError)
    assert (error.status, error.body) == (401, body)
    assert ("www-authenticate", "Bearer") in error.headers
    assert outcome.events == [] and len(server.requests) == 1


def test_a_large_error_body_is_cut_at_max_error_body_size(kind: str) -> None:
    """An error body larger than max_error_body_size: the first bytes only, and the client
    closes the connection without waiting for the rest."""
    answer = b"HTTP/1.1 500 Oops\r\nContent-Length: 100000\r\n\r\n" + b"x" * 5000
    with Scripted([(answer, True)]) as server:
        outcome = plain_loop(kind, post(server.url, max_error_body_size=1000))
    assert isinstance(outcome.error, HTTPStatusError)
    assert outcome.error.body == b"x" * 1000
    assert outcome.seconds < LIMIT / 2  # it did not wait for the other 95,000 bytes


def test_giving_up_raises_and_a_wrong_content_type_raises(kind: str) -> None:
    """A GET whose backoff gives up raises StreamError (GAVE_UP); a 200 that is not an event
    stream raises StreamError (REFUSED), not an HTTP status error."""
    ended = stream_head() + tokens("a") + b"0\r\n\r\n"
    with Scripted([ended]) as server:
        config = ClientConfig(url=server.url, backoff=BackoffConfig(max_attempts=0))
        outcome = plain_loop(kind, config)
    assert outcome.text == "a"
    assert isinstance(outcome.error, StreamError)
    assert outcome.error.report.cause is EndCause.GAVE_UP

    html = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 6\r\n\r\n<html>"
    with Scripted([html]) as server:
        outcome = plain_loop(kind, ClientConfig(url=server.url))
    assert type(outcome.error) is StreamError
    assert outcome.error.report.cause is EndCause.REFUSED
    assert "wrong Content-Type 'text/html'" in str(outcome.error)
    assert outcome.error.report.body == b"<html>"


def test_the_plain_loop_raises_a_gap_and_goes_on(kind: str) -> None:
    """The server signals a gap mid-stream: the plain loop raises GapError carrying the
    ReportGap, and iterating again goes on with the events after it."""
    gap = serialize_event(
        json.dumps({"last_event_id": "e-5", "reason": "too_old"}), event=GAP_EVENT_TYPE
    )
    position = serialize_event("", event=POSITION_EVENT_TYPE, id="e-90")
    body = (
        serialize_event("before", id="e-5") + gap + position + serialize_event("after", id="e-91")
    )
    answer = stream_head() + chunk(body) + b"0\r\n\r\n"
    with Scripted([answer, NO_CONTENT]) as server:
        outcome = plain_loop(kind, ClientConfig(url=server.url, backoff=FAST))
    assert [event.data for event in outcome.events] == ["before", "after"]
    assert [(g.reason, g.last_event_id) for g in outcome.gaps] == [("too_old", "e-5")]
    assert outcome.error is None
    assert server.requests[1][1].get("last-event-id") == "e-91"


def test_no_status_is_lost_when_the_loop_is_left(kind: str) -> None:
    """The stream's last event and its end come in one read, so the CLOSED status (the
    backoff gave up) is still queued when the application breaks out after that event and
    closes the source: on_status gets it all the same, with its reason; and the pending
    failure is not raised (the application closed the source)."""
    body = b"data: last\n\n"
    answer = stream_head(f"Content-Length: {len(body)}") + body
    with Scripted([answer]) as server:
        config = ClientConfig(url=server.url, backoff=BackoffConfig(max_attempts=0))
        outcome = plain_loop(kind, config, stop_after=1)
    assert outcome.text == "last"
    assert outcome.error is None
    final = outcome.statuses[-1]
    assert final.state is ClientState.CLOSED
    assert final.reason is not None and "gave up" in final.reason
    assert [s.state for s in outcome.statuses].count(ClientState.CLOSED) == 1


def test_timeout_ends_the_iteration_quietly(kind: str) -> None:
    """ClientOptions.timeout: a stream that stays open ends the iteration quietly once the
    time is up; the CLOSED status says why."""
    with Scripted([(stream_head() + tokens("a"), True)]) as server:
        outcome = plain_loop(
            kind, ClientConfig(url=server.url), options=ClientOptions(timeout=0.5)
        )
    assert outcome.text == "a"
    assert outcome.error is None
    assert 0.4 <= outcome.seconds < LIMIT / 2
    final = outcome.statuses[-1]
    assert final.state is ClientState.CLOSED
    assert final.reason == "closed after ClientOptions.timeout (0.5 s)"


def test_leaving_the_loop_keeps_the_stream(kind: str) -> None:
    """A ``break`` leaves the source and its connection as they are: iterating it again goes
    on with the next event, on the same connection."""
    body = b"".join(serialize_event(text, id=str(n)) for n, text in enumerate("abc"))
    answer = stream_head() + chunk(body) + b"0\r\n\r\n"
    with Scripted([answer, NO_CONTENT]) as server:
        outcome = plain_loop(kind, ClientConfig(url=server.url, backoff=FAST), break_at=1)
    assert outcome.breaks == 1
    assert outcome.text == "abc"
    assert outcome.error is None
    assert server.requests[1][1].get("last-event-id") == "2"  # one connection for a, b, c


def test_statuses_after_a_run_of_events_wait_for_the_events(kind: str) -> None:
    """Several events arrive in one read and the stream ends in it too: the plain loop
    hands the events out first, and on_status hears of the end (the backoff gave up)
    only once the application has taken all of them, as the stream ordered them."""
    body = b"".join(serialize_event(text) for text in "abc")
    answer = stream_head(f"Content-Length: {len(body)}") + body
    seen_at: list[tuple[ClientState, int]] = []
    events: list[Event] = []
    with Scripted([answer]) as server:
        config = ClientConfig(url=server.url, backoff=BackoffConfig(max_attempts=0))
        outcome = plain_loop(
            kind, config, events=events,
            on_status=lambda status: seen_at.append((status.state, len(events))),
        )
    assert outcome.text == "abc"
    assert outcome.error is not None and outcome.error.report.cause is EndCause.GAVE_UP
    assert (ClientState.CLOSED, 3) in seen_at
    assert [count for state, count in seen_at if state is ClientState.STREAMING] == [0]


def test_batching_hands_out_every_event_to_the_plain_loop(kind: str) -> None:
    """ClientConfig.batching: the session hands out batches; the plain loop still yields
    every event once, in order (the batch's first at once, the rest from the source)."""
    body = b"".join(serialize_event(text, id=str(n)) for n, text in enumerate("abcdefg"))
    answer = stream_head() + chunk(body) + b"0\r\n\r\n"
    with Scripted([answer, NO_CONTENT]) as server:
        config = ClientConfig(url=server.url, backoff=FAST,
                              batching=BatchConfig(max_events=3, max_delay=0.0))
        outcome = plain_loop(kind, config)
    assert outcome.text == "abcdefg"
    assert outcome.error is None


def test_reports_yield_the_batches() -> None:
    """reports() hands each DeliverBatch out as it is: batches of at most max_events that
    together are the events, in order (a read's events in as few batches as the limit
    allows: three for seven events in one read)."""
    from sse_core import DeliverBatch
    from sse_core.adapters.sync import EventSource as SyncSource

    body = b"".join(serialize_event(text) for text in "abcdefg")
    answer = stream_head() + chunk(body) + b"0\r\n\r\n"
    with Scripted([answer, NO_CONTENT]) as server:
        config = ClientConfig(url=server.url, backoff=FAST,
                              batching=BatchConfig(max_events=3, max_delay=0.0))
        with SyncSource(config) as source:
            batches = [report.events for report in source.reports()
                       if isinstance(report, DeliverBatch)]
    texts = ["".join(e.data for e in batch) for batch in batches]
    assert "".join(texts) == "abcdefg"
    assert all(1 <= len(text) <= 3 for text in texts) and len(texts) >= 3


def test_reports_yield_a_deliver_per_event_without_batching() -> None:
    """Without ClientConfig.batching, reports() hands out a Deliver per event, also when
    the session gave the adapter one record for a read's events (the blocking and the
    asyncio adapters: seven events in one read, seven Deliver, no DeliverBatch)."""
    from sse_core import Deliver, DeliverBatch
    from sse_core.adapters.asyncio import EventSource as AsyncioSource
    from sse_core.adapters.sync import EventSource as SyncSource

    body = b"".join(serialize_event(text) for text in "abcdefg")
    answer = stream_head() + chunk(body) + b"0\r\n\r\n"
    with Scripted([answer, NO_CONTENT]) as server, \
            SyncSource(ClientConfig(url=server.url, backoff=FAST)) as source:
        blocking = [report for report in source.reports()
                    if isinstance(report, (Deliver, DeliverBatch))]
    with Scripted([answer, NO_CONTENT]) as server:
        async def read() -> list[Any]:
            async with AsyncioSource(ClientConfig(url=server.url, backoff=FAST)) as source:
                return [report async for report in source.reports()
                        if isinstance(report, (Deliver, DeliverBatch))]

        asynchronous = asyncio.run(asyncio.wait_for(read(), LIMIT))
    for reports in (blocking, asynchronous):
        assert all(isinstance(report, Deliver) for report in reports)
        assert "".join(report.event.data for report in reports) == "abcdefg"


def test_only_the_applications_batches_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    """The DEBUG line "batch of N events" is for ClientConfig.batching's batches: a plain
    source, whose session hands a read's events over as one record, logs none (nothing is
    logged per read or per event), not even for the record still queued when on_status
    closes the source at STREAMING; a batching source logs its batch."""
    from sse_core.adapters.sync import EventSource as SyncSource

    body = b"".join(serialize_event(text) for text in "abcdefg")
    answer = stream_head() + chunk(body) + b"0\r\n\r\n"
    caplog.set_level(logging.DEBUG, logger="sse_core.client")
    logged: dict[str, list[str]] = {}
    for name, batching in (("plain", None), ("batching", BatchConfig(max_delay=0.0))):
        caplog.clear()
        with Scripted([answer, NO_CONTENT]) as server:
            sources: list[Any] = []

            def closing(status: ReportStatus, sources: list[Any] = sources,
                        is_plain: bool = batching is None) -> None:
                if is_plain and status.state is ClientState.STREAMING:
                    sources[0].close()  # a read's events are still queued

            config = ClientConfig(url=server.url, backoff=FAST, batching=batching)
            with SyncSource(config, on_status=closing) as source:
                sources.append(source)
                text = "".join(event.data for event in source)
        assert text == ("" if batching is None else "abcdefg")
        logged[name] = [r.getMessage() for r in caplog.records
                        if r.getMessage().startswith("batch of")]
    assert logged == {"plain": [], "batching": ["batch of 7 events"]}


def later(kind: str, seconds: float, call: Callable[[], object]) -> None:
    """Call ``call`` ``seconds`` from now, from where the adapter expects signals: another
    thread for the blocking ones, the event loop for the async ones (on_status runs there)."""
    if kind in ("sync", "httpx-sync"):
        threading.Timer(seconds, call).start()
    elif kind == "trio":
        import trio

        async def delayed() -> None:
            await trio.sleep(seconds)
            call()

        trio.lowlevel.spawn_system_task(delayed)
    else:
        asyncio.get_running_loop().call_later(seconds, call)


def test_offline_drops_the_stream_and_online_resumes(kind: str) -> None:
    """network_offline() while streaming: the connection goes, the status is OFFLINE and
    nothing is tried (no deadline: the adapter waits for the signal, it does not end the
    iteration); network_online() 0.3 s later wakes it and it connects at once, resuming
    with Last-Event-ID."""
    held = (stream_head() + chunk(serialize_event("a", id="1")), True)
    sources: list[Any] = []

    def on_status(status: ReportStatus) -> None:
        if status.state is ClientState.STREAMING and len(server.requests) == 1:
            sources[0].network_offline()
        elif status.state is ClientState.OFFLINE:
            later(kind, 0.3, sources[0].network_online)

    with Scripted([held, NO_CONTENT]) as server:
        config = ClientConfig(url=server.url, backoff=FAST, stall_timeout=30.0)
        outcome = plain_loop(kind, config, on_status=on_status, sources=sources)
    assert outcome.text == "a"
    assert outcome.error is None
    states = [s.state for s in outcome.statuses]
    assert states[:5] == [ClientState.CONNECTING, ClientState.CONNECTED, ClientState.STREAMING,
                          ClientState.OFFLINE, ClientState.CONNECTING], states
    offline, back = outcome.statuses[3], outcome.statuses[4]
    assert offline.reason == "the network is offline"
    assert back.since - offline.since >= 0.25  # nothing tried while offline
    assert len(server.requests) == 2
    assert server.requests[1][1].get("last-event-id") == "1"


def test_network_change_replaces_the_stream_at_once(kind: str) -> None:
    """network_changed() while streaming: the connection is replaced at once (not after
    the 30 s stall timeout), resuming with Last-Event-ID."""
    held = (stream_head() + chunk(serialize_event("a", id="1")), True)
    sources: list[Any] = []

    def on_status(status: ReportStatus) -> None:
        if status.state is ClientState.STREAMING and len(server.requests) == 1:
            sources[0].network_changed()

    with Scripted([held, NO_CONTENT]) as server:
        config = ClientConfig(url=server.url, backoff=FAST, stall_timeout=30.0)
        outcome = plain_loop(kind, config, on_status=on_status, sources=sources)
    assert outcome.text == "a"
    assert outcome.seconds < 10.0
    assert [s.reason for s in outcome.statuses if s.state is ClientState.CONNECTING][1] == (
        "the network changed")
    assert server.requests[1][1].get("last-event-id") == "1"
