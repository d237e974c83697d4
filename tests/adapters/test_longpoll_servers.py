"""Long polls answered by every server sse_core ships (asyncio, trio, sync, the ASGI app under
uvicorn), over real loopback sockets, from the same broadcaster and log as the stream.

sse_core's own blocking client (``long_poll_url``) polls them and switches between the
transports; raw sockets check the wire (held, answered on publish, ``max_hold``,
``max_held_polls``, gzip, one encoding per publish shared by every held poll).
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import h11
import pytest

from sse_core import (
    ClientConfig,
    ClientSession,
    Deliver,
    Event,
    LongPollConfig,
    ReportGap,
    ReportTransport,
    ServerConfig,
    Transport,
)
from sse_core.adapters import ServerOptions
from sse_core.adapters._server_base import prefers_json
from sse_core.adapters.asgi import EventStream
from sse_core.adapters.sync import EventSource
from sse_core.state import AuditKind, BackoffConfig, LongPollState, ReplayConfig, ReplayLog
from sse_core.testing import FaultProxy, Pass, StallAfter
from tests.adapters.nginx_support import (
    BUFFERING,
    FRIENDLY,
    docs_locations,
    nginx_binary,
    requests_logged,
    running_nginx,
)
from tests.adapters.test_server_edges import Served
from tests.test_docs_examples import is_peer_required

try:
    import uvicorn
except ModuleNotFoundError:  # the peers extra
    uvicorn = None

T = TypeVar("T")
TIMEOUT = 10.0  # only reached when a test fails
QUIET = ServerConfig(heartbeat_interval=None)
FAST_BACKOFF = BackoffConfig(base_delay=0.05, min_base_delay=0.01, max_delay=0.2)
BACKENDS = ["asyncio", "trio", "sync", "asgi"]
#: The two deployments: polls on a path of their own, or on the stream's path by Accept.
DEPLOYMENTS = {"two paths": "/poll", "one path": "/events"}


class UvicornThread:
    """An ASGI application under uvicorn, in a thread of its own."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._uvicorn: Any = None
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self._sock = sock
        self.address: tuple[str, int] = sock.getsockname()[:2]
        self._thread = threading.Thread(target=self._run, name="served asgi")
        self._thread.start()
        assert self._ready.wait(TIMEOUT), "uvicorn did not start"

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            config = uvicorn.Config(
                self.app, http="h11", lifespan="off", log_config=None,
                log_level="critical", timeout_graceful_shutdown=1,
            )
            self._uvicorn = uvicorn.Server(config)
            task = asyncio.create_task(self._uvicorn.serve([self._sock]))
            while not self._uvicorn.started:
                await asyncio.sleep(0.01)
            self._ready.set()
            await task

        asyncio.run(main())

    def stop(self) -> None:
        """Stop uvicorn."""
        if not self._thread.is_alive():
            return
        self._uvicorn.should_exit = True
        self._thread.join(3 * TIMEOUT)
        self._sock.close()


class ServedASGI(UvicornThread):
    """The ASGI ``EventStream`` under uvicorn, in a thread of its own (as :class:`Served`)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("config", QUIET)
        self.server = EventStream(**kwargs)
        super().__init__(self.server)

    def call(self, function: Callable[[], T]) -> T:
        """Run ``function`` in the server's loop and return its value."""
        assert self._loop is not None

        async def run() -> T:
            return function()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(TIMEOUT)

    def publish(self, event: Event) -> None:
        """Publish from the loop, as an application would."""
        self.call(lambda: self.server.publish(event))

    def close(self) -> None:
        """End the streams and stop uvicorn."""
        if not self._thread.is_alive():
            return
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(self.server.aclose(timeout=1.0), self._loop).result(
            TIMEOUT
        )
        self.stop()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Every server: asyncio, trio, sync, ASGI."""
    if request.param == "asgi" and uvicorn is None:
        pytest.skip("uvicorn is not installed (the peers extra)")
    return str(request.param)


def serve(backend: str, **kwargs: Any) -> Any:
    """Start ``backend``'s server with these arguments."""
    kwargs.setdefault("config", QUIET)
    if backend == "asgi":
        return ServedASGI(**kwargs)
    return Served(backend, **kwargs)


