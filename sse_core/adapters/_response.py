"""What the per-request responses share (floor 4): the rule for what an application's stream
yields, and one request's :class:`~sse_core.ServerSession` with its optional replay log.

No I/O and no waiting: the ASGI (:mod:`sse_core.adapters.asgi`), aiohttp
(:mod:`sse_core.adapters.aiohttp`) and WSGI (:mod:`sse_core.adapters.wsgi`) responses carry
out the actions returned here, in their own way (the two async ones through the loop of
``_async_response``).

The items rule, the same in all three: an application's stream yields

- an :class:`~sse_core.Event`, sent as it is;
- a ``str``, the ``data`` of a ``message`` event (``"a\\nb"`` becomes two ``data:`` lines);
- a mapping with some of the keys ``"data"`` (a ``str``), ``"event"``, ``"id"`` (both
  ``str``) and ``"retry"`` (an ``int``, milliseconds): the event those fields make, after a
  ``retry:`` line when ``"retry"`` is there; a mapping with ``"retry"`` alone sends only that.

Anything else -- ``bytes``, ``None``, a number, a mapping with another key or ``data`` that is
not a ``str`` (``json.dumps`` it first) -- raises :class:`TypeError`, which ends the stream
as an exception from the application does.

Long polls (``ServerOptions.long_poll_path``, the rule of the servers: a request to that
path, or -- when it equals ``path`` -- one whose ``Accept`` prefers ``application/json``):
a per-request stream has no broadcaster, so a poll is the same stream cut to one answer.
A :class:`~sse_core.LongPollSession` answers at once from the replay log when it has events
after the client's id; otherwise the source is started from the client's id, the events it
has ready once the first came (at most ``long_poll.max_events``) are the answer, or none when
``max_hold`` passes first, and the source is closed. The next poll starts it again from the
answer's ``last_event_id``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterable, Callable, Iterable, Mapping, Sequence
from typing import Any, Generic, TypeVar

import attrs

from .. import ServerConfig, ServerSession
from .._actions import Action
from .._audit import AuditTrail
from .._broadcast import _session_counts
from .._errors import InvalidConfigError, LocalProtocolError
from .._events import Event, Retry
from .._longpoll import LongPollConfig, LongPollSession
from .._metrics import ServerMetrics
from .._replay import ReplayLog
from .._serializer import serialize_block
from .._server import ServerState
from .._types import header_value
from ._base import options_or_default
from ._options import ServerOptions
from ._server_base import VARY_ACCEPT, is_poll

__all__ = ["Item", "ResponseBase", "ResponseCounters", "Source", "SyncSource", "event_of"]

#: What an application's stream may yield (see the module's rule).
Item = Event | str | Mapping[str, Any]

#: The ASGI response's source: an async iterable of items, or a function of the request's
#: last event ID (``""`` for a new client) that returns one.
Source = AsyncIterable[Item] | Callable[[str], AsyncIterable[Item]]
#: The WSGI response's source: an iterable of items, or a function of the last event ID.
SyncSource = Iterable[Item] | Callable[[str], Iterable[Item]]

_Source = TypeVar("_Source", Source, SyncSource)

_KEYS = frozenset({"data", "event", "id", "retry"})


def event_of(item: object) -> tuple[Retry | None, Event | None]:
    """The ``retry:`` hint and the event an item stands for (see the module's rule).

    Raises:
        TypeError: the item is none of the kinds the rule allows.
        InvalidFieldError: a field's text is not allowed (an ``id`` with a line break ...).
    """
    if isinstance(item, Event):
        return None, item
    if isinstance(item, str):
        return None, Event(data=item)
    if not isinstance(item, Mapping):
        raise TypeError(
            "an event stream yields Event, str or a mapping of data/event/id/retry, "
            f"not {type(item).__name__}"
        )
    unknown = set(item) - _KEYS
    if unknown:
        raise TypeError(
            f"an event mapping has only the keys data, event, id and retry, not {sorted(unknown)}"
        )
    retry = item.get("retry")
    if retry is not None and (not isinstance(retry, int) or isinstance(retry, bool)):
        raise TypeError(f"'retry' is an int of milliseconds, not {type(retry).__name__}")
    hint = None if retry is None else Retry(milliseconds=retry)
    if set(item) <= {"retry"}:
        return hint, None
    data = item.get("data", "")
    if not isinstance(data, str):
        raise TypeError(
            f"'data' is a str (json.dumps(...) it first), not {type(data).__name__}"
        )
    return hint, Event(data=data, event=item.get("event", "message"), id=item.get("id"))


#: The figures one response adds to :class:`ResponseCounters`: events sent, bytes sent,
#: replays served, too-old resumes, unknown-id resumes, send timeouts.
_Figures = tuple[int, int, int, int, int, int]


class ResponseCounters:
    """Counters many per-request responses add to: pass the same object as ``counters=`` to
    every ``StreamResponse`` of an application (or of one route), and read :attr:`metrics`
    for the totals, as :attr:`Broadcaster.metrics <sse_core.state.Broadcaster.metrics>`
    gives them for the broadcast servers. Safe to share between threads (WSGI) and tasks.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # by id(): a framework's response may compare by content (a mapping)
        self._serving: dict[int, ResponseBase[Any]] = {}
        self._ended = [0] * 6  # the _Figures of the responses that ended

    @property
    def metrics(self) -> ServerMetrics:
        """A frozen snapshot, taken now: ``connected_clients`` is the streams being served
        (a held long poll is not one, as for a broadcaster, which counts its polls apart);
        the other counts are those of every response, past ones
        included. ``queue_drops`` and ``replays_put_off`` stay 0 (no queue, no replay budget)."""
        with self._lock:
            totals = list(self._ended)
            serving = list(self._serving.values())
        for response in serving:
            for index, value in enumerate(response._figures()):
                totals[index] += value
        return _server_metrics(sum(r._is_connected for r in serving), totals)

    def _begin(self, response: ResponseBase[Any]) -> None:
        with self._lock:
            self._serving[id(response)] = response

    def _end(self, response: ResponseBase[Any]) -> None:
        with self._lock:
            if self._serving.pop(id(response), None) is not None:
                for index, value in enumerate(response._figures()):
                    self._ended[index] += value


def _server_metrics(connected: int, figures: Sequence[int]) -> ServerMetrics:
    events, sent, replays, too_old, unknown, timeouts = figures
    return ServerMetrics(
        connected_clients=connected, events_published=events, bytes_sent=sent,
        replays_served=replays, too_old_resumes=too_old, unknown_id_resumes=unknown,
        send_timeouts=timeouts,
    )


class ResponseBase(Generic[_Source]):
    """What every ``StreamResponse`` class is made of: one request's
    :class:`~sse_core.ServerSession` and the application's source, and the session's actions
    for the head, each item, heartbeats and the end. The subclasses document the arguments.

    Raises:
        InvalidConfigError: a bad argument.
        TypeError: ``source`` is neither an iterable nor callable.
    """

    def __init__(
        self,
        source: _Source,
        *,
        config: ServerConfig | None = None,
        options: ServerOptions | None = None,
        replay_log: ReplayLog | None = None,
        clock: Callable[[], float] | None = None,
        counters: ResponseCounters | None = None,
    ) -> None:
        config = ServerConfig() if config is None else config
        if not isinstance(config, ServerConfig):
            raise InvalidConfigError(f"config must be a ServerConfig, got {config!r}")
        if replay_log is not None and not isinstance(replay_log, ReplayLog):
            raise InvalidConfigError(f"replay_log must be a ReplayLog, got {replay_log!r}")
        if clock is not None and not callable(clock):
            raise InvalidConfigError(f"clock must be callable, got {clock!r}")
        if counters is not None and not isinstance(counters, ResponseCounters):
            raise InvalidConfigError(f"counters must be ResponseCounters, got {counters!r}")
        if not (_is_iterable(source) or callable(source)):
            raise TypeError(
                f"an event stream's source is an iterable or a function returning one, "
                f"not {type(source).__name__}"
            )
        self._options: ServerOptions = options_or_default(options, ServerOptions)
        self._clock = clock if clock is not None else time.monotonic
        self._config = _vary_accept(config) if self._options.is_negotiated else config
        self._session = ServerSession(self._config, replay_log)
        self._poll: LongPollSession | None = None  # a long poll's session, when it is one
        self._source: object = source
        self._log = replay_log
        self._counters = counters
        self._is_serving = False  # from the request's arrival to the end of the answer
        self._events_sent = 0
        self._send_timeouts = 0
        self._setup()

    def _setup(self) -> None:
        """Make the subclass's own state (the last step of ``__init__``)."""

    @property
    def last_event_id(self) -> str:
        """The request's last event ID (``""`` for a new client), once the response runs."""
        if self._poll is not None:
            return self._poll.client_last_event_id
        return self._session.last_event_id

    @property
    def metrics(self) -> ServerMetrics:
        """This response's figures, as :attr:`ResponseCounters.metrics` sums them:
        ``connected_clients`` is 1 while a stream is served, then 0 (always 0 for a long
        poll, as for a broadcaster); events and bytes sent (a
        long poll's answer too), the replay and the resume it served (a poll's too: a gap
        in ``too_old_resumes`` or ``unknown_id_resumes``, an answer from the replay log
        after the client's id in ``replays_served``), and 1 in ``send_timeouts`` when its
        client was let go for ``options.send_timeout``."""
        return _server_metrics(int(self._is_connected), self._figures())

    @property
    def _is_connected(self) -> bool:
        """Whether it counts as a connected client: a stream being served."""
        return self._is_serving and self._poll is None

    @property
    def audit_trail(self) -> AuditTrail:
        """The response's lifecycle as timed records: a stream's
        (:attr:`ServerSession.audit_trail <sse_core.ServerSession.audit_trail>`: the
        request and the id it resumed from, gap signals, the replay's end, a send timeout,
        the close) or a long poll's
        (:attr:`LongPollSession.audit_trail <sse_core.LongPollSession.audit_trail>`: the
        request, its gap, the answer, why it closed)."""
        if self._poll is not None:
            return self._poll.audit_trail
        return self._session.audit_trail

    def _figures(self) -> _Figures:
        poll = self._poll
        events = self._events_sent if poll is None else poll.events_sent
        # read as a broadcaster reads them: the stream's session, or the poll's
        sent, replays, too_old, unknown = _session_counts(self._session if poll is None else poll)
        return events, sent, replays, too_old, unknown, self._send_timeouts

    def _serving(self) -> None:
        """The request arrived: counted as a connected client until :meth:`_served`."""
        self._is_serving = True
        if self._counters is not None:
            self._counters._begin(self)

    def _served(self) -> None:
        """The answer ended (or the client went): its figures go to the shared counters."""
        if self._is_serving:
            self._is_serving = False
            if self._counters is not None:
                self._counters._end(self)

    def _count_send_timeout(self) -> None:
        """The client took nothing for ``send_timeout`` and is let go: counted, and noted in
        the audit trail (the stream's or the poll's)."""
        self._send_timeouts += 1
        session: ServerSession | LongPollSession = (
            self._session if self._poll is None else self._poll
        )
        session.note_failure("send timeout", max(self._clock(), session._latest_now))

    @property
    def is_long_poll(self) -> bool:
        """Whether the request is a long poll (answered with one JSON body), once the
        response runs."""
        return self._poll is not None

    def _hold(
        self, target: str, headers: Sequence[tuple[str | bytes, str | bytes]]
    ) -> list[Action] | None:
        """Take the request as a long poll when it is one: its answer when the log has it
        at once, ``[]`` while it is held; ``None`` when the request is a stream.

        Raises:
            LocalProtocolError: the response served a request before.
        """
        if self._poll is not None or self._session.state is not ServerState.IDLE:
            raise LocalProtocolError("a StreamResponse serves one request")
        self._serving()
        options = self._options
        if not is_poll(options, target, header_value(headers, "accept")):
            return None
        long_poll = _vary_accept(options.long_poll) if options.is_negotiated else options.long_poll
        config = self._config
        self._poll = LongPollSession(
            long_poll,
            self._log,
            compression_level=config.compression_level if config.is_compression_enabled else None,
        )
        return self._poll.on_request(target, headers, self._clock())

    def _poll_wait(self) -> float:
        """Seconds the held poll still waits for its first event."""
        assert self._poll is not None
        deadline = self._poll.next_deadline()
        return 0.0 if deadline is None else max(0.0, deadline - self._clock())

    def _answer_poll(self, items: Sequence[object]) -> tuple[list[Action], Exception | None]:
        """The held poll's answer: the events of ``items`` (at most ``long_poll.max_events``;
        appended to the log first, when there is one), or none.

        Returns:
            The answer, and what stopped the items early (an item against the rule, an id the
            log refused), if anything: the answer holds the events before it.
        """
        session, log = self._poll, self._log
        assert session is not None
        now = self._clock()
        events: list[Event] = []
        failure = None
        for item in items:
            try:
                event = event_of(item)[1]  # a retry hint: the answers carry long_poll.retry
                if event is not None:
                    events.append(event if log is None else log.append(event, now).event)
            except Exception as error:
                failure = error
                break
        actions = session.on_events(events, now) if log is None else session.on_published(now)
        if not actions:  # nothing came: the hold ran out, or the source ended first
            deadline = session.next_deadline()
            is_due = deadline is not None and now >= deadline
            actions = session.close(now, reason="timed out" if is_due else "the source ended")
        return actions, failure

    @property
    def _poll_limit(self) -> int:
        """The most items a held poll takes from the source (``long_poll.max_events``)."""
        return self._options.long_poll.max_events

    def _begin(
        self, target: str, headers: Sequence[tuple[str | bytes, str | bytes]]
    ) -> list[Action]:
        """Answer the request: the head, then padding, ``retry:`` and the replay's first step
        (the rest, while the session is replaying, from :meth:`_replay_step`)."""
        return self._session.on_request(target, headers, self._clock())

    def _replay_step(self) -> list[Action]:
        """The replay's next step."""
        return self._session.continue_replay(self._clock())

    def _iterable(self) -> Any:
        """The application's iterable for this request (the function called with the last
        event ID, when the source is one)."""
        source = self._source
        if _is_iterable(source) or not callable(source):
            return source
        return source(self.last_event_id)

    def _send_item(self, item: object) -> list[Action]:
        """The actions that send one item of the application's stream.

        Raises:
            TypeError: the item breaks the items rule.
            InvalidFieldError: a field's text is not allowed, or the log refused the id.
        """
        hint, event = event_of(item)
        now = self._clock()
        actions: list[Action] = []
        if hint is not None:
            actions += self._session.send(serialize_block(hint), now)
        if event is not None:
            # the wall clock's send time, stamped when ServerConfig.is_send_time_stamped
            wall_now = time.time() if self._config.is_send_time_stamped else None
            stored = event if self._log is None else self._log.append(event, now)
            actions += self._session.send(stored, now, wall_now=wall_now)
            self._events_sent += 1
        return actions

    def _delay(self) -> float | None:
        """Seconds until the next heartbeat is due, or ``None`` for none."""
        deadline = self._session.next_deadline()
        return None if deadline is None else max(0.0, deadline - self._clock())

    def _heartbeat(self) -> list[Action]:
        """A heartbeat, if one is due."""
        return self._session.on_timer(self._clock())

    def _close(self) -> list[Action]:
        """The end of the stream (the gzip trailer first, when compressing)."""
        return self._session.close(self._clock())


_Config = TypeVar("_Config", ServerConfig, LongPollConfig)


def _vary_accept(config: _Config) -> _Config:
    """``config`` with ``Vary: Accept`` among its headers: one path serves streams and polls
    by the request's ``Accept`` (RFC 9110 section 12.5.5)."""
    return attrs.evolve(config, headers=(*config.headers, VARY_ACCEPT))


def _is_iterable(source: object) -> bool:
    return hasattr(source, "__aiter__") or hasattr(source, "__iter__")
