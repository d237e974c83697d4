"""The asyncio event-stream server (floor 4), imported from :mod:`sse_core.adapters.asyncio`.

It owns the listening socket, each client's transport, the clock and the timers, and
carries out what a :class:`~sse_core.Broadcaster` and
:class:`~sse_core.adapters.ServerConnection` ask; every client is an
:class:`asyncio.Protocol` with the transport's flow control. An :class:`EventStreamRouter`
listens for several servers (channels) and hands each connection to the one its request
names.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias, TypeVar

from .._broadcast import Poller, Subscriber
from .._events import Event
from .._replay import StoredEvent
from ._http import IncomingRequest, Refusal, RequestRefused, ServerConnection
from ._server_base import (
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
    set_reset_on_close,
    set_send_timeout,
)

__all__ = ["EventStreamRouter", "EventStreamServer"]

_Self = TypeVar("_Self", bound="_Listener")
#: Where a request goes: the server that serves it and the request as it sees it, or a refusal.
_Routed: TypeAlias = "tuple[EventStreamServer, IncomingRequest] | Refusal"


class _Listener:
    """The listening socket of an :class:`EventStreamServer` or an
    :class:`EventStreamRouter`: it accepts connections and, once a request is read, names
    the server that serves it (:meth:`_route`)."""

    #: Every connection accepted here, served or not yet.
    _protocols: set[_StreamProtocol]
    _server: asyncio.Server | None
    _is_closing: bool
    #: ``request_timeout`` and ``send_timeout``: they apply before a request is read.
    _timeouts: tuple[float, float | None]

    def _route(self, request: IncomingRequest) -> _Routed:
        """The server of ``request`` and the request as it sees it, or how to refuse it."""
        raise NotImplementedError

    def _started(self) -> None:
        """Start the feeds' tails (after the socket listens)."""
        raise NotImplementedError

    async def aclose(self, *, grace: float = 1.0) -> None:
        """Stop listening and end every stream (each class its own way)."""
        raise NotImplementedError

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
        self._started()

    async def __aenter__(self: _Self) -> _Self:
        if self._server is None:
            await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class _StreamProtocol(asyncio.Protocol):
    """One client connection of an :class:`EventStreamServer` (accepted by it, or by an
    :class:`EventStreamRouter` that hands it over once its request names the server)."""

    __slots__ = (
        "_connection",
        "_is_paused",
        "_listener",
        "_recheck",
        "_server",
        "_sock",
        "_timer",
        "_transport",
        "subscriber",
    )

    def __init__(self, listener: _Listener) -> None:
        self._listener = listener
        self._server: EventStreamServer | None = None  # once the request names it
        self._connection = ServerConnection()
        self._transport: asyncio.Transport | None = None
        self.subscriber: Subscriber | Poller | None = None
        self._is_paused = False
        self._timer: asyncio.TimerHandle | None = None
        self._recheck: asyncio.TimerHandle | None = None  # a replay waiting for the client
        self._sock: Any = None

    # asyncio.Protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        listener = self._listener
        if listener._is_closing:
            # Accepted in the loop iteration that aclose() ran in, after it looked at the
            # connections: nobody would end this one (and from 3.12 on, aclose() would wait
            # for it until its request timeout).
            transport.abort()
            return
        self._transport = transport
        listener._protocols.add(self)
        sock = transport.get_extra_info("socket")
        self._sock = sock
        request_timeout, send_timeout = listener._timeouts
        if sock is not None and send_timeout is not None:
            set_send_timeout(sock, send_timeout)
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(request_timeout, self._no_request)

    def data_received(self, data: bytes) -> None:
        try:
            request = self._connection.receive(data)
        except RequestRefused as error:
            peer = self._transport.get_extra_info("peername") if self._transport else None
            log_refusal(self._listener, error.refusal, peer[0] if peer else None)
            self._reject(error.refusal)
            return
        if request is not None:
            self._on_request(request)

    def eof_received(self) -> bool | None:
        self._stop_writing()  # the transport closes when this returns
        return None  # close our side too: one request per connection

    def pause_writing(self) -> None:
        self._is_paused = True
        self._stop_writing()

    def resume_writing(self) -> None:
        self._is_paused = False
        if self.subscriber is not None and self._server is not None:
            self._server._writable[self.subscriber] = self
        # Not now: asyncio calls this from inside its write callback, which ends by
        # finishing a close itself -- closing the transport here would finish it twice
        # (``_call_connection_lost`` on a transport already torn down: AttributeError).
        asyncio.get_running_loop().call_soon(self.flush)

    def connection_lost(self, exc: Exception | None) -> None:
        self._listener._protocols.discard(self)
        server = self._server
        self._stop_writing()
        if server is not None:
            server._protocols.discard(self)
            if self.subscriber is not None:
                if is_send_timeout(exc):  # the kernel gave up on a client that took nothing
                    server._note_send_timeout(self.subscriber)
                server._unsubscribe(self.subscriber)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._recheck is not None:
            self._recheck.cancel()
            self._recheck = None
        self._transport = None

    # the server's side

    def flush(self, now: float | None = None) -> None:
        """Write what the subscriber's queue holds, unless the socket is full (``now``: the
        clock read once for a whole publish)."""
        subscriber, transport, server = self.subscriber, self._transport, self._server
        if subscriber is None or transport is None or server is None:
            return
        if transport.is_closing():  # lost or closing: connection_lost() comes next
            self._stop_writing()
            subscriber.take()
            return
        if subscriber.is_dropped:  # fell behind: what the socket takes now, then a reset
            if not self._is_paused:
                data, _ = self._connection.respond(subscriber.take())
                transport.write(data)
            self.let_go()
            return
        if now is None:
            now = server._clock()
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
            pieces, is_done = self._connection.take_from(subscriber, now)
            if len(pieces) == 1:
                transport.write(pieces[0])  # one send(), when the transport's buffer is empty
            elif pieces:
                transport.writelines(pieces)  # one sendmsg() from Python 3.12 on
            if is_done:
                self._stop_writing()
                transport.close()
                return

    def _stop_writing(self) -> None:
        """Nothing more is written to this connection by a publish (the socket pushes back,
        or the connection ends)."""
        if self._server is not None and self.subscriber is not None:
            self._server._writable.pop(self.subscriber, None)

    def wake(self) -> None:
        """Something was queued (or the stream ends): write it."""
        self.flush()

    def _flush_again(self) -> None:
        self._recheck = None
        self.flush()

    def let_go(self) -> None:
        """Drop the connection with a reset: the kernel frees it and its unsent bytes now."""
        transport = self._transport
        if transport is None:
            return
        self._stop_writing()
        sock = transport.get_extra_info("socket")
        if sock is not None:
            set_reset_on_close(sock)
        transport.abort()

    def _on_request(self, request: IncomingRequest) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._transport is None:
            return
        peer = self._transport.get_extra_info("peername")
        address = peer[0] if peer else None
        routed = self._listener._route(request)
        if isinstance(routed, Refusal):  # a router's: no such channel
            log_refusal(self._listener, routed, address, request.target)
            self._reject(routed)
            return
        server, request = routed
        self._server = server
        server._protocols.add(self)
        refusal, key = server._admit(request, address)
        if refusal is not None:
            self._reject(refusal)
            return
        if server._is_feed_waited(request.target, request.headers):
            # The shared log's tail has to catch up first (or load the log at all).
            task = asyncio.get_running_loop().create_task(self._after_feed(server, request, key))
            server._feed_waits.add(task)
            task.add_done_callback(server._feed_waits.discard)
            return
        self._serve(server, request, key)

    async def _after_feed(
        self, server: EventStreamServer, request: IncomingRequest, key: str | None
    ) -> None:
        is_ready = await server._feed_ready(request.target, request.headers)
        if self._transport is None or self._transport.is_closing():
            return
        if not is_ready or server._is_closing:
            refusal = server._unavailable()
            server._log_refusal(refusal, None, request.target)
            self._reject(refusal)
            return
        self._serve(server, request, key)

    def _serve(self, server: EventStreamServer, request: IncomingRequest, key: str | None) -> None:
        self.subscriber = server._subscribe(request.target, request.headers, server._clock(), key)
        if not self._is_paused:
            server._writable[self.subscriber] = self
        self.flush()
        self._arm()

    def _arm(self) -> None:
        """Wake up for the next heartbeat."""
        subscriber, server = self.subscriber, self._server
        if subscriber is None or server is None or self._transport is None:
            return
        deadline = subscriber.next_deadline()
        if deadline is not None:
            delay = max(0.0, deadline - server._clock())
            self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.subscriber is not None and self._server is not None:
            self.subscriber.poll(self._server._clock())
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


