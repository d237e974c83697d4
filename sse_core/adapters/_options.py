"""The adapters' options (floor 4): one frozen record per side, shared by every adapter.

:class:`ClientOptions` holds every transport knob of the clients (asyncio, trio, sync
``EventSource``) and :class:`ServerOptions` every knob of the servers (their
``EventStreamServer`` and the ASGI ``EventStream``), as h2 keeps all its settings in one
configuration object. Each is validated once, on construction, and documented here once. The
protocol's own settings stay in the sessions' :class:`~sse_core.ClientConfig` and
:class:`~sse_core.ServerConfig`; what sits here belongs to sockets, TLS and admission.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import Callable

import attrs

from .._broadcast import (
    DEFAULT_MAX_HELD_POLLS,
    DEFAULT_MAX_QUEUED_BYTES,
    DEFAULT_MAX_REPLAY_TIME,
    DEFAULT_MAX_REPLAYS,
)
from .._config import LongPollConfig
from .._validators import (
    Check,
    instance_of,
    int_at_least,
    non_negative_int,
    non_negative_number,
    positive_int,
    positive_number,
)
from ._http import BUSY_RETRY_AFTER, DEFAULT_MAX_REDIRECTS, IncomingRequest

__all__ = [
    "DEFAULT_MAX_SUBSCRIBERS",
    "ClientOptions",
    "ConnectionKey",
    "ServerOptions",
    "client_address",
]

#: Default bound on the clients a server adapter serves at once.
DEFAULT_MAX_SUBSCRIBERS = 10_000

#: What ``max_subscribers_per_key`` counts by: ``(request, client address) -> key or None``.
ConnectionKey = Callable[[IncomingRequest, "str | None"], "str | None"]


def client_address(request: IncomingRequest, address: str | None) -> str | None:
    """The default connection key: the client's IP address (``None`` when unknown).

    Behind a reverse proxy every client has the proxy's address: key by a header the proxy
    sets (``X-Forwarded-For``'s last hop you trust) or by an API key instead.
    """
    return address


# Checks beyond the shared ones of sse_core._validators.
_path = Check(lambda v: isinstance(v, str) and v.startswith("/"), "a str starting with '/'")
_function = Check(callable, "callable")


@attrs.frozen(kw_only=True)
class ClientOptions:
    """How an adapter's ``EventSource`` connects: the same record for asyncio, trio and sync.

    Pass it as ``EventSource(config, options=ClientOptions(...))``; the default is
    ``ClientOptions()``. What to ask of the server (URL, headers, backoff, stall timeout ...)
    is the session's :class:`~sse_core.ClientConfig`.

    Attributes:
        ssl_context: The TLS context for ``https`` URLs, or ``None`` for the system trust
            store (:func:`ssl.create_default_context`, made once per source).
        connect_timeout: Seconds an attempt may take from opening the connection to the
            response head (name resolution, connect, TLS handshake and request included;
            each redirect starts the count again), or ``None``. Past it the attempt fails as
            a lost connection and the session reconnects as configured.
        max_redirects: The most redirects one attempt follows (Fetch's limit is 20); one
            more counts as a network error.
        read_size: The most bytes read from the socket at once.
        max_head_size: The largest response head accepted, in bytes (at least 1024).
        timeout: Seconds the source may run, from the start of its iteration, or ``None``
            (the default: no limit). When they pass, the source closes itself as by
            ``close()``: the iteration ends quietly, and the ``CLOSED`` status says why.
            For the blocking client this is the iteration's time limit; the async ones may
            use their framework's timeouts instead.

    Raises:
        InvalidConfigError: a value out of range or of the wrong type.
    """

    ssl_context: ssl.SSLContext | None = attrs.field(
        default=None, validator=instance_of(ssl.SSLContext).or_none()
    )
    connect_timeout: float | None = attrs.field(default=30.0, validator=positive_number.or_none())
    max_redirects: int = attrs.field(default=DEFAULT_MAX_REDIRECTS, validator=non_negative_int)
    read_size: int = attrs.field(default=64 * 1024, validator=positive_int)
    max_head_size: int = attrs.field(default=64 * 1024, validator=int_at_least(1024))
    timeout: float | None = attrs.field(default=None, validator=positive_number.or_none())


@attrs.frozen(kw_only=True)
class ServerOptions:
    """How an adapter's server admits and serves clients: the same record for the asyncio,
    trio and sync ``EventStreamServer`` and the ASGI ``EventStream``.

    Pass it as ``EventStreamServer(options=ServerOptions(...))``; the default is
    ``ServerOptions()``. What every stream looks like (heartbeats, ``retry:``, gzip, padding)
    is the sessions' :class:`~sse_core.ServerConfig`. The ASGI application ignores ``path``,
    ``request_timeout`` and ``send_timeout``: there the router picks the path and the ASGI
    server owns the sockets.

    Attributes:
        path: The only path served (others get 404), or ``None`` to serve every path.
        max_queued_bytes: A client's send queue bound, beyond what its socket holds; a
            client that falls further behind is dropped and its connection reset (it
            resumes with ``Last-Event-ID``) instead of growing memory or slowing the others.
        max_subscribers: The most clients at once (more get 503), or ``None``.
        max_subscribers_per_key: The most clients at once with the same ``connection_key``
            (more get 429), or ``None``.
        connection_key: What ``max_subscribers_per_key`` counts by: a function of the
            request and the client's address (by default the address; behind a proxy, key
            by a header it sets).
        max_replays: The most replays longer than one step under way at once; past it a
            resuming client is asked to come back later (``busy_retry``).
        max_replay_time: Seconds a long replay may take before its client is let go.
        busy_retry_delay: Seconds a client refused with 503 is asked to wait
            (``Retry-After``, rounded up to whole seconds).
        request_timeout: Seconds a new connection has to send its request (TLS handshake
            included), and a refused one to take its error response; a client silent past
            it is reset.
        send_timeout: Seconds sent bytes may stay unacknowledged before the kernel drops the
            connection (``TCP_USER_TIMEOUT`` and keepalive, where the platform has them), or
            ``None``. With heartbeats on, this is what lets go of a client that vanished
            without closing (a phone out of coverage): otherwise its slot is held for as
            long as the kernel retransmits, about 15 minutes on Linux.
        long_poll_path: Where long polls are answered (:doc:`/longpoll`), from the stream's
            replay log, or ``None`` (the default: no long-polling). Equal to ``path``, the
            one path serves both, by content negotiation: a request whose ``Accept``
            prefers ``application/json`` to ``text/event-stream`` is a poll, and both
            answers say ``Vary: Accept``. (The ASGI application compares it with the
            request's path as its router passes it; so do the per-request ``StreamResponse``
            classes, which answer a poll with their own stream cut to one answer:
            :doc:`/adapters/responses`.)
        long_poll: How polls are answered (hold time, events per answer, ``retry``).
        max_held_polls: The most long polls open at once (more get 503 with
            ``Retry-After``), or ``None``. They do not count towards ``max_subscribers``.

    Raises:
        InvalidConfigError: a value out of range or of the wrong type.
    """

    path: str | None = attrs.field(default="/events", validator=_path.or_none())
    max_queued_bytes: int = attrs.field(default=DEFAULT_MAX_QUEUED_BYTES, validator=positive_int)
    max_subscribers: int | None = attrs.field(
        default=DEFAULT_MAX_SUBSCRIBERS, validator=positive_int.or_none()
    )
    max_subscribers_per_key: int | None = attrs.field(
        default=None, validator=positive_int.or_none()
    )
    connection_key: ConnectionKey = attrs.field(default=client_address, validator=_function)
    max_replays: int = attrs.field(default=DEFAULT_MAX_REPLAYS, validator=non_negative_int)
    max_replay_time: float = attrs.field(default=DEFAULT_MAX_REPLAY_TIME, validator=positive_number)
    busy_retry_delay: float = attrs.field(
        default=float(BUSY_RETRY_AFTER), validator=non_negative_number
    )
    request_timeout: float = attrs.field(default=30.0, validator=positive_number)
    send_timeout: float | None = attrs.field(default=30.0, validator=positive_number.or_none())
    long_poll_path: str | None = attrs.field(default=None, validator=_path.or_none())
    long_poll: LongPollConfig = attrs.field(
        factory=LongPollConfig, validator=instance_of(LongPollConfig)
    )
    max_held_polls: int | None = attrs.field(
        default=DEFAULT_MAX_HELD_POLLS, validator=positive_int.or_none()
    )

    @property
    def is_negotiated(self) -> bool:
        """Whether one path serves the stream and the polls (``long_poll_path == path``)."""
        return self.long_poll_path is not None and self.long_poll_path == self.path

    @property
    def retry_after(self) -> int:
        """``busy_retry_delay`` as the whole seconds of a ``Retry-After`` field."""
        return math.ceil(self.busy_retry_delay)
