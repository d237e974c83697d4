"""The client session: an EventSource without I/O (floor 3).

:class:`ClientSession` turns connection events, body bytes and ``now`` into actions
(:mod:`sse_core._actions`): which request to make, which events to deliver, when to
disconnect, and -- through :meth:`ClientSession.next_deadline` -- when to be woken. It follows
WHATWG HTML 9.2 "Server-sent events" (processing the response, reestablishing the connection,
``Last-Event-ID``) and adds what the spec leaves out: backoff with jitter, stall detection,
dedup of replayed events, optional retry on chosen statuses, bounded decompression, and a
long-polling fallback for networks where a buffering intermediary holds the stream back
(:mod:`sse_core._longpoll`): :attr:`ClientSession.transport` and
:class:`~sse_core.ReportTransport`.

The session is a facade over smaller parts: the response gate (the requests and the verdict
on each response head, :mod:`sse_core._handshake`, and which input may come next on the
connection in flight), the :class:`~sse_core.Parser`, the delivery pipeline
(:mod:`sse_core._pipeline`) and the transport switch (:mod:`sse_core._transport`). It runs
two machines, each on its own table: the lifecycle, :data:`TRANSITIONS` (the docs' state
diagram is drawn from it), and the transport fallback,
:data:`~sse_core._transport.LEG_TRANSITIONS`. The configuration lives in
:mod:`sse_core._config`.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Sequence
from typing import Concatenate, ParamSpec, cast

import attrs

from ._actions import (
    Action,
    ClientState,
    Connect,
    Disconnect,
    EndCause,
    ReadyState,
    ReportFailure,
    ReportStale,
    ReportStatus,
    ReportTransport,
    Request,
    Transport,
)
from ._audit import AUDITED, AuditKind, AuditRecorder, AuditTrail
from ._backoff import Backoff, GiveUp
from ._batching import Batcher, one_per_event
from ._compression import Decompressor
from ._config import ClientConfig, add_query
from ._errors import (
    InvalidConfigError,
    LimitExceeded,
    LocalProtocolError,
    RemoteProtocolError,
    sticky,
)
from ._events import Comment, Event, Retry
from ._handshake import Refusal, judge_response, poll_request, stream_request
from ._longpoll import LongPollResponse
from ._metrics import Metrics, MetricsRecorder
from ._parser import Parser
from ._pipeline import DeliveryPipeline
from ._serializer import read_stamp
from ._timers import StallDetector
from ._transport import Leg, LegInput, TransportSwitch
from ._types import RandomSource
from ._validators import MonotonicNow, non_negative_number

__all__ = ["TRANSITIONS", "ClientConfig", "ClientInput", "ClientSession"]


class ClientInput(enum.Enum):
    """What can move a :class:`ClientSession` from one state to another."""

    START = "start"  # the application starts the session
    ACCEPTED = "accepted"  # 200 with text/event-stream
    FIRST_BYTES = "first bytes"  # the body's first bytes
    LOST = "lost"  # EOF, network error, stall, bad stream, retryable status
    REFUSED = "refused"  # 204, another status, wrong content type: fail, no reconnect
    # The backoff policy stops reconnecting, or a request that may not be sent twice
    # (not idempotent, nothing to resume from) lost its stream.
    GAVE_UP = "gave up"
    RECONNECT_DUE = "reconnect due"  # the reconnection delay has passed
    CLOSE = "close"  # the application closes the session
    # The platform's network signals (the browser's offline/online events, a mobile OS's
    # connectivity callbacks): no network; the network is back; another network (a handoff:
    # the old connection may be dead without any error).
    OFFLINE = "offline"
    ONLINE = "online"
    NETWORK_CHANGED = "network changed"


_S = ClientState
_I = ClientInput
_LIVE = (_S.CONNECTING, _S.CONNECTED, _S.STREAMING)

#: Every allowed transition: ``(state, input) -> new state``. Anything else is misuse.
TRANSITIONS: dict[tuple[ClientState, ClientInput], ClientState] = {
    (_S.CLOSED, _I.START): _S.CONNECTING,
    (_S.CONNECTING, _I.ACCEPTED): _S.CONNECTED,
    (_S.CONNECTED, _I.FIRST_BYTES): _S.STREAMING,
    **{(state, _I.LOST): _S.RECONNECTING for state in _LIVE},
    **{(state, _I.GAVE_UP): _S.CLOSED for state in _LIVE},
    (_S.CONNECTING, _I.REFUSED): _S.CLOSED,
    (_S.RECONNECTING, _I.RECONNECT_DUE): _S.CONNECTING,
    **{(state, _I.CLOSE): _S.CLOSED for state in (*_LIVE, _S.RECONNECTING, _S.OFFLINE)},
    **{(state, _I.OFFLINE): _S.OFFLINE for state in (*_LIVE, _S.RECONNECTING)},
    (_S.OFFLINE, _I.ONLINE): _S.CONNECTING,
    (_S.RECONNECTING, _I.ONLINE): _S.CONNECTING,
    **{(state, _I.NETWORK_CHANGED): _S.CONNECTING for state in (*_LIVE, _S.RECONNECTING)},
}


def _text(value: str | bytes) -> str:
    """A header name or value as str (bytes read as Latin-1, as HTTP/1.1 does)."""
    return value.decode("latin-1") if isinstance(value, bytes) else value


_P = ParamSpec("_P")


def _shaped_and_audited(
    method: Callable[Concatenate[ClientSession, _P], list[Action]],
) -> Callable[Concatenate[ClientSession, _P], list[Action]]:
    """An input whose actions leave the session in the shape asked for, noted in the audit
    trail (``ClientConfig.max_audit_records``).

    The shape of the deliveries: with ``ClientConfig.batching``, the session's
    :class:`~sse_core.state.Batcher` batches them (a batch that is due goes out first);
    else, with ``is_batched_per_input``, the pipeline's runs go out as they are (a
    :class:`~sse_core.DeliverBatch` per run of events); else a :class:`~sse_core.Deliver`
    per event."""

    @functools.wraps(method)
    def shaped(self: ClientSession, /, *args: _P.args, **kwargs: _P.kwargs) -> list[Action]:
        actions = method(self, *args, **kwargs)
        batcher = self._batcher
        if batcher is not None:
            now = self._latest_now  # the input's own, just taken
            actions = batcher.poll(now) + batcher.feed(actions, now)
        elif not self._is_batched_per_input:
            actions = one_per_event(actions)
        if self._audit is not None:
            for action in actions:
                if type(action) in AUDITED:  # most inputs deliver events, and nothing else
                    self._note(actions)
                    break
        return actions

    return shaped


#: The parser's items when they are all events (see ClientSession._handle_items).
_ONLY_EVENTS = frozenset((Event,))


def _earliest(*instants: float | None) -> float | None:
    present = [instant for instant in instants if instant is not None]
    return min(present) if present else None


class ClientSession(MonotonicNow):
    """A sans-IO EventSource: decides everything, does no I/O.

    Call :meth:`start`, then feed what happens on the connection (:meth:`on_response`,
    :meth:`on_data`, :meth:`on_eof`, :meth:`on_connection_lost`) and wake it at
    :meth:`next_deadline` with :meth:`on_timer`. Each input returns the actions to carry out,
    in order. :meth:`close` ends it for good.

    With ``long_poll_url`` set, the session may switch to long-polling
    (:attr:`transport`, :class:`~sse_core.ReportTransport`). The adapter needs to know nothing
    about it: each poll is a :class:`~sse_core.Connect` whose response is fed through the same
    inputs, and the next poll comes back from :meth:`on_eof`. While polling, the state stays
    ``STREAMING`` as long as answers arrive; a failed poll goes through ``RECONNECTING`` with
    backoff, as a lost stream does.

    Misuse is final: once an input raised :class:`~sse_core.LocalProtocolError` (an input
    out of order, ``now`` going backwards), every later input but :meth:`close` raises
    :class:`~sse_core.LocalProtocolError` saying so, and :meth:`next_deadline` is ``None``.

    Args:
        config: The session's configuration.
        rng: Randomness for backoff jitter and the cache-busting value (``random.Random()``
            in an adapter, a seeded one in tests).
        is_batched_per_input: Without ``ClientConfig.batching``, hand the events of each
            input out as one :class:`~sse_core.DeliverBatch` (one per run, when a report
            comes between events) rather than a :class:`~sse_core.Deliver` each: fewer
            records for an I/O layer that takes events in bulk (the adapters' plain loop).
            With ``ClientConfig.batching`` the batcher decides the batches either way.

    Raises:
        InvalidConfigError: ``config`` is not a :class:`ClientConfig`, or
            ``is_batched_per_input`` not a bool.
    """

    def __init__(
        self, config: ClientConfig, *, rng: RandomSource, is_batched_per_input: bool = False
    ) -> None:
        if not isinstance(config, ClientConfig):
            raise InvalidConfigError(f"config must be a ClientConfig, got {config!r}")
        if not isinstance(is_batched_per_input, bool):
            raise InvalidConfigError(
                f"is_batched_per_input must be a bool, got {is_batched_per_input!r}"
            )
        self._config = config
        self._is_batched_per_input = is_batched_per_input
        self._state = ClientState.CLOSED
        MonotonicNow.__init__(self)
        self._failure: LocalProtocolError | None = None
        self._rng = rng
        self._backoff = Backoff(config.backoff, rng=rng)
        self._server_retry: Retry | None = None
        self._stall = StallDetector(config.stall_timeout) if config.stall_timeout else None
        self._metrics = MetricsRecorder()
        self._pipeline = DeliveryPipeline(
            metrics=self._metrics, dedup=config.dedup, sequencer=config.sequencer,
            chunking=config.chunking,
        )
        self._batcher = Batcher(config.batching) if config.batching is not None else None
        self._audit = (
            AuditRecorder(config.max_audit_records) if config.max_audit_records else None
        )
        self._switch = TransportSwitch(config)
        self._last_event_id = config.last_event_id
        self._reconnect_at: float | None = None
        self._connected_at: float | None = None
        self._outage_since: float | None = None
        self._is_attempt_pending = False  # an attempt whose response is not accepted yet
        self._has_bytes = False  # _fresh_at is a byte's time, not the start's
        # Freshness: the last body byte (or the first start, before any), the last delivery,
        # and whether ReportStale said "stale" last.
        self._fresh_at: float | None = None
        self._last_event_at: float | None = None
        self._is_stale = False
        self._url = config.url
        self._cache_bust: tuple[str, str] | None = None
        if config.cache_bust_param is not None:
            token = format(int(rng.random() * 2**52), "x")
            self._cache_bust = (config.cache_bust_param, token)
            self._url = add_query(config.url, f"{config.cache_bust_param}={token}")
        # The response gate: what the connection in flight has shown so far.
        self._is_head_in = False
        self._parser: Parser | None = None  # a stream's, once its head is in
        self._decompressor: Decompressor | None = None
        self._body = bytearray()  # a poll's answer so far, at most max_response_size
        # A refused response whose body is being read (up to max_error_body_size), for
        # the ReportFailure; its body so far is in _body.
        self._refused: ReportFailure | None = None

    # --- what the application and the adapter read ------------------------------------------

    @property
    def config(self) -> ClientConfig:
        """The configuration."""
        return self._config

    @property
    def state(self) -> ClientState:
        """The lifecycle state."""
        return self._state

    @property
    def ready_state(self) -> ReadyState:
        """The WHATWG ``readyState``."""
        return self._state.ready_state

    @property
    def transport(self) -> Transport:
        """How events are received: by streaming, or by long-polling (the fallback).

        It changes only when a :class:`~sse_core.ReportTransport` says so.
        """
        return self._switch.transport

    @property
    def last_event_id(self) -> str:
        """The last event ID string: sent as ``Last-Event-ID`` on the next connection."""
        return self._last_event_id

    @property
    def metrics(self) -> Metrics:
        """A frozen snapshot of the session's counters (attempts, deliveries, duplicates...).

        Each read takes a new snapshot; the session's own counters cannot be changed from
        outside. While long-polling every poll counts as a connection attempt; a run of
        answered polls counts as one connection (its duration, and a reconnection when it ends
        an outage). The ``buffered_*`` gauges are read now.
        """
        sequencer, assembler = self._pipeline.buffered()
        batcher = self._batcher.pending if self._batcher is not None else 0
        return self._metrics.snapshot(sequencer=sequencer, assembler=assembler, batcher=batcher)

    @property
    def audit_trail(self) -> AuditTrail:
        """A frozen snapshot of the session's lifecycle, oldest first: state changes, the id
        each connection resumes from, gaps, failures, transport switches, staleness and
        network signals, each with its time (at most ``ClientConfig.max_audit_records``;
        empty when that is 0)."""
        return self._audit.snapshot() if self._audit is not None else AuditTrail()

    @property
    def last_byte_at(self) -> float | None:
        """When the last body byte of a stream or a poll's answer arrived (a heartbeat
        counts), or ``None`` before any: ``now - last_byte_at`` is how old the data may be."""
        return self._fresh_at if self._fresh_at is not None and self._has_bytes else None

    @property
    def last_event_at(self) -> float | None:
        """When the last event was delivered, or ``None`` before any."""
        return self._last_event_at

    @property
    def is_stale(self) -> bool:
        """Whether the last :class:`~sse_core.ReportStale` said the data may be stale
        (always ``False`` without ``ClientConfig.stale_after``)."""
        return self._is_stale

    @property
    def reconnect_at(self) -> float | None:
        """When the next connection is due while ``RECONNECTING`` (else ``None``): minus the
        status's ``since``, the reconnection delay the backoff chose."""
        return self._reconnect_at if self._state is ClientState.RECONNECTING else None

    @property
    def reconnection_time(self) -> float:
        """The base reconnection delay in seconds (the server's ``retry:`` once sent)."""
        return self._backoff.reconnection_time

    def request(self) -> Request:
        """The request the next :class:`~sse_core.Connect` will carry.

        That is the stream's request, or while :attr:`transport` is ``LONG_POLLING`` the
        next poll's (:meth:`long_poll_request`).
        """
        if self._switch.transport is Transport.LONG_POLLING:
            return self.long_poll_request()
        return stream_request(self._config, self._url, self._last_event_id)

    def long_poll_request(self) -> Request:
        """The request of the next poll.

        ``GET <long_poll_url>?lastEventId=<last event ID>&timeout=<long_poll_timeout>``
        (``lastEventId`` omitted while empty, the cache-busting parameter added when set),
        with ``Accept: application/json``, ``Cache-Control: no-cache``, the user's headers
        (but ``Accept``) and ``Accept-Encoding: gzip`` when accepted.

        Raises:
            LocalProtocolError: ``long_poll_url`` is not set.
        """
        poll_url = self._config.long_poll_url
        if poll_url is None:
            raise LocalProtocolError("long_poll_request() without a long_poll_url")
        return poll_request(self._config, poll_url, self._last_event_id, self._cache_bust)

    def next_deadline(self) -> float | None:
        """When to call :meth:`on_timer` next, or ``None`` when nothing is scheduled."""
        if self._state is ClientState.CLOSED or self._failure is not None:
            return None
        if self._state is ClientState.RECONNECTING:
            session = self._reconnect_at
        elif self._state is ClientState.OFFLINE:
            session = None  # nothing is tried until the network is back
        else:
            stall = self._stall.next_deadline() if self._stall is not None else None
            session = _earliest(stall, self._switch.next_deadline())
        batch = self._batcher.next_deadline() if self._batcher is not None else None
        return _earliest(session, self._pipeline.next_deadline(), self._stale_at(), batch)

    # --- inputs ---------------------------------------------------------------------------

    @sticky
    @_shaped_and_audited
    def start(self, now: float) -> list[Action]:
        """Open the stream: the first connection (or the first poll, when long-polling).

        Raises:
            LocalProtocolError: the session is not closed.
        """
        self._take_now(now)
        actions = [self._move(ClientInput.START, now)]
        if self._fresh_at is None:
            self._fresh_at = now  # the data's age counts from here until a byte comes
        # A fresh schedule for a fresh start; the server's reconnection time is kept, as it
        # belongs to the stream (an EventSource keeps it for its whole life).
        self._backoff = Backoff(self._config.backoff, rng=self._rng)
        if self._server_retry is not None:
            self._backoff.on_retry(self._server_retry)
        self._reconnect_at = None
        self._switch.apply(LegInput.START, now)
        return actions + self._open(now)

    @sticky
    @_shaped_and_audited
    def on_response(
        self, status: int, headers: Sequence[tuple[str | bytes, str | bytes]], now: float
    ) -> list[Action]:
        """The response head arrived (after redirects, which the adapter follows).

        As the spec's "announce the connection": 200 with ``text/event-stream`` opens the
        stream. Otherwise the connection fails for good (204 is the server's way to say "stop
        reconnecting"), except for statuses in ``retry_statuses``, which reconnect. A poll's
        answer must be 200 with ``application/json``; the same rules apply to other answers
        (a refusal while polling closes the session).

        Args:
            status: The HTTP status code.
            headers: The response header fields.
            now: The current monotonic time.

        Raises:
            LocalProtocolError: no connection is being made.
        """
        self._take_now(now)
        leg = self._gate("on_response", is_head_in=False)
        verdict = judge_response(self._config, status, headers, is_poll=leg is Leg.POLL)
        if isinstance(verdict, Refusal):
            if leg is Leg.PROBE:  # a try at streaming: anything but a stream means "poll"
                return self._resume_polling(now, verdict.reason, is_open=True)
            if verdict.is_retryable:
                return self._lose(now, verdict.reason, is_open=True)
            if not verdict.is_failure:
                return self._refuse(now, verdict.reason)
            return self._read_refusal(verdict.reason, status, headers, now)
        self._is_head_in = True
        self._is_attempt_pending = False
        self._decompressor = verdict
        if leg is not Leg.POLL:
            self._parser = Parser(
                max_line_length=self._config.max_line_length,
                max_event_size=self._config.max_event_size,
                last_event_id=self._last_event_id,
            )
        self._switch.on_head(now)
        if self._state is not ClientState.CONNECTING:
            return []  # a later poll, or a try at streaming: the connection is up already
        self._connected_at = now
        self._backoff.on_connected(now)
        if self._outage_since is not None:
            self._metrics.record_reconnection(now - self._outage_since)
            self._outage_since = None
        return [self._move(ClientInput.ACCEPTED, now)]

    @sticky
    @_shaped_and_audited
    def on_data(
        self, data: bytes, now: float, *, wall_now: float | None = None
    ) -> list[Action]:
        """Body bytes arrived.

        Args:
            data: The bytes.
            now: The current monotonic time.
            wall_now: The current wall-clock time (Unix seconds), for the latency of events
                the server stamped (``ClientConfig.is_latency_measured``); without it, or
                without that option, stamps are ignored.

        Returns:
            The events to deliver (duplicates by id dropped), gap reports, a status change
            on the first bytes, and -- when the stream broke a limit or is badly encoded --
            a disconnect and reconnection. While long-polling, nothing until :meth:`on_eof`
            (or a disconnect and reconnection when the answer grows past
            ``max_response_size``).

        Raises:
            LocalProtocolError: no stream is open.
        """
        self._take_now(now)
        leg = self._gate("on_data", is_head_in=True)
        if self._refused is not None:
            return self._refusal_data(data, now)
        fresh = self._freshen(now)
        if leg is Leg.POLL:
            return fresh + self._poll_data(data, now)
        actions: list[Action] = []
        if leg is Leg.PROBE or self._state is ClientState.CONNECTED:
            # Bytes got through: no intermediary holds this stream back.
            report = self._switch.apply(LegInput.BYTES, now, "the stream delivers bytes")
            if report is not None:
                actions.append(report)
        if self._state is ClientState.CONNECTED:
            actions.append(self._move(ClientInput.FIRST_BYTES, now))
        stamp_clock = wall_now if self._config.is_latency_measured else None
        if stamp_clock is not None:
            non_negative_number.check("wall_now", stamp_clock, error=LocalProtocolError)
        return self._stream_data(data, now, actions + fresh, stamp_clock)

    @sticky
    @_shaped_and_audited
    def on_eof(self, now: float) -> list[Action]:
        """The response body ended. The spec reconnects ("reestablish the connection").

        While long-polling the answer is complete: its events are delivered and the next poll
        is asked for (at once, or at :meth:`next_deadline` after a quick empty answer).

        Raises:
            LocalProtocolError: no stream is open.
        """
        self._take_now(now)
        leg = self._gate("on_eof", is_head_in=True)
        if self._refused is not None:
            return self._refuse(now, is_open=False)
        if leg is Leg.POLL:
            return self._poll_eof(now)
        if leg is Leg.PROBE:
            return self._resume_polling(now, "stream ended before its first byte", is_open=False)
        assert self._parser is not None
        end = self._parser.feed_eof()
        reason = "stream ended mid-event" if end.is_truncated else "stream ended"
        return self._lose(now, reason, is_open=False)

    @sticky
    @_shaped_and_audited
    def on_connection_lost(self, now: float, reason: str = "connection lost") -> list[Action]:
        """The connection failed (refused, reset, TLS error, timeout in the adapter...).

        Raises:
            LocalProtocolError: no connection is being made or open.
        """
        self._take_now(now)
        if not self._switch.leg.is_in_flight:
            raise LocalProtocolError(f"on_connection_lost() in state {self._state.value}")
        if self._refused is not None:
            return self._refuse(now, is_open=False)
        if self._switch.leg is Leg.PROBE:
            return self._resume_polling(now, reason, is_open=False)
        return self._lose(now, reason, is_open=False)

    @sticky
    @_shaped_and_audited
    def on_timer(self, now: float) -> list[Action]:
        """Wake-up at (or after) :meth:`next_deadline`: reconnect, replace a stalled
        connection, start the next poll, act on a stream that shows no byte, or release what
        the sequencer or the chunk assembler held too long. Early or spurious calls return no
        actions."""
        self._take_now(now)
        actions: list[Action] = []
        stale_at = self._stale_at()
        if stale_at is not None and now >= stale_at:
            self._is_stale = True
            assert self._fresh_at is not None
            actions.append(ReportStale(is_stale=True, since=self._fresh_at))
        delivered = self._metrics.messages_received
        actions += self._on_timer(now)
        if self._metrics.messages_received != delivered:  # the sequencer released some
            self._last_event_at = now
        return actions

    def _on_timer(self, now: float) -> list[Action]:
        """:meth:`on_timer`'s work by state."""
        actions: list[Action] = []
        match self._state:
            case ClientState.CLOSED:
                return actions
            case ClientState.RECONNECTING:
                self._pipeline.poll(now, actions)
                assert self._reconnect_at is not None
                if now < self._reconnect_at:
                    return actions
                actions.append(self._move(ClientInput.RECONNECT_DUE, now))
                self._reconnect_at = None
                self._switch.apply(LegInput.CONNECT, now)
                return actions + self._open(now)
            case ClientState.CONNECTING | ClientState.CONNECTED | ClientState.STREAMING:
                self._pipeline.poll(now, actions)
                return actions + self._on_live_timer(now)
            case ClientState.OFFLINE:
                self._pipeline.poll(now, actions)
                return actions
            case _:  # pragma: no cover
                raise AssertionError(self._state)

    # --- the platform's network signals -----------------------------------------------------

    @sticky
    @_shaped_and_audited
    def on_offline(self, now: float, reason: str = "the network is offline") -> list[Action]:
        """The platform says there is no network: drop the connection and try nothing until
        :meth:`on_online` (no backoff attempt is spent meanwhile; the state is ``OFFLINE``).

        A request that may not be sent again (see :ref:`resend-rule`) cannot come back
        from a lost stream: it ends as :meth:`on_connection_lost` would end it; a refused
        response whose body is being read is reported with what was read. Ignored when the
        session is closed or offline already.
        """
        self._take_now(now)
        self._note_signal(AuditKind.OFFLINE, now, reason)
        match self._state:
            case ClientState.CLOSED | ClientState.OFFLINE:
                return []
            case ClientState.RECONNECTING:
                self._reconnect_at = None
                return [self._move(ClientInput.OFFLINE, now, reason)]
        if self._refused is not None:  # the verdict stands: report it with what was read
            return self._refuse(now)
        actions, is_ended = self._drop_for_network(now, reason)
        if not is_ended:
            actions.append(self._move(ClientInput.OFFLINE, now, reason))
        return actions

    @sticky
    @_shaped_and_audited
    def on_online(self, now: float, reason: str = "the network is back") -> list[Action]:
        """The network is back: connect at once (from ``OFFLINE``, or from ``RECONNECTING``
        without waiting for the rest of the backoff delay). Ignored in other states."""
        self._take_now(now)
        self._note_signal(AuditKind.ONLINE, now, reason)
        if self._state not in (ClientState.OFFLINE, ClientState.RECONNECTING):
            return []
        return self._connect_now(ClientInput.ONLINE, now, reason)

    @sticky
    @_shaped_and_audited
    def on_network_changed(
        self, now: float, reason: str = "the network changed"
    ) -> list[Action]:
        """The device moved to another network (Wi-Fi to cellular ...): the connection may
        be dead without any error, so replace it at once, resuming from ``Last-Event-ID``,
        rather than wait for the stall timeout. From ``RECONNECTING`` it connects at once.

        A stream whose request may not be sent again (see :ref:`resend-rule`) is kept (the
        stall timeout still guards it), and so is a refused response whose body is being
        read. Ignored when closed or offline (:meth:`on_online` says when to try).
        """
        self._take_now(now)
        self._note_signal(AuditKind.NETWORK_CHANGED, now, reason)
        state = self._state
        if state is ClientState.RECONNECTING:
            return self._connect_now(ClientInput.NETWORK_CHANGED, now, reason)
        if state not in _LIVE or self._refused is not None:  # a refusal is final
            return []
        if self._switch.leg is Leg.STREAM and not self._may_resend():
            return []
        actions, is_ended = self._drop_for_network(now, reason)
        assert not is_ended  # a stream that may not be sent again was kept above
        return actions + self._connect_now(ClientInput.NETWORK_CHANGED, now, reason)

    @_shaped_and_audited
    def close(self, now: float, reason: str | None = None) -> list[Action]:
        """Close the session for good (the application's ``EventSource.close()``).

        Closing a closed session does nothing. A failed session (see above) can be closed.

        Args:
            now: The current monotonic time.
            reason: Why, for the ``CLOSED`` status (e.g. an adapter's time limit); ``None``
                when the application just closed it.
        """
        self._take_now(now)
        if self._state is ClientState.CLOSED:
            return []
        actions: list[Action] = []
        leg = self._switch.leg
        if leg.is_in_flight:
            actions.append(Disconnect(reason=reason or "closed by the application"))
        if self._state in _LIVE and not leg.is_idle:  # idle: an input failed half-way
            self._is_attempt_pending = False  # given up by the application, not failed
            self._end_connection(now)
        self._pipeline.flush(actions)  # deliver what the sequencer still holds
        actions.append(self._move(ClientInput.CLOSE, now, reason))
        return actions

    # --- internals ------------------------------------------------------------------------

    def _move(self, event: ClientInput, now: float, reason: str | None = None) -> ReportStatus:
        new = TRANSITIONS.get((self._state, event))
        if new is None:
            raise LocalProtocolError(
                f"{event.value!r} is not allowed in state {self._state.value!r}"
            )
        self._state = new
        return ReportStatus(state=new, since=now, reason=reason)

    def _note(self, actions: list[Action]) -> None:
        """Note an input's actions in the audit trail."""
        assert self._audit is not None
        leg = self._switch.leg
        transport = Transport.LONG_POLLING if leg is Leg.POLL else Transport.STREAMING
        self._audit.note_actions(actions, self._latest_now, self._last_event_id, transport)

    def _note_signal(self, kind: AuditKind, now: float, reason: str) -> None:
        """Note a network signal in the audit trail."""
        if self._audit is not None:
            self._audit.note_signal(kind, now, reason)

    def _gate(self, what: str, *, is_head_in: bool) -> Leg:
        """The leg in flight, when ``what`` may come now (before or after the head)."""
        leg = self._switch.leg
        if not leg.is_in_flight:
            raise LocalProtocolError(
                f"{what}() in state {self._state.value!r} with no connection in flight"
            )
        if self._is_head_in is not is_head_in:
            order = "before" if is_head_in else "after"
            raise LocalProtocolError(f"{what}() {order} on_response()")
        return leg

    def _open(self, now: float) -> list[Action]:
        """Connect the leg the switch just moved to (a stream, a poll, or a try)."""
        self._reset_connection()
        self._metrics.record_attempt()
        self._is_attempt_pending = True
        if self._switch.leg is Leg.POLL:
            return [Connect(request=self.long_poll_request())]
        if self._stall is not None:
            self._stall.start(now)  # bounds the wait for the response head too
        return [Connect(request=stream_request(self._config, self._url, self._last_event_id))]

    def _reset_connection(self) -> None:
        """Forget the connection in flight (not the logical connection it belongs to)."""
        if self._is_attempt_pending:  # it ends before its response was accepted
            self._is_attempt_pending = False
            self._metrics.record_failed_attempt()
        if self._stall is not None:
            self._stall.stop()
        self._is_head_in = False
        self._parser = None
        self._decompressor = None
        self._body = bytearray()
        self._refused = None

    def _end_connection(
        self, now: float, via: LegInput = LegInput.END, reason: str = ""
    ) -> ReportTransport | None:
        if self._connected_at is not None:
            self._metrics.record_connection(now - self._connected_at)
            self._connected_at = None
        self._reset_connection()
        return self._switch.apply(via, now, reason)

    def _read_refusal(
        self,
        reason: str,
        status: int,
        headers: Sequence[tuple[str | bytes, str | bytes]],
        now: float,
    ) -> list[Action]:
        """A refused response: read the first bytes of its body for the report, then fail
        the connection (at once when ``max_error_body_size`` is 0)."""
        self._refused = ReportFailure(
            cause=EndCause.REFUSED,
            reason=reason,
            status=status,
            headers=tuple((_text(name), _text(value)) for name, value in headers),
        )
        self._is_head_in = True
        if self._config.max_error_body_size == 0:
            return self._refuse(now)
        return []

    def _refusal_data(self, data: bytes, now: float) -> list[Action]:
        """Body bytes of a refused response: keep them up to the limit."""
        room = self._config.max_error_body_size - len(self._body)
        self._body += data[:room]
        if len(data) >= room:
            return self._refuse(now)
        return []

    def _refuse(
        self, now: float, reason: str | None = None, *, is_open: bool = True
    ) -> list[Action]:
        """Fail the connection: no reconnection. With a refused response read (its reason
        then comes from it), report the failure before the ``CLOSED`` status."""
        # A refused poll after answered ones closes from STREAMING (as the application would).
        event = ClientInput.REFUSED if self._state is ClientState.CONNECTING else ClientInput.CLOSE
        failure = self._refused
        actions: list[Action] = []
        if failure is not None:
            failure = attrs.evolve(failure, body=bytes(self._body))
            reason = failure.reason
        assert reason is not None
        if is_open:
            actions.append(Disconnect(reason=reason))
        self._end_connection(now)
        if failure is not None:
            self._pipeline.flush(actions)
            actions.append(failure)
        actions.append(self._move(event, now, reason))
        return actions

    def _stale_at(self) -> float | None:
        """When the data turns stale (``stale_after`` after the last byte), if it may."""
        stale_after = self._config.stale_after
        if stale_after is None or self._is_stale or self._state is ClientState.CLOSED:
            return None
        assert self._fresh_at is not None  # set by start()
        return self._fresh_at + stale_after

    def _freshen(self, now: float) -> list[Action]:
        """A body byte arrived: the data is fresh (say so when it was reported stale)."""
        self._fresh_at = now
        self._has_bytes = True
        if not self._is_stale:
            return []
        self._is_stale = False
        return [ReportStale(is_stale=False, since=now)]

    def _drop_for_network(self, now: float, reason: str) -> tuple[list[Action], bool]:
        """A live connection goes for a network signal, not a failure: no backoff attempt.
        A stream that may not be sent again ends the session (``NOT_RESUMABLE``).

        Returns:
            The actions, and whether the session ended.
        """
        leg = self._switch.leg
        actions: list[Action] = [Disconnect(reason=reason)] if leg.is_in_flight else []
        self._backoff.on_dropped(now)
        if not leg.is_idle:  # idle: an input failed half-way
            report = self._end_connection(now, LegInput.END, reason)
            if report is not None:
                actions.append(report)
        if leg is Leg.STREAM and not self._may_resend():
            return self._end_not_resumable(now, reason, actions), True
        if self._outage_since is None:
            self._outage_since = now
        return actions, False

    def _connect_now(self, via: ClientInput, now: float, reason: str) -> list[Action]:
        """Connect at once (a network signal): the next attempt without a delay."""
        actions = [self._move(via, now, reason)]
        self._reconnect_at = None
        self._switch.apply(LegInput.CONNECT, now)
        return actions + self._open(now)

    def _may_resend(self) -> bool:
        """Whether the stream's request may be sent again (``is_resend_allowed``'s rule)."""
        config = self._config
        return config.is_idempotent or config.is_resend_allowed or self._last_event_id != ""

    def _end_not_resumable(self, now: float, reason: str, actions: list[Action]) -> list[Action]:
        """Close: the stream is gone and its request may not be sent again."""
        why = (
            f"{reason}; a {self._config.method} request is not sent again without an"
            " event id to resume from (ClientConfig.is_resend_allowed is off)"
        )
        return self._end(now, ReportFailure(cause=EndCause.NOT_RESUMABLE, reason=why), actions)

    def _end(
        self, now: float, failure: ReportFailure, actions: list[Action]
    ) -> list[Action]:
        """Close for a failure: deliver what the pipeline holds, report, then ``CLOSED``."""
        self._pipeline.flush(actions)
        actions.append(failure)
        actions.append(self._move(ClientInput.GAVE_UP, now, failure.reason))
        return actions

    def _lose(
        self, now: float, reason: str, *, is_open: bool, via: LegInput = LegInput.END
    ) -> list[Action]:
        """The connection is gone or must go: schedule a reconnection through the backoff."""
        actions: list[Action] = [Disconnect(reason=reason)] if is_open else []
        is_stream = self._switch.leg is Leg.STREAM
        report = self._end_connection(now, via, reason)
        if report is not None:
            actions.append(report)
        if is_stream and not self._may_resend():
            return self._end_not_resumable(now, reason, actions)
        if self._outage_since is None:
            self._outage_since = now
        outcome = self._backoff.on_disconnected(now)
        if isinstance(outcome, GiveUp):
            why = f"{reason}; gave up ({outcome.reason.value}) after {outcome.attempts} attempts"
            return self._end(now, ReportFailure(cause=EndCause.GAVE_UP, reason=why), actions)
        self._reconnect_at = outcome.at
        actions.append(self._move(ClientInput.LOST, now, reason))
        return actions

    def _stream_data(
        self, data: bytes, now: float, actions: list[Action], stamp_clock: float | None
    ) -> list[Action]:
        parser = self._parser
        decompressor = self._decompressor
        assert parser is not None and decompressor is not None
        try:
            decoded = decompressor.decompress(data)
            if self._stall is not None:
                # Progress is a complete line of the decoded stream, not a byte.
                self._stall.received(decoded, now)
            items = parser.feed(decoded)
        except RemoteProtocolError as error:
            # Items parsed before a limit was crossed are still delivered.
            self._handle_items(getattr(error, "items", []), now, actions, stamp_clock)
            self._last_event_id = parser.last_event_id
            return actions + self._lose(now, f"bad stream: {error}", is_open=True)
        self._handle_items(items, now, actions, stamp_clock)
        self._last_event_id = parser.last_event_id
        return actions

    def _handle_items(
        self,
        items: Sequence[object],
        now: float,
        actions: list[Action],
        stamp_clock: float | None = None,
    ) -> None:
        """The parser's items: events go through the pipeline as one batch; a ``retry:``
        reaches the backoff (the order between the two does not matter: retry changes no
        delivery); with ``stamp_clock`` (the wall clock, when latency is measured) a
        send-time stamp comment gives one latency sample."""
        events: Sequence[Event]
        if set(map(type, items)) <= _ONLY_EVENTS:  # the common case: events and nothing else
            events = cast("Sequence[Event]", items)
        else:  # comments or retry fields among them
            events = [item for item in items if isinstance(item, Event)]
            record_latency = self._metrics.record_latency
            for item in items:
                kind = type(item)
                if kind is Comment:
                    if stamp_clock is not None:
                        sent_at = read_stamp(item.text)  # type: ignore[attr-defined]
                        if sent_at is not None:
                            record_latency(stamp_clock - sent_at)
                elif kind is Retry:
                    self._server_retry = item  # type: ignore[assignment]
                    self._backoff.on_retry(item)  # type: ignore[arg-type]
        if events:
            delivered = self._metrics.messages_received
            self._pipeline.push(events, now, actions)
            if self._metrics.messages_received != delivered:
                self._last_event_at = now

    def _on_live_timer(self, now: float) -> list[Action]:
        stall = self._stall
        is_stalled = stall is not None and stall.is_stalled(now)
        if self._refused is not None:  # the stall timeout bounds reading a refused body too
            return self._refuse(now) if is_stalled else []
        due = self._switch.due(now, is_stalled=is_stalled)
        match due:
            case None:
                return []
            case LegInput.POLL_DUE | LegInput.PROBE_DUE:
                self._switch.apply(due, now)
                return self._open(now)
            case LegInput.PROBE_FAILED:
                return self._resume_polling(now, "no body bytes", is_open=True)
            case LegInput.BLOCKED | LegInput.SWITCH:
                # A 200 stream showed no body byte in time: held back by an intermediary?
                assert self._connected_at is not None
                count = self._switch.blocked_in_a_row + 1
                reason = (
                    f"no body bytes within {now - self._connected_at:g} s of a 200 response"
                    f" ({count} in a row)"
                )
                return self._lose(now, reason, is_open=True, via=due)
            case LegInput.END if self._switch.leg is Leg.POLL:
                waited = now - self._switch.poll_started_at
                return self._lose(now, f"long poll unanswered after {waited:g} s", is_open=True)
            case LegInput.END:
                assert stall is not None
                reason = f"stalled: no complete line for {stall.timeout:g} s"
                return self._lose(now, reason, is_open=True)
            case _:  # pragma: no cover
                raise AssertionError(due)

    # --- long-polling -----------------------------------------------------------------------

    def _resume_polling(self, now: float, reason: str, *, is_open: bool) -> list[Action]:
        """A try at streaming failed: back to polling at once; try again later."""
        actions: list[Action] = (
            [Disconnect(reason=f"streaming still blocked: {reason}")] if is_open else []
        )
        self._switch.apply(LegInput.PROBE_FAILED, now)
        return actions + self._open(now)

    def _poll_data(self, data: bytes, now: float) -> list[Action]:
        assert self._decompressor is not None
        try:
            decoded = self._decompressor.decompress(data)
        except RemoteProtocolError as error:
            return self._lose(now, f"bad long-poll response: {error}", is_open=True)
        size = len(self._body) + len(decoded)
        maximum = self._config.max_response_size
        if size > maximum:
            exceeded = LimitExceeded("max_response_size", size, maximum)
            return self._lose(now, f"bad long-poll response: {exceeded}", is_open=True)
        self._body += decoded
        return []

    def _poll_eof(self, now: float) -> list[Action]:
        try:
            answer = LongPollResponse.decode(
                bytes(self._body),
                max_size=self._config.max_response_size,
                last_event_id=self._last_event_id,
            )
        except RemoteProtocolError as error:
            return self._lose(now, str(error), is_open=False)
        actions: list[Action] = []
        if self._state is ClientState.CONNECTED:
            actions.append(self._move(ClientInput.FIRST_BYTES, now))
        if answer.retry is not None:
            self._server_retry = Retry(milliseconds=answer.retry)
            self._backoff.on_retry(self._server_retry)
        if answer.gap is not None:
            self._pipeline.flush(actions)  # what came before the gap will not come
            self._metrics.record_gap(answer.gap.missed)  # None: an answer that does not say
            actions.append(answer.gap)
        self._handle_items(answer.events, now, actions)
        self._last_event_id = answer.last_event_id
        is_empty = not answer.events and answer.gap is None
        after = self._switch.after_answer(now, is_empty=is_empty)
        self._switch.apply(after, now)
        if after is LegInput.EARLY:
            self._reset_connection()
            return actions
        return actions + self._open(now)
