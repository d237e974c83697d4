"""ASGI adapter: a resumable event stream for Starlette, FastAPI, any ASGI server (floor 4).

:class:`EventStream` is an ASGI application built on :class:`~sse_core.Broadcaster`. Every
protocol decision (response head, replay after ``Last-Event-ID``, the gap signal, heartbeats,
gzip, dropping a client that falls behind) is made by the sans-IO objects; this module only
carries out their actions -- :class:`~sse_core.SendHead` becomes ``http.response.start``,
:class:`~sse_core.Send` an ``http.response.body`` with ``more_body=True`` and
:class:`~sse_core.Disconnect` the final, empty body -- and owns the clock and the waiting.
It runs on anyio, so it works under asyncio servers (uvicorn, hypercorn, daphne) and trio
servers (hypercorn) alike.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping

import anyio

from .._actions import Disconnect, SendHead
from .._broadcast import Poller, Subscriber
from .._errors import LocalProtocolError
from .._events import Event
from .._replay import StoredEvent
from .._server import ServerSession
from ._asgi_messages import ASGISend, Receive, Scope, message_of, response_start
from ._asgi_messages import watch_disconnect as _watch_disconnect
from ._asgi_response import StreamResponse
from ._http import IncomingRequest, Refusal
from ._server_base import NO_CHANNEL, ServerBase, checked_channels, pick_channel

__all__ = ["EventStream", "EventStreamRouter", "StreamResponse"]

_ALLOWED_METHODS = ("GET", "HEAD")


class _Connection:
    """The adapter's side of one subscriber: how to wake its task, and its write in flight.

    Under asyncio the task waits on a bare future of the loop (a publish resolves it: one
    callback per client, no event object per wait) and one loop timer per connection stands
    for the next heartbeat, kept across publishes (firing early only makes the task look
    again); under any other loop (trio), on an anyio event and a timeout per wait.
    """

    __slots__ = ("loop", "scope", "subscriber", "timer", "waiter", "write_scope")

    def __init__(
        self,
        subscriber: Subscriber | Poller,
        scope: anyio.CancelScope,
        loop: asyncio.AbstractEventLoop | None,
    ) -> None:
        self.subscriber = subscriber
        self.scope = scope  # the connection's: cancelling it ends the connection
        self.loop = loop
        self.waiter: asyncio.Future[None] | anyio.Event | None = None  # while it waits
        self.timer: asyncio.TimerHandle | None = None  # the next heartbeat (asyncio)
        # Set while the task waits inside the server's send(): the client is not reading.
        self.write_scope: anyio.CancelScope | None = None

    def wake(self) -> None:
        """Have the task look at its subscriber again (no-op unless it waits)."""
        waiter = self.waiter
        if waiter is None:
            return
        if isinstance(waiter, anyio.Event):
            waiter.set()
        elif not waiter.done():
            waiter.set_result(None)

    def on_timer(self) -> None:
        self.timer = None
        self.wake()

    def stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class EventStream(ServerBase):
    """An ASGI application serving one resumable event stream to many clients.

    Mount it (``Route("/events", stream)`` or ``Mount("/events", app=stream)`` in Starlette,
    ``app.add_route("/events", stream)`` in FastAPI) or run it alone (``uvicorn.run(stream)``),
    then call :meth:`publish` from the event loop. Each client is served by the task the ASGI
    server runs it in: it drains its own :class:`~sse_core.state.Subscriber` queue, so one slow
    client never holds up :meth:`publish` or the others, and a client that falls more than
    ``max_queued_bytes`` behind is dropped (it reconnects with ``Last-Event-ID`` and the log
    replays what it missed).

    Requests: ``GET`` subscribes; ``HEAD`` answers the same head with no body and subscribes
    nothing; any other method gets ``405`` with ``Allow: GET, HEAD``. When ``max_subscribers``
    is reached, or after :meth:`aclose`, a request gets ``503`` with ``Retry-After``
    (EventSource in browsers treats that as final; a :class:`~sse_core.ClientSession` with
    ``503`` in ``retry_statuses`` reconnects with backoff). Lifespan events are answered, and
    the lifespan shutdown calls :meth:`aclose`.

    Arguments as for every adapter's server (:doc:`/adapters/options`).

    Raises:
        InvalidConfigError: a bad argument.
    """

    def _setup(self) -> None:
        self._retry_after = str(self._options.retry_after).encode()
        self._connections: dict[int, _Connection] = {}  # by id() of the subscriber
        self._all_gone: anyio.Event | None = None  # set when aclose() waits and the last ends

    # --- queries ------------------------------------------------------------------------

    @property
    def is_closed(self) -> bool:
        """Whether :meth:`aclose` was called."""
        return self._is_closing

    # --- the application's side ---------------------------------------------------------

    async def wait_for_subscribers(self, count: int = 1) -> None:
        """Wait until at least ``count`` clients are subscribed (their streams are open).

        Call it in the ASGI server's event loop (asyncio or trio). Returns (after a
        checkpoint) when they are already. Bound the wait with ``anyio.fail_after``; it does
        not end when the stream closes.

        Raises:
            InvalidConfigError: ``count`` is not an int >= 1.
        """
        if not await self._await_count(count, anyio.Event()):
            await anyio.lowlevel.checkpoint()

    def publish(self, event: Event) -> StoredEvent:
        """Append ``event`` to the replay log and queue it for every client.

        Call it from the event loop's thread (from another thread, go through
        ``anyio.from_thread.run_sync`` or the loop's ``call_soon_threadsafe``). It never
        waits: each client's task sends on its own.

        Args:
            event: The event; with ``id=None`` the log assigns one.

        Returns:
            The stored event, with its id.

        Raises:
            LocalProtocolError: the stream was closed with :meth:`aclose`.
            InvalidFieldError: the log refused the event's id.
        """
        if self._is_closing:
            raise LocalProtocolError("publish() after aclose()")
        stored = self._append(event)
        self._wake_all()
        return stored

    def _wake_all(self) -> None:
        for connection in list(self._connections.values()):
            self._wake(connection)

    async def aclose(self, timeout: float = 5.0) -> None:
        """End every client's stream and wait until every client's task has finished.

        Each client gets the end of its stream (and reconnects, here or elsewhere, with
        ``Last-Event-ID``). A client that has not taken it within ``timeout`` seconds -- its
        connection is stalled -- is cut off without a clean end. Later requests get ``503``
        and :meth:`publish` raises. Calling it again waits for the same clients.

        Args:
            timeout: Seconds to wait for the clean ends before cutting stalled clients off.
        """
        self._is_closing = True
        if self._feed is not None:
            await self._feed.aclose()
        self._broadcaster.close(self._clock())
        self._wake_all()
        if not self._connections:
            return
        if self._all_gone is None:
            self._all_gone = anyio.Event()
        with anyio.move_on_after(timeout):
            await self._all_gone.wait()
        for connection in list(self._connections.values()):
            if connection.write_scope is not None:
                connection.write_scope.cancel()  # stalled in a write: no clean end
        await self._all_gone.wait()

    # --- the ASGI application -----------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: ASGISend) -> None:
        """Serve one ASGI connection (``http`` or ``lifespan``)."""
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # refused: HTTP 403
            return
        if kind != "http":
            raise LocalProtocolError(f"EventStream serves http requests, not {kind!r}")
        method = scope["method"]
        client = scope.get("client")
        peer = client[0] if client else None
        if method not in _ALLOWED_METHODS:
            self._log_refusal(Refusal(status=405, text="method not allowed"), peer, scope["path"])
            await _refuse(send, 405, b"method not allowed\n", [(b"allow", b"GET, HEAD")])
            return
        target = scope["path"]
        if scope.get("query_string"):
            target += "?" + scope["query_string"].decode("latin-1")
        headers = scope["headers"]
        if method == "HEAD":
            # The head a GET would get (content type, encoding ...), from a session that
            # replays nothing; no subscriber.
            head = ServerSession(self._config).on_request(target, headers, self._clock())[0]
            assert isinstance(head, SendHead)
            await send(response_start(head))
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        is_poll = self._is_poll(target, headers)
        broadcaster = self._broadcaster
        if self._is_closing or (broadcaster.is_poll_full if is_poll else broadcaster.is_full):
            self._log_refusal(Refusal(status=503, text="event stream unavailable"), peer, target)
            await _refuse(
                send, 503, b"event stream unavailable\n", [(b"retry-after", self._retry_after)]
            )
            return
        refusal, key = (None, None) if is_poll else self._key_of(
            _request_of(scope, target), peer
        )
        if refusal is not None:
            self._log_refusal(refusal, peer, target)
            await _refuse(
                send, refusal.status, refusal.text.encode(),
                [(name.lower().encode(), value.encode()) for name, value in refusal.headers],
            )
            return
        if self._is_feed_waited(target, headers):
            # The shared log's tail has to catch up first (or load the log at all).
            if not await self._feed_ready(target, headers) or self._is_closing:
                self._log_refusal(Refusal(status=503, text="shared log not ready"), peer, target)
                await _refuse(
                    send, 503, b"event stream unavailable\n",
                    [(b"retry-after", self._retry_after)],
                )
                return
        subscriber = self._subscribe(target, headers, self._clock(), key)
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # not asyncio (trio)
            loop = None
        try:
            if loop is None:
                async with anyio.create_task_group() as tasks:
                    connection = _Connection(subscriber, tasks.cancel_scope, loop)
                    self._connections[id(subscriber)] = connection
                    tasks.start_soon(_watch_disconnect, receive, tasks.cancel_scope)
                    await self._pump(connection, send)
                    tasks.cancel_scope.cancel()
            else:
                # Under asyncio, a cancel scope and a bare task watching for the client's
                # going: a task group's bookkeeping costs memory on every idle connection.
                with anyio.CancelScope() as cut:
                    connection = _Connection(subscriber, cut, loop)
                    self._connections[id(subscriber)] = connection
                    watcher = loop.create_task(_watch_disconnect(receive, cut))
                    try:
                        await self._pump(connection, send)
                    finally:
                        watcher.cancel()
        finally:
            self._unsubscribe(subscriber)
            gone = self._connections.pop(id(subscriber), None)
            if gone is not None:
                gone.stop_timer()
            if not self._connections and self._all_gone is not None:
                self._all_gone.set()

    # --- internals ----------------------------------------------------------------------

    def _start(self) -> None:
        """The lifespan startup: start the feed's tail, if any (else the first request
        does)."""
        if self._feed is not None:
            self._feed.start()

    def _wake(self, connection: _Connection) -> None:
        subscriber = connection.subscriber
        if connection.write_scope is not None:
            if subscriber.is_dropped:
                # Dropped while the server is stuck writing to it: stop waiting for the client.
                connection.write_scope.cancel()
        elif connection.waiter is not None and subscriber.has_pending:
            connection.wake()

    async def _pump(self, connection: _Connection, send: ASGISend) -> None:
        """Carry out the subscriber's actions until its stream ends.

        The hot path: published events (and heartbeats) go out as the very bytes objects
        the broadcaster queued for every client (:meth:`~sse_core.state.Subscriber.take_bytes`;
        the ASGI server frames them), one ``http.response.body`` per wake; the head, replay
        steps and the stream's end go through the actions of
        :meth:`~sse_core.state.Subscriber.take`.
        """
        subscriber = connection.subscriber
        clock = self._clock
        while True:
            pieces = subscriber.take_bytes(clock())
            if pieces is not None:
                body = pieces[0] if len(pieces) == 1 else b"".join(pieces)
                # A write the client does not take is cut by cancelling the connection.
                connection.write_scope = connection.scope
                try:
                    await send({"type": "http.response.body", "body": body, "more_body": True})
                except OSError:
                    return  # the connection is gone (ASGI 2.4 servers raise this)
                finally:
                    connection.write_scope = None
                if subscriber.has_pending:
                    continue  # queued while sending
            elif subscriber.has_pending:
                if not await self._send_actions(connection, send):
                    return
                continue
            if connection.loop is not None:
                await self._idle_asyncio(connection, connection.loop)
            else:
                await self._idle(connection)

    async def _send_actions(self, connection: _Connection, send: ASGISend) -> bool:
        """Carry out what :meth:`~sse_core.state.Subscriber.take` returns; whether the
        stream goes on."""
        subscriber = connection.subscriber
        for action in subscriber.take(self._clock()):
            message = message_of(action)
            replay_deadline = subscriber.replay_deadline
            with anyio.CancelScope(
                deadline=math.inf if replay_deadline is None else replay_deadline
            ) as scope:
                connection.write_scope = scope
                try:
                    await send(message)
                except OSError:
                    return False  # the connection is gone (ASGI 2.4 servers raise this)
                finally:
                    connection.write_scope = None
            if scope.cancelled_caught:
                subscriber.poll(self._clock())  # a replay past its time: dropped
                return False  # dropped or closed while the client was not reading
            if isinstance(action, Disconnect):
                return False
        return True

    async def _idle_asyncio(
        self, connection: _Connection, loop: asyncio.AbstractEventLoop
    ) -> None:
        """Wait (asyncio) until woken, with the heartbeat's timer armed; queue the heartbeat
        when it is due.

        The timer is a loop timer, not a cancel scope: before Python 3.11 a scope's own
        cancellation and the ASGI server's cancellation of the task that land in the same
        loop iteration fold into one ``CancelledError``, which the scope then takes for its
        own and swallows -- the task would go on serving.
        """
        subscriber = connection.subscriber
        if connection.timer is None:  # never armed, or it fired: is the heartbeat due?
            deadline = subscriber.next_deadline()
            if deadline is not None:
                now = self._clock()
                if now >= deadline:
                    subscriber.poll(now)
                    if subscriber.has_pending:
                        return
                    deadline = subscriber.next_deadline()
                if deadline is not None:
                    delay = max(0.0, deadline - now)
                    connection.timer = loop.call_later(delay, connection.on_timer)
        waiter: asyncio.Future[None] = loop.create_future()
        connection.waiter = waiter
        try:
            await waiter
        finally:
            connection.waiter = None

    async def _idle(self, connection: _Connection) -> None:
        """Wait (trio, or any loop but asyncio) until woken or the next deadline; queue the
        heartbeat if it is due. Under trio, cancellation is level-triggered and a scope
        cannot lose another's."""
        subscriber = connection.subscriber
        deadline = subscriber.next_deadline()
        delay = math.inf if deadline is None else max(0.0, deadline - self._clock())
        waiter = connection.waiter = anyio.Event()
        try:
            with anyio.move_on_after(delay):
                await waiter.wait()
        finally:
            connection.waiter = None
        subscriber.poll(self._clock())  # a heartbeat, if one is due

    async def _lifespan(self, receive: Receive, send: ASGISend) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