class EventStreamServer(_Listener, ServerBase):
    """An asyncio event-stream server: one stream, many clients, resumable.

    Each event given to :meth:`publish` is appended to the replay log once (encoded once)
    and written to every client; clients that reconnect with ``Last-Event-ID`` get what they
    missed. Heartbeats, gzip and the per-client send queue bound come from the
    :class:`~sse_core.Broadcaster` and :class:`~sse_core.ServerSession`; a client that falls
    more than ``max_queued_bytes`` behind is reset (it resumes) instead of growing
    memory or slowing the others.

    Arguments as for every adapter's server (:doc:`/adapters/options`). To serve several
    streams (channels) on one port, give one server per channel to an
    :class:`EventStreamRouter` and start that instead.

    Raises:
        InvalidConfigError: a bad argument.
    """

    def _setup(self) -> None:
        self._feed_waits: set[asyncio.Task[None]] = set()  # streams waiting for the feed
        self._protocols: set[_StreamProtocol] = set()
        # The streams (and polls) whose transport takes bytes, by subscriber: the ones a
        # publish writes to (Broadcaster.fan_out), in the order they subscribed (writing to
        # sockets in the order the kernel made them costs measurably less system time with
        # thousands of them than in a set's order, by hash).
        self._writable: dict[Subscriber | Poller, _StreamProtocol] = {}
        self._server: asyncio.Server | None = None
        self._timeouts = (self._options.request_timeout, self._options.send_timeout)

    def _route(self, request: IncomingRequest) -> tuple[EventStreamServer, IncomingRequest]:
        return self, request

    def _started(self) -> None:
        if self._feed is not None:
            self._feed.start()

    def publish(self, event: Event) -> StoredEvent:
        """Publish an event to every client (call it from the event loop's thread).

        Returns:
            The stored event, with the id the replay log gave it.
        """
        return self._append(event)

    def _publish_now(self, event: Event) -> StoredEvent:
        return self._fan_out((event,))[0]

    def _publish_events(self, events: Sequence[Event]) -> None:
        self._fan_out(events)

    def _fan_out(self, events: Sequence[Event]) -> Sequence[StoredEvent]:
        """Publish ``events`` and write them: the fan-out's hot path. A stream that keeps up
        is written the same framed bytes as every other; the rest drain their queues."""
        writable = self._writable
        fanout, now = self._fan_out_now(events, writable)
        sent = fanout.sent
        if sent:
            data = fanout.data
            for subscriber in sent:
                protocol = writable[subscriber]
                transport = protocol._transport
                # Closed by the peer or lost, in this loop iteration: connection_lost() is
                # next (a write would only count against the transport).
                if transport is not None and not transport.is_closing():
                    transport.write(protocol._connection.frame_shared(data))
        for waiting in fanout.queued:
            writable[waiting].flush(now)
        self._let_go_dropped()
        return fanout.stored

    def _wake_all(self) -> None:
        # Only the streams whose socket takes bytes are written to; the others are written
        # when it does again (resume_writing), unless they were dropped meanwhile.
        now = self._clock()
        for protocol in list(self._writable.values()):
            protocol.flush(now)
        self._let_go_dropped()

    def _let_go_dropped(self) -> None:
        if self._has_new_drops():  # someone fell behind: let it go
            for protocol in list(self._protocols):
                subscriber = protocol.subscriber
                if subscriber is not None and subscriber.is_dropped:
                    protocol.flush()

    async def wait_for_subscribers(self, count: int = 1) -> None:
        """Wait until at least ``count`` clients are subscribed (their streams are open).

        Returns at once when they are already. Bound the wait with :func:`asyncio.timeout`
        (or :func:`asyncio.wait_for`); it does not end when the server closes.

        Raises:
            InvalidConfigError: ``count`` is not an int >= 1.
        """
        await self._await_count(count, asyncio.Event())

    async def aclose(self, *, grace: float = 1.0) -> None:
        """Stop listening and end every stream (clients see the end of the body).

        Args:
            grace: Seconds the clients get to take the end of their stream; connections
                still open then are aborted.
        """
        if self._server is not None:
            self._server.close()
        if self._feed is not None:
            await self._feed.aclose()
        for task in list(self._feed_waits):
            task.cancel()
        self._end_streams(self._protocols)
        deadline = self._clock() + grace
        while self._protocols and self._clock() < deadline:
            await asyncio.sleep(0.01)
        for protocol in list(self._protocols):
            protocol.let_go()
        while self._protocols:  # connection_lost() runs on the next loop iterations
            await asyncio.sleep(0)
        if self._server is not None:
            await self._server.wait_closed()


