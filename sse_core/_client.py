"""The client session: an EventSource without I/O (floor 3).

:class:`ClientSession` turns connection events, body bytes and ``now`` into actions
(:mod:`sse_core._actions`): which request to make, which events to deliver, when to
disconnect, and -- through :meth:`ClientSession.next_deadline` -- when to be woken. It follows
WHATWG HTML 9.2 "Server-sent events" (processing the response, reestablishing the connection,
``Last-Event-ID``) and adds what the spec leaves out: backoff with jitter, stall detection,
dedup of replayed events, optional retry on chosen statuses, bounded decompression.

The lifecycle is one table, :data:`TRANSITIONS`; the docs' state diagram is drawn from it.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

import attrs

from ._actions import (
    GAP_EVENT_TYPE,
    Action,
    ClientState,
    Connect,
    Deliver,
    Disconnect,
    ReadyState,
    ReportGap,
    ReportStatus,
    Request,
)
from ._backoff import Backoff, BackoffConfig, GiveUp
from ._compression import DEFAULT_MAX_DECOMPRESSED_SIZE, Decompressor
from ._dedup import DedupConfig, DedupWindow
from ._errors import InvalidConfigError, LocalProtocolError, RemoteProtocolError
from ._events import Event, Retry
from ._metrics import Metrics
from ._parser import DEFAULT_MAX_EVENT_SIZE, DEFAULT_MAX_LINE_LENGTH, Parser
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


def _check_positive(name: str, value: object, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise InvalidConfigError(f"{name} must be a finite number > 0, got {value!r}")


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
        stall_timeout: Seconds without a byte (heartbeats count) after which a connection is
            taken for dead and replaced; also bounds the wait for the response head.
            ``None`` disables it.
        backoff: The reconnection policy.
        dedup: Limits of the window that drops replayed events by id; ``None`` disables it.
        max_line_length: The parser's line limit.
        max_event_size: The parser's event data limit.
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
    max_line_length: int = DEFAULT_MAX_LINE_LENGTH
    max_event_size: int = DEFAULT_MAX_EVENT_SIZE

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.url, str):
            raise InvalidConfigError(f"url must be a str, got {self.url!r}")
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidConfigError(f"url must be an absolute http(s) URL, got {self.url!r}")
        if any(c in self.url for c in "\r\n\x00 "):
            raise InvalidConfigError(f"url must not contain spaces or CR/LF/NUL: {self.url!r}")
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



def _is_event_stream(content_type: str | None) -> bool:
    """Whether a Content-Type's MIME type essence is ``text/event-stream``."""
    if content_type is None:
        return False
    essence = content_type.split(";", 1)[0].strip().lower()
    return essence == "text/event-stream"


