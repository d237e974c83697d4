"""Long polls answered by the per-request responses (the ASGI ``StreamResponse`` in Starlette
under uvicorn, the aiohttp.web one, the WSGI one under wsgiref), over real loopback sockets.

A per-request stream has no broadcaster: a poll is the same stream cut to one answer -- the
source started from the client's id, the events it has ready, closed. The application here is
a job whose events carry their index as id and whose source resumes after an id, as the
docs' recipe says. sse_core's own blocking client (``long_poll_url``) polls each framework in
both deployments (a path of its own; the stream's path by ``Accept``) and switches from a
held-back stream to polls and back; raw requests check the wire.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import threading
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from functools import partial
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import anyio
import pytest

from sse_core import (
    ClientConfig,
    ClientSession,
    Event,
    LocalProtocolError,
    LongPollConfig,
    ServerConfig,
    Transport,
)
from sse_core.adapters import ServerOptions, wsgi
from sse_core.adapters.sync import EventSource
from sse_core.state import ReplayLog
from sse_core.testing import StallAfter
from tests._threads import ProxyThread
from tests.adapters.test_longpoll_servers import (
    FAST_BACKOFF,
    TIMEOUT,
    UvicornThread,
    deliver,
    deliver_until_polling,
    polled,
    publish_numbers,
    raw_request,
    read_head,
    read_response,
)
from tests.test_docs_examples import is_peer_required

try:
    import aiohttp.web
    import starlette.applications
    import starlette.routing
    import uvicorn

    from sse_core.adapters import aiohttp as sse_aiohttp
    from sse_core.adapters import asgi as sse_asgi
except ModuleNotFoundError:  # the peers extra
    uvicorn = None

FRAMEWORKS = ["starlette", "aiohttp", "wsgi"]
#: The stream's path, and where polls go in the two deployments.
STREAM = "/feed"
DEPLOYMENTS = {"two paths": "/feed/poll", "one path": STREAM}
#: Padding makes the body start with the head (the switch test stalls right after it).
CONFIG = ServerConfig(heartbeat_interval=None, padding=64)


class Job:
    """A job's events, appended by the test; its sources resume after an id (``"<index>"``)."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self._added = threading.Condition()
        self.started = 0  # how many times a source was started

    def publish(self, data: str) -> None:
        """Add an event."""
        with self._added:
            self.items.append(data)
            self._added.notify_all()

    def _has_after(self, index: int) -> bool:
        return index < len(self.items)

    def _start(self, last_event_id: str) -> int:
        self.started += 1
        return int(last_event_id) + 1 if last_event_id.isdigit() else 0

    async def feed(self, last_event_id: str) -> AsyncIterator[Event]:
        """The events after ``last_event_id``, for ever (async)."""
        index = self._start(last_event_id)
        while True:
            while index < len(self.items):
                yield Event(data=self.items[index], id=str(index))
                index += 1
            await anyio.sleep(0.005)

    def feed_sync(self, last_event_id: str) -> Iterator[Event]:
        """The events after ``last_event_id``, for ever (blocking)."""
        index = self._start(last_event_id)
        while True:
            with self._added:
                self._added.wait_for(partial(self._has_after, index), 0.1)
            while index < len(self.items):
                yield Event(data=self.items[index], id=str(index))
                index += 1


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access log on stderr."""


class _ThreadingWSGIServer(WSGIServer):
    """wsgiref's server, one thread per request (a held poll beside a stream)."""

    def process_request(self, request: Any, client_address: Any) -> None:
        threading.Thread(
            target=self._serve_one, args=(request, client_address), daemon=True
        ).start()

    def _serve_one(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)


def aiohttp_thread(app: Any) -> tuple[tuple[str, int], Callable[[], None]]:
    """``app`` (an ``aiohttp.web.Application``) served on a loopback port by a thread of
    its own: the address, and how to stop it."""
    loop = asyncio.new_event_loop()
    runner = aiohttp.web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(aiohttp.web.TCPSite(runner, "127.0.0.1", 0).start())
    thread = threading.Thread(target=loop.run_forever, name="aiohttp", daemon=True)
    thread.start()

    def stop() -> None:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(TIMEOUT)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(TIMEOUT)

    return runner.addresses[0][:2], stop


