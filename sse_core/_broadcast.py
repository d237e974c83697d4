"""Fan-out: one event stream to many server sessions, each with a bounded send queue (floor 3).

A :class:`Broadcaster` owns a :class:`~sse_core.ReplayLog` and the :class:`Subscriber` of every
connected client. :meth:`Broadcaster.publish` appends an event to the log once (which encodes
it once) and queues the same bytes for every subscriber. An adapter drains a subscriber's queue
with :meth:`Subscriber.take` whenever its socket can take more. A client that cannot keep up
is not allowed to grow memory or slow the others: when its queue would pass
``max_queued_bytes`` its queued bytes are discarded and it is disconnected. It comes back
with ``Last-Event-ID`` and the log replays what it missed (or says it cannot).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from ._actions import Action, Disconnect, Send
from ._errors import InvalidConfigError, LocalProtocolError
from ._events import Event
from ._replay import ReplayLog, StoredEvent
from ._server import ServerConfig, ServerSession, ServerState

__all__ = ["Broadcaster", "Subscriber"]

#: Default bound of one subscriber's queue: 1 MiB.
DEFAULT_MAX_QUEUED_BYTES = 1 << 20


class Subscriber:
    """One client of a :class:`Broadcaster`: its server session and what waits to be sent.

    Adapters do not build these; :meth:`Broadcaster.subscribe` does.
    """

    __slots__ = (
        "_actions",
        "_dropped_reason",
        "_hub",
        "_initial",
        "_max_queued_bytes",
        "_queued_bytes",
        "session",
    )

    def __init__(
        self, session: ServerSession, max_queued_bytes: int, hub: Broadcaster | None = None
    ) -> None:
        self.session = session
        self._max_queued_bytes = max_queued_bytes
        self._hub = hub
        self._actions: list[Action] = []
        self._initial = 0  # actions at the front queued by subscribe() and not taken yet
        self._queued_bytes = 0
        self._dropped_reason: str | None = None

    @property
    def queued_bytes(self) -> int:
        """Body bytes waiting in the queue, not counting the head and replay queued by
        :meth:`Broadcaster.subscribe` (the bound applies to what comes afterwards)."""
        return self._queued_bytes

    @property
    def has_pending(self) -> bool:
        """Whether :meth:`take` would return anything."""
        return bool(self._actions)

    @property
    def is_dropped(self) -> bool:
        """Whether the subscriber was disconnected for falling behind."""
        return self._dropped_reason is not None

    @property
    def is_closed(self) -> bool:
        """Whether the stream ended (dropped or closed); a :class:`~sse_core.Disconnect` is
        then queued or was taken."""
        return self.session.state is ServerState.CLOSED

    def take(self) -> list[Action]:
        """Everything queued, in order (:class:`~sse_core.SendHead`, :class:`~sse_core.Send`,
        :class:`~sse_core.Disconnect`); the queue is empty afterwards."""
        actions, self._actions = self._actions, []
        self._queued_bytes = 0
        self._initial = 0
        return actions

    def poll(self, now: float) -> bool:
        """Queue a heartbeat if one is due (call at :meth:`next_deadline`).

        Returns:
            Whether anything was queued.
        """
        return self._queue(self.session.on_timer(now), now)

    def next_deadline(self) -> float | None:
        """When :meth:`poll` should be called next, or ``None``."""
        return self.session.next_deadline()

    def _queue(self, actions: Sequence[Action], now: float) -> bool:
        if not actions or self._dropped_reason is not None:
            return False
        size = sum(len(action.data) for action in actions if isinstance(action, Send))
        if self._queued_bytes + size > self._max_queued_bytes:
            self._drop(now, size)
            return True
        self._actions.extend(actions)
        self._queued_bytes += size
        return True

    def _drop(self, now: float, size: int) -> None:
        reason = (
            f"send queue full: {self._queued_bytes + size} bytes would pass"
            f" max_queued_bytes={self._max_queued_bytes}"
        )
        self._dropped_reason = reason
        # What subscribe() queued and was not taken yet (the head, and the replay or the
        # log's position) is kept: a new client must learn the id to resume from, or it
        # would come back without one and silently miss what was published meanwhile.
        # Everything published afterwards is given up (the client resumes by Last-Event-ID);
        # a half-sent gzip stream cannot be ended cleanly anyway.
        del self._actions[self._initial :]
        self._actions.append(Disconnect(reason=reason))
        self._queued_bytes = 0
        self.session.close(now)
        if self._hub is not None:
            self._hub._dropped += 1


class Broadcaster:
    """One event stream served to many clients, each event encoded once.

    Args:
        replay_log: Where published events are kept for resumption.
        config: The configuration of every subscriber's :class:`~sse_core.ServerSession`.
        max_queued_bytes: The most body bytes one subscriber may have waiting; past it the
            subscriber is dropped (see the module's documentation).
        max_subscribers: The most subscribers at once, or ``None`` for no limit.

    Raises:
        InvalidConfigError: a bad argument.
    """

    def __init__(
        self,
        replay_log: ReplayLog,
        *,
        config: ServerConfig | None = None,
        max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
        max_subscribers: int | None = None,
    ) -> None:
        if not isinstance(replay_log, ReplayLog):
            raise InvalidConfigError(f"replay_log must be a ReplayLog, got {replay_log!r}")
        if type(max_queued_bytes) is not int or max_queued_bytes < 1:
            raise InvalidConfigError(
                f"max_queued_bytes must be an int >= 1, got {max_queued_bytes!r}"
            )
        if max_subscribers is not None and (
            type(max_subscribers) is not int or max_subscribers < 1
        ):
            raise InvalidConfigError(
                f"max_subscribers must be None or an int >= 1, got {max_subscribers!r}"
            )
        self._log = replay_log
        self._config = config if config is not None else ServerConfig()
        self._max_queued_bytes = max_queued_bytes
        self._max_subscribers = max_subscribers
        self._subscribers: dict[int, Subscriber] = {}  # by id(), in subscription order
        self._dropped = 0

    @property
    def replay_log(self) -> ReplayLog:
        """The replay log events are published to."""
        return self._log

    @property
    def dropped(self) -> int:
        """How many subscribers were dropped for falling behind, in all (by a publish or
        by a heartbeat)."""
        return self._dropped

    def __len__(self) -> int:
        """The number of subscribers."""
        return len(self._subscribers)

    def __iter__(self) -> Iterator[Subscriber]:
        """The subscribers, oldest first."""
        return iter(list(self._subscribers.values()))

    @property
    def is_full(self) -> bool:
        """Whether ``max_subscribers`` is reached (answer new clients 503)."""
        return self._max_subscribers is not None and len(self) >= self._max_subscribers

    def subscribe(
        self, target: str, headers: Sequence[tuple[str | bytes, str | bytes]], now: float
    ) -> Subscriber:
        """Answer a client's request and add it: its queue holds the head and the replay.

        Args:
            target: The request target (path and query).
            headers: The request header fields (``Last-Event-ID``, ``Accept-Encoding`` ...).
            now: The current monotonic time.

        Raises:
            LocalProtocolError: :attr:`is_full`.
        """
        if self.is_full:
            raise LocalProtocolError(f"max_subscribers={self._max_subscribers} reached")
        session = ServerSession(self._config, self._log)
        subscriber = Subscriber(session, self._max_queued_bytes, self)
        # The head and the replay may exceed the queue bound (a long replay): accept them
        # whole, the bound applies to what is published afterwards.
        subscriber._actions.extend(session.on_request(target, headers, now))
        subscriber._initial = len(subscriber._actions)
        self._subscribers[id(subscriber)] = subscriber
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Forget a subscriber (its connection is gone). Unknown subscribers are ignored."""
        self._subscribers.pop(id(subscriber), None)

    def publish(self, event: Event, now: float) -> StoredEvent:
        """Append ``event`` to the log and queue its bytes for every subscriber.

        Subscribers that fall behind are dropped (their queue then holds a
        :class:`~sse_core.Disconnect`); the adapter should wake every subscriber.

        Returns:
            The stored event (its id as assigned by the log).
        """
        stored = self._log.append(event, now)
        for subscriber in list(self._subscribers.values()):
            if subscriber.is_closed:  # dropped, or ended by close() and not yet unsubscribed
                continue
            subscriber._queue(subscriber.session.send(stored, now), now)
        return stored

    def close(self, now: float) -> None:
        """End every subscriber's stream (each queue ends with a
        :class:`~sse_core.Disconnect`); the adapter carries them out."""
        for subscriber in self._subscribers.values():
            if not subscriber.is_dropped:
                subscriber._actions.extend(subscriber.session.close(now))
