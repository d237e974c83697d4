"""The sessions' configurations: every knob, validated on construction (floor 3).

:class:`ClientConfig` (a :class:`~sse_core.ClientSession`), :class:`ServerConfig` (a
:class:`~sse_core.ServerSession`) and :class:`LongPollConfig` (a
:class:`~sse_core.LongPollSession`) are frozen, keyword-only attrs records, kept apart from the
machines they configure (as h2 keeps its one configuration object apart). Each field names
its check from ``_validators``. Here too is :func:`add_query`, the one place a query string
is appended to a configured URL.
"""

from __future__ import annotations

import json as _json
from typing import Any
from urllib.parse import urlsplit

import attrs

from ._actions import Transport
from ._audit import DEFAULT_MAX_AUDIT_RECORDS
from ._backoff import BackoffConfig
from ._batching import BatchConfig
from ._chunking import ChunkConfig
from ._compression import DEFAULT_MAX_DECOMPRESSED_SIZE
from ._dedup import DedupConfig
from ._errors import InvalidConfigError
from ._parser import DEFAULT_MAX_EVENT_SIZE, DEFAULT_MAX_LINE_LENGTH
from ._sequencer import SequencerConfig
from ._validators import (
    Check,
    header_pairs,
    http_token,
    http_url,
    instance_of,
    int_between,
    is_bool,
    non_negative_int,
    non_negative_number,
    one_line_no_nul,
    positive_int,
    positive_number,
    query_name,
    request_body,
)

__all__ = [
    "DEFAULT_MAX_ERROR_BODY_SIZE",
    "DEFAULT_MAX_RESPONSE_SIZE",
    "IDEMPOTENT_METHODS",
    "ClientConfig",
    "LongPollConfig",
    "ServerConfig",
    "add_query",
]

#: Default for the client's ``max_response_size``: 4 MiB of JSON per answer.
DEFAULT_MAX_RESPONSE_SIZE = 4 << 20

#: Default for the client's ``max_error_body_size``: the first 4 KiB of a refused response.
DEFAULT_MAX_ERROR_BODY_SIZE = 4096

#: The methods RFC 9110 section 9.2.2 defines as idempotent: a client may send them again
#: after a failure. A stream requested with any other method (``POST``, ``PATCH`` ...) is
#: re-sent only when it can resume or ``is_resend_allowed`` says so. Methods are
#: case-sensitive (RFC 9110 section 9.1).
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


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


#: HTTP statuses a client may retry on (anything but 200, which is success).
_retry_statuses = Check(
    lambda v: isinstance(v, frozenset)
    and all(type(s) is int and 100 <= s <= 599 and s != 200 for s in v),
    "a frozenset of HTTP statuses other than 200",
)


