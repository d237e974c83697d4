"""What the adapters' servers share (floor 4): one constructor over the options, the
broadcaster and its replay log (or a shared log's live tail: :class:`LogFeed`), admission
(the 404/405/503/429 refusals), which requests are long polls, the wait for subscribers, and
which channel a request names when one application serves several streams. No sockets here:
each server does its own I/O."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Container, Iterable, Mapping, Sequence
from typing import Protocol, TypeVar
from urllib.parse import parse_qsl, urlsplit

import attrs

from .. import ServerConfig
from .._broadcast import Broadcaster, Fanout, Poller, Subscriber
from .._errors import InvalidConfigError, LocalProtocolError
from .._events import Event
from .._longpoll import LONG_POLL_CONTENT_TYPE
from .._replay import ReplayConfig, ReplayLog, StoredEvent
from .._stream_log import StreamMirror, TailStep
from .._types import header_value
from .._validators import positive_int
from ._base import AdapterBase, options_or_default
from ._http import (
    IncomingRequest,
    Refusal,
    refusal_for,
)
from ._logging import adapter_name, server_log
from ._options import ServerOptions

__all__ = [
    "NO_CHANNEL", "TOO_MANY", "VARY_ACCEPT", "LogFeed", "ServerBase", "channel_of",
    "channel_timeouts", "checked_channels", "default_replay_log", "is_poll", "log_refusal",
    "pick_channel", "prefers_json",
]

_STREAM_TYPE = "text/event-stream"
#: What both answers of a path that serves streams and polls say (RFC 9110 section 12.5.5).
VARY_ACCEPT = ("Vary", "Accept")


def _accept_q(ranges: list[tuple[str, float]], media_type: str) -> float:
    """The q-value ``Accept`` gives ``media_type``: that of the most specific range matching
    it (RFC 9110 section 12.5.1), 0 when none does."""
    kind = media_type.split("/")[0] + "/*"
    best, best_rank = 0.0, -1
    for media_range, q in ranges:
        rank = {media_type: 2, kind: 1, "*/*": 0}.get(media_range, -1)
        if rank > best_rank:
            best, best_rank = q, rank
    return best


def prefers_json(accept: str | None) -> bool:
    """Whether a request's ``Accept`` field prefers a long-poll answer (``application/json``)
    to the event stream (``text/event-stream``): a strictly higher q-value (RFC 9110
    section 12.5.1). No field, or a tie (``*/*``), is the stream.
    """
    if not accept:
        return False
    ranges: list[tuple[str, float]] = []
    for part in accept.split(","):
        media_range, *params = part.split(";")
        q = 1.0
        for param in params:
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        ranges.append((media_range.strip().lower(), q))
    return _accept_q(ranges, LONG_POLL_CONTENT_TYPE) > _accept_q(ranges, _STREAM_TYPE)


def is_poll(options: ServerOptions, target: str, accept: str | None) -> bool:
    """Whether a request is a long poll: to ``options.long_poll_path``, or -- when that is
    the stream's path too -- preferring ``application/json`` (:func:`prefers_json`)."""
    if options.long_poll_path is None:
        return False
    if options.is_negotiated:
        return prefers_json(accept)
    return urlsplit(target).path == options.long_poll_path


_Stream = TypeVar("_Stream")


def checked_channels(
    streams: Mapping[str, _Stream], kind: type[_Stream], query_param: str | None
) -> dict[str, _Stream]:
    """A router's streams by channel name, checked: a non-empty mapping of non-empty str to
    ``kind``, and a ``query_param`` that is a non-empty str or ``None``.

    Raises:
        InvalidConfigError: either is not so.
    """
    if (
        not isinstance(streams, Mapping)
        or not streams
        or not all(
            isinstance(name, str) and name and isinstance(stream, kind)
            for name, stream in streams.items()
        )
    ):
        raise InvalidConfigError(
            f"streams must map channel names to {kind.__name__} objects, got {streams!r}"
        )
    if query_param is not None and (not isinstance(query_param, str) or not query_param):
        raise InvalidConfigError(
            f"query_param must be a non-empty str or None, got {query_param!r}"
        )
    return dict(streams)


def pick_channel(
    path: str, query: str, names: Container[str], query_param: str | None
) -> tuple[str | None, str]:
    """The channel a request names, and the path left for that channel's stream.

    The query parameter ``query_param`` first (``/events?channel=news``: the path stays as
    it is); without it, the path's last segment (``/events/news``: the path left is
    ``/events``, or ``/`` when nothing is). A name that is not in ``names`` is no channel
    (``None``: answer :data:`NO_CHANNEL`); a query parameter naming none is not looked past
    (an empty one is no parameter).

    Args:
        path: The request's path.
        query: Its query string (without ``?``).
        names: The channels served.
        query_param: The query parameter that names the channel, or ``None``.
    """
    if query_param is not None and query:
        for name, value in parse_qsl(query):
            if name == query_param:
                return (value if value in names else None), path
    base, _, segment = path.rstrip("/").rpartition("/")
    if segment not in names:
        return None, path
    return segment, base or "/"


#: The answer to a request that names no channel a router serves.
NO_CHANNEL = Refusal(status=404, text="no such event stream\n")


def channel_of(
    request: IncomingRequest, streams: Mapping[str, _Stream], query_param: str | None
) -> tuple[_Stream, IncomingRequest] | Refusal:
    """The stream of the channel ``request`` names (:func:`pick_channel`) and the request as
    that stream sees it (the channel's segment taken off its path), or :data:`NO_CHANNEL`."""
    target = urlsplit(request.target)
    name, path = pick_channel(target.path, target.query, streams, query_param)
    if name is None:
        return NO_CHANNEL
    if path != target.path:
        rest = f"{path}?{target.query}" if target.query else path
        request = attrs.evolve(request, target=rest)
    return streams[name], request


def log_refusal(
    source: object, refusal: Refusal, peer: str | None, path: str | None = None
) -> None:
    """Log a refused request at ``WARNING`` (its status and the reason sent), as the adapter
    of ``source``."""
    reason = refusal.text.strip()
    server_log(
        logging.WARNING, f"request refused with {refusal.status}: {reason}",
        adapter=adapter_name(source), event="refused", status=refusal.status, reason=reason,
        peer=peer, path=path,
    )


def default_replay_log() -> ReplayLog:
    """A replay log whose ids carry an epoch unique to this server start.

    After a restart, an id from before then reads as unknown -- an explicit gap -- instead of
    matching an unrelated new event.
    """
    return ReplayLog(ReplayConfig(epoch=secrets.token_hex(4)))


class LogFeed(Protocol):
    """A shared log's live tail feeding a server, such as
    :class:`~sse_core.adapters.redis.RedisFeed`: what the server asks of it."""

    @property
    def mirror(self) -> StreamMirror:
        """The worker's copy of the newest events: the broadcaster's replay log."""

    def attach(self, on_step: Callable[[TailStep], None]) -> None:
        """Have ``on_step`` called with each step of the tail."""

    def start(self) -> None:
        """Start the tail in the running loop, unless it runs already."""

    async def ready(self, last_event_id: str | None) -> bool:
        """Wait (bounded) until the mirror is loaded and has caught up with the id; whether
        a client resuming from it can be served now (else answer 503)."""

    async def aclose(self) -> None:
        """Stop the tail."""


class _Served(Protocol):
    """A server adapter's connection, as :meth:`ServerBase._end_streams` sees it."""

    @property
    def subscriber(self) -> Subscriber | Poller | None: ...

    def wake(self) -> None: ...

    def let_go(self) -> None: ...


class _Flag(Protocol):
    """An event of asyncio, trio or anyio: set once, awaited."""

    def set(self) -> object: ...

    def wait(self) -> Awaitable[object]: ...


class ServerBase(AdapterBase):
    """The part of every adapter's server that is not I/O.

    It checks the options, builds the :class:`~sse_core.Broadcaster` (with
    :func:`default_replay_log` unless a log is given), and decides which requests are
    refused: the shared 404/405/503 rules, then 429 for a client whose
    ``connection_key`` has ``max_subscribers_per_key`` streams open already. It also tells
    long polls from streams (``long_poll_path``): a poll is held by the same broadcaster,
    from the same log, and reads to the server like a stream that is one answer long.

    With a ``feed``, the events come from a shared
    log's live tail instead of :meth:`publish`: each step of the tail is published to the
    broadcaster (its replay log is the feed's mirror), a gap ends every stream, and a client
    waits for the tail before it is subscribed when its id is newer than the mirror.
    """

    def __init__(
        self,
        replay_log: ReplayLog | None = None,
        *,
        config: ServerConfig | None = None,
        options: ServerOptions | None = None,
        clock: Callable[[], float] | None = None,
        feed: LogFeed | None = None,
    ) -> None:
        """Every adapter's server takes these arguments.

        Args:
            replay_log: The log to publish to and resume from. By default a new one whose
                ids carry a random epoch, unique to this server start (an id from before a
                restart then reads as unknown: an explicit gap). When you pass your own and
                the server can restart without it, give it an epoch of its own too
                (:class:`~sse_core.state.ReplayConfig`).
            config: Every client session's configuration (heartbeats, ``retry:``, padding,
                gzip, extra headers).
            options: Path, limits and timeouts (:class:`~sse_core.adapters.ServerOptions`;
                the defaults when ``None``).
            clock: Monotonic clock in seconds; by default the framework's
                (:func:`time.monotonic`, :func:`trio.current_time` for trio). It must tick
                like the event loop's clock: the delays until heartbeats come from it.
            feed: A shared log's live tail to serve instead of a replay log of this process
                (:class:`~sse_core.adapters.redis.RedisFeed` for the asyncio server and the
                ASGI application, :class:`~sse_core.adapters.redis.SyncRedisFeed` for the
                blocking server, :class:`~sse_core.adapters.redis.TrioRedisFeed` for the
                trio server): events are published to the shared log, by any process,
                and reach this server's clients through the tail; :meth:`publish` then
                refuses (the blocking server's appends to the shared log).

        Raises:
            InvalidConfigError: a bad argument.
        """
        options = options_or_default(options, ServerOptions)
        if config is None:
            config = ServerConfig()
        if not isinstance(config, ServerConfig):
            raise InvalidConfigError(f"config must be a ServerConfig, got {config!r}")
        if clock is not None and not callable(clock):
            raise InvalidConfigError(f"clock must be callable, got {clock!r}")
        if feed is not None:
            if replay_log is not None:
                raise InvalidConfigError("give a replay_log or a feed, not both")
            replay_log = feed.mirror
            feed.attach(self._on_tail)
        elif replay_log is None:
            replay_log = default_replay_log()
        self._feed = feed
        long_poll = options.long_poll
        if options.is_negotiated:
            # RFC 9110 section 12.5.5: both answers depend on Accept; a cache must say so.
            config = attrs.evolve(config, headers=(*config.headers, VARY_ACCEPT))
            long_poll = attrs.evolve(long_poll, headers=(*long_poll.headers, VARY_ACCEPT))
        self._broadcaster = Broadcaster(
            replay_log,
            config=config,
            max_queued_bytes=options.max_queued_bytes,
            max_subscribers=options.max_subscribers,
            max_subscribers_per_key=options.max_subscribers_per_key,
            max_replays=options.max_replays,
            max_replay_time=options.max_replay_time,
            long_poll=long_poll,
            max_held_polls=options.max_held_polls,
        )
        self._options = options
        self._config = config
        self._clock = clock if clock is not None else self._default_clock
        self._is_closing = False
        # Who waits for a number of subscribers: a key of its own -> (count, wake). The sync
        # server subscribes in its thread while the application's thread waits: hence the lock.
        self._waiters: dict[object, tuple[int, Callable[[], object]]] = {}
        self._waiters_lock = threading.Lock()
        self._dropped_seen = 0  # broadcaster.dropped when _has_new_drops() last looked
        self._setup()

    def _append(self, event: Event) -> StoredEvent:
        """Publish ``event`` on the broadcaster, now; stamped with the wall clock's send
        time when ``ServerConfig.is_send_time_stamped`` (for the clients' latency).

        Raises:
            LocalProtocolError: the server serves a feed (publish to the shared log).
        """
        if self._feed is not None:
            raise LocalProtocolError(
                "this server serves a shared log: publish to it (await feed.publish(event))"
            )
        return self._publish_now(event)

    def _publish_now(self, event: Event) -> StoredEvent:
        fanout, _ = self._fan_out_now((event,), ())
        return fanout.stored[0]

    def _fan_out_now(
        self, events: Sequence[Event], ready: Container[Subscriber | Poller]
    ) -> tuple[Fanout, float]:
        """Publish ``events`` on the broadcaster, now (stamped with the wall clock's send
        time when ``ServerConfig.is_send_time_stamped``, for the clients' latency), naming
        the streams whose socket takes bytes (:meth:`~sse_core.Broadcaster.fan_out`; none:
        every stream's bytes are queued); the fan-out, and the ``now`` it was given."""
        now = self._clock()
        wall_now = time.time() if self._config.is_send_time_stamped else None
        return self._broadcaster.fan_out(events, now, ready, wall_now=wall_now), now

    def _has_new_drops(self) -> bool:
        """Whether the broadcaster dropped streams (they fell behind ``max_queued_bytes``)
        since this was last asked: the adapter then lets go of them."""
        dropped = self._broadcaster.dropped
        if dropped == self._dropped_seen:
            return False
        self._dropped_seen = dropped
        return True

    def _on_tail(self, step: TailStep) -> None:
        """Carry out a step of the feed's tail: end every stream on a gap (each client
        resumes against the restarted mirror and gets the gap signal), publish the events,
        wake every connection."""
        if step.gap is not None:
            server_log(
                logging.WARNING, f"the shared log lost events ({step.gap}): streams end",
                adapter=adapter_name(self), event="gap", reason=step.gap,
            )
            self._broadcaster.close(self._clock())
            self._wake_all()
        if step.events:
            self._publish_events([stored.event for stored in step.events])

    def _publish_events(self, events: Sequence[Event]) -> None:
        """Publish events on the broadcaster, now, and have every connection write them."""
        for event in events:
            self._publish_now(event)
        self._wake_all()

    def _wake_all(self) -> None:
        """Have every connection write what its subscriber has queued (each adapter)."""

    def _requested_id(
        self, target: str, headers: Sequence[tuple[str | bytes, str | bytes]]
    ) -> str | None:
        """The id a request resumes from, read as its session will: ``Last-Event-ID``, else
        the configured query parameter (the stream's, or the long poll's)."""
        last_event_id = header_value(headers, "last-event-id")
        if last_event_id is not None:
            return last_event_id
        if self._is_poll(target, headers):
            param: str | None = self._options.long_poll.last_event_id_param
        else:
            param = self._config.last_event_id_param
        if param is None:
            return None
        return dict(parse_qsl(urlsplit(target).query, keep_blank_values=True)).get(param)

    def _is_feed_waited(
        self, target: str, headers: Sequence[tuple[str | bytes, str | bytes]]
    ) -> bool:
        """Whether a new stream or poll must wait for the feed's tail before it is served:
        the mirror is not loaded, or the id the client resumes from is newer than it."""
        feed = self._feed
        if feed is None:
            return False
        mirror = feed.mirror
        if not mirror.is_loaded:
            return True
        last_event_id = self._requested_id(target, headers)
        return last_event_id is not None and mirror.is_behind(last_event_id)

    async def _feed_ready(
        self, target: str, headers: Sequence[tuple[str | bytes, str | bytes]]
    ) -> bool:
        """Wait (bounded) for the feed's tail as :meth:`_is_feed_waited` asks; whether the
        request can be served then (else answer 503: the client comes back)."""
        feed = self._feed
        assert feed is not None
        return await feed.ready(self._requested_id(target, headers))

    @property
    def broadcaster(self) -> Broadcaster:
        """The fan-out (subscriber count, ``dropped``, the replay log)."""
        return self._broadcaster

    def _is_poll(self, target: str, headers: Sequence[tuple[str | bytes, str | bytes]]) -> bool:
        """Whether a request is a long poll (:func:`is_poll`)."""
        return is_poll(self._options, target, header_value(headers, "accept"))

    def _subscribe(
        self,
        target: str,
        headers: Sequence[tuple[str | bytes, str | bytes]],
        now: float,
        key: str | None,
    ) -> Subscriber | Poller:
        """Add a client to the broadcaster (a stream, or a long poll it holds), then wake
        whoever waits for that many streams."""
        if self._is_poll(target, headers):
            return self._broadcaster.hold(target, headers, now)
        subscriber = self._broadcaster.subscribe(target, headers, now, key=key)
        count = len(self._broadcaster)
        last_event_id = subscriber.session.last_event_id
        server_log(
            logging.DEBUG, f"client subscribed to {target} ({count} open)",
            adapter=adapter_name(self), event="subscribed", path=target,
            last_event_id=last_event_id,
        )
        with self._waiters_lock:
            woken = [token for token, (wanted, _) in self._waiters.items() if count >= wanted]
            wakes = [self._waiters.pop(token)[1] for token in woken]
        for wake in wakes:
            wake()
        return subscriber

    def _unsubscribe(self, subscriber: Subscriber | Poller) -> None:
        """Take a client whose connection ended off the broadcaster; one the hub dropped
        (it fell ``max_queued_bytes`` behind, or its replay outlasted ``max_replay_time``) is
        logged at ``WARNING``."""
        self._broadcaster.unsubscribe(subscriber)
        reason = subscriber.dropped_reason
        if reason is not None:
            server_log(
                logging.WARNING, f"client let go: {reason}", adapter=adapter_name(self),
                event="let_go", reason=reason, last_event_id=subscriber.session.last_event_id,
            )
        else:
            server_log(logging.DEBUG, "client left", adapter=adapter_name(self), event="left",
                       last_event_id=subscriber.session.last_event_id)

    def _note_send_timeout(self, subscriber: Subscriber | Poller | None) -> None:
        """Count (``ServerMetrics.send_timeouts``) and log at ``WARNING`` a client the kernel
        let go of because it took no bytes for ``send_timeout`` (its connection timed out:
        :func:`~sse_core.adapters._sockets.is_send_timeout`)."""
        self._broadcaster.count_send_timeout(subscriber, self._clock())
        timeout = self._options.send_timeout
        took = "" if timeout is None else f" for {timeout:g} s (send_timeout)"
        server_log(
            logging.WARNING, f"a client took no bytes{took}: let go",
            adapter=adapter_name(self), event="send_timeout", timeout=timeout,
            last_event_id=subscriber.session.last_event_id if subscriber is not None else None,
        )

    def _log_refusal(self, refusal: Refusal, peer: str | None, path: str | None = None) -> None:
        """Log a refused request at ``WARNING`` (its status and the reason sent)."""
        log_refusal(self, refusal, peer, path)

    def _wait_for(self, token: object, count: int, wake: Callable[[], object]) -> bool:
        """Have ``wake`` called (once, from where clients subscribe) when at least ``count``
        clients are subscribed; ``False`` when that is so already (nothing is registered).

        Raises:
            InvalidConfigError: ``count`` is not an int >= 1.
        """
        positive_int.check("count", count)
        with self._waiters_lock:
            if len(self._broadcaster) >= count:
                return False
            self._waiters[token] = (count, wake)
        return True

    def _stop_waiting(self, token: object) -> None:
        """Forget a waiter (woken or not: a wait that timed out or was cancelled)."""
        with self._waiters_lock:
            self._waiters.pop(token, None)

    async def _await_count(self, count: int, reached: _Flag) -> bool:
        """The async servers' ``wait_for_subscribers``: wait on ``reached`` (a new event of
        the framework) until ``count`` clients are subscribed; ``False`` when they were
        already (nothing was awaited: a trio-style caller then checkpoints).

        Raises:
            InvalidConfigError: ``count`` is not an int >= 1.
        """
        if not self._wait_for(reached, count, reached.set):
            return False
        try:
            await reached.wait()
        finally:
            self._stop_waiting(reached)
        return True

    @property
    def options(self) -> ServerOptions:
        """The options this server was made with."""
        return self._options

    def _end_streams(self, connections: Iterable[_Served]) -> None:
        """Take no more clients and end every stream: the broadcaster queues each stream's
        end, which its connection is woken to send; a connection with no stream yet is let
        go."""
        self._is_closing = True
        self._broadcaster.close(self._clock())
        for connection in list(connections):
            if connection.subscriber is None:
                connection.let_go()
            else:
                connection.wake()

    def _admit(
        self, request: IncomingRequest, address: str | None
    ) -> tuple[Refusal | None, str | None]:
        """How to refuse ``request`` (or ``None`` to serve it), and its connection key."""
        broadcaster = self._broadcaster
        if self._is_poll(request.target, request.headers):
            refusal = refusal_for(
                request,
                path=self._options.long_poll_path,
                is_available=not (broadcaster.is_poll_full or self._is_closing),
                retry_after=self._options.retry_after,
            )
            return refusal, None
        is_available = not (broadcaster.is_full or self._is_closing)
        refusal = refusal_for(
            request,
            path=self._options.path,
            is_available=is_available,
            retry_after=self._options.retry_after,
        )
        key = None
        if refusal is None:
            refusal, key = self._key_of(request, address)
        if refusal is not None:
            self._log_refusal(refusal, address, request.target)
        return refusal, key

    def _unavailable(self) -> Refusal:
        """The 503 answer (with ``Retry-After``): full, closing, or the feed not loaded."""
        return Refusal(
            status=503,
            text="event stream unavailable, try again later\n",
            headers=(("Retry-After", str(self._options.retry_after)),),
        )

    def _key_of(
        self, request: IncomingRequest, address: str | None
    ) -> tuple[Refusal | None, str | None]:
        """The request's connection key, and 429 when that key has its streams open."""
        key = self._options.connection_key(request, address)
        if self._broadcaster.is_full_for(key):
            return TOO_MANY, key
        return None, key


#: The answer to a client whose key has ``max_subscribers_per_key`` streams open.
TOO_MANY = Refusal(
    status=429,
    text="too many event streams from this client\n",
    headers=(("Retry-After", "60"),),
)


def channel_timeouts(servers: Iterable[ServerBase]) -> tuple[float, float | None]:
    """The ``request_timeout`` and ``send_timeout`` that every server of a router has: they
    apply before a request names its channel.

    Raises:
        InvalidConfigError: the servers' timeouts differ.
    """
    timeouts = {
        (server.options.request_timeout, server.options.send_timeout) for server in servers
    }
    if len(timeouts) != 1:
        raise InvalidConfigError(
            "the servers of a router must have the same request_timeout and send_timeout,"
            f" got {sorted(timeouts, key=repr)}"
        )
    (shared,) = timeouts
    return shared
