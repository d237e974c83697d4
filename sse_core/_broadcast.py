"""Fan-out: one event stream to many server sessions, each with a bounded send queue (floor 3).

A :class:`Broadcaster` owns a :class:`~sse_core.state.ReplayLog` and the :class:`Subscriber`
of every connected client. :meth:`Broadcaster.publish` appends an event to the log once (which
encodes it once) and queues a reference to the same bytes for every subscriber; the per-client work
(gzip, framing) happens only when the adapter drains the subscriber with
:meth:`Subscriber.take`, that is when its socket can take more. A publish therefore costs a few
list appends per client, whatever the clients do. :meth:`Broadcaster.fan_out` goes one step
further for an adapter that writes to its sockets itself: the subscribers it names as ready
that keep up get nothing queued, and the adapter writes the same framed bytes to each.

A client that cannot keep up is not allowed to grow memory or slow the others: when its queue
would pass ``max_queued_bytes`` its queued bytes are discarded and it is disconnected. It
comes back with ``Last-Event-ID`` and the log replays what it missed (or says it cannot).

Replays are produced lazily too: a subscriber that resumes reads the shared log one step at a
time, as its socket takes the bytes, so a client that does not read pins nothing. A
server-wide budget bounds how many replays longer than one step run at once
(``max_replays``) and how long each may take (``max_replay_time``); past the budget a client
is asked to come back later (``retry:`` and the end of the stream, its id unchanged).

Long polls are served from the same log, so a client moves between the transports without
loss or duplicates: :meth:`Broadcaster.hold` takes a poll as a :class:`Poller` (a
:class:`~sse_core.LongPollSession` with the answer it is to send), which
:meth:`Broadcaster.publish` answers when the event is appended. Every poll held at the same
place gets the same bytes, encoded (and compressed) once per publish
(:class:`~sse_core.state.AnswerCache`). At most ``max_held_polls`` polls are open at once.
A poll counts in :attr:`Broadcaster.metrics` as a stream does: its answer's bytes, and how
it resumed (from the log after its id, or a gap).
"""

from __future__ import annotations

from collections.abc import Container, Iterator, Sequence

import attrs

from ._actions import Action, Disconnect, Send
from ._config import LongPollConfig
from ._errors import LocalProtocolError
from ._events import Event
from ._longpoll import AnswerCache, LongPollSession, LongPollState
from ._metrics import ServerMetrics
from ._replay import ReplayLog, StoredEvent
from ._serializer import HEARTBEAT, serialize_stamp
from ._server import ServerConfig, ServerSession, ServerState
from ._validators import (
    MonotonicNow,
    instance_of,
    non_negative_int,
    positive_int,
    positive_number,
)

__all__ = ["Broadcaster", "Fanout", "Poller", "Subscriber"]

#: Default bound of one subscriber's queue: 1 MiB.
DEFAULT_MAX_QUEUED_BYTES = 1 << 20
#: Default number of long replays (more than one step) under way at once.
DEFAULT_MAX_REPLAYS = 32
#: Default seconds a long replay may take before its client is let go (it resumes later).
DEFAULT_MAX_REPLAY_TIME = 30.0
#: Default number of long polls open at once.
DEFAULT_MAX_HELD_POLLS = 10_000

# A queued item is stream bytes not compressed yet (published events, heartbeats: compressed
# in order when taken), or an action ready to carry out (the head and first bytes queued by
# subscribe, a Disconnect), or _CLOSE (end the stream when taken).
_CLOSE = object()
_Item = bytes | Action | object
#: No subscriber is ready (publish(): every subscriber's bytes are queued).
_NOBODY: frozenset[Subscriber | Poller] = frozenset()


