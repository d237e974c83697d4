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

The lifecycle is one table, :data:`TRANSITIONS`; the docs' state diagram is drawn from it.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Sequence
from urllib.parse import quote, urlencode, urlsplit

import attrs

from ._actions import (
    Action,
    ClientState,
    Connect,
    Disconnect,
    ReadyState,
    ReportStatus,
    ReportTransport,
    Request,
    Transport,
)
from ._backoff import Backoff, BackoffConfig, GiveUp
from ._chunking import ChunkConfig
from ._compression import DEFAULT_MAX_DECOMPRESSED_SIZE, Decompressor
from ._dedup import DedupConfig
from ._errors import (
    InvalidConfigError,
    LimitExceeded,
    LocalProtocolError,
    RemoteProtocolError,
)
from ._events import Event, Retry
from ._longpoll import DEFAULT_MAX_RESPONSE_SIZE, LONG_POLL_CONTENT_TYPE, LongPollResponse
from ._metrics import Metrics, MetricsRecorder
from ._parser import DEFAULT_MAX_EVENT_SIZE, DEFAULT_MAX_LINE_LENGTH, Parser
from ._pipeline import DeliveryPipeline
from ._sequencer import SequencerConfig
from ._timers import StallDetector
from ._types import RandomSource, header_value

__all__ = ["TRANSITIONS", "ClientConfig", "ClientInput", "ClientSession"]


class ClientInput(enum.Enum):
    """What can move a :class:`ClientSession` from one state to another."""

    START = "start"  # the application starts the session
    ACCEPTED = "accepted"  # 200 with text/event-stream
    FIRST_BYTES = "first bytes"  # the body's first bytes
    LOST = "lost"  # EOF, network error, stall, bad stream, retryable status
    REFUSED = "refused"  # 204, another status, wrong content type: fail, no reconnect
    GAVE_UP = "gave up"  # the backoff policy stops reconnecting
    RECONNECT_DUE = "reconnect due"  # the reconnection delay has passed
    CLOSE = "close"  # the application closes the session


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
    **{(state, _I.CLOSE): _S.CLOSED for state in (*_LIVE, _S.RECONNECTING)},
}

_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


def _check_token(what: str, value: object) -> None:
    if not isinstance(value, str) or not value or not set(value) <= _TOKEN_CHARS:
        raise InvalidConfigError(f"{what} must be a non-empty HTTP token, got {value!r}")


def _check_headers(value: object) -> tuple[tuple[str, str], ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise InvalidConfigError(f"headers must be (name, value) pairs, got {value!r}")
    pairs = []
    for pair in value:
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise InvalidConfigError(f"headers must be (name, value) pairs, got {pair!r}")
        name, field_value = pair
        _check_token("header name", name)
        if not isinstance(field_value, str) or any(c in field_value for c in "\r\n\x00"):
            raise InvalidConfigError(
                f"header {name} value must be a str without CR, LF or NUL, got {field_value!r}"
            )
        pairs.append((name, field_value))
    return tuple(pairs)


def _check_positive(
    name: str, value: object, *, allow_none: bool = False, allow_zero: bool = False
) -> None:
    if value is None and allow_none:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
        or (value == 0 and not allow_zero)
    ):
        bound = ">= 0" if allow_zero else "> 0"
        raise InvalidConfigError(f"{name} must be a finite number {bound}, got {value!r}")


def _check_url(name: str, url: object) -> None:
    if not isinstance(url, str):
        raise InvalidConfigError(f"{name} must be a str, got {url!r}")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidConfigError(f"{name} must be an absolute http(s) URL, got {url!r}")
    if any(c in url for c in "\r\n\x00 "):
        raise InvalidConfigError(f"{name} must not contain spaces or CR/LF/NUL: {url!r}")


