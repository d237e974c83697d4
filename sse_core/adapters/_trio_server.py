"""The trio event-stream server (floor 4), imported from :mod:`sse_core.adapters.trio`, and
the stream helpers the trio client shares.

It owns the listening sockets, one task per client, the clock and the waiting, and carries
out what a :class:`~sse_core.Broadcaster` and :class:`~sse_core.adapters.ServerConnection`
ask. Sockets are closed synchronously on every way out, so cancellation never leaves one open.
An :class:`EventStreamRouter` listens for several servers (channels) and hands each connection
to the one its request names. With a feed (:class:`TrioLogFeed`, such as
:class:`~sse_core.adapters.redis.TrioRedisFeed`) a server's events come from a shared log's
live tail, which runs as a task of the server's nursery.
"""

from __future__ import annotations

import errno
import math
import ssl
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AsyncExitStack
from typing import Protocol, TypeAlias, TypeVar, cast

import trio

from .._broadcast import Poller, Subscriber
from .._config import ServerConfig
from .._errors import InvalidConfigError
from .._events import Event
from .._replay import ReplayLog, StoredEvent
from .._stream_log import StreamMirror, TailStep
from ._http import IncomingRequest, Refusal, RequestRefused, ServerConnection
from ._options import ServerOptions
from ._server_base import (
    LogFeed,
    ServerBase,
    channel_of,
    channel_timeouts,
    checked_channels,
    log_refusal,
)
from ._sockets import (
    REPLAY_RECHECK_DELAY,
    is_replay_held_back,
    is_send_timeout,
    peer_host,
    set_reset_on_close,
    set_send_timeout,
)

__all__ = [
    "TRANSPORT_ERRORS", "EventStreamRouter", "EventStreamServer", "Stream", "TrioLogFeed",
    "close_now",
]

Stream: TypeAlias = "trio.SocketStream | trio.SSLStream[trio.SocketStream]"
_Self = TypeVar("_Self", bound="_Listener")
#: Where a request goes: the server that serves it and the request as it sees it, or a refusal.
_Routed: TypeAlias = "tuple[EventStreamServer, IncomingRequest] | Refusal"

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


class TrioLogFeed(Protocol):
    """A shared log's live tail feeding the trio server, such as
    :class:`~sse_core.adapters.redis.TrioRedisFeed`: what the server asks of it."""

    @property
    def mirror(self) -> StreamMirror:
        """The worker's copy of the newest events: the broadcaster's replay log."""

    def attach(self, on_step: Callable[[TailStep], None]) -> None:
        """Have ``on_step`` called (on the trio thread) with each step of the tail."""

    async def run(self) -> None:
        """Run the tail until :meth:`aclose` (or cancellation); the server runs it as a task
        of its nursery."""

    async def ready(self, last_event_id: str | None) -> bool:
        """Wait (bounded) until the mirror is loaded and has caught up with the id; whether
        a client resuming from it can be served now (else answer 503)."""

    async def aclose(self) -> None:
        """Stop the tail and wait until it has stopped."""


