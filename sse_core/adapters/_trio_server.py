"""The trio event-stream server (floor 4), imported from :mod:`sse_core.adapters.trio`, and
the stream helpers the trio client shares.

It owns the listening sockets, one task per client, the clock and the waiting, and carries
out what a :class:`~sse_core.Broadcaster` and :class:`~sse_core.adapters.ServerConnection`
ask. Sockets are closed synchronously on every way out, so cancellation never leaves one open.
"""

from __future__ import annotations

import errno
import math
import ssl
from contextlib import AsyncExitStack
from typing import TypeAlias

import trio

from .._broadcast import Poller, Subscriber
from .._events import Event
from .._replay import StoredEvent
from ._http import IncomingRequest, Refusal, RequestRefused, ServerConnection
from ._server_base import ServerBase
from ._sockets import (
    REPLAY_RECHECK_DELAY,
    is_replay_held_back,
    is_send_timeout,
    peer_host,
    set_reset_on_close,
    set_send_timeout,
)

__all__ = ["TRANSPORT_ERRORS", "EventStreamServer", "Stream", "close_now"]

Stream: TypeAlias = "trio.SocketStream | trio.SSLStream[trio.SocketStream]"

# Transport failures, as trio reports them (it wraps OSError and ssl.SSLError in
# BrokenResourceError; a stream closed under a waiting task gives ClosedResourceError).
TRANSPORT_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)
# accept() errors that mean "out of file descriptors or memory for now": wait, then retry.
_ACCEPT_CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
_ACCEPT_RETRY_DELAY = 0.1
_SERVER_READ_SIZE = 16 * 1024


def close_now(stream: Stream, *, is_reset: bool = False) -> None:
    """Close a stream's socket at once (no TLS close_notify): safe under cancellation.

    With ``is_reset``, as a reset: the kernel frees the connection and its unsent bytes now.
    """
    transport = stream.transport_stream if isinstance(stream, trio.SSLStream) else stream
    if is_reset:
        set_reset_on_close(transport.socket)
    transport.socket.close()


class _Connection:
    """One client connection of an :class:`EventStreamServer`: what wakes its task, and the
    scope that ends it."""

    __slots__ = ("is_let_go", "is_sending", "scope", "subscriber", "woken")

    def __init__(self) -> None:
        self.scope = trio.CancelScope()
        self.subscriber: Subscriber | Poller | None = None
        self.is_sending = False
        self.is_let_go = False  # the server drops it: close with a reset
        self.woken = trio.Event()

    def wake(self) -> None:
        """Something was queued (or the subscriber was dropped): let the task write it."""
        subscriber = self.subscriber
        if subscriber is not None and subscriber.is_dropped and self.is_sending:
            self.let_go()  # its socket is full: it cannot even take the end of the body
        else:
            self.woken.set()

    def let_go(self) -> None:
        """End the connection's task; its socket is closed with a reset."""
        self.is_let_go = True
        self.scope.cancel()