@attrs.frozen(kw_only=True)
class ClientConfig:
    """Every knob of a :class:`~sse_core.ClientSession`, validated on construction.

    Attributes:
        url: Absolute ``http://`` or ``https://`` URL of the event stream.
        method: Request method; ``"GET"`` as EventSource, ``"POST"`` with a body for APIs
            that need one.
        body: Request body, or ``None``: ``bytes`` as they are, a ``str`` encoded as UTF-8.
            Sent again on every reconnection that is made (see ``is_resend_allowed`` for
            when one is).
        json: A JSON body instead: any value :func:`json.dumps` takes (``None``, the
            default, means no JSON body). Serialized once, compactly and in UTF-8 (no
            NaN or infinity, which JSON lacks; RFC 8259), and sent with ``Content-Type:
            application/json`` unless ``headers`` names a ``Content-Type``. Not together
            with ``body``.
        headers: Extra request header fields, as a mapping (``{"Authorization": "Bearer
            x"}``) or as ``(name, value)`` pairs (a name may repeat); stored as pairs. A name
            that matches a default field (``Accept``, ``Cache-Control``,
            ``Accept-Encoding``) replaces it.
        last_event_id: The last event ID to resume from on the first connection.
        retry_statuses: Response statuses that reconnect (with backoff) instead of failing
            for good. Empty by default, as the spec fails the connection on any status but
            200; ``{502, 503, 504}`` survives server deploys behind a gateway. A request
            that is not idempotent follows ``is_resend_allowed`` here too.
        is_resend_allowed: Whether a request whose method is not idempotent (anything but
            :data:`IDEMPOTENT_METHODS`: ``POST``, ``PATCH`` ...) may be sent again when it
            cannot resume. The rule: an idempotent request reconnects as EventSource does;
            another reconnects only when its next request carries ``Last-Event-ID`` (the
            server sent an event id, or ``last_event_id`` was given) or when this is
            ``True``. Otherwise a lost connection, a retryable status or a stall ends the
            session (:class:`~sse_core.ReportFailure`, cause
            :attr:`~sse_core.EndCause.NOT_RESUMABLE`) instead of running the request twice
            (RFC 9110 section 9.2.2: "a client SHOULD NOT automatically retry a request with
            a non-idempotent method" unless it knows the request is safe to repeat).
        max_error_body_size: Most bytes of a refused response's body kept for the
            :class:`~sse_core.ReportFailure` (and the adapters' ``HTTPStatusError``); the
            session reads that much (or to the body's end) before it closes the connection.
            0 reads none.
        cache_bust_param: When set, a query parameter of this name with a per-session random
            value is added to the URL, for proxies that cache despite ``no-cache``.
        is_gzip_accepted: Send ``Accept-Encoding: gzip`` and decode gzip bodies.
        is_body_decoded: The body reaches :meth:`~sse_core.ClientSession.on_data` already
            decoded, by the HTTP client that carried it (aiohttp with ``auto_decompress``,
            ``httpx``'s ``aiter_bytes()``, ``requests``' ``iter_content()``): the session
            ignores the response's ``Content-Encoding`` instead of decoding it a second
            time (and failing on a body that is no longer gzip). Limiting what a compressed
            body expands to (``max_decompressed_size``) is then that client's job. The
            request is unchanged: ``is_gzip_accepted`` still says what it asks for.
        max_decompressed_size: Most bytes one body chunk may decode to.
        stall_timeout: Seconds without progress after which a connection is taken for
            dead and replaced. Progress is a complete line of the decoded body (after gzip):
            an event's field line, a comment such as a heartbeat, or the blank line ending
            an event; within one long line, every 4 KiB of it
            (:attr:`~sse_core.state.StallDetector.PROGRESS_BYTES`).
            Bytes alone are not progress, so a server dripping them is replaced too. The
            clock starts at the connect, so it also bounds the wait for the response head
            and the first line. ``None`` disables it.
        stale_after: Seconds without a body byte (a heartbeat counts) after which the
            session says its data may be stale (:class:`~sse_core.ReportStale`), before the
            stall timeout replaces the connection, and while reconnecting or offline; the
            next byte says it is fresh again. ``None`` (the default) reports nothing;
            :attr:`~sse_core.ClientSession.last_byte_at` can still be read.
        max_audit_records: The most records the session's audit trail keeps
            (:attr:`~sse_core.ClientSession.audit_trail`); the oldest go first, counted.
            0 turns the trail off.
        backoff: The reconnection policy.
        dedup: Limits of the window that drops replayed events by id; ``None`` disables it.
        sequencer: When set, events are delivered in the order of the sequence number in
            their id (``<epoch>-<n>`` or ``<n>``, as a :class:`~sse_core.state.ReplayLog` assigns
            them), holes are waited for and then reported (:class:`~sse_core.ReportGap`).
        batching: When set, delivered events go out in batches
            (:class:`~sse_core.DeliverBatch`) of at most ``max_events``, each at the latest
            ``max_delay`` seconds after its first event (:class:`~sse_core.state.Batcher`);
            ``None`` (the default) hands each out as it comes (:class:`~sse_core.Deliver`).
        is_latency_measured: Read the server's send-time stamps (``:t=<unix ms>`` comments,
            ``ServerConfig.is_send_time_stamped``) into ``metrics.latency``, against the
            ``wall_now`` given to :meth:`~sse_core.ClientSession.on_data` (see
            :doc:`/state/metrics` on clock skew). Off by default.
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

    url: str = attrs.field(validator=http_url)
    method: str = attrs.field(default="GET", validator=http_token)
    body: bytes | None = attrs.field(default=None, converter=request_body)
    json: Any = None
    headers: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=header_pairs)
    last_event_id: str = attrs.field(default="", validator=one_line_no_nul)
    retry_statuses: frozenset[int] = attrs.field(default=frozenset(), validator=_retry_statuses)
    is_resend_allowed: bool = attrs.field(default=False, validator=is_bool)
    max_error_body_size: int = attrs.field(
        default=DEFAULT_MAX_ERROR_BODY_SIZE, validator=non_negative_int
    )
    cache_bust_param: str | None = attrs.field(default=None, validator=http_token.or_none())
    is_gzip_accepted: bool = True
    is_body_decoded: bool = attrs.field(default=False, validator=is_bool)
    max_decompressed_size: int = attrs.field(
        default=DEFAULT_MAX_DECOMPRESSED_SIZE, validator=positive_int
    )
    stall_timeout: float | None = attrs.field(default=45.0, validator=positive_number.or_none())
    stale_after: float | None = attrs.field(default=None, validator=positive_number.or_none())
    max_audit_records: int = attrs.field(
        default=DEFAULT_MAX_AUDIT_RECORDS, validator=non_negative_int
    )
    backoff: BackoffConfig = attrs.field(
        factory=BackoffConfig, validator=instance_of(BackoffConfig)
    )
    dedup: DedupConfig | None = attrs.field(
        factory=DedupConfig, validator=instance_of(DedupConfig).or_none()
    )
    sequencer: SequencerConfig | None = attrs.field(
        default=None, validator=instance_of(SequencerConfig).or_none()
    )
    chunking: ChunkConfig | None = attrs.field(
        default=None, validator=instance_of(ChunkConfig).or_none()
    )
    batching: BatchConfig | None = attrs.field(
        default=None, validator=instance_of(BatchConfig).or_none()
    )
    is_latency_measured: bool = attrs.field(default=False, validator=is_bool)
    max_line_length: int = attrs.field(default=DEFAULT_MAX_LINE_LENGTH, validator=positive_int)
    max_event_size: int = attrs.field(default=DEFAULT_MAX_EVENT_SIZE, validator=positive_int)
    long_poll_url: str | None = attrs.field(default=None, validator=http_url.or_none())
    initial_transport: Transport = attrs.field(
        default=Transport.STREAMING, validator=instance_of(Transport)
    )
    first_byte_timeout: float = attrs.field(default=10.0, validator=positive_number)
    switch_after: int = attrs.field(default=2, validator=positive_int)
    retry_streaming_after: float | None = attrs.field(
        default=300.0, validator=positive_number.or_none()
    )
    long_poll_timeout: float = attrs.field(default=25.0, validator=non_negative_number)
    min_poll_interval: float = attrs.field(default=1.0, validator=positive_number)
    max_response_size: int = attrs.field(default=DEFAULT_MAX_RESPONSE_SIZE, validator=positive_int)

    #: ``json`` serialized (once, on construction), or ``None``.
    _json_body: bytes | None = attrs.field(init=False, default=None, repr=False, eq=False)

    @property
    def is_idempotent(self) -> bool:
        """Whether :attr:`method` is idempotent (RFC 9110 section 9.2.2)."""
        return self.method in IDEMPOTENT_METHODS

    @property
    def request_body(self) -> bytes | None:
        """The body every request carries: :attr:`body`, or :attr:`json` serialized, or
        ``None``."""
        return self.body if self._json_body is None else self._json_body

    def __attrs_post_init__(self) -> None:
        if self.initial_transport is Transport.LONG_POLLING and self.long_poll_url is None:
            raise InvalidConfigError("initial_transport LONG_POLLING needs a long_poll_url")
        if self.json is not None:
            if self.body is not None:
                raise InvalidConfigError("give body or json, not both")
            object.__setattr__(self, "_json_body", _json_bytes(self.json))


def _json_bytes(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON text (RFC 8259: no NaN or infinity)."""
    try:
        text = _json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return text.encode("utf-8")
    except (TypeError, ValueError) as error:  # not JSON-serializable, NaN, a cycle, a surrogate
        raise InvalidConfigError(f"json must be JSON-serializable: {error}") from None


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
        is_send_time_stamped: Put a send-time stamp, the comment line ``:t=<unix ms>``,
            before each live event (not before replayed ones), for clients that measure
            latency (``ClientConfig.is_latency_measured``); other clients ignore comments.
            The stamp is taken from the ``wall_now`` given to
            :meth:`~sse_core.ServerSession.send` or :meth:`~sse_core.Broadcaster.publish`;
            without it nothing is stamped. The adapters' servers and per-request
            ``StreamResponse`` classes pass the wall clock (``time.time()``). Off by default.
        max_audit_records: The most records the session's audit trail keeps
            (:attr:`~sse_core.ServerSession.audit_trail`); the oldest go first, counted.
            0 turns the trail off.
    """

    heartbeat_interval: float | None = attrs.field(
        default=15.0, validator=positive_number.or_none()
    )
    retry: int | None = attrs.field(default=None, validator=non_negative_int.or_none())
    padding: int = attrs.field(default=0, validator=int_between(0, 1 << 16))
    is_compression_enabled: bool = True
    compression_level: int = attrs.field(default=6, validator=int_between(1, 9))
    last_event_id_param: str | None = attrs.field(
        default="lastEventId", validator=query_name.or_none()
    )
    headers: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=header_pairs)
    replay_chunk_size: int = attrs.field(default=64 * 1024, validator=positive_int)
    is_unknown_id_replayed: bool = attrs.field(default=False, validator=is_bool)
    busy_retry: int = attrs.field(default=5000, validator=non_negative_int)
    is_send_time_stamped: bool = attrs.field(default=False, validator=is_bool)
    max_audit_records: int = attrs.field(
        default=DEFAULT_MAX_AUDIT_RECORDS, validator=non_negative_int
    )


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
        max_audit_records: The most records a poll's audit trail keeps
            (:attr:`~sse_core.LongPollSession.audit_trail`; a poll notes a handful); the
            oldest go first, counted. 0 turns the trail off.

    Raises:
        InvalidConfigError: on construction, when a value is out of range or of the wrong type.
    """

    max_hold: float = attrs.field(default=25.0, validator=positive_number)
    max_events: int = attrs.field(default=100, validator=positive_int)
    max_bytes: int | None = attrs.field(default=1 << 20, validator=positive_int.or_none())
    retry: int | None = attrs.field(default=None, validator=non_negative_int.or_none())
    last_event_id_param: str = attrs.field(default="lastEventId", validator=query_name)
    timeout_param: str = attrs.field(default="timeout", validator=query_name)
    headers: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=header_pairs)
    is_unknown_id_replayed: bool = attrs.field(default=False, validator=is_bool)
    max_audit_records: int = attrs.field(
        default=DEFAULT_MAX_AUDIT_RECORDS, validator=non_negative_int
    )

    def __attrs_post_init__(self) -> None:
        if self.last_event_id_param == self.timeout_param:
            raise InvalidConfigError("last_event_id_param and timeout_param must differ")
