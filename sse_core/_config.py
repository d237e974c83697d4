"""The sessions' configurations: every knob, validated on construction (floor 3).

:class:`ClientConfig` (a :class:`~sse_core.ClientSession`), :class:`ServerConfig` (a
:class:`~sse_core.ServerSession`) and :class:`LongPollConfig` (a
:class:`~sse_core.LongPollSession`) are frozen, keyword-only attrs records, kept apart from the
machines they configure (as h2 keeps its one configuration object apart). The helpers that
check their values live here too, and :func:`add_query`, the one place a query string is
appended to a configured URL.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from urllib.parse import urlsplit

import attrs

from ._actions import Transport
from ._backoff import BackoffConfig
from ._chunking import ChunkConfig
from ._compression import DEFAULT_MAX_DECOMPRESSED_SIZE
from ._dedup import DedupConfig
from ._errors import InvalidConfigError
from ._parser import DEFAULT_MAX_EVENT_SIZE, DEFAULT_MAX_LINE_LENGTH
from ._sequencer import SequencerConfig

__all__ = [
    "DEFAULT_MAX_RESPONSE_SIZE",
    "ClientConfig",
    "LongPollConfig",
    "ServerConfig",
    "add_query",
]

#: Default for the client's ``max_response_size``: 4 MiB of JSON per answer.
DEFAULT_MAX_RESPONSE_SIZE = 4 << 20


def add_query(url: str, query: str) -> str:
    """Append an encoded query string to ``url``, before its fragment (which is dropped).

    Args:
        url: An absolute URL, with or without a query and a fragment.
        query: ``name=value`` pairs joined by ``&``, already percent-encoded.

    Returns:
        ``url`` without its fragment, then ``&`` when it has a query or ``?`` when not, then
        ``query``.
    """
    fragment_at = url.find("#")
    base = url if fragment_at < 0 else url[:fragment_at]
    separator = "&" if urlsplit(url).query else "?"
    return base + separator + query


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
    """Every knob of a :class:`~sse_core.ClientSession`, validated on construction.

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


@attrs.frozen(kw_only=True)
class ServerConfig:
    """Every knob of a :class:`~sse_core.ServerSession`, validated on construction.

    Attributes:
        heartbeat_interval: Seconds of silence after which a heartbeat comment is sent
            (proxies drop idle connections; clients detect stalls). ``None`` disables it.
        retry: A reconnection time in milliseconds to send at the start of the stream
            (``retry:``), or ``None``.
        padding: Bytes of comment to send first, for proxies that hold back the first bytes
            of a response (2 KiB is the usual figure); 0 sends none.
        is_compression_enabled: Compress with gzip when the request's ``Accept-Encoding``
            allows it.
        compression_level: zlib level, 1 to 9.
        last_event_id_param: Query parameter read as the last event ID when the request has
            no ``Last-Event-ID`` header (for clients that cannot set headers), or ``None``.
        headers: Extra response header fields.
        replay_chunk_size: The most encoded bytes of replay produced in one step (at least
            one event per step); the first step goes out with the head, the others through
            :meth:`~sse_core.ServerSession.continue_replay`.
        is_unknown_id_replayed: What a client whose ``Last-Event-ID`` the log cannot place
            (forged, from another server, from before a restart) gets after the gap signal:
            ``False`` (the default), only the log's position and then the live tail;
            ``True``, everything the log still has. The client is told about the gap either
            way; replaying the whole log to any made-up id is what lets a 100-byte request
            cost the server a megabyte.
        busy_retry: The ``retry:`` hint, in milliseconds, given to a client whose long
            replay is put off because the server's replay budget is spent (see
            :class:`~sse_core.Broadcaster`); its connection is then closed and it comes back
            with the same ``Last-Event-ID``.
    """

    heartbeat_interval: float | None = 15.0
    retry: int | None = None
    padding: int = 0
    is_compression_enabled: bool = True
    compression_level: int = 6
    last_event_id_param: str | None = "lastEventId"
    headers: tuple[tuple[str, str], ...] = ()
    replay_chunk_size: int = 64 * 1024
    is_unknown_id_replayed: bool = False
    busy_retry: int = 5000

    def __attrs_post_init__(self) -> None:
        interval = self.heartbeat_interval
        if interval is not None and (
            isinstance(interval, bool)
            or not isinstance(interval, (int, float))
            or not math.isfinite(interval)
            or interval <= 0
        ):
            raise InvalidConfigError(
                f"heartbeat_interval must be a finite number > 0 or None, got {interval!r}"
            )
        if self.retry is not None and (type(self.retry) is not int or self.retry < 0):
            raise InvalidConfigError(f"retry must be None or an int >= 0, got {self.retry!r}")
        if type(self.padding) is not int or not 0 <= self.padding <= 1 << 16:
            raise InvalidConfigError(
                f"padding must be an int from 0 to 65536, got {self.padding!r}"
            )
        if type(self.compression_level) is not int or not 1 <= self.compression_level <= 9:
            raise InvalidConfigError(
                f"compression_level must be an int from 1 to 9, got {self.compression_level!r}"
            )
        for name, value in self.headers:
            if any(c in name + value for c in "\r\n\x00") or not name:
                raise InvalidConfigError(f"invalid response header {(name, value)!r}")
        if type(self.replay_chunk_size) is not int or self.replay_chunk_size < 1:
            raise InvalidConfigError(
                f"replay_chunk_size must be an int >= 1, got {self.replay_chunk_size!r}"
            )
        if type(self.is_unknown_id_replayed) is not bool:
            raise InvalidConfigError(
                f"is_unknown_id_replayed must be a bool, got {self.is_unknown_id_replayed!r}"
            )
        if type(self.busy_retry) is not int or self.busy_retry < 0:
            raise InvalidConfigError(f"busy_retry must be an int >= 0, got {self.busy_retry!r}")