class EventStreamRouter:
    """An ASGI application serving several event streams (channels), each an
    :class:`EventStream`; a client picks one by the query parameter ``query_param``
    (``/events?channel=news``) or else by the last segment of the path (``/events/news``).

    With a shared log, give each stream the feed of its channel::

        channels = RedisChannels.from_url("redis://redis:6379/0", prefix="sse:")
        app = EventStreamRouter(
            {name: EventStream(feed=channels.feed(name)) for name in ("news", "alerts")}
        )

    A request for no known channel gets 404. A channel picked by the path reaches its
    stream without that segment (``/poll/news`` is a poll of ``news`` when its
    ``long_poll_path`` is ``/poll``). The lifespan startup starts every stream's feed and the
    shutdown closes every stream (:meth:`EventStream.aclose`).

    Args:
        streams: The streams by channel name.
        query_param: The query parameter that names the channel, or ``None`` to go by the
            path only.

    Raises:
        InvalidConfigError: ``streams`` is empty or not a mapping of str to
            :class:`EventStream`.
    """

    def __init__(
        self, streams: Mapping[str, EventStream], *, query_param: str | None = "channel"
    ) -> None:
        self._streams = checked_channels(streams, EventStream, query_param)
        self._query_param = query_param

    @property
    def streams(self) -> Mapping[str, EventStream]:
        """The streams by channel name."""
        return self._streams

    def channel_of(self, scope: Scope) -> str | None:
        """The channel a request names (the query parameter first, then the path's last
        segment), or ``None`` when it names none of the streams."""
        return self._pick(scope)[0]

    def _pick(self, scope: Scope) -> tuple[str | None, str]:
        query = scope.get("query_string", b"").decode("latin-1")
        return pick_channel(scope["path"], query, self._streams, self._query_param)

    async def aclose(self) -> None:
        """Close every stream."""
        for stream in self._streams.values():
            await stream.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: ASGISend) -> None:
        """Serve one ASGI connection: a lifespan for every stream, a request by its
        channel."""
        kind = scope["type"]
        if kind == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    for stream in self._streams.values():
                        stream._start()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await self.aclose()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if kind == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # refused: HTTP 403
            return
        channel, path = self._pick(scope)
        if channel is None:
            await _refuse(send, NO_CHANNEL.status, NO_CHANNEL.text.encode(), [])
            return
        if path != scope["path"]:  # the stream sees the path without the channel's segment
            scope = {**scope, "path": path}
        await self._streams[channel](scope, receive, send)


def _request_of(scope: Scope, target: str) -> IncomingRequest:
    """The request as a connection key function sees it (no body: it is not read)."""
    headers = tuple(
        (name.decode("latin-1").lower(), value.decode("latin-1"))
        for name, value in scope["headers"]
    )
    return IncomingRequest(method=scope["method"], target=target, headers=headers, body=b"")


async def _refuse(
    send: ASGISend, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})
