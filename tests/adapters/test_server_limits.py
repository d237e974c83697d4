"""The servers' limits on real sockets: long replays in steps, the replay budget, the replay
time limit and the per-client limit, for the asyncio, trio and sync servers and the ASGI app
under uvicorn (each in a thread of its own, driven from the test's thread)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import trio

from sse_core import Event, Parser, Retry, ServerConfig
from sse_core.adapters import ServerOptions
from sse_core.adapters import asyncio as sse_asyncio
from sse_core.adapters import sync as sse_sync
from sse_core.adapters import trio as sse_trio
from sse_core.adapters.asgi import EventStream
from sse_core.state import POSITION_EVENT_TYPE, ReplayConfig, ReplayLog, StoredEvent

KINDS = ["asyncio", "trio", "sync", "asgi"]
EVENT_SIZE = 1000


class Running:
    """A server of one kind running in its own thread."""

    def __init__(self, server: Any, address: tuple[str, int],
                 call: Callable[[Callable[[], Any]], Any], stop: Callable[[], None]) -> None:
        self.server = server
        self.address = address
        self._call = call  # runs a function in the server's thread, returns its result
        self._stop = stop

    @property
    def hub(self) -> Any:
        return self.server.broadcaster

    def publish(self, event: Event) -> StoredEvent:
        stored: StoredEvent = self._call(lambda: self.server.publish(event))
        return stored

    def read(self, read: Callable[[], Any]) -> Any:
        """Read server state in its own thread (the servers are not thread-safe)."""
        return self._call(read)


@contextlib.contextmanager
def running(kind: str, **kwargs: Any) -> Iterator[Running]:
    """Start a server of ``kind`` on 127.0.0.1 with ``kwargs``; stop it afterwards."""
    log = ReplayLog(ReplayConfig(max_events=2000, max_bytes=None, epoch="t"))
    if kind == "sync":
        sync_server = sse_sync.EventStreamServer(log, **kwargs)
        sync_server.start()
        try:
            yield Running(sync_server, sync_server.address, lambda f: f(), sync_server.close)
        finally:
            sync_server.close()
        return
    started = threading.Event()
    box: dict[str, Any] = {}
    if kind == "trio":
        async def trio_main() -> None:
            trio_server = sse_trio.EventStreamServer(log, **kwargs)
            async with trio.open_nursery() as nursery:
                box["address"] = await nursery.start(trio_server.serve)
                box["server"], box["token"] = trio_server, trio.lowlevel.current_trio_token()
                box["cancel"] = nursery.cancel_scope
                started.set()

        thread = threading.Thread(target=trio.run, args=(trio_main,), daemon=True)
        thread.start()
        assert started.wait(10)

        def trio_call(function: Callable[[], Any]) -> Any:
            return trio.from_thread.run_sync(function, trio_token=box["token"])

        def trio_stop() -> None:
            trio.from_thread.run_sync(box["cancel"].cancel, trio_token=box["token"])

        try:
            yield Running(box["server"], box["address"], trio_call, trio_stop)
        finally:
            trio_stop()
            thread.join(10)
        return

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def call(function: Callable[[], Any]) -> Any:
        async def run() -> Any:
            return function()
        return asyncio.run_coroutine_threadsafe(run(), loop).result(10)

    def wait(coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(10)

    try:
        if kind == "asyncio":
            asyncio_server = call(lambda: sse_asyncio.EventStreamServer(log, **kwargs))
            wait(asyncio_server.start())
            try:
                yield Running(asyncio_server, asyncio_server.address, call, lambda: None)
            finally:
                wait(asyncio_server.aclose(grace=0.1))
        else:
            app = call(lambda: EventStream(log, **kwargs))
            with under_uvicorn(app, loop) as address:
                try:
                    yield Running(app, address, call, lambda: None)
                finally:
                    wait(app.aclose())
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@contextlib.contextmanager
def under_uvicorn(app: Any, loop: asyncio.AbstractEventLoop) -> Iterator[tuple[str, int]]:
    """Serve the ASGI ``app`` with a real uvicorn on 127.0.0.1 (a free port), on ``loop``
    (running in another thread); its address."""
    uvicorn = pytest.importorskip("uvicorn", reason="uvicorn is not installed (the peers extra)")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, http="h11", lifespan="off", log_config=None,
                            log_level="critical", timeout_graceful_shutdown=1)
    uvicorn_server = uvicorn.Server(config)
    task = asyncio.run_coroutine_threadsafe(uvicorn_server.serve([sock]), loop)
    deadline = time.monotonic() + 10
    while not uvicorn_server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield sock.getsockname()[:2]
    finally:
        uvicorn_server.should_exit = True
        with contextlib.suppress(Exception):
            task.result(10)
        sock.close()


def fill(server: Running, count: int, size: int = EVENT_SIZE) -> list[str]:
    """Publish ``count`` events of about ``size`` bytes; their ids."""
    return [server.publish(Event(data=f"{n:05d}" + "x" * (size - 5))).id for n in range(count)]


#: Events enough that a replay of all of them cannot fit in the kernel's buffers (a send
#: buffer grows to 4 MiB on Linux): a client that does not read keeps its replay under way.
BIG_LOG = (2000, 5000)


def connect(server: Running, last_event_id: str | None = None,
            receive_buffer: int | None = None) -> socket.socket:
    """An HTTP/1.0 request for the stream (the body is then close-delimited, not chunked)."""
    sock = socket.socket()
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(10)
    sock.connect(server.address)
    header = f"Last-Event-ID: {last_event_id}\r\n" if last_event_id else ""
    sock.sendall(f"GET /events HTTP/1.0\r\nHost: t\r\n{header}\r\n".encode())
    return sock


def read_events(
    sock: socket.socket, count: int | None, *, has_head: bool = True
) -> tuple[int, list[Any], bool]:
    """Read the response: its status, the parsed items, and whether the body ended. Stops
    after ``count`` events (``None``: at the end of the body). ``has_head=False`` reads on
    in a body whose head was read already (the status is then 200)."""
    status, body = 200, b""
    if has_head:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"no head: {data!r}"
            data += chunk
        head, body = data.split(b"\r\n\r\n", 1)
        status = int(head.split(b" ", 2)[1])
    parser = Parser()
    items = without_positions(parser.feed(body))
    is_ended = False
    while count is None or sum(isinstance(i, Event) for i in items) < count:
        chunk = sock.recv(65536)
        if not chunk:
            is_ended = True
            break
        items += without_positions(parser.feed(chunk))
    return status, items, is_ended


def without_positions(items: list[Any]) -> list[Any]:
    """The parsed items an application sees (the position block is the session's)."""
    return [i for i in items if not (isinstance(i, Event) and i.event == POSITION_EVENT_TYPE)]


def until(predicate: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


QUIET_STEPS = ServerConfig(heartbeat_interval=None, replay_chunk_size=4096,
                           is_compression_enabled=False)


@pytest.mark.parametrize("kind", KINDS)
def test_a_long_replay_arrives_whole_in_steps(kind: str) -> None:
    """A client resuming from the oldest of 600 events (600 KB, 4 KiB steps) gets every
    event after its id once, in order, then live events; no replay is left under way."""
    with running(kind, config=QUIET_STEPS) as server:
        ids = fill(server, 600)
        sock = connect(server, ids[0])
        with sock:
            status, items, _ = read_events(sock, 599)
            assert status == 200
            assert [e.id for e in items if isinstance(e, Event)] == ids[1:]
            until(lambda: server.read(lambda: server.hub.replays) == 0, "the replay ended")
            live = server.publish(Event(data="live"))
            _, more, _ = read_events(sock, 1, has_head=False)
            assert [e.id for e in more if isinstance(e, Event)] == [live.id]


@pytest.mark.parametrize("kind", KINDS)
def test_past_the_replay_budget_a_client_is_told_to_come_back(kind: str) -> None:
    """With max_replays=1 held by a client that does not read, a second resuming client gets
    the busy retry and the end of its body, and nothing else; once the first goes away, the
    second is served its replay."""
    with running(kind, config=QUIET_STEPS, options=ServerOptions(max_replays=1)) as server:
        ids = fill(server, *BIG_LOG)
        with connect(server, ids[0], receive_buffer=4096) as holder:
            until(lambda: server.read(lambda: server.hub.replays) == 1, "the first replay")
            with connect(server, ids[0]) as second:
                status, items, is_ended = read_events(second, None)
            assert status == 200 and is_ended
            assert items == [Retry(milliseconds=5000)]
            assert server.read(lambda: server.hub.put_off) == 1
            holder.close()
        until(lambda: server.read(lambda: server.hub.replays) == 0, "the slot freed")
        with connect(server, ids[0]) as third:
            _, items, _ = read_events(third, len(ids) - 1)
        assert [e.id for e in items if isinstance(e, Event)] == ids[1:]


@pytest.mark.parametrize("kind", KINDS)
def test_a_replay_not_taken_in_time_is_let_go(kind: str) -> None:
    """A client that resumes and does not read is dropped after max_replay_time (its slot is
    freed), while the server goes on publishing to the others."""
    with running(kind, config=QUIET_STEPS, options=ServerOptions(max_replay_time=1.0)) as server:
        ids = fill(server, *BIG_LOG)
        with connect(server, ids[0], receive_buffer=4096):
            until(lambda: server.read(lambda: server.hub.replays) == 1, "the replay")
            until(lambda: server.read(lambda: server.hub.dropped) == 1, "the drop", 20.0)
            assert server.read(lambda: server.hub.replays) == 0


@pytest.mark.parametrize("kind", KINDS)
def test_max_subscribers_per_key_answers_429(kind: str) -> None:
    """The default connection key is the client's address: past max_subscribers_per_key
    streams from 127.0.0.1, another gets 429; when one closes, there is room again."""
    with (
        running(
            kind, config=QUIET_STEPS, options=ServerOptions(max_subscribers_per_key=2)
        ) as server,
        connect(server) as first,
        connect(server),
    ):
        until(lambda: server.read(lambda: len(server.hub)) == 2, "two subscribers")
        with connect(server) as third:
            status, _, _ = read_events(third, None)
        assert status == 429
        first.close()
        until(lambda: server.read(lambda: len(server.hub)) == 1, "one left")
        with connect(server) as fourth:
            until(lambda: server.read(lambda: len(server.hub)) == 2, "the fourth in")
            live = server.publish(Event(data="hello"))
            status, items, _ = read_events(fourth, 1)
        assert status == 200 and [e.id for e in items if isinstance(e, Event)] == [live.id]


@pytest.mark.parametrize("kind", ["asyncio", "sync"])
def test_connection_key_can_come_from_the_request(kind: str) -> None:
    """An application key function (here: an API key header) decides what is counted."""

    def api_key(request: Any, address: str | None) -> str | None:
        return dict(request.headers).get("x-api-key")

    with (
        running(kind, config=QUIET_STEPS,
                options=ServerOptions(max_subscribers_per_key=1, connection_key=api_key)) as server,
        contextlib.ExitStack() as sockets,
    ):
        keyed = sockets.enter_context(socket.socket())
        keyed.settimeout(10)
        keyed.connect(server.address)
        keyed.sendall(b"GET /events HTTP/1.0\r\nX-API-Key: k1\r\n\r\n")
        until(lambda: server.read(lambda: len(server.hub)) == 1, "one subscriber")
        sockets.enter_context(connect(server))  # no key: not counted
        until(lambda: server.read(lambda: len(server.hub)) == 2, "two subscribers")
        again = sockets.enter_context(socket.socket())
        again.settimeout(10)
        again.connect(server.address)
        again.sendall(b"GET /events HTTP/1.0\r\nX-API-Key: k1\r\n\r\n")
        status, _, _ = read_events(again, None)
        assert status == 429