class ClientSession:
    """A sans-IO EventSource: decides everything, does no I/O.

    Call :meth:`start`, then feed what happens on the connection (:meth:`on_response`,
    :meth:`on_data`, :meth:`on_eof`, :meth:`on_connection_lost`) and wake it at
    :meth:`next_deadline` with :meth:`on_timer`. Each input returns the actions to carry out,
    in order. :meth:`close` ends it for good.

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
        self._dedup = DedupWindow(config.dedup) if config.dedup is not None else None
        self._metrics = Metrics()
        self._last_event_id = config.last_event_id
        self._parser: Parser | None = None
        self._decompressor: Decompressor | None = None
        self._reconnect_at: float | None = None
        self._connected_at: float | None = None
        self._outage_since: float | None = None
        self._url = config.url
        if config.cache_bust_param is not None:
            token = format(int(rng.random() * 2**52), "x")
            separator = "&" if urlsplit(config.url).query else "?"
            fragment_at = self._url.find("#")
            base = self._url if fragment_at < 0 else self._url[:fragment_at]
            self._url = f"{base}{separator}{config.cache_bust_param}={token}"

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
    def last_event_id(self) -> str:
        """The last event ID string: sent as ``Last-Event-ID`` on the next connection."""
        return self._last_event_id

    @property
    def metrics(self) -> Metrics:
        """Counters kept by the session (attempts, deliveries, duplicates, reconnects...)."""
        return self._metrics

    @property
    def reconnection_time(self) -> float:
        """The base reconnection delay in seconds (the server's ``retry:`` once sent)."""
        return self._backoff.reconnection_time

    def request(self) -> Request:
        """The request the next :class:`~sse_core.Connect` will carry."""
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

    def next_deadline(self) -> float | None:
        """When to call :meth:`on_timer` next, or ``None`` when nothing is scheduled."""
        match self._state:
            case ClientState.RECONNECTING:
                return self._reconnect_at
            case ClientState.CONNECTING | ClientState.CONNECTED | ClientState.STREAMING:
                return self._stall.next_deadline() if self._stall is not None else None
            case ClientState.CLOSED:
                return None
            case _:  # pragma: no cover
                raise AssertionError(self._state)

    # --- inputs ---------------------------------------------------------------------------

    def start(self, now: float) -> list[Action]:
        """Open the stream: the first connection.

        Raises:
            LocalProtocolError: the session is not closed.
        """
        actions = [self._move(ClientInput.START, now)]
        # A fresh schedule for a fresh start; the server's reconnection time is kept, as it
        # belongs to the stream (an EventSource keeps it for its whole life).
        self._backoff = Backoff(self._config.backoff, rng=self._rng)
        if self._server_retry is not None:
            self._backoff.on_retry(self._server_retry)
        return actions + self._connect(now)

    def on_response(
        self, status: int, headers: Sequence[tuple[str | bytes, str | bytes]], now: float
    ) -> list[Action]:
        """The response head arrived (after redirects, which the adapter follows).

        As the spec's "announce the connection": 200 with ``text/event-stream`` opens the
        stream. Otherwise the connection fails for good (204 is the server's way to say "stop
        reconnecting"), except for statuses in ``retry_statuses``, which reconnect.

        Args:
            status: The HTTP status code.
            headers: The response header fields.
            now: The current monotonic time.

        Raises:
            LocalProtocolError: no connection is being made.
        """
        self._expect(ClientState.CONNECTING, "on_response")
        content_type = header_value(headers, "content-type")
        if status == 200 and _is_event_stream(content_type):
            encoding = header_value(headers, "content-encoding") or ""
            try:
                decompressor = Decompressor(
                    encoding, max_output=self._config.max_decompressed_size
                )
            except InvalidConfigError:
                return self._refuse(now, f"unsupported Content-Encoding {encoding!r}")
            return self._accept(now, decompressor)
        if status in self._config.retry_statuses:
            return self._lose(now, f"HTTP {status}, retrying", is_open=True)
        if status == 204:
            return self._refuse(now, "HTTP 204 No Content: the server asked not to reconnect")
        if status == 200:
            return self._refuse(now, f"wrong Content-Type {content_type!r}")
        return self._refuse(now, f"HTTP {status}")

    def on_data(self, data: bytes, now: float) -> list[Action]:
        """Body bytes arrived.

        Returns:
            The events to deliver (duplicates by id dropped), gap reports, a status change
            on the first bytes, and -- when the stream broke a limit or is badly encoded --
            a disconnect and reconnection.

        Raises:
            LocalProtocolError: no stream is open.
        """
        if self._state is ClientState.CONNECTED:
            actions: list[Action] = [self._move(ClientInput.FIRST_BYTES, now)]
        else:
            self._expect(ClientState.STREAMING, "on_data")
            actions = []
        if self._stall is not None:
            self._stall.activity(now)
        parser = self._parser
        decompressor = self._decompressor
        assert parser is not None and decompressor is not None
        try:
            items = parser.feed(decompressor.decompress(data))
        except RemoteProtocolError as error:
            # Items parsed before a limit was crossed are still delivered.
            self._handle_items(getattr(error, "items", []), now, actions)
            self._last_event_id = parser.last_event_id
            return actions + self._lose(now, f"bad stream: {error}", is_open=True)
        self._handle_items(items, now, actions)
        self._last_event_id = parser.last_event_id
        return actions

    def on_eof(self, now: float) -> list[Action]:
        """The response body ended. The spec reconnects ("reestablish the connection").

        Raises:
            LocalProtocolError: no stream is open.
        """
        if self._state is not ClientState.CONNECTED:
            self._expect(ClientState.STREAMING, "on_eof")
        assert self._parser is not None
        end = self._parser.feed_eof()
        reason = "stream ended mid-event" if end.is_truncated else "stream ended"
        return self._lose(now, reason, is_open=False)

    def on_connection_lost(self, now: float, reason: str = "connection lost") -> list[Action]:
        """The connection failed (refused, reset, TLS error, timeout in the adapter...).

        Raises:
            LocalProtocolError: no connection is being made or open.
        """
        if self._state not in _LIVE:
            raise LocalProtocolError(f"on_connection_lost() in state {self._state.value}")
        if self._parser is not None:
            self._parser = None  # whatever it held is discarded, as at end of file
        return self._lose(now, reason, is_open=False)

    def on_timer(self, now: float) -> list[Action]:
        """Wake-up at (or after) :meth:`next_deadline`: reconnect, or replace a stalled
        connection. Early or spurious calls return no actions."""
        match self._state:
            case ClientState.RECONNECTING:
                assert self._reconnect_at is not None
                if now < self._reconnect_at:
                    return []
                return [self._move(ClientInput.RECONNECT_DUE, now), *self._connect(now)]
            case ClientState.CONNECTING | ClientState.CONNECTED | ClientState.STREAMING:
                if self._stall is not None and self._stall.is_stalled(now):
                    timeout = self._stall.timeout
                    return self._lose(now, f"stalled: no bytes for {timeout:g} s", is_open=True)
                return []
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
            actions.append(Disconnect(reason="closed by the application"))
            self._end_connection(now)
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

    def _connect(self, now: float) -> list[Action]:
        self._metrics.record_attempt()
        self._reconnect_at = None
        if self._stall is not None:
            self._stall.start(now)  # bounds the wait for the response head too
        return [Connect(request=self.request())]

    def _accept(self, now: float, decompressor: Decompressor) -> list[Action]:
        actions: list[Action] = [self._move(ClientInput.ACCEPTED, now)]
        self._parser = Parser(
            max_line_length=self._config.max_line_length,
            max_event_size=self._config.max_event_size,
            last_event_id=self._last_event_id,
        )
        self._decompressor = decompressor
        self._connected_at = now
        self._backoff.on_connected(now)
        if self._outage_since is not None:
            self._metrics.record_reconnection(now - self._outage_since)
            self._outage_since = None
        return actions

    def _refuse(self, now: float, reason: str) -> list[Action]:
        """Fail the connection: no reconnection."""
        self._end_connection(now)
        return [Disconnect(reason=reason), self._move(ClientInput.REFUSED, now, reason)]

    def _end_connection(self, now: float) -> None:
        if self._connected_at is not None:
            self._metrics.record_connection(now - self._connected_at)
            self._connected_at = None
        if self._stall is not None:
            self._stall.stop()
        self._parser = None
        self._decompressor = None

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

    def _handle_items(self, items: Iterable[object], now: float, actions: list[Action]) -> None:
        dedup = self._dedup
        for item in items:
            if isinstance(item, Event):
                if item.event == GAP_EVENT_TYPE:
                    actions.append(self._gap_report(item))
                    continue
                if dedup is not None and item.id and dedup.check(item.id, now):
                    self._metrics.record_duplicates()
                    continue
                self._metrics.record_messages()
                actions.append(Deliver(event=item))
            elif isinstance(item, Retry):
                self._server_retry = item
                self._backoff.on_retry(item)

    def _gap_report(self, event: Event) -> ReportGap:
        try:
            body = json.loads(event.data)
            last_event_id = str(body["last_event_id"])
            reason = str(body["reason"])
        except (ValueError, KeyError, TypeError):
            last_event_id, reason = self._last_event_id, "unknown"
        self._metrics.record_gap(0)
        return ReportGap(last_event_id=last_event_id, reason=reason)