def _check_param(name: str, value: object) -> None:
    if not isinstance(value, str) or not value or any(c in value for c in "&=#?% \r\n\x00"):
        raise InvalidConfigError(f"{name} must be a plain query parameter name, got {value!r}")


@attrs.frozen(kw_only=True)
class LongPollConfig:
    """Every knob of a :class:`~sse_core.LongPollSession`, validated on construction.

    Attributes:
        max_hold: Most seconds a request is held waiting for events (the client's
            ``timeout`` is cut down to it; used when the client gives none). Keep it below
            the idle timeout of the proxies on the way (often 30 to 60 s).
        max_events: Most events in one answer. The client polls again at once for the rest.
        max_bytes: Most bytes of event JSON in one answer, or ``None``. The first event is
            always sent, however large; keep it below the client's ``max_response_size``.
        retry: A reconnection time in milliseconds to put in every answer, or ``None``.
        last_event_id_param: Query parameter read as the client's last event ID when the
            request has no ``Last-Event-ID`` header.
        timeout_param: Query parameter read as the client's timeout in seconds.
        headers: Extra response header fields.
        is_unknown_id_replayed: Whether a client whose last event ID the log cannot place
            gets the log's events after the gap (``True``), or only the gap and the log's
            position (``False``, the default, as :class:`~sse_core.ServerConfig`).

    Raises:
        InvalidConfigError: on construction, when a value is out of range or of the wrong type.
    """

    max_hold: float = 25.0
    max_events: int = 100
    max_bytes: int | None = 1 << 20
    retry: int | None = None
    last_event_id_param: str = "lastEventId"
    timeout_param: str = "timeout"
    headers: tuple[tuple[str, str], ...] = ()
    is_unknown_id_replayed: bool = False

    def __attrs_post_init__(self) -> None:
        _check_positive("max_hold", self.max_hold)
        if type(self.is_unknown_id_replayed) is not bool:
            raise InvalidConfigError(
                f"is_unknown_id_replayed must be a bool, got {self.is_unknown_id_replayed!r}"
            )
        if type(self.max_events) is not int or self.max_events < 1:
            raise InvalidConfigError(f"max_events must be an int >= 1, got {self.max_events!r}")
        if self.max_bytes is not None and (type(self.max_bytes) is not int or self.max_bytes < 1):
            raise InvalidConfigError(
                f"max_bytes must be None or an int >= 1, got {self.max_bytes!r}"
            )
        if self.retry is not None and (type(self.retry) is not int or self.retry < 0):
            raise InvalidConfigError(f"retry must be None or an int >= 0, got {self.retry!r}")
        _check_param("last_event_id_param", self.last_event_id_param)
        _check_param("timeout_param", self.timeout_param)
        if self.last_event_id_param == self.timeout_param:
            raise InvalidConfigError("last_event_id_param and timeout_param must differ")
        for pair in self.headers:
            if (
                not isinstance(pair, tuple)
                or len(pair) != 2
                or not all(isinstance(part, str) for part in pair)
                or not pair[0]
                or any(c in pair[0] + pair[1] for c in "\r\n\x00")
            ):
                raise InvalidConfigError(f"invalid response header {pair!r}")