class EventStreamServer(ServerBase):
    """A trio event-stream server: one stream, many clients, resumable.

    What it serves is the asyncio and sync servers' stream: :meth:`publish` appends to the
    replay log once and queues the same bytes for every client, resuming clients get what
    they missed, and one that falls ``max_queued_bytes`` behind is reset at once.

    Run it either as ``async with EventStreamServer() as server:`` (it listens on
    127.0.0.1, a free port, in a nursery of its own; see :attr:`address`) or in your nursery
    with ``host, port = await nursery.start(server.serve, host, port)``. Each connection is
    one task: it reads the request, then writes what its subscriber's queue holds whenever
    :meth:`publish` or a heartbeat wakes it, while a second task watches for the client
    closing.

    Arguments as for every adapter's server (:doc:`/adapters/options`).

    Raises:
        InvalidConfigError: a bad argument.
    """

    def _default_clock(self) -> float:
        return trio.current_time()

    def _setup(self) -> None:
        # In the order they came (a publish wakes them so; see the asyncio server).
        self._connections: dict[_Connection, None] = {}
        self._listeners: list[trio.SocketListener] = []
        self._address: tuple[str, int] | None = None
        self._nursery: trio.Nursery | None = None
        self._stopped = trio.Event()
        self._exit_stack: AsyncExitStack | None = None
        self._is_serving = False

    @property
    def address(self) -> tuple[str, int]:
        """The listening address (host, port), once serving.

        Raises:
            RuntimeError: the server is not serving yet.
        """
        if self._address is None:
            raise RuntimeError("the server is not serving")
        return self._address

    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ssl_context: ssl.SSLContext | None = None,
        task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on ``host``:``port`` and serve until :meth:`aclose` (or cancellation).

        Start it with ``await nursery.start(server.serve, ...)``, which returns the address
        (port 0 picks a free one).

        Args:
            host: The address to listen on.
            port: The TCP port, 0 for a free one.
            ssl_context: Serve TLS with this context (its certificate chain loaded).
            task_status: Given by :meth:`trio.Nursery.start`.

        Raises:
            RuntimeError: the server was already started or closed.
        """
        if self._is_serving or self._is_closing:
            raise RuntimeError("an EventStreamServer serves once")
        self._is_serving = True
        try:
            self._listeners = await trio.open_tcp_listeners(port, host=host)
            if self._is_closing:  # aclose() while the listeners were opening
                return
            name = self._listeners[0].socket.getsockname()
            self._address = (str(name[0]), int(name[1]))
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for listener in self._listeners:
                    nursery.start_soon(self._accept, listener, nursery, ssl_context)
                task_status.started(self._address)
        finally:
            for listener in self._listeners:
                listener.socket.close()
            self._nursery = None
            self._stopped.set()

    def publish(self, event: Event) -> StoredEvent:
        """Append ``event`` to the replay log and wake every client's task to send it (call
        it from the trio thread).

        Returns:
            The stored event, with its id.
        """
        stored = self._append(event)
        for connection in list(self._connections):
            connection.wake()
        return stored

    async def wait_for_subscribers(self, count: int = 1) -> None:
        """Wait until at least ``count`` clients are subscribed (their streams are open).

        Returns (after a checkpoint) when they are already. Bound the wait with
        :func:`trio.fail_after`; it does not end when the server closes.

        Raises:
            InvalidConfigError: ``count`` is not an int >= 1.
        """
        if not await self._await_count(count, trio.Event()):
            await trio.lowlevel.checkpoint()

    async def aclose(self, *, grace: float = 1.0) -> None:
        """End every stream and stop serving; safe to call more than once.

        Args:
            grace: Seconds the clients get to take the end of their body (they then
                reconnect elsewhere); a connection still open after it is reset.
        """
        if not self._is_closing:
            for listener in self._listeners:
                listener.socket.close()  # a pending accept() raises ClosedResourceError
            self._end_streams(self._connections)
        if not self._is_serving:
            await trio.lowlevel.checkpoint()
            return
        try:
            with trio.move_on_after(grace):
                await self._stopped.wait()
        finally:
            for connection in list(self._connections):
                connection.is_let_go = True  # still open after the grace: reset
            if self._nursery is not None:
                self._nursery.cancel_scope.cancel()
        await self._stopped.wait()

    async def __aenter__(self) -> EventStreamServer:
        stack = AsyncExitStack()
        nursery = await stack.enter_async_context(trio.open_nursery())
        try:
            await nursery.start(self.serve)
        except BaseException:
            await stack.aclose()
            raise
        self._exit_stack = stack
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        stack, self._exit_stack = self._exit_stack, None
        try:
            await self.aclose()
        finally:
            if stack is not None:
                # serve() has ended: the nursery exits without wrapping the block's error.
                await stack.aclose()

    # --- connections ----------------------------------------------------------------------

    async def _accept(
        self,
        listener: trio.SocketListener,
        nursery: trio.Nursery,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        while True:
            try:
                stream = await listener.accept()
            except trio.ClosedResourceError:
                return  # aclose()
            except OSError as error:
                if error.errno not in _ACCEPT_CAPACITY_ERRNOS:
                    raise
                await trio.sleep(_ACCEPT_RETRY_DELAY)
                continue
            nursery.start_soon(self._handle, stream, ssl_context)

    async def _handle(self, tcp: trio.SocketStream, ssl_context: ssl.SSLContext | None) -> None:
        """Serve one connection, from its request to its end."""
        stream: Stream = tcp
        if self._options.send_timeout is not None:
            set_send_timeout(tcp.socket, self._options.send_timeout)
        if ssl_context is not None:
            stream = trio.SSLStream(tcp, ssl_context, server_side=True, https_compatible=True)
        connection = _Connection()
        self._connections[connection] = None
        try:
            with connection.scope:
                if self._is_closing:
                    return
                read = await self._read_request(stream, connection)
                if read is None:
                    return
                http, request = read
                is_refused, request_key = await self._admit_or_reject(stream, tcp, http, request)
                if is_refused:
                    return
                connection.subscriber = self._subscribe(
                    request.target, request.headers, self._clock(), request_key
                )
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._watch, stream, nursery.cancel_scope, connection)
                    await self._write(stream, http, connection, tcp.socket)
                    nursery.cancel_scope.cancel()
        except TRANSPORT_ERRORS:
            pass  # the client went away, or the TLS handshake failed
        finally:
            self._connections.pop(connection, None)
            if connection.subscriber is not None:
                self._unsubscribe(connection.subscriber)
            close_now(stream, is_reset=connection.is_let_go)

    async def _read_request(
        self, stream: Stream, connection: _Connection
    ) -> tuple[ServerConnection, IncomingRequest] | None:
        http = ServerConnection()
        with trio.move_on_after(self._options.request_timeout):
            if isinstance(stream, trio.SSLStream):
                await stream.do_handshake()
            while True:
                data = await stream.receive_some(_SERVER_READ_SIZE)
                if not data:
                    return None  # gone before asking
                try:
                    request = http.receive(bytes(data))
                except RequestRefused as error:
                    self._log_refusal(error.refusal, None)
                    await self._reject(stream, http, error.refusal)
                    return None
                if request is not None:
                    return http, request
        connection.is_let_go = True  # no request in time
        return None

    async def _admit_or_reject(
        self,
        stream: Stream,
        tcp: trio.SocketStream,
        http: ServerConnection,
        request: IncomingRequest,
    ) -> tuple[bool, str | None]:
        """Answer a request that gets no stream; whether it was one, and the request's key."""
        refusal, key = self._admit(request, peer_host(tcp.socket))
        if refusal is None:
            return False, key
        await self._reject(stream, http, refusal)
        return True, None

    async def _reject(self, stream: Stream, http: ServerConnection, refusal: Refusal) -> None:
        data = http.respond_error(refusal.status, refusal.text, refusal.headers)
        if data:
            with trio.move_on_after(self._options.request_timeout):
                await stream.send_all(data)

    async def _write(
        self,
        stream: Stream,
        http: ServerConnection,
        connection: _Connection,
        tcp_socket: trio.socket.SocketType,
    ) -> None:
        """Write what the subscriber's queue holds; sleep until woken or a heartbeat is due."""
        subscriber = connection.subscriber
        assert subscriber is not None
        try:
            while True:
                connection.woken = trio.Event()  # reset before looking: no wake-up is lost
                if subscriber.has_pending:
                    if subscriber.is_replay_step_next and is_replay_held_back(tcp_socket):
                        # The client has not read the last step yet: look again shortly
                        # (a replay past its time is dropped by poll()).
                        await trio.sleep(REPLAY_RECHECK_DELAY)
                        subscriber.poll(self._clock())
                        continue
                    pieces, is_done = http.take_from(subscriber, self._clock())
                    # Several pieces (a client that fell behind) go out in one send().
                    data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
                    if data:
                        connection.is_sending = True
                        replay_deadline = subscriber.replay_deadline
                        with trio.move_on_at(
                            math.inf if replay_deadline is None else replay_deadline
                        ) as write_scope:
                            await stream.send_all(data)
                        connection.is_sending = False
                        if write_scope.cancelled_caught:  # a replay the client did not take
                            subscriber.poll(self._clock())
                            connection.is_let_go = True  # half-written: reset
                            return
                    if is_done:
                        connection.is_let_go = subscriber.is_dropped  # fell behind: reset
                        return
                    continue
                deadline = subscriber.next_deadline()
                delay = math.inf if deadline is None else max(0.0, deadline - self._clock())
                with trio.move_on_after(delay):
                    await connection.woken.wait()
                now = self._clock()
                if deadline is not None and now >= deadline:
                    subscriber.poll(now)
        except TRANSPORT_ERRORS as error:
            if is_send_timeout(error):  # the kernel gave up on a client that took nothing
                self._note_send_timeout(subscriber)
            return

    async def _watch(
        self, stream: Stream, scope: trio.CancelScope, connection: _Connection
    ) -> None:
        """Read (and ignore) what the client sends until it closes; then end the stream."""
        try:
            while await stream.receive_some(_SERVER_READ_SIZE):
                pass
        except TRANSPORT_ERRORS as error:
            # The kernel's timeout is reported once, to the read or to the write.
            if is_send_timeout(error):
                self._note_send_timeout(connection.subscriber)
        scope.cancel()
