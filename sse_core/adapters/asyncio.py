"""asyncio adapter (floor 4): an EventSource client and an event-stream server.

Both own sockets, TLS, the clock and waiting, and nothing else. The client carries out what
:class:`~sse_core.adapters.HTTPClient` (a :class:`~sse_core.ClientSession` plus h11) asks;
the server carries out what a :class:`~sse_core.Broadcaster` and
:class:`~sse_core.adapters.ServerConnection` ask.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from typing import Any

from .._actions import Deliver
from .._broadcast import Subscriber
from .._events import Event
from .._replay import StoredEvent
from ._base import AsyncClientBase, Report, ServerBase
from ._http import Endpoint, IncomingRequest, Refusal, RequestRefused, ServerConnection
from ._sockets import (
    REPLAY_RECHECK_DELAY,
    is_replay_held_back,
    set_reset_on_close,
    set_send_timeout,
)

__all__ = ["EventSource", "EventStreamServer"]


class EventSource(AsyncClientBase):
    """An asyncio EventSource: iterate to get events, across reconnections.

    ``async for event in source`` yields each :class:`~sse_core.Event` once, in order,
    resuming with ``Last-Event-ID`` after a lost connection, with backoff and stall
    detection as configured. :meth:`reports` yields status changes and gap reports too.
    The iteration ends when the session closes (the server refused, the backoff gave up, or
    :meth:`aclose`). Use it as an ``async with`` block (or call :meth:`aclose`) so that the
    socket is closed even when the loop is left early.

    Arguments as for every adapter (:doc:`/adapters/options`); ``clock`` is :func:`time.monotonic`.

    Raises:
        InvalidConfigError: a bad argument.
    """

    def _setup(self) -> None:
        self._connecting: asyncio.Task[tuple[asyncio.StreamReader, asyncio.StreamWriter]] | None
        self._connecting = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reading: asyncio.Task[bytes] | None = None  # a read kept across wake-ups
        self._wakeup: asyncio.Future[None] | None = None  # ends a wait with no socket

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._events()

    async def _events(self) -> AsyncIterator[Event]:
        async for report in self.reports():
            if isinstance(report, Deliver):
                yield report.event

    async def reports(self) -> AsyncIterator[Report]:
        """Everything for the application, in order: :class:`~sse_core.Deliver` (events),
        :class:`~sse_core.ReportStatus`, :class:`~sse_core.ReportGap` and the other reports.

        Start iterating once per source (either this or the events).
        """
        self._claim()
        self._begin()
        try:
            while True:
                report = self._pump()
                if report is not None:
                    yield report
                elif self._is_done:
                    return
                else:
                    await self._wait()
        finally:
            self._close_socket()

    async def aclose(self) -> None:
        """Close the connection and end the iteration (the application's ``close()``)."""
        if self._is_closing:
            return
        self._is_closing = True
        self._close_session()
        self._close_socket()
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    # --- internals ------------------------------------------------------------------------

    async def _wait(self) -> None:
        """Wait for the connection, bytes or the next deadline; queue what the session says.

        Every wait is ``asyncio.wait`` on one future with the time to the next deadline: the
        deadline only ends the wait and cancels nothing, so no cancellation of the caller can
        be swallowed on any Python (``asyncio.wait_for`` on 3.10 and 3.11 returns a result
        that completed in the same loop iteration as the cancellation and drops the
        cancellation: CPython gh-86296). A read that a deadline interrupts is not cancelled
        either: it stays in flight and the next wait takes its bytes, so none are dropped.

        :meth:`aclose` (from another task) may close the socket during any wait: what the
        closed socket then reports is not the session's business.
        """
        timeout = self._timeout()
        if self._connecting is not None:
            task = self._connecting
            done, _ = await asyncio.wait({task}, timeout=timeout)
            if self._connecting is not task:  # cancelled by aclose()
                return
            if not done:
                self._timer()
                return
            self._connecting = None
            try:
                self._reader, self._writer = task.result()
            except (OSError, ssl.SSLError, asyncio.TimeoutError) as error:
                self._failed(f"connect failed: {error!r}")
                return
            self._connected()
        elif self._reader is not None:
            if self._reading is None:
                self._reading = asyncio.ensure_future(self._reader.read(self._options.read_size))
            reading = self._reading
            read, _ = await asyncio.wait({reading}, timeout=timeout)
            if self._reading is not reading:  # closed by aclose(): not the peer's doing
                return
            if not read:  # the deadline: the read goes on
                self._timer()
                return
            self._reading = None
            try:
                data = reading.result()
            except (OSError, ssl.SSLError) as error:
                self._failed(f"connection error: {error!r}")
                return
            self._received(data)
        else:
            if timeout is None:  # nothing scheduled and no connection: the session is done
                self._is_closing = True
                return
            self._wakeup = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait({self._wakeup}, timeout=timeout)  # or aclose()
            finally:
                self._wakeup = None
            self._timer()

    def _write(self, data: bytes) -> None:
        assert self._writer is not None  # Write comes right after on_connected()
        self._writer.write(data)

    def _open(self, endpoint: Endpoint) -> None:
        self._drop_connection()
        context: ssl.SSLContext | None = None
        if endpoint.is_tls:
            context = self._tls_context()
        self._connecting = asyncio.ensure_future(asyncio.open_connection(
            endpoint.host, endpoint.port, ssl=context,
            server_hostname=endpoint.host if context is not None else None,
            limit=self._options.read_size,
        ))

    def _drop_connection(self) -> None:
        if self._connecting is not None:
            task, self._connecting = self._connecting, None
            task.cancel()
            task.add_done_callback(_close_if_connected)
        if self._reading is not None:
            reading, self._reading = self._reading, None
            reading.cancel()
            reading.add_done_callback(_forget_read)
        if self._writer is not None:
            writer, self._writer, self._reader = self._writer, None, None
            writer.transport.abort()


def _close_if_connected(
    task: asyncio.Task[tuple[asyncio.StreamReader, asyncio.StreamWriter]],
) -> None:
    """A connect that finished as it was cancelled: close what it opened."""
    if not task.cancelled() and task.exception() is None:
        task.result()[1].transport.abort()


def _forget_read(task: asyncio.Task[bytes]) -> None:
    """A read given up with its connection: mark its outcome as seen (no log at exit)."""
    if not task.cancelled():
        task.exception()


class _StreamProtocol(asyncio.Protocol):
    """One client connection of an :class:`EventStreamServer`."""

    def __init__(self, server: EventStreamServer) -> None:
        self._server = server
        self._connection = ServerConnection()
        self._transport: asyncio.Transport | None = None
        self._subscriber: Subscriber | None = None
        self._is_paused = False
        self._timer: asyncio.TimerHandle | None = None
        self._recheck: asyncio.TimerHandle | None = None  # a replay waiting for the client
        self._sock: Any = None

    # asyncio.Protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        if self._server._is_closing:
            # Accepted in the loop iteration that aclose() ran in, after it looked at the
            # connections: nobody would end this one (and from 3.12 on, aclose() would wait
            # for it until its request timeout).
            transport.abort()
            return
        self._transport = transport
        self._server._protocols.add(self)
        sock = transport.get_extra_info("socket")
        self._sock = sock
        options = self._server.options
        if sock is not None and options.send_timeout is not None:
            set_send_timeout(sock, options.send_timeout)
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(options.request_timeout, self._no_request)

    def data_received(self, data: bytes) -> None:
        try:
            request = self._connection.receive(data)
        except RequestRefused as error:
            self._reject(error.refusal)
            return
        if request is not None:
            self._on_request(request)

    def eof_received(self) -> bool | None:
        return None  # close our side too: one request per connection

    def pause_writing(self) -> None:
        self._is_paused = True
        self._server._writable.discard(self)

    def resume_writing(self) -> None:
        self._is_paused = False
        if self._subscriber is not None:
            self._server._writable.add(self)
        # Not now: asyncio calls this from inside its write callback, which ends by
        # finishing a close itself -- closing the transport here would finish it twice
        # (``_call_connection_lost`` on a transport already torn down: AttributeError).
        asyncio.get_running_loop().call_soon(self.flush)

    def connection_lost(self, exc: Exception | None) -> None:
        self._server._protocols.discard(self)
        self._server._writable.discard(self)
        if self._subscriber is not None:
            self._server._broadcaster.unsubscribe(self._subscriber)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._recheck is not None:
            self._recheck.cancel()
            self._recheck = None
        self._transport = None

    # the server's side

    def flush(self) -> None:
        """Write what the subscriber's queue holds, unless the socket is full."""
        subscriber, transport = self._subscriber, self._transport
        if subscriber is None or transport is None:
            return
        if transport.is_closing():  # lost or closing: connection_lost() comes next
            subscriber.take()
            return
        if subscriber.is_dropped:  # fell behind: what the socket takes now, then a reset
            if not self._is_paused:
                data, _ = self._connection.respond(subscriber.take())
                transport.write(data)
            self.let_go()
            return
        now = self._server._clock()
        # Until the socket pushes back (pause_writing() runs inside write()): a long replay
        # comes one step per take(), read from the log only as fast as the client reads --
        # its next step waits while the kernel still holds a step the client has not read.
        while not self._is_paused and subscriber.has_pending:
            if subscriber.is_replay_step_next and is_replay_held_back(self._sock):
                if self._recheck is None:
                    self._recheck = asyncio.get_running_loop().call_later(
                        REPLAY_RECHECK_DELAY, self._flush_again
                    )
                return
            data, is_done = self._connection.respond(subscriber.take(now))
            if data:
                transport.write(data)
            if is_done:
                transport.close()
                return

    def _flush_again(self) -> None:
        self._recheck = None
        self.flush()

    def let_go(self) -> None:
        """Drop the connection with a reset: the kernel frees it and its unsent bytes now."""
        transport = self._transport
        if transport is None:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            set_reset_on_close(sock)
        transport.abort()

    def _on_request(self, request: IncomingRequest) -> None:
        server = self._server
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._transport is None:
            return
        peer = self._transport.get_extra_info("peername")
        refusal, key = server._admit(request, peer[0] if peer else None)
        if refusal is not None:
            self._reject(refusal)
            return
        self._subscriber = server._broadcaster.subscribe(
            request.target, request.headers, server._clock(), key=key
        )
        if not self._is_paused:
            server._writable.add(self)
        self.flush()
        self._arm()

    def _arm(self) -> None:
        """Wake up for the next heartbeat."""
        subscriber = self._subscriber
        if subscriber is None or self._transport is None:
            return
        deadline = subscriber.next_deadline()
        if deadline is not None:
            delay = max(0.0, deadline - self._server._clock())
            self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._subscriber is not None:
            self._subscriber.poll(self._server._clock())
            self.flush()
            self._arm()

    def _no_request(self) -> None:
        self._timer = None
        if self._connection.request is None:
            self.let_go()

    def _reject(self, refusal: Refusal) -> None:
        if self._transport is None:
            return
        self._transport.write(
            self._connection.respond_error(refusal.status, refusal.text, refusal.headers)
        )
        self._transport.close()


class EventStreamServer(ServerBase):
    """An asyncio event-stream server: one stream, many clients, resumable.

    Each event given to :meth:`publish` is appended to the replay log once (encoded once)
    and written to every client; clients that reconnect with ``Last-Event-ID`` get what they
    missed. Heartbeats, gzip and the per-client send queue bound come from the
    :class:`~sse_core.Broadcaster` and :class:`~sse_core.ServerSession`; a client that falls
    more than ``max_queued_bytes`` behind is reset (it resumes) instead of growing
    memory or slowing the others.

    Arguments as for every adapter's server (:doc:`/adapters/options`).

    Raises:
        InvalidConfigError: a bad argument.
    """

    def _setup(self) -> None:
        self._protocols: set[_StreamProtocol] = set()
        # Streams whose transport takes bytes: the ones a publish writes to.
        self._writable: set[_StreamProtocol] = set()
        self._server: asyncio.Server | None = None
        self._dropped_seen = 0  # broadcaster.dropped at the last publish

    @property
    def address(self) -> tuple[str, int]:
        """The listening address (host, port), once started."""
        if self._server is None:
            raise RuntimeError("the server is not started")
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    async def start(
        self, host: str = "127.0.0.1", port: int = 0, *, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        """Listen on ``host``:``port`` (port 0 picks a free one; see :attr:`address`)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _StreamProtocol(self), host, port, ssl=ssl_context, backlog=4096
        )

    def publish(self, event: Event) -> StoredEvent:
        """Publish an event to every client (call it from the event loop's thread).

        Returns:
            The stored event, with the id the replay log gave it.
        """
        broadcaster = self._broadcaster
        stored = broadcaster.publish(event, self._clock())
        # Only the streams whose socket takes bytes are written to; the others are written
        # when it does again (resume_writing), unless they were dropped meanwhile.
        for protocol in list(self._writable):
            protocol.flush()
        dropped = broadcaster.dropped
        if dropped != self._dropped_seen:  # someone fell behind: let it go
            self._dropped_seen = dropped
            for protocol in list(self._protocols):
                subscriber = protocol._subscriber
                if subscriber is not None and subscriber.is_dropped:
                    protocol.flush()
        return stored

    async def aclose(self, *, grace: float = 1.0) -> None:
        """Stop listening and end every stream (clients see the end of the body).

        Args:
            grace: Seconds the clients get to take the end of their stream; connections
                still open then are aborted.
        """
        self._is_closing = True
        if self._server is not None:
            self._server.close()
        self._broadcaster.close(self._clock())
        for protocol in list(self._protocols):
            if protocol._subscriber is None:
                protocol.let_go()  # no stream to end
            else:
                protocol.flush()
        deadline = self._clock() + grace
        while self._protocols and self._clock() < deadline:
            await asyncio.sleep(0.01)
        for protocol in list(self._protocols):
            protocol.let_go()
        while self._protocols:  # connection_lost() runs on the next loop iterations
            await asyncio.sleep(0)
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> EventStreamServer:
        if self._server is None:
            await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