@attrs.frozen
class Fanout:
    """What :meth:`Broadcaster.fan_out` did with the events it published."""

    #: The stored events (their ids as assigned by the log), in order.
    stored: Sequence[StoredEvent]
    #: The stream bytes of the events as every live subscriber gets them (send-time stamps
    #: included), one bytes object: an adapter frames it once for all of :attr:`sent`.
    data: bytes
    #: The ready subscribers the bytes were counted as sent to: write :attr:`data` to each,
    #: now and in this order (the order they subscribed in).
    sent: Sequence[Subscriber]
    #: The ready subscribers and polls that have something to take (queued bytes, a replay
    #: step, a :class:`~sse_core.Disconnect`, a poll's answer): drain them as after
    #: :meth:`Broadcaster.publish`.
    queued: Sequence[Subscriber | Poller]


class Subscriber(MonotonicNow):
    """One client of a :class:`Broadcaster`: its server session and what waits to be sent.

    Adapters do not build these; :meth:`Broadcaster.subscribe` does. Like every object that
    takes ``now``, it refuses a ``now`` earlier than one it was given (see
    :doc:`/state/clock`).
    """

    __slots__ = (
        "_dropped_reason",
        "_hub",
        "_initial",
        "_is_closing",
        "_items",
        "_key",
        "_max_queued_bytes",
        "_queued_bytes",
        "_replay_deadline",
        "_sent_at",
        "session",
    )

    def __init__(
        self,
        session: ServerSession,
        max_queued_bytes: int,
        hub: Broadcaster | None = None,
        key: str | None = None,
    ) -> None:
        MonotonicNow.__init__(self)
        self.session = session
        self._max_queued_bytes = max_queued_bytes
        self._hub = hub
        self._key = key
        self._items: list[_Item] = []
        self._initial = 0  # items at the front queued by subscribe() and not taken yet
        self._queued_bytes = 0
        self._dropped_reason: str | None = None
        self._is_closing = False
        self._replay_deadline: float | None = None  # set while holding a replay slot
        # When stream bytes were last queued, not told to the session yet: its heartbeat
        # learns it when asked about (poll, next_deadline, take), not once per publish.
        self._sent_at: float | None = None

    @property
    def queued_bytes(self) -> int:
        """Stream bytes waiting in the queue (before compression), not counting the head and
        first bytes queued by :meth:`Broadcaster.subscribe` (the bound applies to what comes
        afterwards)."""
        return self._queued_bytes

    @property
    def has_pending(self) -> bool:
        """Whether :meth:`take` would return anything (queued bytes, or the next step of a
        replay): drain while it is true and the socket takes more."""
        return bool(self._items) or self.session.is_replaying

    @property
    def is_replaying(self) -> bool:
        """Whether the client is still being sent what it missed (live events wait in the
        log meanwhile: the replay reaches them)."""
        return self.session.is_replaying

    @property
    def is_replay_step_next(self) -> bool:
        """Whether the next :meth:`take` reads a replay step from the log (nothing else is
        queued): an adapter may hold it back until the client has read the previous one."""
        return not self._items and self.session.is_replaying

    @property
    def replay_deadline(self) -> float | None:
        """When a long replay under way must be finished (``max_replay_time`` after it
        began), or ``None``. An adapter blocked writing to this client stops waiting then,
        calls :meth:`poll` (which drops it) and closes the connection."""
        return self._replay_deadline if self.session.is_replaying else None

    @property
    def dropped_reason(self) -> str | None:
        """Why the subscriber was disconnected by the hub (see :attr:`is_dropped`), or
        ``None``."""
        return self._dropped_reason

    @property
    def is_dropped(self) -> bool:
        """Whether the subscriber was disconnected for falling behind (or for a replay that
        did not finish in time)."""
        return self._dropped_reason is not None

    @property
    def is_closed(self) -> bool:
        """Whether the stream ended or is ending (dropped or closed); a
        :class:`~sse_core.Disconnect` is then queued or was taken."""
        return self._is_closing or self.session.state is ServerState.CLOSED

    def take(self, now: float | None = None) -> list[Action]:
        """Everything queued, in order (:class:`~sse_core.SendHead`, :class:`~sse_core.Send`,
        :class:`~sse_core.Disconnect`), or else the next step of the replay; the queue is
        empty afterwards.

        Args:
            now: The current monotonic time; by default the latest time the subscriber saw.

        Raises:
            ClockError: ``now`` is not finite or is earlier than a previous ``now``.
        """
        if now is not None:
            self._take_now(now)
        self._settle()
        session = self.session
        at = session._latest_now if now is None else now
        items, self._items = self._items, []
        self._queued_bytes = 0
        self._initial = 0
        if not items:
            step = session.continue_replay(at)
            if not session.is_replaying:
                self._release_replay()
            return step
        actions: list[Action] = []
        pending: list[bytes] = []
        for item in items:
            if isinstance(item, bytes):
                pending.append(item)
                continue
            if pending:
                actions.append(Send(data=session._encode(b"".join(pending))))
                pending = []
            if item is _CLOSE:
                actions += session.close(at)
            else:
                actions.append(item)  # type: ignore[arg-type]
        if pending:
            actions.append(Send(data=session._encode(b"".join(pending))))
        return actions

    def take_bytes(self, now: float) -> list[bytes] | None:
        """The stream bytes queued since the last take, as the body needs them, when the
        queue holds nothing else; else ``None`` (call :meth:`take`).

        This is :meth:`take` without the actions, for the fan-out's hot path. Uncompressed,
        the pieces are the very bytes objects that :meth:`Broadcaster.publish` queued for
        every subscriber (and heartbeats), in order: an adapter that frames a piece once
        (the HTTP/1.1 chunk) can hand the same frame to every client. Compressed (gzip),
        they are this client's compressor's output, one piece. The session's
        :attr:`~sse_core.ServerSession.bytes_sent` counts them as :meth:`take` does.

        Args:
            now: The current monotonic time (the hot path always has one at hand).

        Raises:
            ClockError: ``now`` is not finite or is earlier than a previous ``now``.
        """
        self._take_now(now)
        items = self._items
        # Only published events and heartbeats are queued once the head and first bytes are
        # taken, until a drop (Disconnect) or a close (_CLOSE) is queued.
        if not items or self._initial or self._is_closing or self._dropped_reason is not None:
            return None
        self._items = []
        session = self.session
        if session._compressor is None:
            session._bytes_sent += self._queued_bytes
            self._queued_bytes = 0
            return items  # type: ignore[return-value]
        self._queued_bytes = 0
        return [session._encode(b"".join(items))]  # type: ignore[arg-type]

    def poll(self, now: float) -> bool:
        """Queue a heartbeat if one is due, and let go of a replay past its time (call at
        :meth:`next_deadline`).

        Returns:
            Whether anything was queued.

        Raises:
            ClockError: ``now`` is not finite or is earlier than a previous ``now``.
        """
        self._take_now(now)
        self._settle()
        if self.is_closed:
            return False
        deadline = self._replay_deadline
        if deadline is not None and now >= deadline and self.session.is_replaying:
            hub = self._hub
            limit = hub._max_replay_time if hub is not None else 0.0
            self._drop(now, f"replay not taken within max_replay_time={limit:g} s")
            return True
        if not self.session.is_heartbeat_due(now):
            return False
        if self.session.is_replaying or self._queued_bytes:
            # Bytes are on their way (or the client is not reading): nothing to add.
            self.session._mark_sent(now)
            return False
        return self._push(HEARTBEAT, now)

    def next_deadline(self) -> float | None:
        """When :meth:`poll` should be called next, or ``None``."""
        if self._is_closing:
            return None
        self._settle()
        deadline = self.session.next_deadline()
        if self._replay_deadline is not None and self.session.is_replaying:
            if deadline is None or self._replay_deadline < deadline:
                deadline = self._replay_deadline
        return deadline

    def _push(self, data: bytes, now: float) -> bool:
        """Queue stream bytes (compressed when taken), or drop the subscriber past its bound."""
        size = len(data)
        if self._queued_bytes + size > self._max_queued_bytes:
            self._drop(
                now,
                f"send queue full: {self._queued_bytes + size} bytes would pass"
                f" max_queued_bytes={self._max_queued_bytes}",
            )
            return True
        self._items.append(data)
        self._queued_bytes += size
        self._sent_at = now
        return True

    def _settle(self) -> None:
        """Tell the session when stream bytes were last queued (its heartbeat waits from
        then)."""
        at = self._sent_at
        if at is not None:
            self._sent_at = None
            self.session._mark_sent(at)

    def _close(self) -> None:
        if not self.is_closed:
            self._is_closing = True
            self._items.append(_CLOSE)
            self._release_replay()

    def _drop(self, now: float, reason: str) -> None:
        self._dropped_reason = reason
        # What subscribe() queued and was not taken yet (the head, and the replay's first
        # step or the log's position) is kept: a new client must learn the id to resume
        # from, or it would come back without one and silently miss what was published
        # meanwhile. Everything queued afterwards is given up (the client resumes by
        # Last-Event-ID); a half-sent gzip stream cannot be ended cleanly anyway.
        del self._items[self._initial :]
        self._items.append(Disconnect(reason=reason))
        self._queued_bytes = 0
        self.session.close(now, reason=reason)
        self._release_replay()
        if self._hub is not None:
            self._hub._dropped += 1

    def _release_replay(self) -> None:
        if self._replay_deadline is not None:
            self._replay_deadline = None
            if self._hub is not None:
                self._hub._replays -= 1