class EventStreamRouter(_Listener):
    """An asyncio server of several event streams (channels) on one port: each channel is
    an :class:`EventStreamServer` (not started itself), and a client picks one by the query
    parameter ``query_param`` (``/events?channel=news``) or else by the last segment of the
    path (``/events/news``), the rule of the ASGI
    :class:`~sse_core.adapters.asgi.EventStreamRouter`.

    The request is then the channel's server's, with the channel's segment taken off the
    path: that server's ``path`` and ``long_poll_path`` are checked against the rest
    (``/events/news`` and ``/poll/news`` reach ``/events`` and ``/poll``), and its
    limits, replay log, feed, long polls and ``Last-Event-ID`` resumption apply. A
    request that names no channel gets 404. Publish on a channel's server
    (``router.servers["news"].publish(event)``) or, with a shared log, to the channel's
    log (``await channels.publish("news", event)``)::

        channels = RedisChannels.from_url("redis://redis:6379/0", prefix="sse:")
        router = EventStreamRouter(
            {name: EventStreamServer(feed=channels.feed(name)) for name in ("news", "alerts")}
        )
        await router.start("0.0.0.0", 8000)

    Args:
        servers: The servers by channel name. They must agree on ``request_timeout`` and
            ``send_timeout``, which apply before a request names its channel.
        query_param: The query parameter that names the channel, or ``None`` to go by the
            path only.

    Raises:
        InvalidConfigError: ``servers`` is empty, not a mapping of str to
            :class:`EventStreamServer`, or its servers' timeouts differ.
    """

    def __init__(
        self, servers: Mapping[str, EventStreamServer], *, query_param: str | None = "channel"
    ) -> None:
        self._servers = checked_channels(servers, EventStreamServer, query_param)
        self._timeouts = channel_timeouts(self._servers.values())
        self._query_param = query_param
        self._protocols = set()
        self._server = None
        self._is_closing = False

    @property
    def servers(self) -> Mapping[str, EventStreamServer]:
        """The servers by channel name."""
        return self._servers

    def _route(self, request: IncomingRequest) -> _Routed:
        return channel_of(request, self._servers, self._query_param)

    def _started(self) -> None:
        for server in self._servers.values():
            server._started()

    async def aclose(self, *, grace: float = 1.0) -> None:
        """Stop listening and close every channel's server (:meth:`EventStreamServer.aclose`,
        at once); a connection whose request has not named a channel yet is let go.

        Args:
            grace: Seconds the clients get to take the end of their stream.
        """
        self._is_closing = True
        if self._server is not None:
            self._server.close()
        for protocol in list(self._protocols):
            if protocol._server is None:
                protocol.let_go()
        await asyncio.gather(*(server.aclose(grace=grace) for server in self._servers.values()))
        while self._protocols:  # connection_lost() runs on the next loop iterations
            await asyncio.sleep(0)
        if self._server is not None:
            await self._server.wait_closed()