@pytest.fixture
def served(backend: str, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A server with long polls on ``/poll`` (or the options given indirectly)."""
    options = getattr(request, "param", ServerOptions(long_poll_path="/poll"))
    server = serve(backend, options=options)
    try:
        yield server
    finally:
        server.close()


def broadcaster(served: Any, what: Callable[[Any], T]) -> T:
    """Read something of the server's broadcaster where it runs."""
    return served.call(lambda: what(served.server.broadcaster))


def until(check: Callable[[], bool], what: str) -> None:
    """Wait for a condition nothing signals, failing after TIMEOUT."""
    deadline = time.monotonic() + TIMEOUT
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def url(served: Any, path: str) -> str:
    """The server's URL for ``path``."""
    host, port = served.address
    return f"http://{host}:{port}{path}"


def raw_request(
    address: tuple[str, int], target: str, headers: list[tuple[str, str]]
) -> socket.socket:
    """Open a connection and send one GET."""
    sock = socket.create_connection(address, timeout=TIMEOUT)
    client = h11.Connection(h11.CLIENT)
    data = client.send(h11.Request(
        method="GET", target=target, headers=[("Host", "test"), *headers]
    ))
    sock.sendall((data or b"") + (client.send(h11.EndOfMessage()) or b""))
    return sock


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read one whole response: status, header fields (lower-case names), body."""
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("Host", "test")]))
    client.send(h11.EndOfMessage())
    status, fields, body = 0, {}, bytearray()
    while True:
        event = client.next_event()
        if event is h11.NEED_DATA:
            client.receive_data(sock.recv(65536))
            continue
        if isinstance(event, h11.Response):
            status = event.status_code
            fields = {n.decode().lower(): v.decode() for n, v in event.headers}
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            sock.close()
            return status, fields, bytes(body)


def poll_once(served: Any, target: str, headers: list[tuple[str, str]] | None = None) -> tuple[
    int, dict[str, str], bytes
]:
    """One poll, read to its end."""
    return read_response(raw_request(served.address, target, headers or []))


def client_config(served: Any, poll_path: str, **kwargs: Any) -> ClientConfig:
    """A client of ``served`` with long-polling on ``poll_path``."""
    kwargs.setdefault("url", url(served, "/events"))
    return ClientConfig(
        long_poll_url=url(served, poll_path), backoff=FAST_BACKOFF, long_poll_timeout=5.0,
        **kwargs,
    )


def deliver(reports: Iterator[Any], count: int, seen: list[Any] | None = None) -> list[str]:
    """The data of the next ``count`` events of a source's reports; the others go to
    ``seen``."""
    got: list[str] = []
    for report in reports:
        if isinstance(report, Deliver):
            got.append(report.event.data)
            if len(got) == count:
                break
        elif seen is not None:
            seen.append(report)
    return got


def publish_first(served: Any) -> str:
    """Publish one event before the client starts; its id (the client's starting place)."""
    served.publish(Event(data="before"))
    return broadcaster(served, lambda b: b.replay_log.position)


def publish_in_background(served: Any, count: int, interval: float) -> threading.Thread:
    """Publish events "0" .. "count-1", ``interval`` apart, from another thread."""
    return publish_numbers(lambda data: served.publish(Event(data=data)), count, interval)


def publish_numbers(publish: Callable[[str], None], count: int, interval: float) -> (
    threading.Thread
):
    """Call ``publish`` with "0" .. "count-1", ``interval`` apart, from another thread."""

    def run() -> None:
        for number in range(count):
            publish(str(number))
            time.sleep(interval)

    thread = threading.Thread(target=run, name="publisher")
    thread.start()
    return thread


# --- sse_core's client polls every server -------------------------------------------------


@pytest.mark.parametrize("deployment", list(DEPLOYMENTS))
def test_a_polling_client_gets_every_event_once_in_order(backend: str, deployment: str) -> None:
    """A client that starts on long-polling gets every event published meanwhile, once, in
    order, from both deployments (a path of its own; the stream's path by Accept)."""
    poll_path = DEPLOYMENTS[deployment]
    served = serve(backend, options=ServerOptions(path="/events", long_poll_path=poll_path))
    try:
        first = publish_first(served)
        config = client_config(
            served, poll_path, initial_transport=Transport.LONG_POLLING,
            last_event_id=first,
        )
        got = polled(config, lambda data: served.publish(Event(data=data)), 40)
        assert got == [str(number) for number in range(40)]
    finally:
        served.close()


def polled(config: ClientConfig, publish: Callable[[str], None], count: int) -> list[str]:
    """What a client delivers while ``count`` events are published 10 ms apart; it is on
    polls at the end."""
    with EventSource(config) as source:
        publisher = publish_numbers(publish, count, 0.01)
        try:
            got = deliver(source.reports(), count)
        finally:
            publisher.join(TIMEOUT)
        assert source.session.transport is Transport.LONG_POLLING
    return got


def test_switching_stream_to_polls_and_back_loses_and_repeats_nothing(backend: str) -> None:
    """The stream goes through a proxy that holds the body back (the head arrives, then
    nothing): the client switches to polls, then -- the proxy healed -- its probe brings it
    back to the stream; across both switches, mid-publish, every event arrives once."""
    served = serve(
        backend,
        options=ServerOptions(long_poll_path="/poll"),
        config=ServerConfig(heartbeat_interval=None, padding=64),
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fault proxy")
    thread.start()
    try:
        proxy = FaultProxy(served.address)
        asyncio.run_coroutine_threadsafe(proxy.start(), loop).result(TIMEOUT)
        host, port = proxy.address
        first = publish_first(served)
        config = client_config(
            served, "/poll", url=f"http://{host}:{port}/events", last_event_id=first,
            first_byte_timeout=0.5, switch_after=1, retry_streaming_after=1.0,
            min_poll_interval=0.01,
        )
        # The stream's head, as this client's request gets it, passes; its body does not.
        request = ClientSession(config, rng=random.Random(1)).request()
        head = read_head(served.address, request.headers)
        loop.call_soon_threadsafe(setattr, proxy, "default", StallAfter(after_bytes=head))
        seen: list[Any] = []
        with EventSource(config) as source:
            publisher = publish_in_background(served, 60, 0.05)
            try:
                reports = source.reports()
                got = deliver_until_polling(source, reports, seen)
                loop.call_soon_threadsafe(setattr, proxy, "default", Pass())
                got += deliver(reports, 60 - len(got), seen)
            finally:
                publisher.join(TIMEOUT)
            transports = [r.transport for r in seen if isinstance(r, ReportTransport)]
        assert got == [str(number) for number in range(60)]
        assert transports == [Transport.LONG_POLLING, Transport.STREAMING]
        asyncio.run_coroutine_threadsafe(proxy.close(), loop).result(TIMEOUT)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(TIMEOUT)
        loop.close()
        served.close()


def read_head(
    address: tuple[str, int], headers: tuple[tuple[str, str], ...], path: str = "/events"
) -> int:
    """The length of the response head a stream request with ``headers`` gets."""
    sock = raw_request(address, path, [h for h in headers if h[0].lower() != "host"])
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    sock.close()
    return data.index(b"\r\n\r\n") + 4


def deliver_until_polling(
    source: EventSource, reports: Iterator[Any], seen: list[Any]
) -> list[str]:
    """Events delivered until the client has switched to polls and got one there."""
    got: list[str] = []
    for report in reports:
        if isinstance(report, Deliver):
            got.append(report.event.data)
            if source.session.transport is Transport.LONG_POLLING:
                return got
        else:
            seen.append(report)
    return got


# --- the wire ---------------------------------------------------------------------------------


def test_a_held_poll_is_answered_on_publish(served: Any) -> None:
    """A poll at the log's end is held (no answer before the publish) and answered within a
    small bound after it, with the stream's id."""
    position = broadcaster(served, lambda b: b.replay_log.position)
    sock = raw_request(served.address, f"/poll?lastEventId={position}&timeout=20", [])
    until(lambda: broadcaster(served, lambda b: b.held_polls) == 1, "the poll held")
    sock.settimeout(0.3)
    with pytest.raises(TimeoutError):
        sock.recv(1, socket.MSG_PEEK)  # held: nothing yet
    sock.settimeout(TIMEOUT)
    started = time.monotonic()
    served.publish(Event(data="now"))
    status, fields, body = read_response(sock)
    elapsed = time.monotonic() - started
    answer = json.loads(body)
    assert status == 200 and fields["content-type"] == "application/json"
    assert [e["data"] for e in answer["events"]] == ["now"]
    assert answer["last_event_id"] == broadcaster(served, lambda b: b.replay_log.position)
    assert elapsed < 1.0, elapsed  # a loaded machine: wide margin


HOLD_HALF_A_SECOND = ServerOptions(long_poll_path="/poll", long_poll=LongPollConfig(max_hold=0.5))


@pytest.mark.parametrize("served", [HOLD_HALF_A_SECOND], indirect=True)
def test_max_hold_bounds_the_hold(served: Any) -> None:
    """A client asking to wait 30 s is answered (empty) after max_hold, not before."""
    started = time.monotonic()
    status, _, body = poll_once(served, "/poll?timeout=30")
    elapsed = time.monotonic() - started
    assert status == 200 and json.loads(body)["events"] == []
    assert 0.4 <= elapsed < 3.0, elapsed


TWO_POLLS = ServerOptions(long_poll_path="/poll", max_held_polls=2, busy_retry_delay=7)


@pytest.mark.parametrize("served", [TWO_POLLS], indirect=True)
def test_max_held_polls_refuses_more_with_503(served: Any) -> None:
    """Past max_held_polls a poll gets 503 with Retry-After; streams are still served."""
    held = [raw_request(served.address, "/poll?timeout=20", []) for _ in range(2)]
    until(lambda: broadcaster(served, lambda b: b.held_polls) == 2, "two polls held")
    status, fields, _ = poll_once(served, "/poll?timeout=20")
    assert status == 503 and fields["retry-after"] == "7"
    stream = raw_request(served.address, "/events", [])
    assert stream.recv(12) == b"HTTP/1.1 200"
    stream.close()
    for sock in held:
        sock.close()
    until(lambda: broadcaster(served, lambda b: b.polls) == 0, "the polls forgotten")
    served.publish(Event(data="x"))
    status, _, _ = poll_once(served, "/poll?lastEventId=start&timeout=0")
    assert status == 200


def test_gzip_when_asked(served: Any) -> None:
    """A poll with Accept-Encoding: gzip gets a gzip body that decodes to the plain one."""
    position = broadcaster(served, lambda b: b.replay_log.position)
    served.publish(Event(data="a" * 500))
    target = f"/poll?lastEventId={position}&timeout=0"
    _, plain_fields, plain = poll_once(served, target)
    status, fields, zipped = poll_once(served, target, [("Accept-Encoding", "gzip")])
    assert status == 200 and fields["content-encoding"] == "gzip"
    assert "content-encoding" not in plain_fields
    assert zlib.decompress(zipped, 31) == plain and len(zipped) < len(plain)


def test_polls_held_together_share_one_encoding_per_publish(served: Any) -> None:
    """Twenty polls held at the log's end get the same bytes, encoded once per publish."""
    for round_number in range(3):
        position = broadcaster(served, lambda b: b.replay_log.position)
        socks = [
            raw_request(served.address, f"/poll?lastEventId={position}&timeout=20", [])
            for _ in range(20)
        ]
        until(lambda: broadcaster(served, lambda b: b.held_polls) == 20, "twenty polls held")
        before = broadcaster(served, lambda b: b.answers_encoded)
        served.publish(Event(data=f"round {round_number}"))
        bodies = {read_response(sock)[2] for sock in socks}
        assert len(bodies) == 1
        assert broadcaster(served, lambda b: b.answers_encoded) == before + 1


ONE_PATH = ServerOptions(path="/events", long_poll_path="/events")


@pytest.mark.parametrize("served", [ONE_PATH], indirect=True)
def test_one_path_negotiates_by_accept(served: Any) -> None:
    """On one path, Accept picks the answer; both say Vary: Accept."""
    status, fields, _ = poll_once(
        served, "/events?timeout=0", [("Accept", "application/json")]
    )
    assert status == 200 and fields["content-type"] == "application/json"
    assert "accept" in fields["vary"].lower()
    stream = raw_request(served.address, "/events", [("Accept", "text/event-stream")])
    data = b""
    while b"\r\n\r\n" not in data:
        data += stream.recv(65536)
    stream.close()
    assert b"text/event-stream" in data and b"vary: accept" in data.lower()


@pytest.mark.parametrize(
    ("accept", "is_poll"),
    [
        (None, False),
        ("", False),
        ("text/event-stream", False),
        ("application/json", True),
        ("*/*", False),
        ("application/json, text/event-stream", False),
        ("application/json, text/event-stream;q=0.5", True),
        ("application/*", True),
        ("text/*;q=0.9, application/json;q=0.8", False),
        ("application/json;q=0", False),
        ("application/json;q=bad", False),
    ],
)
def test_prefers_json(accept: str | None, is_poll: bool) -> None:
    """A request is a poll only when Accept rates application/json above the stream."""
    assert prefers_json(accept) is is_poll


# --- behind a real nginx ------------------------------------------------------------------


@pytest.fixture
def nginx() -> str:
    """The nginx binary; skips without it, fails under SSE_CORE_REQUIRE_PEERS."""
    binary = nginx_binary()
    if binary is None:
        if is_peer_required():
            raise AssertionError("nginx is missing: run .ci/peers.sh")
        pytest.skip("nginx is missing (.ci/peers.sh installs it)")
    return binary


def through_nginx(tmp_path: Path, location: str, count: int) -> tuple[list[str], list[Any]]:
    """The asyncio server behind nginx with ``location``'s directives; a client with both
    URLs through nginx reads ``count`` events published 50 ms apart: the data it got, and
    its other reports."""
    served = serve(
        "asyncio", options=ServerOptions(long_poll_path="/poll"),
        config=ServerConfig(heartbeat_interval=None),
    )
    try:
        first = publish_first(served)
        with running_nginx(tmp_path / "nginx", served.address, location) as (host, port):
            config = ClientConfig(
                url=f"http://{host}:{port}/events", long_poll_url=f"http://{host}:{port}/poll",
                last_event_id=first, backoff=FAST_BACKOFF, first_byte_timeout=1.0,
                switch_after=2, long_poll_timeout=5.0, min_poll_interval=0.01,
                retry_streaming_after=300.0,
            )
            seen: list[Any] = []
            with EventSource(config) as source:
                publisher = publish_in_background(served, count, 0.05)
                try:
                    got = deliver(source.reports(), count, seen)
                finally:
                    publisher.join(TIMEOUT)
        return got, seen
    finally:
        served.close()


def test_behind_a_buffering_nginx_the_client_switches_to_polls(
    nginx: str, tmp_path: Path
) -> None:
    """nginx buffering the stream (X-Accel-Buffering ignored): the head arrives, the events
    do not; the client sees it, switches to long polls and gets every event once, in
    order."""
    got, seen = through_nginx(tmp_path, BUFFERING, 60)
    assert got == [str(number) for number in range(60)]
    transports = [r.transport for r in seen if isinstance(r, ReportTransport)]
    assert transports == [Transport.LONG_POLLING]
    assert any("GET /poll?" in line for line in requests_logged(tmp_path / "nginx"))


def test_behind_a_streaming_friendly_nginx_the_client_streams(
    nginx: str, tmp_path: Path
) -> None:
    """nginx with proxy_buffering off: the client streams every event and never polls."""
    got, seen = through_nginx(tmp_path, FRIENDLY, 30)
    assert got == [str(number) for number in range(30)]
    assert not [r for r in seen if isinstance(r, ReportTransport)]
    assert not any("GET /poll" in line for line in requests_logged(tmp_path / "nginx"))


#: The nginx examples of the long-poll page: one path, and two paths.
DOCS_NGINX = docs_locations(Path(__file__).parents[2] / "docs" / "longpoll.rst")


@pytest.mark.parametrize("deployment", list(DEPLOYMENTS))
def test_the_docs_nginx_examples_serve_both_transports(
    nginx: str, tmp_path: Path, deployment: str
) -> None:
    """nginx run with the docs' own example for each deployment: a client streams through it
    (never polling) and another polls through it from the start, each getting every event
    once, in order; nginx's log shows the polls on the deployment's poll path."""
    assert set(DOCS_NGINX) == set(DEPLOYMENTS)
    poll_path = {"two paths": "/events/poll", "one path": "/events"}[deployment]
    served = serve("asyncio", options=ServerOptions(path="/events", long_poll_path=poll_path))
    try:
        first = publish_first(served)
        prefix = tmp_path / "nginx"
        with running_nginx(prefix, served.address, DOCS_NGINX[deployment]) as address:
            for transport in Transport:
                config = ClientConfig(
                    url=f"http://{address[0]}:{address[1]}/events",
                    long_poll_url=f"http://{address[0]}:{address[1]}{poll_path}",
                    last_event_id=first, backoff=FAST_BACKOFF, first_byte_timeout=2.0,
                    long_poll_timeout=5.0, min_poll_interval=0.01,
                    initial_transport=transport,
                )
                seen: list[Any] = []
                with EventSource(config) as source:
                    publisher = publish_in_background(served, 20, 0.02)
                    try:
                        got = deliver(source.reports(), 20, seen)
                    finally:
                        publisher.join(TIMEOUT)
                    assert source.session.transport is transport
                assert got == [str(number) for number in range(20)]
                assert not [r for r in seen if isinstance(r, ReportTransport)]
                first = broadcaster(served, lambda b: b.replay_log.position)
        polls = [line for line in requests_logged(prefix) if "lastEventId=" in line]
        assert polls and all(f"GET {poll_path}?" in line for line in polls)
    finally:
        served.close()


# --- a too-old poll: how many were lost ------------------------------------------------------


def test_a_too_old_poll_says_how_many_were_lost(backend: str) -> None:
    """A client polls from an id whose successors the log (3 events) evicted: the answer's
    gap says 6 were lost, the client's ReportGap carries it, and its completion rate is
    3 delivered / (3 + 6) -- not unknown, as before the answer carried the count."""
    served = serve(backend, options=ServerOptions(long_poll_path="/poll"),
                   replay_log=ReplayLog(ReplayConfig(max_events=3)))
    try:
        first = publish_first(served)
        for number in range(9):  # the log keeps 6, 7, 8: 0 .. 5 are lost after `first`
            served.publish(Event(data=str(number)))
        config = ClientConfig(
            url=url(served, "/events"), long_poll_url=url(served, "/poll"),
            last_event_id=first, backoff=FAST_BACKOFF, long_poll_timeout=5.0,
            min_poll_interval=0.01, initial_transport=Transport.LONG_POLLING,
        )
        seen: list[Any] = []
        with EventSource(config) as source:
            reports = source.reports()
            assert deliver(reports, 3, seen) == ["6", "7", "8"]
            metrics = source.metrics
            reports.close()
        [gap] = [report for report in seen if isinstance(report, ReportGap)]
        assert (gap.reason, gap.last_event_id, gap.missed) == ("too_old", first, 6)
        assert (metrics.events_missed, metrics.gaps_of_unknown_size) == (6, 0)
        assert metrics.stream_completion_rate == pytest.approx(3 / 9)
    finally:
        served.close()


def test_a_too_old_poll_counts_in_the_metrics_and_its_trail_has_the_gap(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A poll from an id whose successors the log evicted: the broadcaster's
    ``metrics.too_old_resumes`` grows by one (and ``bytes_sent`` by the answer's body), and
    the poll's audit trail notes the request with its id, the gap with how many were lost,
    the answer (3 events) and why it closed -- also once the poll is gone."""
    served = serve(backend, options=ServerOptions(long_poll_path="/poll"),
                   replay_log=ReplayLog(ReplayConfig(max_events=3)))
    try:
        hub = served.server.broadcaster
        pollers: list[Any] = []
        hold = hub.hold

        def keep(*args: Any, **kwargs: Any) -> Any:
            poller = hold(*args, **kwargs)  # the broadcaster's own poll, only kept here
            pollers.append(poller)
            return poller

        monkeypatch.setattr(hub, "hold", keep)
        first = publish_first(served)
        for number in range(9):  # the log keeps 6, 7, 8: 0 .. 5 are lost after `first`
            served.publish(Event(data=str(number)))
        before = broadcaster(served, lambda b: b.metrics)
        status, _, body = poll_once(served, f"/poll?lastEventId={first}&timeout=5")
        assert status == 200
        assert json.loads(body)["gap"] == {"last_event_id": first, "reason": "too_old",
                                           "missed": 6}
        until(lambda: broadcaster(served, lambda b: b.polls) == 0, "the poll forgotten")
        after = broadcaster(served, lambda b: b.metrics)
        assert after.too_old_resumes == before.too_old_resumes + 1
        assert (after.unknown_id_resumes, after.replays_served) == (
            before.unknown_id_resumes, before.replays_served
        )
        assert after.bytes_sent == before.bytes_sent + len(body)  # no gzip asked
        [poller] = pollers
        trail = broadcaster(served, lambda b: poller.session.audit_trail)
        assert [record.kind for record in trail.records] == [
            AuditKind.REQUEST, AuditKind.GAP, AuditKind.REPLAYED, AuditKind.STATUS,
        ]
        request, gap, answer, closed = trail.records
        assert request.last_event_id == first
        assert (gap.reason, gap.last_event_id, gap.count) == ("too_old", first, 6)
        assert answer.count == 3
        assert (closed.state, closed.reason) == (LongPollState.ANSWERED, "answered")
    finally:
        served.close()
