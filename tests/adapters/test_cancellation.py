"""A cancellation must never be lost, whatever else wakes the task in the same loop
iteration (issue 9, item 2).

On Python 3.10 and 3.11, ``asyncio.wait_for`` returns a result that completed in the same
loop iteration as a cancellation of its caller and drops the cancellation (CPython
gh-86296); before 3.11, an anyio cancel scope whose own cancellation lands in the same
iteration as a foreign ``Task.cancel()`` takes both for its own and swallows them. Either
way the task goes on running. Every test here repeats such a race many times, each round
bounded by ``BOUND`` seconds (only reached when a cancellation was lost), and schedules it
deterministically with the test's own peers:

- bytes the test writes on loopback are read at the start of the next loop iteration, and
  a timer due then (``loop.call_at(loop.time(), ...)``) runs right after them, before the
  woken task (asyncio); ``scope.deadline = trio.current_time()`` expires in the next run
  loop iteration, after its I/O is processed (trio);
- :class:`_HookLoop` cancels a task right after a timer that task set fires;
- a task factory cancels the client right after its connect task finishes.

``.ci/pythons.sh`` runs this file on every supported Python besides the main one.
"""

from __future__ import annotations

import asyncio
import gc
import math
import os
import socket
import warnings
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import pytest
import trio

import sse_core.adapters.trio as trio_adapter
from sse_core import ClientConfig, Deliver, Event, ReportGap, ServerConfig
from sse_core.adapters import ServerOptions
from sse_core.adapters.asgi import EventStream
from sse_core.adapters.asyncio import EventSource, EventStreamServer
from sse_core.state import SequencerConfig

ROUNDS = 200
BOUND = 5.0  # seconds one round may take: generous, only reached when a cancel was lost
LIMIT = 120.0  # seconds a whole test may take
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
REQUEST = b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"
QUIET = ServerConfig(heartbeat_interval=None)
_T = TypeVar("_T")


# --- asyncio harness -------------------------------------------------------------------------


class _HookLoop(asyncio.SelectorEventLoop):
    """An event loop that can cancel a task right after a timer that task set fires, in
    the same loop iteration (before the task runs again)."""

    def __init__(self) -> None:
        super().__init__()
        self.hooked: asyncio.Task[Any] | None = None

    def cancel_after_its_timer(self, task: asyncio.Task[Any]) -> None:
        """Arm: the next timer ``task`` sets cancels ``task`` right after it has fired."""
        self.hooked = task

    def call_at(self, when: float, callback: Any, *args: Any, context: Any = None) -> Any:
        task = self.hooked
        if task is None or asyncio.current_task(self) is not task:
            return super().call_at(when, callback, *args, context=context)
        self.hooked = None

        def fire(*fire_args: Any) -> None:
            callback(*fire_args)
            task.cancel()

        return super().call_at(when, fire, *args, context=context)


def run_asyncio(main: Callable[[_HookLoop], Coroutine[Any, Any, None]]) -> None:
    """Run ``main`` in a new :class:`_HookLoop`; fail if a task or a transport outlives it."""

    async def checked(loop: _HookLoop) -> None:
        await within(main(loop), "the test body", LIMIT)
        leftover = asyncio.all_tasks() - {asyncio.current_task()}
        assert not leftover, leftover

    gc.collect()  # what earlier tests left is not this test's leak
    loop = _HookLoop()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        try:
            loop.run_until_complete(checked(loop))
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert not leaks, leaks


async def within(awaitable: Awaitable[_T], what: str, bound: float = BOUND) -> _T:
    """Await ``awaitable`` for at most ``bound`` seconds (no ``wait_for``: that is what
    these tests are about)."""
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=bound)
    if not done:
        task.cancel()
        await asyncio.wait({task}, timeout=bound)
        raise AssertionError(f"timed out waiting for {what}")
    return task.result()


async def ended(task: asyncio.Task[Any], what: str) -> None:
    """Assert that ``task`` ends, cancelled, within ``BOUND``; if not, cancel it again (no
    bytes arrive then) so that nothing outlives the test."""
    done, _ = await asyncio.wait({task}, timeout=BOUND)
    try:
        assert done, f"{what}: the cancellation was lost, the task kept running"
        assert task.cancelled(), f"{what}: the task ended without being cancelled"
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=BOUND)