class _Listener:
    """The listening sockets of an :class:`EventStreamServer` or an
    :class:`EventStreamRouter`: they accept connections, read each request and hand it to
    the server it names (:meth:`_route`), in a nursery of their own."""

    #: Connections accepted here whose request names no server yet (a server: every one).
    _connections: dict[_Connection, None]
    _is_closing: bool
    #: ``request_timeout`` and ``send_timeout``: they apply before a request is read.
    _timeouts: tuple[float, float | None]

    def _set_up_listener(self) -> None:
        self._listeners: list[trio.SocketListener] = []
        self._address: tuple[str, int] | None = None
        self._nursery: trio.Nursery | None = None
        self._stopped = trio.Event()
        self._exit_stack: AsyncExitStack | None = None
        self._is_serving = False

    def _route(self, request: IncomingRequest) -> _Routed:
        """The server of ``request`` and the request as it sees it, or how to refuse it."""
        raise NotImplementedError

    def _servers(self) -> Iterable[EventStreamServer]:
        """The servers whose connections this listener accepts."""
        raise NotImplementedError

    def _end_all(self) -> None:
        """Take no more clients and end every stream (each class its own way)."""
        raise NotImplementedError

    def _every_connection(self) -> Iterator[_Connection]:
        yield from list(self._connections)
        for server in self._servers():
            if server is not self:
                yield from list(server._connections)

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
        (port 0 picks a free one). A server's feed runs in the same nursery.

        Args:
            host: The address to listen on.
            port: The TCP port, 0 for a free one.
            ssl_context: Serve TLS with this context (its certificate chain loaded).
            task_status: Given by :meth:`trio.Nursery.start`.

        Raises:
            RuntimeError: the server was already started or closed.
        """
        if self._is_serving or self._is_closing:
            raise RuntimeError(f"an {type(self).__name__} serves once")
        self._is_serving = True
        try:
            self._listeners = await trio.open_tcp_listeners(port, host=host)
            if self._is_closing:  # aclose() while the listeners were opening
                return
            name = self._listeners[0].socket.getsockname()
            self._address = (str(name[0]), int(name[1]))
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for server in self._servers():
                    if server._trio_feed is not None:
                        nursery.start_soon(server._trio_feed.run)
                for listener in self._listeners:
                    nursery.start_soon(self._accept, listener, nursery, ssl_context)
                task_status.started(self._address)
        finally:
            for listener in self._listeners:
                listener.socket.close()
            self._nursery = None
            self._stopped.set()

    async def aclose(self, *, grace: float = 1.0) -> None:
        """End every stream and stop serving; safe to call more than once.

        Args:
            grace: Seconds the clients get to take the end of their body (they then
                reconnect elsewhere); a connection still open after it is reset.
        """
        if not self._is_closing:
            for listener in self._listeners:
                listener.socket.close()  # a pending accept() raises ClosedResourceError
            self._end_all()
        for server in self._servers():
            if server._trio_feed is not None:
                await server._trio_feed.aclose()
        if not self._is_serving:
            await trio.lowlevel.checkpoint()
            return
        try:
            with trio.move_on_after(grace):
                await self._stopped.wait()
        finally:
            for connection in self._every_connection():
                connection.is_let_go = True  # still open after the grace: reset
            if self._nursery is not None:
                self._nursery.cancel_scope.cancel()
        await self._stopped.wait()

    async def __aenter__(self: _Self) -> _Self:
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
        request_timeout, send_timeout = self._timeouts
        if send_timeout is not None:
            set_send_timeout(tcp.socket, send_timeout)
        if ssl_context is not None:
            stream = trio.SSLStream(tcp, ssl_context, server_side=True, https_compatible=True)
        connection = _Connection()
        self._connections[connection] = None
        server: EventStreamServer | None = None
        try:
            with connection.scope:
                if self._is_closing:
                    return
                read = await self._read_request(stream, connection)
                if read is None:
                    return
                http, request = read
                routed = self._route(request)
                if isinstance(routed, Refusal):  # a router's: no such channel
                    log_refusal(self, routed, peer_host(tcp.socket), request.target)
                    await _reject(stream, http, routed, request_timeout)
                    return
                server, request = routed
                self._connections.pop(connection, None)
                server._connections[connection] = None
                await server._serve_request(stream, tcp, http, request, connection)
        except TRANSPORT_ERRORS:
            pass  # the client went away, or the TLS handshake failed
        finally:
            self._connections.pop(connection, None)
            if server is not None:
                server._connections.pop(connection, None)
                if connection.subscriber is not None:
                    server._unsubscribe(connection.subscriber)
            close_now(stream, is_reset=connection.is_let_go)

    async def _read_request(
        self, stream: Stream, connection: _Connection
    ) -> tuple[ServerConnection, IncomingRequest] | None:
        http = ServerConnection()
        request_timeout = self._timeouts[0]
        with trio.move_on_after(request_timeout):
            if isinstance(stream, trio.SSLStream):
                await stream.do_handshake()
            while True:
                data = await stream.receive_some(_SERVER_READ_SIZE)
                if not data:
                    return None  # gone before asking
                try:
                    request = http.receive(bytes(data))
                except RequestRefused as error:
                    log_refusal(self, error.refusal, None)
                    await _reject(stream, http, error.refusal, request_timeout)
                    return None
                if request is not None:
                    return http, request
        connection.is_let_go = True  # no request in time
        return None


async def _reject(
    stream: Stream, http: ServerConnection, refusal: Refusal, timeout: float
) -> None:
    """Answer a request that gets no stream (the answer gets ``timeout`` to go out)."""
    data = http.respond_error(refusal.status, refusal.text, refusal.headers)
    if data:
        with trio.move_on_after(timeout):
            await stream.send_all(data)


class EventStreamServer(_Listener, ServerBase):
    """A trio event-stream server: one stream, many clients, resumable.

    What it serves is the asyncio and sync servers' stream: :meth:`publish` appends to the
    replay log once and queues the same bytes for every client, resuming clients get what
    they missed, and one that falls ``max_queued_bytes`` behind is reset at once.

    Run it either as ``async with EventStreamServer() as server:`` (it listens on
    127.0.0.1, a free port, in a nursery of its own; see :attr:`address`) or in your nursery
    with ``host, port = await nursery.start(server.serve, host, port)``. Each connection is
    one task: it reads the request, then writes what its subscriber's queue holds whenever
    :meth:`publish` or a heartbeat wakes it, while a second task watches for the client
    closing. To serve several streams (channels) on one port, give one server per channel
    to an :class:`EventStreamRouter` and serve that instead.

    With a ``feed`` (:class:`~sse_core.adapters.redis.TrioRedisFeed`), the events come from
    a shared log's live tail, a task of the server's nursery; publish to the shared log
    (``await feed.publish(event)``: :meth:`publish` refuses), and a client whose
    ``Last-Event-ID`` the tail has not reached yet waits for it up to the feed's
    ``catch_up_timeout``, then gets 503.

    Arguments as for every adapter's server (:doc:`/adapters/options`); ``feed`` is a
    :class:`~sse_core.adapters.redis.TrioRedisFeed` here.

    Raises:
        InvalidConfigError: a bad argument (a feed that does not run on trio, say).
    """

    def __init__(
        self, replay_log: ReplayLog | None = None, *, config: ServerConfig | None = None,
        options: ServerOptions | None = None, clock: Callable[[], float] | None = None,
        feed: TrioLogFeed | None = None,
    ) -> None:
        if feed is not None and not callable(getattr(feed, "run", None)):
            raise InvalidConfigError(
                "the trio EventStreamServer takes a feed whose tail runs on trio"
                f" (TrioRedisFeed), got {type(feed).__name__}"
            )
        self._trio_feed = feed
        # The base reads only the feed's mirror and attach(), and awaits ready().
        ServerBase.__init__(
            self, replay_log, config=config, options=options, clock=clock,
            feed=cast(LogFeed | None, feed),
        )

    def _default_clock(self) -> float:
        return trio.current_time()

    def _setup(self) -> None:
        # In the order they came (a publish wakes them so; see the asyncio server).
        self._connections = {}
        self._timeouts = (self._options.request_timeout, self._options.send_timeout)
        self._set_up_listener()

    def _route(self, request: IncomingRequest) -> tuple[EventStreamServer, IncomingRequest]:
        return self, request

    def _servers(self) -> Iterable[EventStreamServer]:
        return (self,)

    def _end_all(self) -> None:
        self._end_streams(self._connections)

    def publish(self, event: Event) -> StoredEvent:
        """Append ``event`` to the replay log and wake every client's task to send it (call
        it from the trio thread).

        Returns:
            The stored event, with its id.

        Raises:
            LocalProtocolError: the server serves a ``feed`` (publish to the shared log).
        """
        stored = self._append(event)
        self._wake_all()
        return stored

    def _wake_all(self) -> None:
        for connection in list(self._connections):
            connection.wake()

    async def wait_for_subscribers(self, count: int = 1) -> None:
        """Wait until at least ``count`` clients are subscribed (their streams are open).

        Returns (after a checkpoint) when they are already. Bound the wait with
        :func:`trio.fail_after`; it does not end when the server closes.

        Raises:
            InvalidConfigError: ``count`` is not an int >= 1.
        """
        if not await self._await_count(count, trio.Event()):
            await trio.lowlevel.checkpoint()

    async def _serve_request(
        self,
        stream: Stream,
        tcp: trio.SocketStream,
        http: ServerConnection,
        request: IncomingRequest,
        connection: _Connection,
    ) -> None:
        """Admit (or refuse) a request read for this server, wait for the feed's tail if
        the request must, then stream to the client until the end."""
        peer = peer_host(tcp.socket)
        refusal, key = self._admit(request, peer)
        if refusal is not None:
            await _reject(stream, http, refusal, self._options.request_timeout)
            return
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch, stream, nursery.cancel_scope, connection)
            if self._is_feed_waited(request.target, request.headers) and not (
                await self._feed_ready(request.target, request.headers)
                and not self._is_closing
            ):
                refusal = self._unavailable()
                self._log_refusal(refusal, peer, request.target)
                await _reject(stream, http, refusal, self._options.request_timeout)
            else:
                connection.subscriber = self._subscribe(
                    request.target, request.headers, self._clock(), key
                )
                await self._write(stream, http, connection, tcp.socket)
            nursery.cancel_scope.cancel()

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


class EventStreamRouter(_Listener):
    """A trio server of several event streams (channels) on one port: each channel is an
    :class:`EventStreamServer` (not served itself), and a client picks one by the query
    parameter ``query_param`` (``/events?channel=news``) or else by the last segment of the
    path (``/events/news``), the rule of the asyncio and ASGI routers.

    The request is then the channel's server's, with the channel's segment taken off the
    path: that server's ``path`` and ``long_poll_path`` are checked against the rest
    (``/events/news`` and ``/poll/news`` reach ``/events`` and ``/poll``), and its limits,
    replay log, feed, long polls and ``Last-Event-ID`` resumption apply. A request that
    names no channel gets 404. Serve it as a server (``async with router:``, or
    ``await nursery.start(router.serve, host, port)``; each channel's feed runs in the
    router's nursery). Publish on a channel's server (``router.servers["news"].publish``)
    or, with a shared log, to the channel's feed::

        feeds = {name: TrioRedisFeed(client, f"sse:{name}") for name in ("news", "alerts")}
        router = EventStreamRouter(
            {name: EventStreamServer(feed=feed) for name, feed in feeds.items()}
        )
        host, port = await nursery.start(router.serve, "0.0.0.0", 8000)
        await feeds["news"].publish(Event(data="..."))

    Args:
        servers: One :class:`EventStreamServer` per channel name, all with the same
            ``request_timeout`` and ``send_timeout`` (they apply before a request names its
            channel).
        query_param: Names the channel in the query string (``None``: only the path does).

    Raises:
        InvalidConfigError: no servers, a name or a server of the wrong kind, or servers
            whose timeouts differ.
    """

    def __init__(
        self, servers: Mapping[str, EventStreamServer], *, query_param: str | None = "channel"
    ) -> None:
        self._set_up_listener()
        self._connections = {}
        self._is_closing = False
        self._channels = checked_channels(servers, EventStreamServer, query_param)
        self._timeouts = channel_timeouts(self._channels.values())
        self._query_param = query_param

    def _route(self, request: IncomingRequest) -> _Routed:
        return channel_of(request, self._channels, self._query_param)

    def _servers(self) -> Iterable[EventStreamServer]:
        return self._channels.values()

    def _end_all(self) -> None:
        """Let go of a connection whose request has not named a channel yet, and end every
        channel's streams."""
        self._is_closing = True
        for connection in list(self._connections):
            connection.let_go()
        for server in self._channels.values():
            server._end_streams(server._connections)

    @property
    def servers(self) -> Mapping[str, EventStreamServer]:
        """The servers by channel name."""
        return self._channels