@attrs.frozen(kw_only=True)
class ClientConfig:
    """Every knob of a :class:`ClientSession`, validated on construction.

    Attributes:
        url: Absolute ``http://`` or ``https://`` URL of the event stream.
        method: Request method; ``"GET"`` as EventSource, ``"POST"`` with a body for APIs
            that need one.
        body: Request body, or ``None``. Sent again on every reconnection.
        headers: Extra request header fields. A name that matches a default field
            (``Accept``, ``Cache-Control``, ``Accept-Encoding``) replaces it.
        last_event_id: The last event ID to resume from on the first connection.
        retry_statuses: Response statuses that reconnect (with backoff) instead of failing
            for good. Empty by default, as the spec fails the connection on any status but
            200; ``{502, 503, 504}`` survives server deploys behind a gateway.
        cache_bust_param: When set, a query parameter of this name with a per-session random
            value is added to the URL, for proxies that cache despite ``no-cache``.
        is_gzip_accepted: Send ``Accept-Encoding: gzip`` and decode gzip bodies.
        max_decompressed_size: Most bytes one body chunk may decode to.
        stall_timeout: Seconds without progress after which a connection is taken for
            dead and replaced. Progress is a complete line of the decoded body (after gzip):
            an event's field line, a comment such as a heartbeat, or the blank line ending
            an event; within one long line, every 4 KiB of it
            (:attr:`~sse_core.state.StallDetector.PROGRESS_BYTES`).
            Bytes alone are not progress, so a server dripping them is replaced too. The
            clock starts at the connect, so it also bounds the wait for the response head
            and the first line. ``None`` disables it.
        backoff: The reconnection policy.
        dedup: Limits of the window that drops replayed events by id; ``None`` disables it.
        sequencer: When set, events are delivered in the order of the sequence number in
            their id (``<epoch>-<n>`` or ``<n>``, as a :class:`~sse_core.state.ReplayLog` assigns
            them), holes are waited for and then reported (:class:`~sse_core.ReportGap`).
        chunking: When set, chunk events (:func:`~sse_core.state.split_message`) are assembled into
            whole messages; a message that cannot be is reported
            (:class:`~sse_core.ReportDropped`).
        max_line_length: The parser's line limit.
        max_event_size: The parser's event data limit.
        long_poll_url: Absolute ``http://`` or ``https://`` URL of the server's long-polling
            endpoint (:class:`~sse_core.LongPollSession`). ``None`` (the default) turns the
            fallback off, and with it every knob below.
        initial_transport: The :class:`~sse_core.Transport` to start with;
            ``LONG_POLLING`` needs ``long_poll_url``.
        first_byte_timeout: Seconds after a 200 ``text/event-stream`` response within which
            at least one body byte (padding and heartbeats count) must arrive; otherwise the
            stream looks held back by a buffering intermediary. A byte is enough here (such an
            intermediary holds back everything); bytes that never end a line are left to the
            stall timeout. The stall timeout, when it runs out first on such a response,
            counts the same.
        switch_after: How many such responses in a row switch to long-polling. Body bytes on
            a stream reset the count; failures before a response neither count nor reset.
        retry_streaming_after: While long-polling, seconds after which streaming is tried
            again (between two polls); ``None``: never. A try that shows the symptom once
            goes back to polling at once.
        long_poll_timeout: How long each poll asks the server to hold it (the ``timeout``
            query parameter), in seconds; 0 asks for an immediate answer. The client gives
            up on a poll after ``long_poll_timeout + stall_timeout`` (never without a stall
            timeout).
        min_poll_interval: An empty answer that came sooner than this after its poll started
            (a server or proxy that does not hold) delays the next poll until then, so that
            such a server is not polled in a loop. Answers with events poll again at once.
        max_response_size: Most bytes of one long-poll answer (after decompression); a
            larger answer is a bad response: the connection is replaced with backoff.
    """

    url: str
    method: str = "GET"
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_check_headers)
    last_event_id: str = ""
    retry_statuses: frozenset[int] = frozenset()
    cache_bust_param: str | None = None
    is_gzip_accepted: bool = True
    max_decompressed_size: int = DEFAULT_MAX_DECOMPRESSED_SIZE
    stall_timeout: float | None = 45.0
    backoff: BackoffConfig = attrs.field(factory=BackoffConfig)
    dedup: DedupConfig | None = attrs.field(factory=DedupConfig)
    sequencer: SequencerConfig | None = None
    chunking: ChunkConfig | None = None
    max_line_length: int = DEFAULT_MAX_LINE_LENGTH
    max_event_size: int = DEFAULT_MAX_EVENT_SIZE
    long_poll_url: str | None = None
    initial_transport: Transport = Transport.STREAMING
    first_byte_timeout: float = 10.0
    switch_after: int = 2
    retry_streaming_after: float | None = 300.0
    long_poll_timeout: float = 25.0
    min_poll_interval: float = 1.0
    max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE

    def __attrs_post_init__(self) -> None:
        _check_url("url", self.url)
        _check_token("method", self.method)
        if self.body is not None and not isinstance(self.body, bytes):
            raise InvalidConfigError(f"body must be bytes or None, got {type(self.body).__name__}")
        if not isinstance(self.last_event_id, str) or any(
            c in self.last_event_id for c in "\r\n\x00"
        ):
            raise InvalidConfigError(
                f"last_event_id must be a str without CR, LF or NUL, got {self.last_event_id!r}"
            )
        statuses = self.retry_statuses
        if not isinstance(statuses, frozenset) or not all(
            type(s) is int and 100 <= s <= 599 and s != 200 for s in statuses
        ):
            raise InvalidConfigError(
                "retry_statuses must be a frozenset of HTTP statuses other than 200, "
                f"got {statuses!r}"
            )
        if self.cache_bust_param is not None:
            _check_token("cache_bust_param", self.cache_bust_param)
        _check_positive("stall_timeout", self.stall_timeout, allow_none=True)
        for name in ("max_decompressed_size", "max_line_length", "max_event_size"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise InvalidConfigError(f"{name} must be a positive int, got {value!r}")
        if not isinstance(self.backoff, BackoffConfig):
            raise InvalidConfigError(f"backoff must be a BackoffConfig, got {self.backoff!r}")
        if self.dedup is not None and not isinstance(self.dedup, DedupConfig):
            raise InvalidConfigError(f"dedup must be a DedupConfig or None, got {self.dedup!r}")
        if self.sequencer is not None and not isinstance(self.sequencer, SequencerConfig):
            raise InvalidConfigError(
                f"sequencer must be a SequencerConfig or None, got {self.sequencer!r}"
            )
        if self.chunking is not None and not isinstance(self.chunking, ChunkConfig):
            raise InvalidConfigError(
                f"chunking must be a ChunkConfig or None, got {self.chunking!r}"
            )
        self._check_long_polling()

    def _check_long_polling(self) -> None:
        if self.long_poll_url is not None:
            _check_url("long_poll_url", self.long_poll_url)
        if not isinstance(self.initial_transport, Transport):
            raise InvalidConfigError(
                f"initial_transport must be a Transport, got {self.initial_transport!r}"
            )
        if self.initial_transport is Transport.LONG_POLLING and self.long_poll_url is None:
            raise InvalidConfigError("initial_transport LONG_POLLING needs a long_poll_url")
        _check_positive("first_byte_timeout", self.first_byte_timeout)
        _check_positive("retry_streaming_after", self.retry_streaming_after, allow_none=True)
        _check_positive("long_poll_timeout", self.long_poll_timeout, allow_zero=True)
        _check_positive("min_poll_interval", self.min_poll_interval)
        for name in ("switch_after", "max_response_size"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise InvalidConfigError(f"{name} must be a positive int, got {value!r}")



def _is_event_stream(content_type: str | None) -> bool:
    """Whether a Content-Type's MIME type essence is ``text/event-stream``."""
    return _essence(content_type) == "text/event-stream"


def _essence(content_type: str | None) -> str | None:
    if content_type is None:
        return None
    return content_type.split(";", 1)[0].strip().lower()


class _Leg(enum.Enum):
    """What the connection in flight is (``None`` when there is none)."""

    STREAM = "stream"  # the event stream
    POLL = "poll"  # one long-poll request
    PROBE = "probe"  # a stream tried again while long-polling (state stays STREAMING)


def _earliest(*instants: float | None) -> float | None:
    present = [instant for instant in instants if instant is not None]
    return min(present) if present else None


class ClientSession:
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

    Args:
        config: The session's configuration.
        rng: Randomness for backoff jitter and the cache-busting value (``random.Random()``
            in an adapter, a seeded one in tests).

    Raises:
        InvalidConfigError: ``config`` is not a :class:`ClientConfig`.
    """

    def __init__(self, config: ClientConfig, *, rng: RandomSource) -> None:
        if not isinstance(config, ClientConfig):
            raise InvalidConfigError(f"config must be a ClientConfig, got {config!r}")
        self._config = config
        self._state = ClientState.CLOSED
        self._rng = rng
        self._backoff = Backoff(config.backoff, rng=rng)
        self._server_retry: Retry | None = None
        self._stall = StallDetector(config.stall_timeout) if config.stall_timeout else None
        self._metrics = MetricsRecorder()
        self._pipeline = DeliveryPipeline(
            metrics=self._metrics, dedup=config.dedup, sequencer=config.sequencer,
            chunking=config.chunking,
        )
        self._last_event_id = config.last_event_id
        self._parser: Parser | None = None
        self._decompressor: Decompressor | None = None
        self._reconnect_at: float | None = None
        self._connected_at: float | None = None
        self._outage_since: float | None = None
        self._url = config.url
        self._cache_bust: tuple[str, str] | None = None
        if config.cache_bust_param is not None:
            token = format(int(rng.random() * 2**52), "x")
            self._cache_bust = (config.cache_bust_param, token)
            separator = "&" if urlsplit(config.url).query else "?"
            fragment_at = self._url.find("#")
            base = self._url if fragment_at < 0 else self._url[:fragment_at]
            self._url = f"{base}{separator}{config.cache_bust_param}={token}"
        # Long-polling fallback (all idle while long_poll_url is None).
        self._transport = config.initial_transport
        self._leg: _Leg | None = None  # the connection in flight
        self._is_head_in = False  # a POLL or PROBE leg's response head was accepted
        self._body = bytearray()  # a poll's answer so far, at most max_response_size
        self._poll_started_at = 0.0
        self._poll_deadline: float | None = None  # give up on the poll in flight
        self._poll_at: float | None = None  # start the next poll (none in flight)
        self._first_byte_deadline: float | None = None  # a 200 stream must show a byte
        self._blocked_in_a_row = 0
        self._probe_at: float | None = None  # try streaming again (while polling)

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
        return self._transport

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
        an outage).
        """
        return self._metrics.snapshot()

    @property
    def reconnection_time(self) -> float:
        """The base reconnection delay in seconds (the server's ``retry:`` once sent)."""
        return self._backoff.reconnection_time

    def request(self) -> Request:
        """The request the next :class:`~sse_core.Connect` will carry.

        That is the stream's request, or while :attr:`transport` is ``LONG_POLLING`` the
        next poll's (:meth:`long_poll_request`).
        """
        if self._transport is Transport.LONG_POLLING:
            return self.long_poll_request()
        return self._stream_request()

    def long_poll_request(self) -> Request:
        """The request of the next poll.

        ``GET <long_poll_url>?lastEventId=<last event ID>&timeout=<long_poll_timeout>``
        (``lastEventId`` omitted while empty, the cache-busting parameter added when set),
        with ``Accept: application/json``, ``Cache-Control: no-cache``, the user's headers
        (but ``Accept``) and ``Accept-Encoding: gzip`` when accepted.

        Raises:
            LocalProtocolError: ``long_poll_url`` is not set.
        """
        config = self._config
        if config.long_poll_url is None:
            raise LocalProtocolError("long_poll_request() without a long_poll_url")
        params = [("lastEventId", self._last_event_id)] if self._last_event_id else []
        params.append(("timeout", format(config.long_poll_timeout, "g")))
        if self._cache_bust is not None:
            params.append(self._cache_bust)
        headers: dict[str, tuple[str, str]] = {
            "accept": ("Accept", LONG_POLL_CONTENT_TYPE),
            "cache-control": ("Cache-Control", "no-cache"),
        }
        if config.is_gzip_accepted:
            headers["accept-encoding"] = ("Accept-Encoding", "gzip")
        for name, value in config.headers:
            if name.lower() != "accept":
                headers[name.lower()] = (name, value)
        return Request(
            method="GET",
            url=self._with_query(config.long_poll_url, params),
            headers=tuple(headers.values()),
        )

    def next_deadline(self) -> float | None:
        """When to call :meth:`on_timer` next, or ``None`` when nothing is scheduled."""
        if self._state is ClientState.CLOSED:
            return None
        return _earliest(self._session_deadline(), self._pipeline.next_deadline())

    def _session_deadline(self) -> float | None:
        match self._state:
            case ClientState.RECONNECTING:
                return self._reconnect_at
            case ClientState.CONNECTING | ClientState.CONNECTED | ClientState.STREAMING:
                match self._leg:
                    case None:  # between two polls
                        return self._poll_at
                    case _Leg.POLL:
                        return self._poll_deadline
                    case _Leg.STREAM | _Leg.PROBE:
                        stall = self._stall.next_deadline() if self._stall is not None else None
                        return _earliest(stall, self._first_byte_deadline)
                    case _:  # pragma: no cover
                        raise AssertionError(self._leg)
            case ClientState.CLOSED:
                return None
            case _:  # pragma: no cover
                raise AssertionError(self._state)

    # --- inputs ---------------------------------------------------------------------------

    def start(self, now: float) -> list[Action]:
        """Open the stream: the first connection (or the first poll, when long-polling).

        Raises:
            LocalProtocolError: the session is not closed.
        """
        actions = [self._move(ClientInput.START, now)]
        # A fresh schedule for a fresh start; the server's reconnection time is kept, as it
        # belongs to the stream (an EventSource keeps it for its whole life).
        self._backoff = Backoff(self._config.backoff, rng=self._rng)
        if self._server_retry is not None:
            self._backoff.on_retry(self._server_retry)
        if self._transport is Transport.LONG_POLLING:
            self._schedule_probe(now)
        return actions + self._connect(now)

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
        if self._leg in (_Leg.POLL, _Leg.PROBE):
            return self._on_leg_response(status, headers, now)
        self._expect(ClientState.CONNECTING, "on_response")
        verdict = self._judge(status, headers, is_poll=False)
        if isinstance(verdict, Decompressor):
            return self._accept(now, verdict)
        return self._fail(now, verdict)

    def on_data(self, data: bytes, now: float) -> list[Action]:
        """Body bytes arrived.

        Returns:
            The events to deliver (duplicates by id dropped), gap reports, a status change
            on the first bytes, and -- when the stream broke a limit or is badly encoded --
            a disconnect and reconnection. While long-polling, nothing until :meth:`on_eof`
            (or a disconnect and reconnection when the answer grows past
            ``max_response_size``).

        Raises:
            LocalProtocolError: no stream is open.
        """
        if self._leg is _Leg.POLL:
            return self._on_poll_data(data, now)
        if self._leg is _Leg.PROBE:
            if not self._is_head_in:
                raise LocalProtocolError("on_data() before on_response()")
            # Bytes got through: streaming works again on this network.
            self._leg = _Leg.STREAM
            self._transport = Transport.STREAMING
            self._first_byte_deadline = None
            self._blocked_in_a_row = 0
            self._probe_at = None
            report = ReportTransport(
                transport=Transport.STREAMING, since=now, reason="the stream delivers bytes"
            )
            return [report, *self._stream_data(data, now, [])]
        if self._state is ClientState.CONNECTED:
            self._expect_stream("on_data")
            self._first_byte_deadline = None
            self._blocked_in_a_row = 0
            actions: list[Action] = [self._move(ClientInput.FIRST_BYTES, now)]
        else:
            self._expect(ClientState.STREAMING, "on_data")
            self._expect_stream("on_data")
            actions = []
        return self._stream_data(data, now, actions)

    def on_eof(self, now: float) -> list[Action]:
        """The response body ended. The spec reconnects ("reestablish the connection").

        While long-polling the answer is complete: its events are delivered and the next poll
        is asked for (at once, or at :meth:`next_deadline` after a quick empty answer).

        Raises:
            LocalProtocolError: no stream is open.
        """
        if self._leg is _Leg.POLL:
            return self._on_poll_eof(now)
        if self._leg is _Leg.PROBE:
            if not self._is_head_in:
                raise LocalProtocolError("on_eof() before on_response()")
            return self._resume_polling(now, "stream ended before its first byte", is_open=False)
        if self._state is not ClientState.CONNECTED:
            self._expect(ClientState.STREAMING, "on_eof")
        self._expect_stream("on_eof")
        assert self._parser is not None
        end = self._parser.feed_eof()
        reason = "stream ended mid-event" if end.is_truncated else "stream ended"
        return self._lose(now, reason, is_open=False)

    def on_connection_lost(self, now: float, reason: str = "connection lost") -> list[Action]:
        """The connection failed (refused, reset, TLS error, timeout in the adapter...).

        Raises:
            LocalProtocolError: no connection is being made or open.
        """
        if self._state not in _LIVE or self._leg is None:
            raise LocalProtocolError(f"on_connection_lost() in state {self._state.value}")
        if self._leg is _Leg.PROBE:
            return self._resume_polling(now, reason, is_open=False)
        if self._parser is not None:
            self._parser = None  # whatever it held is discarded, as at end of file
        return self._lose(now, reason, is_open=False)

    def on_timer(self, now: float) -> list[Action]:
        """Wake-up at (or after) :meth:`next_deadline`: reconnect, replace a stalled
        connection, start the next poll, act on a stream that shows no byte, or release what
        the sequencer or the chunk assembler held too long. Early or spurious calls return no
        actions."""
        actions: list[Action] = []
        if self._state is not ClientState.CLOSED:
            self._pipeline.poll(now, actions)
        return actions + self._on_session_timer(now)

    def _on_session_timer(self, now: float) -> list[Action]:
        match self._state:
            case ClientState.RECONNECTING:
                assert self._reconnect_at is not None
                if now < self._reconnect_at:
                    return []
                return [self._move(ClientInput.RECONNECT_DUE, now), *self._connect(now)]
            case ClientState.CONNECTING | ClientState.CONNECTED | ClientState.STREAMING:
                return self._on_live_timer(now)
            case ClientState.CLOSED:
                return []
            case _:  # pragma: no cover
                raise AssertionError(self._state)

    def close(self, now: float) -> list[Action]:
        """Close the session for good (the application's ``EventSource.close()``).

        Closing a closed session does nothing.
        """
        if self._state is ClientState.CLOSED:
            return []
        actions: list[Action] = []
        if self._state in _LIVE:
            if self._leg is not None:
                actions.append(Disconnect(reason="closed by the application"))
            self._end_connection(now)
        self._pipeline.flush(actions)  # deliver what the sequencer still holds
        actions.append(self._move(ClientInput.CLOSE, now))
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

    def _expect(self, state: ClientState, what: str) -> None:
        if self._state is not state:
            raise LocalProtocolError(f"{what}() in state {self._state.value!r}")

    def _expect_stream(self, what: str) -> None:
        if self._leg is not _Leg.STREAM:
            raise LocalProtocolError(f"{what}() with no connection in flight")

    @staticmethod
    def _with_query(url: str, params: list[tuple[str, str]]) -> str:
        if not params:
            return url
        fragment_at = url.find("#")
        base = url if fragment_at < 0 else url[:fragment_at]
        separator = "&" if urlsplit(url).query else "?"
        return base + separator + urlencode(params, quote_via=quote)

    def _stream_request(self) -> Request:
        config = self._config
        headers: dict[str, tuple[str, str]] = {
            "accept": ("Accept", "text/event-stream"),
            "cache-control": ("Cache-Control", "no-cache"),
        }
        if config.is_gzip_accepted:
            headers["accept-encoding"] = ("Accept-Encoding", "gzip")
        for name, value in config.headers:
            headers[name.lower()] = (name, value)
        if self._last_event_id:
            # "If the event source's last event ID string is not the empty string, set
            # `Last-Event-ID`/last event ID string, encoded as UTF-8."
            headers["last-event-id"] = ("Last-Event-ID", self._last_event_id)
        return Request(
            method=config.method, url=self._url, headers=tuple(headers.values()),
            body=config.body,
        )

    def _judge(
        self, status: int, headers: Sequence[tuple[str | bytes, str | bytes]], *, is_poll: bool
    ) -> Decompressor | tuple[ClientInput, str]:
        """Accept a response head (its decoder) or say why not (``LOST`` or ``REFUSED``)."""
        content_type = header_value(headers, "content-type")
        if is_poll:
            is_expected = _essence(content_type) == LONG_POLL_CONTENT_TYPE
        else:
            is_expected = _is_event_stream(content_type)
        if status == 200 and is_expected:
            encoding = header_value(headers, "content-encoding") or ""
            try:
                return Decompressor(encoding, max_output=self._config.max_decompressed_size)
            except InvalidConfigError:
                return ClientInput.REFUSED, f"unsupported Content-Encoding {encoding!r}"
        if status in self._config.retry_statuses:
            return ClientInput.LOST, f"HTTP {status}, retrying"
        if status == 204:
            return ClientInput.REFUSED, "HTTP 204 No Content: the server asked not to reconnect"
        if status == 200:
            return ClientInput.REFUSED, f"wrong Content-Type {content_type!r}"
        return ClientInput.REFUSED, f"HTTP {status}"

    def _fail(self, now: float, verdict: tuple[ClientInput, str]) -> list[Action]:
        event, reason = verdict
        if event is ClientInput.LOST:
            return self._lose(now, reason, is_open=True)
        return self._refuse(now, reason)

    def _connect(self, now: float) -> list[Action]:
        self._reconnect_at = None
        if self._transport is Transport.LONG_POLLING:
            return self._start_poll(now)
        self._metrics.record_attempt()
        self._leg = _Leg.STREAM
        if self._stall is not None:
            self._stall.start(now)  # bounds the wait for the response head too
        return [Connect(request=self._stream_request())]

    def _accept(self, now: float, decompressor: Decompressor) -> list[Action]:
        actions: list[Action] = [self._move(ClientInput.ACCEPTED, now)]
        if self._leg is _Leg.STREAM:
            self._parser = Parser(
                max_line_length=self._config.max_line_length,
                max_event_size=self._config.max_event_size,
                last_event_id=self._last_event_id,
            )
            if self._config.long_poll_url is not None:
                self._first_byte_deadline = now + self._config.first_byte_timeout
        self._decompressor = decompressor
        self._connected_at = now
        self._backoff.on_connected(now)
        if self._outage_since is not None:
            self._metrics.record_reconnection(now - self._outage_since)
            self._outage_since = None
        return actions

    def _refuse(self, now: float, reason: str) -> list[Action]:
        """Fail the connection: no reconnection."""
        # A refused poll after answered ones closes from STREAMING (as the application would).
        event = ClientInput.REFUSED if self._state is ClientState.CONNECTING else ClientInput.CLOSE
        self._end_connection(now)
        return [Disconnect(reason=reason), self._move(event, now, reason)]

    def _clear_leg(self) -> None:
        """Forget the connection in flight (not the logical connection it belongs to)."""
        if self._stall is not None:
            self._stall.stop()
        self._leg = None
        self._parser = None
        self._decompressor = None
        self._is_head_in = False
        self._body = bytearray()
        self._poll_deadline = None
        self._poll_at = None
        self._first_byte_deadline = None

    def _end_connection(self, now: float) -> None:
        if self._connected_at is not None:
            self._metrics.record_connection(now - self._connected_at)
            self._connected_at = None
        self._clear_leg()

    def _lose(self, now: float, reason: str, *, is_open: bool) -> list[Action]:
        """The connection is gone or must go: schedule a reconnection through the backoff."""
        actions: list[Action] = [Disconnect(reason=reason)] if is_open else []
        self._end_connection(now)
        if self._outage_since is None:
            self._outage_since = now
        outcome = self._backoff.on_disconnected(now)
        if isinstance(outcome, GiveUp):
            why = f"{reason}; gave up ({outcome.reason.value}) after {outcome.attempts} attempts"
            actions.append(self._move(ClientInput.GAVE_UP, now, why))
            return actions
        self._reconnect_at = outcome.at
        actions.append(self._move(ClientInput.LOST, now, reason))
        return actions

    def _stream_data(self, data: bytes, now: float, actions: list[Action]) -> list[Action]:
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
            self._handle_items(getattr(error, "items", []), now, actions)
            self._last_event_id = parser.last_event_id
            return actions + self._lose(now, f"bad stream: {error}", is_open=True)
        self._handle_items(items, now, actions)
        self._last_event_id = parser.last_event_id
        return actions

    def _handle_items(self, items: Iterable[object], now: float, actions: list[Action]) -> None:
        pipeline = self._pipeline
        for item in items:
            if isinstance(item, Event):
                pipeline.push(item, now, actions)
            elif isinstance(item, Retry):
                self._server_retry = item
                self._backoff.on_retry(item)

    # --- long-polling -----------------------------------------------------------------------

    def _schedule_probe(self, now: float) -> None:
        after = self._config.retry_streaming_after
        self._probe_at = None if after is None else now + after

    def _start_poll(self, now: float) -> list[Action]:
        self._clear_leg()
        self._metrics.record_attempt()
        self._leg = _Leg.POLL
        self._poll_started_at = now
        stall_timeout = self._config.stall_timeout
        if stall_timeout is not None:
            self._poll_deadline = now + self._config.long_poll_timeout + stall_timeout
        return [Connect(request=self.long_poll_request())]

    def _start_probe(self, now: float) -> list[Action]:
        self._clear_leg()
        self._metrics.record_attempt()
        self._leg = _Leg.PROBE
        self._probe_at = None
        if self._stall is not None:
            self._stall.start(now)
        return [Connect(request=self._stream_request())]

    def _next_poll(self, now: float, *, is_empty: bool) -> list[Action]:
        """After an answered poll: try streaming again when due, else poll again."""
        if self._probe_at is not None and now >= self._probe_at:
            return self._start_probe(now)
        earliest = self._poll_started_at + self._config.min_poll_interval
        if is_empty and now < earliest:
            self._clear_leg()
            self._poll_at = earliest
            return []
        return self._start_poll(now)

    def _resume_polling(self, now: float, reason: str, *, is_open: bool) -> list[Action]:
        """A try at streaming failed: back to polling at once; try again later."""
        actions: list[Action] = (
            [Disconnect(reason=f"streaming still blocked: {reason}")] if is_open else []
        )
        self._schedule_probe(now)
        return actions + self._start_poll(now)

    def _on_leg_response(
        self, status: int, headers: Sequence[tuple[str | bytes, str | bytes]], now: float
    ) -> list[Action]:
        is_poll = self._leg is _Leg.POLL
        if self._is_head_in or self._state not in (ClientState.CONNECTING, ClientState.STREAMING):
            raise LocalProtocolError(f"on_response() in state {self._state.value!r}")
        verdict = self._judge(status, headers, is_poll=is_poll)
        if not is_poll:  # a probe: anything but a stream means "keep polling"
            if not isinstance(verdict, Decompressor):
                return self._resume_polling(now, verdict[1], is_open=True)
            self._is_head_in = True
            self._decompressor = verdict
            self._parser = Parser(
                max_line_length=self._config.max_line_length,
                max_event_size=self._config.max_event_size,
                last_event_id=self._last_event_id,
            )
            self._first_byte_deadline = now + self._config.first_byte_timeout
            return []
        if not isinstance(verdict, Decompressor):
            return self._fail(now, verdict)
        self._is_head_in = True
        if self._state is ClientState.CONNECTING:
            return self._accept(now, verdict)
        self._decompressor = verdict
        return []

    def _on_poll_data(self, data: bytes, now: float) -> list[Action]:
        decompressor = self._decompressor
        if not self._is_head_in or decompressor is None:
            raise LocalProtocolError("on_data() before on_response()")
        try:
            decoded = decompressor.decompress(data)
        except RemoteProtocolError as error:
            return self._lose(now, f"bad long-poll response: {error}", is_open=True)
        size = len(self._body) + len(decoded)
        maximum = self._config.max_response_size
        if size > maximum:
            exceeded = LimitExceeded("max_response_size", size, maximum)
            return self._lose(now, f"bad long-poll response: {exceeded}", is_open=True)
        self._body += decoded
        return []

    def _on_poll_eof(self, now: float) -> list[Action]:
        if not self._is_head_in:
            raise LocalProtocolError("on_eof() before on_response()")
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
            self._metrics.record_gap(0)
            actions.append(answer.gap)
        self._handle_items(answer.events, now, actions)
        self._last_event_id = answer.last_event_id
        is_empty = not answer.events and answer.gap is None
        return actions + self._next_poll(now, is_empty=is_empty)

    def _on_live_timer(self, now: float) -> list[Action]:
        stall = self._stall
        is_stalled = stall is not None and stall.is_stalled(now)
        match self._leg:
            case None:  # between two polls
                if self._poll_at is not None and now >= self._poll_at:
                    return self._next_poll(now, is_empty=False)
                return []
            case _Leg.POLL:
                if self._poll_deadline is not None and now >= self._poll_deadline:
                    waited = now - self._poll_started_at
                    return self._lose(now, f"long poll unanswered after {waited:g} s",
                                      is_open=True)
                return []
            case _Leg.PROBE:
                deadline = self._first_byte_deadline
                if is_stalled or (deadline is not None and now >= deadline):
                    return self._resume_polling(now, "no body bytes", is_open=True)
                return []
            case _Leg.STREAM:
                deadline = self._first_byte_deadline
                if deadline is not None and (is_stalled or now >= deadline):
                    return self._blocked(now)
                if is_stalled:
                    assert stall is not None
                    return self._lose(
                        now, f"stalled: no complete line for {stall.timeout:g} s", is_open=True
                    )
                return []
            case _:  # pragma: no cover
                raise AssertionError(self._leg)

    def _blocked(self, now: float) -> list[Action]:
        """A 200 stream showed no body byte in time: held back by an intermediary?"""
        assert self._connected_at is not None
        self._blocked_in_a_row += 1
        count = self._blocked_in_a_row
        reason = (
            f"no body bytes within {now - self._connected_at:g} s of a 200 response"
            f" ({count} in a row)"
        )
        actions = self._lose(now, reason, is_open=True)
        if count < self._config.switch_after:
            return actions
        self._blocked_in_a_row = 0
        self._transport = Transport.LONG_POLLING
        self._schedule_probe(now)
        report = ReportTransport(transport=Transport.LONG_POLLING, since=now, reason=reason)
        return [actions[0], report, *actions[1:]]