async def until(predicate: Callable[[], bool], what: str) -> None:
    """Wait for a condition nothing signals, checking every millisecond."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BOUND
    while not predicate():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.001)


class _Peer:
    """The test's own HTTP peer: hands each accepted connection to the test."""

    def __init__(self) -> None:
        self.accepted: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]]
        self.accepted = asyncio.Queue()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> _Peer:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.accepted.put_nowait((reader, writer))

        self._server = await asyncio.start_server(accept, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        while not self.accepted.empty():
            self.accepted.get_nowait()[1].transport.abort()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/events"

    async def connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """The next connection, once its request head has arrived."""
        reader, writer = await within(self.accepted.get(), "a connection")
        await within(reader.readuntil(b"\r\n\r\n"), "the request head")
        return reader, writer


async def consume(source: EventSource, delivered: asyncio.Queue[Any]) -> None:
    """The application: iterate the source's reports."""
    async with source:
        async for report in source.reports():
            delivered.put_nowait(report)


async def next_event(delivered: asyncio.Queue[Any]) -> Event:
    while True:
        report = await within(delivered.get(), "an event")
        if isinstance(report, Deliver):
            return report.event


# --- the harness itself ----------------------------------------------------------------------


def test_a_timer_due_when_bytes_arrive_runs_right_after_they_are_read() -> None:
    """The trick the asyncio tests rely on holds on this Python: bytes the test writes on
    loopback are read in the next loop iteration, and a timer due in that iteration runs
    right after them (before anything they woke)."""

    async def main(loop: _HookLoop) -> None:
        order: list[str] = []

        class Client(asyncio.Protocol):
            def data_received(self, data: bytes) -> None:
                order.append("bytes")

        async with _Peer() as peer:
            transport, _ = await loop.create_connection(Client, "127.0.0.1", peer.port)
            _, writer = await within(peer.accepted.get(), "a connection")
            try:
                for done in range(1, ROUNDS + 1):
                    writer.write(b"x")
                    loop.call_at(loop.time(), order.append, "timer")
                    await until(lambda done=done: len(order) == 2 * done, "the round")
                assert order == ["bytes", "timer"] * ROUNDS
            finally:
                transport.abort()
                writer.transport.abort()

    run_asyncio(main)


# --- the asyncio client ----------------------------------------------------------------------


def test_asyncio_client_cancelled_as_bytes_arrive() -> None:
    """An asyncio EventSource cancelled in the loop iteration in which the next bytes are
    read ends cancelled, every time (a nested wait_for lost the cancellation on 3.10/3.11:
    the iteration went on forever)."""

    async def main(loop: _HookLoop) -> None:
        async with _Peer() as peer:
            for _ in range(ROUNDS):
                source = EventSource(peer.url)  # the stall timeout makes every read timed
                delivered: asyncio.Queue[Any] = asyncio.Queue()
                consumer = asyncio.ensure_future(consume(source, delivered))
                _, writer = await peer.connection()
                try:
                    writer.write(HEAD + b"data: 1\n\n")
                    assert (await next_event(delivered)).data == "1"
                    await asyncio.sleep(0)  # the consumer waits for bytes again
                    writer.write(b"data: 2\n\n")
                    loop.call_at(loop.time(), consumer.cancel)
                    await ended(consumer, "the asyncio client")
                finally:
                    writer.transport.abort()

    run_asyncio(main)


def test_asyncio_client_cancelled_as_its_connection_opens() -> None:
    """Cancelled in the loop iteration in which its connect finishes, the asyncio client
    ends cancelled and closes the connection it just opened (the peer sees it end)."""

    async def main(loop: _HookLoop) -> None:
        consumers: list[asyncio.Task[None]] = []

        def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
            task = asyncio.Task(coro, loop=loop, **kwargs)
            if getattr(coro, "__qualname__", "") == "open_connection":
                consumer = consumers[-1]  # first in line: before the client's own wait
                task.add_done_callback(lambda _: consumer.cancel())
            return task

        async with _Peer() as peer:
            for _ in range(ROUNDS):
                source = EventSource(peer.url)
                loop.set_task_factory(factory)
                try:
                    consumers.append(asyncio.ensure_future(consume(source, asyncio.Queue())))
                    await ended(consumers[-1], "the asyncio client")
                finally:
                    loop.set_task_factory(None)
                reader, writer = await within(peer.accepted.get(), "a connection")
                try:
                    assert await within(reader.read(), "the client's close") == b""
                finally:
                    writer.transport.abort()

    run_asyncio(main)


@pytest.mark.parametrize("offset", [-0.002, -0.0002, 0.0, 0.0002, 0.002])
def test_asyncio_client_keeps_bytes_that_arrive_as_a_deadline_fires(offset: float) -> None:
    """Bytes that arrive as the session's deadline fires (here a sequencer hole times out)
    are not dropped: the held event, the gap and the new event all reach the application,
    in order."""
    gap_timeout = 0.02

    async def main(loop: _HookLoop) -> None:
        async with _Peer() as peer:
            for _ in range(ROUNDS // 10):
                config = ClientConfig(
                    url=peer.url, sequencer=SequencerConfig(gap_timeout=gap_timeout)
                )
                source = EventSource(config, clock=loop.time)
                delivered: asyncio.Queue[Any] = asyncio.Queue()
                consumer = asyncio.ensure_future(consume(source, delivered))
                _, writer = await peer.connection()
                try:
                    writer.write(HEAD + b"id: 1\ndata: a\n\nid: 3\ndata: c\n\n")
                    assert (await next_event(delivered)).data == "a"
                    session = source.session
                    await until(lambda s=session: s.next_deadline() is not None, "the hole")
                    deadline = session.next_deadline()
                    assert deadline is not None
                    loop.call_at(deadline + offset, writer.write, b"id: 4\ndata: d\n\n")
                    seen: list[str] = []
                    while len(seen) < 3:
                        report = await within(delivered.get(), "the events after the hole")
                        if isinstance(report, ReportGap):
                            seen.append(f"gap {report.first}-{report.last}")
                        elif isinstance(report, Deliver):
                            seen.append(report.event.data)
                    assert seen == ["gap 2-2", "c", "d"]
                finally:
                    consumer.cancel()
                    await asyncio.wait({consumer}, timeout=BOUND)
                    writer.transport.abort()

    run_asyncio(main)


# --- the asyncio server ----------------------------------------------------------------------


@pytest.mark.parametrize("moment", ["connect", "request"])
def test_asyncio_server_closed_as_a_connection_arrives(moment: str) -> None:
    """``aclose()`` that runs in the loop iteration in which a client connects, or in which
    its request arrives, returns at once and leaves no connection open (one accepted in that
    iteration used to stay until its request timeout, and from 3.12 on held aclose() too)."""

    async def main(loop: _HookLoop) -> None:
        for _ in range(ROUNDS):
            server = EventStreamServer(
                config=QUIET,
                options=ServerOptions(request_timeout=4 * BOUND),
            )
            await server.start()
            sock = socket.socket()
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, server.address)
                if moment == "request":
                    await until(lambda server=server: len(server._protocols) == 1, "the accept")
                    sock.send(REQUEST)  # in the kernel now: read in the next loop iteration
                started = loop.time()
                await server.aclose(grace=BOUND)  # starts in this iteration
                assert loop.time() - started < BOUND
                assert len(server.broadcaster) == 0
                while True:  # the client sees its connection end
                    try:
                        data = await within(loop.sock_recv(sock, 65536), "the end")
                    except ConnectionResetError:
                        break
                    if not data:
                        break
            finally:
                sock.close()

    run_asyncio(main)


# --- the ASGI application --------------------------------------------------------------------


@pytest.mark.parametrize("moment", ["heartbeat", "publish", "disconnect"])
def test_asgi_connection_cancelled_as_it_is_woken(moment: str) -> None:
    """The ASGI server's cancellation of a client's task ends it, cancelled, when it lands
    in the loop iteration in which the task is woken: by its heartbeat timer (an anyio
    timeout there lost the cancellation before 3.11, and the stream went on), by a publish,
    or by the client's disconnect."""

    async def main(loop: _HookLoop) -> None:
        heartbeat = 0.002 if moment == "heartbeat" else None
        for _ in range(ROUNDS):
            stream = EventStream(config=ServerConfig(heartbeat_interval=heartbeat))
            sent: list[Any] = []
            disconnect: asyncio.Future[dict[str, str]] = loop.create_future()

            async def receive(disconnect: asyncio.Future[dict[str, str]] = disconnect) -> Any:
                return await disconnect

            async def send(message: Any, sent: list[Any] = sent) -> None:
                sent.append(message)

            scope = {"type": "http", "method": "GET", "path": "/events",
                     "query_string": b"", "headers": []}
            app = loop.create_task(stream(scope, receive, send))
            try:
                if moment == "heartbeat":
                    loop.cancel_after_its_timer(app)
                await until(lambda sent=sent: bool(sent), "the response head")
                await asyncio.sleep(0)  # the task waits to be woken
                if moment == "publish":
                    stream.publish(Event(data="x"))
                    app.cancel()
                elif moment == "disconnect":
                    disconnect.set_result({"type": "http.disconnect"})
                    app.cancel()
                await ended(app, f"the ASGI task ({moment})")
                assert len(stream.broadcaster) == 0
            finally:
                loop.hooked = None
                if not disconnect.done():
                    disconnect.cancel()

    run_asyncio(main)


# --- trio ------------------------------------------------------------------------------------


def run_trio(body: Callable[[], Awaitable[None]]) -> None:
    """Run a trio test body under ``LIMIT``; no file descriptor may be left open."""

    async def main() -> None:
        with trio.fail_after(LIMIT):
            await body()

    before = set(os.listdir("/proc/self/fd"))
    trio.run(main)
    assert set(os.listdir("/proc/self/fd")) - before == set()


async def trio_head(stream: trio.SocketStream) -> None:
    head = b""
    while b"\r\n\r\n" not in head:
        data = await stream.receive_some(4096)
        assert data, "the request head did not arrive"
        head += data


def test_trio_client_cancelled_as_bytes_arrive() -> None:
    """A trio EventSource whose scope is cancelled in the run-loop iteration in which the
    next bytes arrive ends cancelled, every time."""

    async def body() -> None:
        listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
        port = listener.socket.getsockname()[1]
        try:
            for _ in range(ROUNDS):
                source = trio_adapter.EventSource(f"http://127.0.0.1:{port}/events")
                events_in, events_out = trio.open_memory_channel[Event](math.inf)
                scope = trio.CancelScope()
                finished = trio.Event()

                async def consume(
                    source: trio_adapter.EventSource = source,
                    events_in: Any = events_in,
                    scope: trio.CancelScope = scope,
                    finished: trio.Event = finished,
                ) -> None:
                    with scope:
                        async with source:
                            async for event in source:
                                events_in.send_nowait(event)
                    finished.set()

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(consume)
                    with trio.fail_after(BOUND):
                        stream = await listener.accept()
                    try:
                        with trio.fail_after(BOUND):
                            await trio_head(stream)
                            await stream.send_all(HEAD + b"data: 1\n\n")
                            assert (await events_out.receive()).data == "1"
                        await stream.send_all(b"data: 2\n\n")
                        scope.deadline = trio.current_time()  # next iteration, after its I/O
                        with trio.move_on_after(BOUND):
                            await finished.wait()
                        assert finished.is_set(), "the trio client kept running"
                        assert scope.cancelled_caught
                    finally:
                        scope.cancel()
                        await stream.aclose()
        finally:
            await listener.aclose()

    run_trio(body)


@pytest.mark.parametrize("moment", ["request", "client-bytes", "publish"])
def test_trio_server_cancelled_as_a_connection_is_woken(moment: str) -> None:
    """A trio server cancelled in the run-loop iteration in which a connection's task is
    woken -- by its request, by bytes from the client while streaming, or by a publish --
    ends, with every connection closed, every time."""

    async def body() -> None:
        for _ in range(ROUNDS):
            server = trio_adapter.EventStreamServer(config=QUIET)
            scope = trio.CancelScope()
            finished = trio.Event()

            async def serve(
                task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
                server: trio_adapter.EventStreamServer = server,
                scope: trio.CancelScope = scope,
                finished: trio.Event = finished,
            ) -> None:
                with scope:
                    await server.serve(task_status=task_status)
                finished.set()

            async with trio.open_nursery() as nursery:
                host, port = await nursery.start(serve)
                client = await trio.open_tcp_stream(host, port)
                try:
                    with trio.fail_after(BOUND):
                        if moment != "request":
                            await client.send_all(REQUEST)
                            assert await client.receive_some(65536)  # the response head
                    if moment == "publish":
                        server.publish(Event(data="x"))
                    else:
                        await client.send_all(REQUEST if moment == "request" else b"more")
                    scope.deadline = trio.current_time()  # next iteration, after its I/O
                    with trio.move_on_after(BOUND):
                        await finished.wait()
                    assert finished.is_set(), "the trio server kept running"
                    assert len(server.broadcaster) == 0
                finally:
                    scope.cancel()
                    await client.aclose()

    run_trio(body)