class Poller(MonotonicNow):
    """One long poll of a :class:`Broadcaster`: its session and the answer waiting to be sent.

    Adapters do not build these; :meth:`Broadcaster.hold` does. It reads like a
    :class:`Subscriber` whose stream is one complete answer, so an adapter serves both the
    same way: drain :meth:`take` while :attr:`has_pending`, call :meth:`poll` at
    :meth:`next_deadline`, close the connection after the :class:`~sse_core.Disconnect`.
    """

    __slots__ = ("_answer", "session")

    #: A poll is never dropped, never replays and queues no stream bytes.
    is_dropped = False
    is_replaying = False
    is_replay_step_next = False
    replay_deadline = None
    dropped_reason = None
    queued_bytes = 0

    def __init__(self, session: LongPollSession) -> None:
        MonotonicNow.__init__(self)
        self.session = session
        self._answer: list[Action] = []

    @property
    def is_holding(self) -> bool:
        """Whether the poll waits for events (no answer yet)."""
        return self.session.state is LongPollState.HOLDING

    @property
    def has_pending(self) -> bool:
        """Whether :meth:`take` would return the answer."""
        return bool(self._answer)

    @property
    def is_closed(self) -> bool:
        """Whether the poll was answered (the answer may still wait in :meth:`take`)."""
        return not self.is_holding

    def take(self, now: float | None = None) -> list[Action]:
        """The answer (:class:`~sse_core.SendHead`, :class:`~sse_core.Send`,
        :class:`~sse_core.Disconnect`) once it is decided, else ``[]``.

        Raises:
            ClockError: ``now`` is not finite or is earlier than a previous ``now``.
        """
        if now is not None:
            self._take_now(now)
        answer, self._answer = self._answer, []
        return answer

    def take_bytes(self, now: float) -> None:
        """Always ``None``: a poll's answer is actions, taken with :meth:`take` (it reads
        like :meth:`Subscriber.take_bytes`).

        Raises:
            ClockError: ``now`` is not finite or is earlier than a previous ``now``.
        """
        self._read_now(now)

    def poll(self, now: float) -> bool:
        """Answer a hold that has run out (call at :meth:`next_deadline`).

        Returns:
            Whether the answer is now waiting in :meth:`take`.

        Raises:
            ClockError: ``now`` is not finite or is earlier than a previous ``now``.
        """
        self._take_now(now)
        self._answer += self.session.on_timer(now)
        return bool(self._answer)

    def next_deadline(self) -> float | None:
        """When :meth:`poll` should be called, or ``None``."""
        return self.session.next_deadline()