class Served:
    """One framework serving the job's stream on both paths, in a thread of its own."""

    def __init__(self, framework: str, options: ServerOptions, **kwargs: Any) -> None:
        self.job = Job()
        kwargs.setdefault("config", CONFIG)
        self._stop: Callable[[], None]
        match framework:
            case "starlette":
                self._serve_starlette(options, kwargs)
            case "aiohttp":
                self._serve_aiohttp(options, kwargs)
            case "wsgi":
                self._serve_wsgi(options, kwargs)

    def _serve_starlette(self, options: ServerOptions, kwargs: dict[str, Any]) -> None:
        async def endpoint(request: Any) -> Any:
            return sse_asgi.StreamResponse(self.job.feed, options=options, **kwargs)

        routes = [starlette.routing.Route(path, endpoint) for path in DEPLOYMENTS.values()]
        runner = UvicornThread(starlette.applications.Starlette(routes=routes))
        self.address = runner.address
        self._stop = runner.stop

    def _serve_aiohttp(self, options: ServerOptions, kwargs: dict[str, Any]) -> None:
        async def handler(request: Any) -> Any:
            return sse_aiohttp.StreamResponse(self.job.feed, options=options, **kwargs)

        app = aiohttp.web.Application()
        for path in DEPLOYMENTS.values():
            app.router.add_get(path, handler)
        self.address, self._stop = aiohttp_thread(app)

    def _serve_wsgi(self, options: ServerOptions, kwargs: dict[str, Any]) -> None:
        def app(environ: dict[str, Any], start_response: Any) -> Any:
            response = wsgi.StreamResponse(self.job.feed_sync, options=options, **kwargs)
            return response(environ, start_response)

        server = make_server(
            "127.0.0.1", 0, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
        )
        self.address = server.server_address[:2]
        thread = threading.Thread(target=server.serve_forever, name="wsgiref", daemon=True)
        thread.start()

        def stop() -> None:
            server.shutdown()
            server.server_close()
            thread.join(TIMEOUT)

        self._stop = stop

    def url(self, path: str, address: tuple[str, int] | None = None) -> str:
        """The URL of ``path`` here (or at ``address``, a proxy in front)."""
        host, port = address or self.address
        return f"http://{host}:{port}{path}"

    def poll(self, target: str, headers: list[tuple[str, str]] | None = None) -> tuple[
        int, dict[str, str], bytes
    ]:
        """One poll with ``Accept: application/json``, read to its end."""
        sock = raw_request(self.address, target, [("Accept", "application/json"), *(headers or [])])
        return read_response(sock)

    def close(self) -> None:
        """Stop the server."""
        self._stop()


@pytest.fixture(params=FRAMEWORKS)
def framework(request: pytest.FixtureRequest) -> str:
    """Starlette under uvicorn, aiohttp.web, WSGI under wsgiref."""
    if request.param != "wsgi" and uvicorn is None:
        if is_peer_required():
            raise AssertionError("starlette, uvicorn or aiohttp is missing: the peers extra")
        pytest.skip("starlette, uvicorn and aiohttp are the peers extra")
    return str(request.param)


def serve(framework: str, poll_path: str = "/feed/poll", **kwargs: Any) -> Served:
    """``framework`` serving polls on ``poll_path`` (``STREAM``: by ``Accept``)."""
    return Served(framework, ServerOptions(path=STREAM, long_poll_path=poll_path), **kwargs)


# --- sse_core's client and its fallback ------------------------------------------------------


