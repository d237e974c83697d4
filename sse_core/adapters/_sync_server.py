"""The threaded event-stream server (floor 4), imported from :mod:`sse_core.adapters.sync`.

It carries out what a :class:`~sse_core.Broadcaster` and
:class:`~sse_core.adapters.ServerConnection` ask, in one background thread that serves every
client through a :mod:`selectors` loop over non-blocking sockets (no thread per client),
woken through a socket pair so that :meth:`EventStreamServer.publish` can be called from any
thread. An :class:`EventStreamRouter` serves several servers (channels) on one port: its own
loop accepts and reads each request, then hands the connection to the loop of the server
whose channel the request names.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import selectors
import socket
import ssl
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, cast

from .._broadcast import Poller, Subscriber
from .._config import ServerConfig
from .._events import Event
from .._replay import ReplayLog, StoredEvent
from .._stream_log import StreamMirror, TailStep
from .._validators import non_negative_number
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

__all__ = ["EventStreamRouter", "EventStreamServer"]

# A non-blocking call that could not go on now (TLS may want either direction).
_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE
# The server reads at most this much per readiness (requests are small; a streaming client
# has nothing to say, what it sends is discarded).
_SERVER_READ_SIZE = 64 * 1024
# The most connections accepted per wake-up, so that a flood cannot starve the others.
_MAX_ACCEPTS = 64
# The most pieces one client's writes hold apart (one sendmsg() takes them all, far below
# any platform's IOV_MAX); more are joined into one.
_MAX_PIECES = 64
_HAS_SENDMSG = hasattr(socket.socket, "sendmsg")
# Numbers the timer entries of every server's heap (one sequence for all: a connection a
# router hands over keeps no entry of the router's that could pass for one of its server's).
_TIMER_NUMBERS = itertools.count()
# The timer heap is rebuilt from its live entries once it holds more than this many per
# connection (entries of connections gone, or superseded by an earlier deadline).
_MAX_TIMERS_PER_CLIENT = 2


class SyncLogFeed(Protocol):
    """A shared log's live tail feeding the threaded server, such as
    :class:`~sse_core.adapters.redis.SyncRedisFeed`: what the server asks of it."""

    @property
    def mirror(self) -> StreamMirror:
        """The worker's copy of the newest events: the broadcaster's replay log."""

    @property
    def catch_up_timeout(self) -> float:
        """Seconds a client ahead of the mirror waits for the tail before its 503."""

    def attach(self, on_step: Callable[[TailStep], None]) -> None:
        """Have ``on_step`` called with each step of the tail (under the ``start`` lock)."""

    def start(self, lock: threading.Lock, wake: Callable[[], None]) -> None:
        """Start the tail thread; it holds ``lock`` around the mirror and calls ``wake``."""

    def ask(self, last_event_id: str) -> None:
        """Have the tail ask the store whether it issued the id (under the lock)."""

    def is_unissued(self, last_event_id: str) -> bool:
        """Whether the store said it never issued the id (under the lock)."""

    def publish(self, event: Event) -> StoredEvent:
        """Append an event to the shared log."""

    def close(self) -> None:
        """Stop the tail thread."""


def _wake_pair() -> tuple[socket.socket, socket.socket]:
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    return reader, writer


def _drain(reader: socket.socket) -> None:
    try:
        while reader.recv(4096):
            pass
    except OSError:  # BlockingIOError: drained
        pass


class _Client:
    """One connection of an :class:`EventStreamServer` (used by its thread only)."""

    __slots__ = ("deadline", "error", "http", "interest", "is_done", "is_handshaking",
                 "is_replay_held", "sock", "subscriber", "timer", "timer_at", "unsent",
                 "waiting")

    def __init__(self, sock: socket.socket, deadline: float, is_handshaking: bool) -> None:
        self.sock: socket.socket | None = sock
        self.http = ServerConnection()
        self.subscriber: Subscriber | Poller | None = None
        # Bytes the socket did not take yet, in pieces (a publish's pieces are shared by
        # every client: no copy); refilled from the subscriber only once empty.
        self.unsent: list[bytes] = []
        self.is_done = False  # close once `unsent` is out
        self.deadline: float | None = deadline  # for the request (or an error response)
        # A replay's next step waits until the client reads what the kernel holds.
        self.is_replay_held = False
        self.is_handshaking = is_handshaking
        self.interest = _READ
        # A request waiting for the feed's tail (and its connection key), until `deadline`.
        self.waiting: tuple[IncomingRequest, str | None] | None = None
        # The number of the client's live entry in the server's timer heap (the others are
        # stale), and its instant: never later than when the client next has something due.
        self.timer: int | None = None
        self.timer_at = 0.0
        # The error a publish's write met (the loop closes the connection with it).
        self.error: OSError | None = None


class EventStreamServer(ServerBase):
    """A threaded event-stream server: one stream, many clients, resumable.

    Each event given to :meth:`publish` is appended to the replay log once (encoded once)
    and written to every client; clients that reconnect with ``Last-Event-ID`` get what they
    missed. Heartbeats, gzip and the per-client send queue bound come from the
    :class:`~sse_core.Broadcaster` and :class:`~sse_core.ServerSession`.

    One background thread serves every client with a :mod:`selectors` loop over
    non-blocking sockets: it accepts, reads each request, writes to a client when its socket
    can take more, and sends heartbeats when they are due. A turn of the loop costs what is
    due, not what is open: the clients' deadlines sit in a heap, and a wake-up serves only
    the clients whose socket is ready, whose deadline came, or that a publish left something
    to send. :meth:`publish` may be called from any thread: under a lock, it writes the event
    (framed once) to every client that keeps up, and leaves the rest to the loop, which it
    wakes.

    Memory per client is bounded. What a socket does not accept stays in a per-connection
    buffer, which is refilled from the client's :class:`~sse_core.state.Subscriber` queue only once
    it is empty, so it holds at most one queue's worth (``max_queued_bytes`` plus framing, or
    the head and replay a new client gets). Meanwhile newer events wait in the subscriber's
    queue; a client that lets that queue pass ``max_queued_bytes`` is dropped and its
    connection reset at once (it resumes from its last id when it comes back).

    Answers: 404 for another path, 405 for a method other than ``GET`` or ``POST``, 503 with
    ``Retry-After`` when ``max_subscribers`` is reached or the server is closing; 505 for an
    HTTP version other than 1.1 and 1.0 (HTTP/1.0 is served close-delimited), 400 for a
    request that is not HTTP or frames its body ambiguously, and the other refusals of
    :class:`~sse_core.adapters.ServerConnection`; the connection is closed after each.
    A client the server lets go of (dropped, silent past ``request_timeout``, still open
    when :meth:`close`'s grace ends) is closed with a reset, so that the kernel frees it and
    its unsent bytes at once.

    With a ``feed`` (:class:`~sse_core.adapters.redis.SyncRedisFeed`), the events come from
    a shared log's live tail (a thread of the feed), :meth:`publish` appends to the shared
    log, and a client whose ``Last-Event-ID`` the tail has not reached yet waits for it
    (without holding up the others) up to the feed's ``catch_up_timeout``, then gets 503.

    Arguments as for every adapter's server (:doc:`/adapters/options`); ``feed`` is a
    :class:`~sse_core.adapters.redis.SyncRedisFeed` here.

    Raises:
        InvalidConfigError: a bad argument.
    """

    def __init__(
        self,
        replay_log: ReplayLog | None = None,
        *,
        config: ServerConfig | None = None,
        options: ServerOptions | None = None,
        clock: Callable[[], float] | None = None,
        feed: SyncLogFeed | None = None,
    ) -> None:
        self._sync_feed = feed
        # The base reads only the feed's mirror and attach(), which both kinds of feed have.
        ServerBase.__init__(
            self, replay_log, config=config, options=options, clock=clock,
            feed=cast(LogFeed | None, feed),
        )

    def _setup(self) -> None:
        self._ssl_context: ssl.SSLContext | None = None
        # _lock guards the broadcaster, the clients and the flags below; the loop thread
        # holds it while it works (not while it waits), publish() while it queues.
        self._lock = threading.Lock()
        self._clients: dict[int, _Client] = {}
        self._selector: selectors.BaseSelector | None = None
        self._listener: socket.socket | None = None
        self._wake_reader: socket.socket | None = None
        self._wake_writer: socket.socket | None = None
        self._is_wake_pending = False
        self._thread: threading.Thread | None = None
        self._address: tuple[str, int] | None = None
        self._close_deadline = 0.0
        # Connections a router read the request of and handed over (_adopt), for the loop.
        self._handed: list[tuple[_Client, IncomingRequest]] = []
        # What one turn of the loop looks at, so that it costs what is due and not what is
        # open: a heap of (instant, number, client) with a live entry per client no later
        # than its next deadline (heartbeat, request_timeout, replay recheck or
        # max_replay_time, the feed's catch-up wait); the clients that have something to do
        # now (by id, in order); the streams and polls whose socket takes bytes (nothing
        # unsent: a publish writes to them, Broadcaster.fan_out); the requests waiting for
        # the feed's tail (looked at when the loop is woken).
        self._timers: list[tuple[float, int, _Client]] = []
        self._due: dict[int, _Client] = {}
        self._ready: dict[Subscriber | Poller, _Client] = {}
        self._feed_waits: dict[int, _Client] = {}

    @property
    def address(self) -> tuple[str, int]:
        """The listening address (host, port), once started.

        Raises:
            RuntimeError: the server was never started.
        """
        if self._address is None:
            raise RuntimeError("the server is not started")
        return self._address

    @property
    def connection_count(self) -> int:
        """Open client connections (streams, and connections still sending a request or
        taking an error response)."""
        with self._lock:
            return len(self._clients) + len(self._handed)  # handed: a router's, for the loop

    def start(
        self, host: str = "127.0.0.1", port: int = 0, *, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        """Listen on ``host``:``port`` (port 0 picks a free one; see :attr:`address`) and
        start the server's thread.

        Args:
            host: The address to listen on.
            port: The port, or 0.
            ssl_context: A server-side TLS context to speak ``https``, or ``None``.

        Raises:
            RuntimeError: already started.
            OSError: the address cannot be listened on.
        """
        if self._thread is not None or self._is_closing:
            raise RuntimeError("an EventStreamServer is started once")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.create_server((host, port), family=family, backlog=1024)
        try:
            listener.setblocking(False)
            self._run(listener, ssl_context, listener.getsockname()[:2], "server")
        except BaseException:
            listener.close()
            raise

    def _run(
        self,
        listener: socket.socket | None,
        ssl_context: ssl.SSLContext | None,
        address: tuple[str, int],
        label: str,
    ) -> None:
        """Start the server's thread (and its feed's tail), serving ``address``: accepting
        on ``listener``, or, with none (a router's channel), serving the connections the
        router hands over (:meth:`_adopt`)."""
        opened: list[socket.socket | selectors.BaseSelector] = []
        try:
            selector = selectors.DefaultSelector()
            opened.append(selector)
            wake_reader, wake_writer = _wake_pair()
            opened += [wake_reader, wake_writer]
            if listener is not None:
                selector.register(listener, _READ)
            selector.register(wake_reader, _READ)
        except BaseException:
            for resource in opened:
                resource.close()
            raise
        self._listener, self._selector, self._ssl_context = listener, selector, ssl_context
        self._wake_reader, self._wake_writer = wake_reader, wake_writer
        self._address = address
        self._thread = threading.Thread(
            target=self._serve, name=f"sse_core sync {label} {address}", daemon=True
        )
        self._thread.start()
        if self._sync_feed is not None:
            self._sync_feed.start(self._lock, self._wake_locked)

    def _adopt(self, client: _Client, request: IncomingRequest) -> bool:
        """Take over a connection (from a router's thread) whose request names this
        server's channel: the loop serves it from the next turn on. ``False`` when the
        server is closing (or not started): the router answers 503 itself."""
        with self._lock:
            if self._is_closing or self._thread is None:
                return False
            self._handed.append((client, request))
            self._wake_locked()
        return True

    def publish(self, event: Event) -> StoredEvent:
        """Publish an event to every client. Safe to call from any thread, also before
        :meth:`start` (the event is then only kept in the replay log). With a ``feed``, the
        event is appended to the shared log, and reaches the clients (of every worker)
        through the tail.

        Returns:
            The stored event (its id as assigned by the log).

        Raises:
            LogUnavailableError: with a ``feed``: the shared log did not store the event.
        """
        if self._sync_feed is not None:
            return self._sync_feed.publish(event)
        with self._lock:
            return self._fan_out((event,))[0]

    def _publish_events(self, events: Sequence[Event]) -> None:
        self._fan_out(events)  # a step of the feed's tail (under the lock)

    def _fan_out(self, events: Sequence[Event]) -> Sequence[StoredEvent]:
        """Publish ``events`` and write them (under the lock, in the publisher's thread, or
        the feed's tail's): the fan-out's hot path. A stream that keeps up is written the
        same framed bytes as every other, here, with one non-blocking send; what a socket
        does not take, and the streams and polls that have something else to send, are
        left to the loop (woken when there are any)."""
        ready = self._ready
        fanout, _ = self._fan_out_now(events, ready)
        due = self._due
        if fanout.sent:
            data = fanout.data
            for subscriber in fanout.sent:
                client = ready[subscriber]
                frame = client.http.frame_shared(data)
                sock = client.sock
                assert sock is not None
                try:
                    sent = sock.send(frame)
                except _WOULD_BLOCK:
                    sent = 0
                except OSError as error:  # the loop closes it (and counts a send timeout)
                    client.error = error
                    sent = 0
                if sent < len(frame):
                    client.unsent.append(frame[sent:] if sent else frame)
                    del ready[subscriber]
                    due[id(client)] = client
        for waiting in fanout.queued:
            client = ready[waiting]
            due[id(client)] = client
        self._note_dropped()
        if due:
            self._wake_locked()
        return fanout.stored

    def _note_dropped(self) -> None:
        """Have the loop let go of the streams the broadcaster dropped (they fell behind
        the bound) since it last looked: at once, with a reset."""
        if self._has_new_drops():
            for client in self._clients.values():
                subscriber = client.subscriber
                if subscriber is not None and subscriber.is_dropped:
                    self._due[id(client)] = client

    def wait_for_subscribers(self, count: int = 1, *, timeout: float | None = None) -> bool:
        """Block until at least ``count`` clients are subscribed (their streams are open).

        Call it from any thread but the server's. Returns at once when they are already.

        Args:
            count: How many subscribers to wait for.
            timeout: The most seconds to wait, or ``None`` (no limit: the wait does not end
                when the server closes).

        Returns:
            Whether ``count`` were reached (``False``: the timeout passed first).

        Raises:
            InvalidConfigError: ``count`` is not an int >= 1, or ``timeout`` is negative.
        """
        non_negative_number.or_none().check("timeout", timeout)
        reached = threading.Event()
        if not self._wait_for(reached, count, reached.set):
            return True
        try:
            return reached.wait(timeout)
        finally:
            self._stop_waiting(reached)

    def close(self, *, grace: float = 1.0) -> None:
        """Stop listening, end every stream (clients see the end of the body), close every
        socket and join the server's thread. Safe to call more than once.

        Args:
            grace: Seconds the clients get to take the end of their stream; connections
                still open then are closed.
        """
        self._begin_close(grace)
        self._finish_close()

    def _begin_close(self, grace: float) -> None:
        """Take no more clients and end every stream; the loop lets go of what is left
        after ``grace`` seconds."""
        with self._lock:
            if not self._is_closing:
                self._is_closing = True
                now = self._clock()
                self._close_deadline = now + grace
                self._broadcaster.close(now)
                self._due.update(self._clients)  # every stream ends
                self._wake_locked()

    def _finish_close(self) -> None:
        """Join the server's thread (its sockets are closed then), then stop the feed."""
        with self._lock:
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        if self._sync_feed is not None:
            self._sync_feed.close()

    def __enter__(self) -> EventStreamServer:
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- the server's thread --------------------------------------------------------------

    def _wake_locked(self) -> None:
        if self._is_wake_pending or self._wake_writer is None:
            return
        self._is_wake_pending = True
        with contextlib.suppress(OSError):  # cannot fill up: one byte at most is pending
            self._wake_writer.send(b"\0")

    def _wake_all(self) -> None:
        # The feed's tail holds the lock (a gap ended every stream): the loop serves everyone.
        self._due.update(self._clients)
        self._wake_locked()

    def _serve(self) -> None:
        selector = self._selector
        assert selector is not None
        try:
            while True:
                with self._lock:
                    timeout = self._timeout(self._clock())
                events = selector.select(timeout)
                with self._lock:
                    now = self._clock()
                    due = self._due
                    for key, mask in events:
                        if key.fileobj is self._listener:
                            self._accept(now)
                        elif key.fileobj is self._wake_reader:
                            _drain(self._wake_reader)
                            self._is_wake_pending = False
                            due.update(self._feed_waits)  # the tail may have caught up
                        else:
                            client: _Client = key.data
                            if client.sock is not None:
                                self._on_ready(client, mask, now)
                                due[id(client)] = client
                    if self._handed:
                        self._take_handed(now)
                    if self._is_closing and self._listener is not None:
                        selector.unregister(self._listener)
                        self._listener.close()
                        self._listener = None
                    self._take_timers(now)
                    self._due = {}
                    for client in due.values():
                        # Not one a router's loop handed over meanwhile, nor one gone.
                        if client.sock is not None and self._clients.get(id(client)) is client:
                            self._service(client, now)
                    if self._is_closing and (not self._clients or now >= self._close_deadline):
                        return
        finally:
            with self._lock:
                for client in list(self._clients.values()):  # still open after the grace
                    self._close_client(client, is_reset=True)
                for client, _ in self._handed:  # handed over as the loop ended
                    if client.sock is not None:
                        set_reset_on_close(client.sock)
                        client.sock.close()
                self._handed.clear()
                for sock in (self._listener, self._wake_reader, self._wake_writer):
                    if sock is not None:
                        sock.close()
                self._listener = self._wake_reader = self._wake_writer = None
                selector.close()
                self._selector = None

    def _take_handed(self, now: float) -> None:
        """Serve the connections a router handed over: as if this loop had read their
        request."""
        selector = self._selector
        assert selector is not None
        handed, self._handed = self._handed, []
        for client, request in handed:
            assert client.sock is not None
            self._clients[id(client)] = client
            client.interest = _READ
            client.timer = None  # the router's entry, if any, is stale
            selector.register(client.sock, _READ, client)
            self._route(client, request, now)
            self._due[id(client)] = client

    def _timeout(self, now: float) -> float | None:
        """Seconds until the earliest live timer (or the end of the close's grace)."""
        if self._due:
            return 0.0
        timers = self._timers
        while timers and timers[0][2].timer != timers[0][1]:
            heapq.heappop(timers)  # stale: superseded, or the client is gone
        deadline = timers[0][0] if timers else None
        if self._is_closing and (deadline is None or self._close_deadline < deadline):
            deadline = self._close_deadline
        return None if deadline is None else max(0.0, deadline - now)

    def _take_timers(self, now: float) -> None:
        """Have the loop serve every client whose timer is due."""
        timers, due = self._timers, self._due
        while timers and timers[0][0] <= now:
            _, number, client = heapq.heappop(timers)
            if client.timer == number:
                client.timer = None
                due[id(client)] = client

    def _schedule(self, client: _Client, now: float) -> None:
        """Keep a live timer entry no later than the client's next deadline (a later one
        is left alone: it wakes the loop early, which then schedules the next)."""
        subscriber = client.subscriber
        if subscriber is None or client.is_done:
            deadline = client.deadline
        else:
            deadline = subscriber.next_deadline()
            if client.is_replay_held:
                recheck = now + REPLAY_RECHECK_DELAY
                if deadline is None or recheck < deadline:
                    deadline = recheck
        if deadline is None or (client.timer is not None and client.timer_at <= deadline):
            return
        number = next(_TIMER_NUMBERS)
        client.timer, client.timer_at = number, deadline
        heapq.heappush(self._timers, (deadline, number, client))
        self._bound_timers()

    def _bound_timers(self) -> None:
        """Keep the heap's stale entries in proportion to the clients: rebuilt from the
        live ones (at most one a client) once there are more (amortized: it then takes
        as many pushes or closes again)."""
        timers = self._timers
        if len(timers) > _MAX_TIMERS_PER_CLIENT * len(self._clients) + 64:
            self._timers = [entry for entry in timers if entry[2].timer == entry[1]]
            heapq.heapify(self._timers)

    def _accept(self, now: float) -> None:
        listener, selector = self._listener, self._selector
        assert listener is not None and selector is not None
        for _ in range(_MAX_ACCEPTS):
            try:
                sock, _ = listener.accept()
            except OSError:  # BlockingIOError: none left; others (ECONNABORTED ...) skip
                return
            try:
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self._options.send_timeout is not None:
                    set_send_timeout(sock, self._options.send_timeout)
                if self._ssl_context is not None:
                    sock = self._ssl_context.wrap_socket(
                        sock, server_side=True, do_handshake_on_connect=False
                    )
            except (OSError, ValueError):
                sock.close()
                continue
            deadline = now + self._options.request_timeout
            client = _Client(sock, deadline, is_handshaking=self._ssl_context is not None)
            self._clients[id(client)] = client
            selector.register(sock, _READ, client)
            self._schedule(client, now)

    def _on_ready(self, client: _Client, mask: int, now: float) -> None:
        if client.is_handshaking:
            sock = client.sock
            assert isinstance(sock, ssl.SSLSocket)
            try:
                sock.do_handshake()
            except ssl.SSLWantReadError:
                client.interest = _READ
                return
            except ssl.SSLWantWriteError:
                client.interest = _WRITE
                return
            except (OSError, ValueError):
                self._close_client(client)
                return
            client.is_handshaking = False
            client.interest = _READ
            mask = _READ  # the request may have come with the handshake's last flight
        if mask & _WRITE:
            self._send(client)
        if mask & _READ and client.sock is not None:
            self._read(client, now)

    def _read(self, client: _Client, now: float) -> None:
        sock = client.sock
        assert sock is not None
        while True:
            try:
                data = sock.recv(_SERVER_READ_SIZE)
            except _WOULD_BLOCK:
                return
            except OSError as error:
                self._close_client(client, error=error)
                return
            if client.subscriber is not None or client.is_done or client.waiting is not None:
                if not data:  # the client went away
                    self._close_client(client)
                    return
                # What a client sends on a stream (or while it waits for it) is ignored.
            else:
                try:
                    request = client.http.receive(data)
                except RequestRefused as error:
                    self._log_refusal(error.refusal, peer_host(client.sock))
                    self._reject(client, error.refusal, now)
                    return
                if request is not None:
                    self._route(client, request, now)
                    return
            if not (isinstance(sock, ssl.SSLSocket) and sock.pending()):
                return

    def _route(self, client: _Client, request: IncomingRequest, now: float) -> None:
        refusal, key = self._admit(request, peer_host(client.sock))
        if refusal is not None:
            self._reject(client, refusal, now)
        elif self._sync_feed is not None and self._is_feed_waited(
            request.target, request.headers
        ):
            client.waiting = (request, key)
            client.deadline = now + self._sync_feed.catch_up_timeout
            self._feed_waits[id(client)] = client
            last_event_id = self._requested_id(request.target, request.headers)
            if last_event_id:
                self._sync_feed.ask(last_event_id)
        else:
            client.deadline = None
            client.subscriber = self._subscribe(request.target, request.headers, now, key)

    def _serve_waiting(self, client: _Client, now: float) -> None:
        """Subscribe a client that waits for the feed's tail once the mirror has caught up
        with it (or the log never issued its id); 503 once its wait is over."""
        assert client.waiting is not None and self._sync_feed is not None
        request, key = client.waiting
        last_event_id = self._requested_id(request.target, request.headers)
        is_ready = not self._is_feed_waited(request.target, request.headers) or (
            self._sync_feed.mirror.is_loaded
            and last_event_id is not None
            and self._sync_feed.is_unissued(last_event_id)
        )
        if is_ready and not self._is_closing:
            client.waiting = None
            del self._feed_waits[id(client)]
            client.deadline = None
            client.subscriber = self._subscribe(request.target, request.headers, now, key)
        elif self._is_closing or (client.deadline is not None and now >= client.deadline):
            client.waiting = None
            del self._feed_waits[id(client)]
            self._reject(client, self._unavailable(), now)

    def _reject(self, client: _Client, refusal: Refusal, now: float) -> None:
        data = client.http.respond_error(refusal.status, refusal.text, refusal.headers)
        if data:
            client.unsent.append(data)
        client.is_done = True
        client.deadline = now + self._options.request_timeout  # to take the answer

    def _service(self, client: _Client, now: float) -> None:
        """Carry out what is due for one client (timeouts, heartbeats, queued bytes), then
        set its timer, its interest and whether a publish writes to it."""
        if client.error is not None:  # met by a publish's write
            self._close_client(client, error=client.error)
            return
        if client.waiting is not None:
            self._serve_waiting(client, now)
        subscriber = client.subscriber
        if subscriber is None or client.is_done:
            if (self._is_closing and not client.is_done) or (
                client.deadline is not None and now >= client.deadline
            ):
                self._close_client(client, is_reset=True)  # no request (or answer taken) in time
                return
        else:
            deadline = subscriber.next_deadline()
            if deadline is not None and now >= deadline:
                subscriber.poll(now)
            if subscriber.is_dropped:  # fell behind: what the socket takes now, then a reset
                data, _ = client.http.respond(subscriber.take(now))
                if data:
                    client.unsent.append(data)
                self._send(client)
                self._close_client(client, is_reset=True)
                return
            client.is_replay_held = (
                not client.unsent
                and subscriber.is_replay_step_next
                and is_replay_held_back(client.sock)
            )
            if not client.unsent and subscriber.has_pending and not client.is_replay_held:
                pieces, is_done = client.http.take_from(subscriber, now)
                if len(pieces) > _MAX_PIECES:  # a client far behind: one buffer instead
                    pieces = [b"".join(pieces)]
                client.unsent += pieces
                client.is_done = is_done
                if is_done:
                    client.deadline = now + self._options.request_timeout
        if client.unsent:
            self._send(client)
        if client.sock is None:
            return
        if client.is_done and not client.unsent:
            self._close_client(client)
            return
        if not client.is_handshaking:
            # A replay under way has more to send as soon as the socket takes it.
            is_writing = bool(client.unsent) or (
                client.subscriber is not None
                and client.subscriber.has_pending
                and not client.is_replay_held
            )
            client.interest = (_READ | _WRITE) if is_writing else _READ
        assert self._selector is not None
        if self._selector.get_key(client.sock).events != client.interest:
            self._selector.modify(client.sock, client.interest, client)
        subscriber = client.subscriber
        if subscriber is not None:
            if client.unsent or client.is_done or client.is_handshaking:
                self._ready.pop(subscriber, None)
            else:
                self._ready[subscriber] = client
        self._schedule(client, now)

    def _send(self, client: _Client) -> None:
        sock = client.sock
        if sock is None or client.is_handshaking:
            return
        unsent = client.unsent
        # Several pieces go out in one sendmsg() (TLS sockets have none: one piece a call).
        is_gathering = _HAS_SENDMSG and not isinstance(sock, ssl.SSLSocket)
        while unsent:
            try:
                if len(unsent) > 1 and is_gathering:
                    sent = sock.sendmsg(unsent)
                else:
                    sent = sock.send(unsent[0])
            except _WOULD_BLOCK:
                return
            except OSError as error:
                self._close_client(client, error=error)
                return
            taken = 0  # pieces the socket took whole
            for piece in unsent:
                if sent < len(piece):
                    break
                sent -= len(piece)
                taken += 1
            del unsent[:taken]
            if sent:
                unsent[0] = unsent[0][sent:]

    def _close_client(
        self, client: _Client, *, is_reset: bool = False, error: OSError | None = None
    ) -> None:
        """Close a client's connection; with ``is_reset``, as a reset (the server lets go of
        it: the kernel frees the connection and its unsent bytes at once). ``error`` is the
        socket's error that ended it, if any (the kernel's send timeout is counted)."""
        self._clients.pop(id(client), None)
        self._feed_waits.pop(id(client), None)
        client.timer = None
        self._bound_timers()
        if client.subscriber is not None:
            self._ready.pop(client.subscriber, None)
            if is_send_timeout(error):
                self._note_send_timeout(client.subscriber)
            self._unsubscribe(client.subscriber)
        sock, client.sock = client.sock, None
        if sock is not None:
            if self._selector is not None:
                self._selector.unregister(sock)
            if is_reset:
                set_reset_on_close(sock)
            sock.close()
        client.unsent.clear()


class _Front(EventStreamServer):
    """An :class:`EventStreamRouter`'s own loop: a server with no stream of its own that
    accepts each connection (TLS included), reads its request within ``request_timeout``,
    and hands the connection to the server of the channel the request names (404 when it
    names none, 503 when that server is closing)."""

    def __init__(self, router: EventStreamRouter, timeouts: tuple[float, float | None]) -> None:
        request_timeout, send_timeout = timeouts
        super().__init__(
            options=ServerOptions(request_timeout=request_timeout, send_timeout=send_timeout)
        )
        self._router = router

    def _route(self, client: _Client, request: IncomingRequest, now: float) -> None:
        router, sock = self._router, client.sock
        assert sock is not None and self._selector is not None
        routed = channel_of(request, router.servers, router._query_param)
        if isinstance(routed, Refusal):
            log_refusal(router, routed, peer_host(sock), request.target)
            self._reject(client, routed, now)
            return
        server, request = routed
        del self._clients[id(client)]
        client.timer = None
        self._selector.unregister(sock)
        if not server._adopt(client, request):
            self._clients[id(client)] = client
            self._selector.register(sock, _READ, client)
            refusal = server._unavailable()
            server._log_refusal(refusal, peer_host(sock), request.target)
            self._reject(client, refusal, now)


class EventStreamRouter:
    """A threaded server of several event streams (channels) on one port: each channel is
    an :class:`EventStreamServer` (not started itself), and a client picks one by the query
    parameter ``query_param`` (``/events?channel=news``) or else by the last segment of the
    path (``/events/news``), the rule of the asyncio and ASGI routers.

    The router's thread accepts each connection and reads its request; the connection then
    belongs to the channel's server, whose own thread serves it as if it had read the
    request, with the channel's segment taken off the path: that server's ``path`` and
    ``long_poll_path`` are checked against the rest (``/events/news`` and ``/poll/news``
    reach ``/events`` and ``/poll``), and its limits, replay log or feed, long polls,
    ``Last-Event-ID`` resumption and metrics apply. A request that names no channel gets
    404. Publish on a channel's server (``router.servers["news"].publish(event)``: with a
    :class:`~sse_core.adapters.redis.SyncRedisFeed`, to that channel's Redis stream).

    Threads: one for the router, one per channel, and one per feed's tail; :meth:`start`
    starts them all, :meth:`close` ends them all.

    Args:
        servers: One blocking :class:`EventStreamServer` per channel, by name. A
            connection's request is read before it names a channel: they share one
            ``request_timeout`` and one ``send_timeout``.
        query_param: The name of the query parameter that picks the channel; ``None``: the
            path alone does.

    Raises:
        InvalidConfigError: no servers, a name that is not a non-empty str, a server of
            another kind, an empty ``query_param``, or timeouts that differ.
    """

    def __init__(
        self, servers: Mapping[str, EventStreamServer], *, query_param: str | None = "channel"
    ) -> None:
        self._query_param = query_param
        self._servers = checked_channels(servers, EventStreamServer, query_param)
        self._front = _Front(self, channel_timeouts(self._servers.values()))

    @property
    def servers(self) -> Mapping[str, EventStreamServer]:
        """The servers by channel name."""
        return self._servers

    @property
    def address(self) -> tuple[str, int]:
        """The listening address (host, port), once started.

        Raises:
            RuntimeError: the router was never started.
        """
        return self._front.address

    @property
    def connection_count(self) -> int:
        """Open client connections: every channel's, and those whose request has not named
        a channel yet (or that take a refusal)."""
        return self._front.connection_count + sum(
            server.connection_count for server in self._servers.values()
        )

    def start(
        self, host: str = "127.0.0.1", port: int = 0, *, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        """Listen on ``host``:``port`` (port 0 picks a free one; see :attr:`address`) and
        start the router's thread and every channel's server (with its feed's tail).

        Args:
            host: The address to listen on.
            port: The port, or 0.
            ssl_context: A server-side TLS context to speak ``https``, or ``None``.

        Raises:
            RuntimeError: the router, or one of its servers, was started already.
            OSError: the address cannot be listened on.
        """
        front = self._front
        if front._thread is not None or front._is_closing:
            raise RuntimeError("an EventStreamRouter is started once")
        for name, server in self._servers.items():
            if server._thread is not None or server._is_closing:
                raise RuntimeError(f"the server of channel {name!r} was started on its own")
        front.start(host, port, ssl_context=ssl_context)
        try:
            for name, server in self._servers.items():
                server._run(None, None, front.address, f"channel {name}")
        except BaseException:
            self.close(grace=0.0)
            raise

    def close(self, *, grace: float = 1.0) -> None:
        """Stop listening, close every channel's server (:meth:`EventStreamServer.close`,
        all at once) and join every thread; a connection whose request has not named a
        channel yet is let go. Safe to call more than once.

        Args:
            grace: Seconds the clients get to take the end of their stream.
        """
        servers = [self._front, *self._servers.values()]
        for server in servers:
            server._begin_close(grace)
        for server in servers:  # the router's first: it hands over nothing after
            server._finish_close()

    def __enter__(self) -> EventStreamRouter:
        if self._front._thread is None:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