class Broadcaster(MonotonicNow):
    """One event stream served to many clients, each event encoded once.

    Like every object that takes ``now``, it refuses a ``now`` earlier than one it was given
    (see :doc:`/state/clock`); read the clock under the lock that serializes the calls.

    Args:
        replay_log: Where published events are kept for resumption.
        config: The configuration of every subscriber's :class:`~sse_core.ServerSession`.
        max_queued_bytes: The most stream bytes one subscriber may have waiting; past it the
            subscriber is dropped (see the module's documentation).
        max_subscribers: The most subscribers at once, or ``None`` for no limit.
        max_subscribers_per_key: The most subscribers at once with the same ``key`` given
            to :meth:`subscribe` (a client address, an API key ...), or ``None``.
        max_replays: The most replays longer than one step (``replay_chunk_size``) under
            way at once. A client whose replay would pass it gets ``busy_retry`` and the end
            of the stream, and comes back with the same ``Last-Event-ID``.
        max_replay_time: Seconds a long replay may take; a client that has not taken it by
            then is dropped and resumes from where it got to.
        long_poll: The configuration of every poll's :class:`~sse_core.LongPollSession`
            (answers are gzip-compressed as ``config`` says for the streams).
        max_held_polls: The most polls open at once (see :attr:`is_poll_full`), or ``None``.

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
        max_subscribers_per_key: int | None = None,
        max_replays: int = DEFAULT_MAX_REPLAYS,
        max_replay_time: float = DEFAULT_MAX_REPLAY_TIME,
        long_poll: LongPollConfig | None = None,
        max_held_polls: int | None = DEFAULT_MAX_HELD_POLLS,
    ) -> None:
        MonotonicNow.__init__(self)
        instance_of(ReplayLog).check("replay_log", replay_log)
        positive_int.check("max_queued_bytes", max_queued_bytes)
        positive_int.or_none().check("max_subscribers", max_subscribers)
        positive_int.or_none().check("max_subscribers_per_key", max_subscribers_per_key)
        non_negative_int.check("max_replays", max_replays)
        positive_number.check("max_replay_time", max_replay_time)
        instance_of(LongPollConfig).or_none().check("long_poll", long_poll)
        positive_int.or_none().check("max_held_polls", max_held_polls)
        self._log = replay_log
        self._config = config if config is not None else ServerConfig()
        self._max_queued_bytes = max_queued_bytes
        self._max_subscribers = max_subscribers
        self._max_per_key = max_subscribers_per_key
        self._max_replays = max_replays
        self._max_replay_time = float(max_replay_time)
        self._subscribers: dict[int, Subscriber] = {}  # by id(), in subscription order
        self._per_key: dict[str, int] = {}
        self._replays = 0
        self._dropped = 0
        self._put_off = 0
        self._long_poll = long_poll if long_poll is not None else LongPollConfig()
        self._max_held_polls = max_held_polls
        self._pollers: dict[int, Poller] = {}  # by id()
        self._answers = AnswerCache()
        self._published = 0
        self._send_timeouts = 0
        # What departed subscribers' and polls' sessions counted: bytes, replays, too-old,
        # unknown ids.
        self._departed = [0, 0, 0, 0]

    @property
    def replay_log(self) -> ReplayLog:
        """The replay log events are published to."""
        return self._log

    @property
    def dropped(self) -> int:
        """How many subscribers were dropped for falling behind, in all (by a publish, a
        heartbeat or a replay past its time)."""
        return self._dropped

    @property
    def replays(self) -> int:
        """How many long replays are under way (at most ``max_replays``)."""
        return self._replays

    @property
    def put_off(self) -> int:
        """How many clients were asked to come back later because ``max_replays`` long
        replays were under way, in all."""
        return self._put_off

    @property
    def polls(self) -> int:
        """How many long polls are open (held, or answered and not gone yet)."""
        return len(self._pollers)

    @property
    def held_polls(self) -> int:
        """How many long polls wait for events."""
        return sum(1 for poller in self._pollers.values() if poller.is_holding)

    @property
    def answers_encoded(self) -> int:
        """How many long-poll answers were encoded in all: one per place and content coding
        per publish, however many polls held there get it."""
        return self._answers.encoded

    @property
    def is_poll_full(self) -> bool:
        """Whether ``max_held_polls`` polls are open (answer a new one 503)."""
        limit = self._max_held_polls
        return limit is not None and len(self._pollers) >= limit

    @property
    def metrics(self) -> ServerMetrics:
        """A frozen snapshot of the counters of the stream and all its subscribers and
        polls (past ones included), taken now; see :doc:`/state/metrics`."""
        totals = list(self._departed)
        sessions: list[ServerSession | LongPollSession] = [
            subscriber.session for subscriber in self._subscribers.values()
        ]
        sessions += [poller.session for poller in self._pollers.values()]
        for session in sessions:
            for index, value in enumerate(_session_counts(session)):
                totals[index] += value
        bytes_sent, replays, too_old, unknown = totals
        return ServerMetrics(
            connected_clients=len(self._subscribers),
            events_published=self._published,
            bytes_sent=bytes_sent,
            queue_drops=self._dropped,
            replays_served=replays,
            too_old_resumes=too_old,
            unknown_id_resumes=unknown,
            replays_put_off=self._put_off,
            send_timeouts=self._send_timeouts,
        )

    def count_send_timeout(
        self, subscriber: Subscriber | Poller | None = None, now: float | None = None
    ) -> None:
        """Count a client let go because a write waited past ``send_timeout`` (the adapter
        decides that, and calls this; :attr:`metrics` reports it).

        Args:
            subscriber: The client, when known: its audit trail (a stream's or a poll's)
                notes the failure.
            now: The current monotonic time; by default the latest time the broadcaster saw.
                The record is noted at it, or at the session's latest time if that is later.

        Raises:
            ClockError: ``now`` is not finite or is earlier than a previous ``now``.
        """
        if now is not None:
            self._take_now(now)
        at = self._latest_now
        self._send_timeouts += 1
        if subscriber is not None:
            session = subscriber.session
            session.note_failure("send timeout", max(at, session._latest_now))

    def __len__(self) -> int:
        """The number of subscribers (streams; polls are counted by :attr:`polls`)."""
        return len(self._subscribers)

    def __iter__(self) -> Iterator[Subscriber]:
        """The subscribers, oldest first."""
        return iter(list(self._subscribers.values()))

    @property
    def is_full(self) -> bool:
        """Whether ``max_subscribers`` is reached (answer new clients 503)."""
        return self._max_subscribers is not None and len(self) >= self._max_subscribers

    def is_full_for(self, key: str | None) -> bool:
        """Whether ``max_subscribers_per_key`` is reached for ``key`` (answer 429); never
        for ``None``."""
        return (
            key is not None
            and self._max_per_key is not None
            and self._per_key.get(key, 0) >= self._max_per_key
        )

    def subscribe(
        self,
        target: str,
        headers: Sequence[tuple[str | bytes, str | bytes]],
        now: float,
        *,
        key: str | None = None,
    ) -> Subscriber:
        """Answer a client's request and add it: its queue holds the head and the first bytes
        (the replay's first step, or the log's position).

        Args:
            target: The request target (path and query).
            headers: The request header fields (``Last-Event-ID``, ``Accept-Encoding`` ...).
            now: The current monotonic time.
            key: What ``max_subscribers_per_key`` counts by (the client's address, say), or
                ``None``.

        Raises:
            LocalProtocolError: :attr:`is_full`, or :meth:`is_full_for` ``key``.
            ClockError: ``now`` is not finite or is earlier than a previous ``now``.
        """
        self._take_now(now)
        if self.is_full:
            raise LocalProtocolError(f"max_subscribers={self._max_subscribers} reached")
        if self.is_full_for(key):
            raise LocalProtocolError(
                f"max_subscribers_per_key={self._max_per_key} reached for {key!r}"
            )
        session = ServerSession(self._config, self._log)
        subscriber = Subscriber(session, self._max_queued_bytes, self, key)
        is_allowed = self._replays < self._max_replays
        # The head and the first step are accepted whole (at most replay_chunk_size bytes of
        # replay): the queue bound applies to what is published afterwards.
        subscriber._items.extend(
            session.on_request(target, headers, now, is_long_replay_allowed=is_allowed)
        )
        subscriber._initial = len(subscriber._items)
        if session.is_replaying:
            self._replays += 1
            subscriber._replay_deadline = now + self._max_replay_time
        elif session.state is ServerState.CLOSED:
            self._put_off += 1
        self._subscribers[id(subscriber)] = subscriber
        if key is not None:
            self._per_key[key] = self._per_key.get(key, 0) + 1
        return subscriber

    def hold(
        self, target: str, headers: Sequence[tuple[str | bytes, str | bytes]], now: float
    ) -> Poller:
        """Take a long poll: answered at once when the log has something for it, else held
        until :meth:`publish` (or its deadline, see :meth:`Poller.poll`).

        Args:
            target: The request target (``lastEventId`` and ``timeout`` in the query).
            headers: The request header fields (``Last-Event-ID``, ``Accept-Encoding``).
            now: The current monotonic time.

        Raises:
            LocalProtocolError: :attr:`is_poll_full`.
            ClockError: ``now`` is not finite or is earlier than a previous ``now``.
        """
        self._take_now(now)
        if self.is_poll_full:
            raise LocalProtocolError(f"max_held_polls={self._max_held_polls} reached")
        config = self._config
        session = LongPollSession(
            self._long_poll,
            self._log,
            answers=self._answers,
            compression_level=config.compression_level if config.is_compression_enabled else None,
        )
        poller = Poller(session)
        poller._answer += session.on_request(target, headers, now)
        self._pollers[id(poller)] = poller
        return poller

    def unsubscribe(self, subscriber: Subscriber | Poller) -> None:
        """Forget a subscriber or a poll (its connection is gone; what its session counted
        stays in :attr:`metrics`). Unknown ones are ignored."""
        if isinstance(subscriber, Poller):
            if self._pollers.pop(id(subscriber), None) is not None:
                self._add_departed(subscriber.session)
            return
        if self._subscribers.pop(id(subscriber), None) is None:
            return
        self._add_departed(subscriber.session)
        subscriber._release_replay()
        key = subscriber._key
        if key is not None:
            count = self._per_key[key] - 1
            if count:
                self._per_key[key] = count
            else:
                del self._per_key[key]

    def _add_departed(self, session: ServerSession | LongPollSession) -> None:
        for index, value in enumerate(_session_counts(session)):
            self._departed[index] += value

    def publish(
        self, event: Event, now: float, *, wall_now: float | None = None
    ) -> StoredEvent:
        """Append ``event`` to the log and queue its bytes for every subscriber.

        With ``ServerConfig.is_send_time_stamped`` and ``wall_now`` (the wall clock, Unix
        seconds), live subscribers get the event after its send-time stamp comment (the log
        keeps it unstamped: a replayed event is not stamped).

        Subscribers still replaying get it through their replay, from the log. Subscribers
        that fall behind are dropped (their queue then holds a
        :class:`~sse_core.Disconnect`); the adapter should wake every subscriber.

        Returns:
            The stored event (its id as assigned by the log).

        Raises:
            ClockError: ``now`` is not finite or is earlier than a previous ``now``.
        """
        return self._deliver((event,), now, wall_now, _NOBODY).stored[0]

    def fan_out(
        self,
        events: Sequence[Event],
        now: float,
        ready: Container[Subscriber | Poller],
        *,
        wall_now: float | None = None,
    ) -> Fanout:
        """Publish ``events`` as :meth:`publish` does, for an adapter that writes the same
        bytes to many connections itself: the fan-out's hot path.

        A subscriber in ``ready`` (the adapter's word that its connection takes bytes now)
        that is streaming live, uncompressed, with nothing queued, does not get the bytes
        queued: they are counted as sent to it, and it is listed in :attr:`Fanout.sent`.
        The adapter must then write :attr:`Fanout.data` (framed) to each of those, in order,
        before anything else it writes to them. Every other subscriber is served as by
        :meth:`publish`, and those in ``ready`` that have something to take are listed in
        :attr:`Fanout.queued`, with the polls in ``ready`` that have an answer to take.

        Args:
            events: The events, in order (several: each subscriber gets them in one piece).
            now: The current monotonic time.
            ready: The subscribers (and polls) whose connection takes bytes now (any
                container: a set, a dict keyed by them).
            wall_now: As for :meth:`publish`.

        Raises:
            ClockError: ``now`` is not finite or is earlier than a previous ``now``.
        """
        return self._deliver(events, now, wall_now, ready)

    def _deliver(
        self,
        events: Sequence[Event],
        now: float,
        wall_now: float | None,
        ready: Container[Subscriber | Poller],
    ) -> Fanout:
        self._take_now(now)
        is_stamped = wall_now is not None and self._config.is_send_time_stamped
        stamp = serialize_stamp(wall_now) if is_stamped and wall_now is not None else b""
        stored: list[StoredEvent] = []
        for event in events:
            stored.append(self._log.append(event, now))
            self._published += 1
            for poller in self._pollers.values():
                if poller.is_holding:
                    poller._answer += poller.session.on_published(now)
        if len(stored) == 1:
            encoded = stamp + stored[0].encoded if stamp else stored[0].encoded
        else:
            encoded = b"".join(stamp + item.encoded for item in stored)
        size = len(encoded)
        streaming = ServerState.STREAMING
        sent: list[Subscriber] = []
        queued: list[Subscriber | Poller] = []
        # Subscriber._push, inlined: this loop runs once per client per publish.
        for subscriber in self._subscribers.values():
            session = subscriber.session
            if (
                subscriber._is_closing
                or session._cursor is not None
                or session._state is not streaming
            ):
                # Ending, replaying (the replay reads it from the log), or not streaming.
                if subscriber in ready and subscriber.has_pending:
                    queued.append(subscriber)
                continue
            items = subscriber._items
            if not items and session._compressor is None and subscriber in ready:
                session._bytes_sent += size  # as take_bytes() counts what it hands out
                subscriber._sent_at = now
                sent.append(subscriber)
                continue
            total = subscriber._queued_bytes + size
            if total > subscriber._max_queued_bytes:
                subscriber._push(encoded, now)  # drops it
            else:
                items.append(encoded)
                subscriber._queued_bytes = total
                subscriber._sent_at = now
            if subscriber in ready:
                queued.append(subscriber)
        if ready is not _NOBODY:
            for poller in self._pollers.values():
                if poller._answer and poller in ready:
                    queued.append(poller)
        return Fanout(stored, encoded, sent, queued)

    def close(self, now: float) -> None:
        """End every subscriber's stream (each queue ends with a
        :class:`~sse_core.Disconnect`, after what is queued); the adapter carries them
        out.

        Raises:
            ClockError: ``now`` is not finite or is earlier than a previous ``now``.
        """
        self._take_now(now)
        for subscriber in self._subscribers.values():
            subscriber._close()
        for poller in self._pollers.values():
            poller._answer += poller.session.close(now)



def _session_counts(session: ServerSession | LongPollSession) -> tuple[int, int, int, int]:
    """What one session (a stream's or a poll's) counted: bytes sent, replays served,
    too-old and unknown-id resumptions."""
    return (
        session.bytes_sent,
        session._replays_served,
        session._too_old_resumes,
        session._unknown_id_resumes,
    )