@pytest.mark.parametrize("deployment", list(DEPLOYMENTS))
def test_a_polling_client_gets_every_event_once_in_order(framework: str, deployment: str) -> None:
    """A client on long-polling gets every event of a per-request stream once, in order, in
    both deployments: each poll starts the source after the id the last answer gave."""
    served = serve(framework, DEPLOYMENTS[deployment])
    try:
        config = served_client(served, DEPLOYMENTS[deployment])
        got = polled(config, served.job.publish, 40)
        assert got == [str(number) for number in range(40)]
        assert served.job.started >= 2  # more than one poll: resumed by id
    finally:
        served.close()


def served_client(served: Served, poll_path: str, **kwargs: Any) -> ClientConfig:
    """A client of ``served`` that starts on polls (``poll_path``)."""
    kwargs.setdefault("url", served.url(STREAM))
    kwargs.setdefault("initial_transport", Transport.LONG_POLLING)
    return ClientConfig(
        long_poll_url=served.url(poll_path), backoff=FAST_BACKOFF, long_poll_timeout=5.0,
        min_poll_interval=0.01, **kwargs,
    )


@pytest.mark.parametrize("deployment", list(DEPLOYMENTS))
def test_the_fallback_switches_to_polls_and_back(framework: str, deployment: str) -> None:
    """The stream goes through a proxy that holds its body back (the head passes, nothing
    after): the client switches to polls, and -- the proxy healed -- its probe brings it back
    to the stream; across both switches, mid-publish, every event arrives once, in order."""
    poll_path = DEPLOYMENTS[deployment]
    served = serve(framework, poll_path)
    try:
        with ProxyThread(served.address) as proxy:
            config = served_client(
                served, poll_path, url=served.url(STREAM, proxy.address),
                initial_transport=Transport.STREAMING, first_byte_timeout=0.5, switch_after=1,
                retry_streaming_after=1.0,
            )
            # The first stream's head passes and nothing after it; later connections pass.
            headers = ClientSession(config, rng=random.Random(1)).request().headers
            proxy.schedule(StallAfter(after_bytes=read_head(served.address, headers, STREAM)))
            seen: list[Any] = []
            with EventSource(config) as source:
                publisher = publish_numbers(served.job.publish, 60, 0.05)
                try:
                    reports = source.reports()
                    got = deliver_until_polling(source, reports, seen)
                    got += deliver(reports, 60 - len(got), seen)
                finally:
                    publisher.join(TIMEOUT)
        transports = [r.transport for r in seen if hasattr(r, "transport")]
        assert got == [str(number) for number in range(60)]
        assert transports == [Transport.LONG_POLLING, Transport.STREAMING]
    finally:
        served.close()


# --- the wire ------------------------------------------------------------------------------


@pytest.mark.parametrize("deployment", list(DEPLOYMENTS))
def test_a_poll_answers_the_events_ready_after_the_id(framework: str, deployment: str) -> None:
    """A poll gets, at once, every event the source has ready after the client's id, with the
    ids, and where to resume; the answer is complete JSON (Content-Length); by Accept on the
    stream's path it says Vary: Accept."""
    served = serve(framework, DEPLOYMENTS[deployment])
    try:
        for number in range(5):
            served.job.publish(f"e{number}")
        status, fields, body = served.poll(f"{DEPLOYMENTS[deployment]}?lastEventId=1&timeout=5")
        answer = json.loads(body)
        assert status == 200 and fields["content-type"] == "application/json"
        assert int(fields["content-length"]) == len(body)
        assert [(e["id"], e["data"]) for e in answer["events"]] == [
            ("2", "e2"), ("3", "e3"), ("4", "e4"),
        ]
        assert answer["last_event_id"] == "4" and answer["gap"] is None
        assert ("vary" in fields) is (deployment == "one path")
        # The stream's own answer, to Accept: text/event-stream, is still the stream.
        sock = raw_request(served.address, STREAM, [("Accept", "text/event-stream")])
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(65536)
        sock.close()
        assert b"text/event-stream" in head.lower()
    finally:
        served.close()


def test_a_held_poll_is_answered_when_the_source_yields(framework: str) -> None:
    """With nothing after the id the poll is held, and answered soon after the source has
    an event."""
    served = serve(framework)
    try:
        served.job.publish("old")
        sock = raw_request(
            served.address, "/feed/poll?lastEventId=0&timeout=20", [("Accept", "application/json")]
        )
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(1, socket.MSG_PEEK)  # held: nothing yet
        sock.settimeout(TIMEOUT)
        started = time.monotonic()
        served.job.publish("new")
        status, _, body = read_response(sock)
        elapsed = time.monotonic() - started
        assert status == 200
        assert json.loads(body)["events"] == [{"id": "1", "event": "message", "data": "new"}]
        assert elapsed < 1.5, elapsed  # a loaded machine: wide margin
    finally:
        served.close()


def test_the_hold_ends_empty_and_gzip_when_asked(framework: str) -> None:
    """A poll that gets nothing within its timeout is answered empty, the client's id
    unchanged, no sooner than the timeout; with Accept-Encoding: gzip the body is gzip."""
    served = Served(
        framework,
        ServerOptions(path=STREAM, long_poll_path="/feed/poll", long_poll=LongPollConfig(
            max_hold=0.5
        )),
        config=ServerConfig(heartbeat_interval=None, is_compression_enabled=True),
    )
    try:
        started = time.monotonic()
        status, fields, body = served.poll(
            "/feed/poll?lastEventId=7&timeout=30", [("Accept-Encoding", "gzip")]
        )
        elapsed = time.monotonic() - started
        assert status == 200 and fields["content-encoding"] == "gzip"
        assert json.loads(zlib.decompress(body, 31)) == {
            "events": [], "last_event_id": "7", "gap": None, "retry": None,
        }
        assert 0.4 <= elapsed < 3.0, elapsed
    finally:
        served.close()


def test_without_long_poll_path_a_json_accept_still_streams(framework: str) -> None:
    """Polls are opt-in: by default a request that prefers JSON (the OpenAI client sends
    ``Accept: application/json`` with its streams) gets the stream."""
    served = Served(framework, ServerOptions())
    try:
        served.job.publish("x")
        sock = raw_request(served.address, STREAM, [("Accept", "application/json")])
        data = b""
        while b"data: x" not in data:
            data += sock.recv(65536)
        sock.close()
        assert b"text/event-stream" in data
    finally:
        served.close()


def test_a_poll_with_a_replay_log_is_answered_from_it_and_feeds_it(framework: str) -> None:
    """With a replay log, a poll whose id the log can place is answered from the log at once
    (the source not started); otherwise the source's events go to the log, with its ids."""
    log = ReplayLog()
    served = serve(framework, replay_log=log)
    try:
        served.job.publish("a")
        served.job.publish("b")
        _, _, body = served.poll("/feed/poll?timeout=5")  # a new client: the source
        first = json.loads(body)
        assert [e["data"] for e in first["events"]] == ["a", "b"]
        assert served.job.started == 1 and [s.id for s in log.events()] == ["0", "1"]
        _, _, body = served.poll("/feed/poll?lastEventId=0&timeout=5")  # from the log
        assert [e["data"] for e in json.loads(body)["events"]] == ["b"]
        assert served.job.started == 1
    finally:
        served.close()


def test_a_response_that_answered_a_poll_serves_no_other_request() -> None:
    """A StreamResponse is for one request: after a poll, a second one is misuse, refused
    before anything is read from the source."""
    job = Job()
    job.publish("a")
    response = wsgi.StreamResponse(
        job.feed_sync, options=ServerOptions(path=STREAM, long_poll_path=STREAM)
    )
    environ = {
        "PATH_INFO": STREAM, "QUERY_STRING": "timeout=5", "HTTP_ACCEPT": "application/json",
    }
    status, headers, body = response.start(environ)
    assert status == "200 OK" and response.is_long_poll
    assert ("Vary", "Accept") in headers
    assert json.loads(b"".join(body))["events"][0]["data"] == "a"
    with pytest.raises(LocalProtocolError, match="one request"):
        response.start(environ)
    assert job.started == 1
