"""Actions: what the sessions ask the I/O layer to do (floor 3).

Every session input returns a list of these plain frozen records, in the order they must be
carried out. An adapter's loop is: read the clock, call an input, carry out each action, wait
for I/O or the session's ``next_deadline()``, repeat.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

import attrs

from ._errors import GapError, HTTPStatusError, StreamError
from ._events import Event

__all__ = [
    "GAP_EVENT_TYPE",
    "POSITION_EVENT_TYPE",
    "Action",
    "ClientState",
    "Connect",
    "Deliver",
    "DeliverBatch",
    "Disconnect",
    "EndCause",
    "ReadyState",
    "ReportDropped",
    "ReportFailure",
    "ReportGap",
    "ReportStale",
    "ReportStatus",
    "ReportTransport",
    "Request",
    "Send",
    "SendHead",
    "Transport",
]

#: Event type of the signal a server session sends when it cannot replay from the client's
#: ``Last-Event-ID`` (unknown or too old). Its data is JSON:
#: ``{"last_event_id": "<what the client sent>", "reason": "unknown" | "too_old"}``, plus
#: ``"missed": <int>`` (how many events were lost) when the server's log knows it.
#: A client session turns it into a :class:`ReportGap` action instead of delivering it.
GAP_EVENT_TYPE = "sse-core-gap"

#: Event type of the block that tells a new client (and a client after a gap) where the
#: stream stands: ``id: <ReplayLog.position>``, this type and an empty ``data:`` line. The
#: data line makes every client apply the id (some apply ids only to blocks that dispatch);
#: the type keeps it away from ``onmessage`` and from listeners of other types. A client
#: session takes the id as its last event ID and delivers nothing.
POSITION_EVENT_TYPE = "sse-core-position"


class ReadyState(enum.IntEnum):
    """The WHATWG ``EventSource.readyState`` values."""

    CONNECTING = 0
    OPEN = 1
    CLOSED = 2


class ClientState(enum.Enum):
    """Lifecycle of a client session, finer than :class:`ReadyState`.

    ``CLOSED`` -> ``CONNECTING`` -> ``CONNECTED`` (response accepted) -> ``STREAMING`` (body
    bytes arrived) -> ``RECONNECTING`` (waiting to connect again) -> ``CONNECTING`` ... and
    ``CLOSED`` again when the application closes, the server refuses, or the backoff gives up.
    ``OFFLINE`` while the platform says there is no network: nothing is tried until it is back.
    """

    CLOSED = "closed"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    STREAMING = "streaming"
    RECONNECTING = "reconnecting"
    OFFLINE = "offline"

    @property
    def ready_state(self) -> ReadyState:
        """The WHATWG ``readyState`` this state shows as."""
        return _READY_STATES[self]


_READY_STATES = {
    ClientState.CLOSED: ReadyState.CLOSED,
    ClientState.CONNECTING: ReadyState.CONNECTING,
    ClientState.RECONNECTING: ReadyState.CONNECTING,
    ClientState.OFFLINE: ReadyState.CONNECTING,
    ClientState.CONNECTED: ReadyState.OPEN,
    ClientState.STREAMING: ReadyState.OPEN,
}


class Transport(enum.Enum):
    """How a client session receives events.

    ``STREAMING`` is the ``text/event-stream`` response of an EventSource. ``LONG_POLLING`` is
    the fallback for networks where a buffering intermediary holds the stream back: repeated
    ``GET`` requests, each answered with the events after the client's last id as JSON (see
    :mod:`sse_core._longpoll` and the long-polling docs page).
    """

    STREAMING = "streaming"
    LONG_POLLING = "long polling"


@attrs.frozen(kw_only=True)
class Request:
    """An HTTP request for the I/O layer to make.

    Attributes:
        method: ``"GET"``, or ``"POST"`` etc. when a body is sent.
        url: The absolute ``http://`` or ``https://`` URL, query included.
        headers: Header fields, in order, as ``(name, value)`` str pairs.
        body: The request body, or ``None``.
    """

    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes | None = None


@attrs.frozen(kw_only=True)
class Connect:
    """Open a connection and send :attr:`request`; report the response head and body back."""

    request: Request


@attrs.frozen(kw_only=True)
class Disconnect:
    """Close the current connection (if any); say nothing more on it.

    Attributes:
        reason: Why, for logs.
    """

    reason: str


@attrs.frozen(kw_only=True)
class Deliver:
    """Hand :attr:`event` to the application."""

    event: Event


def _to_events(events: Sequence[Event]) -> tuple[Event, ...]:
    return tuple(events)


@attrs.frozen(kw_only=True)
class DeliverBatch:
    """Hand :attr:`events` to the application at once, in order (``ClientConfig.batching``:
    a burst becomes one update, not one per event; or, from a session made with
    ``is_batched_per_input``, the events of one input). Never empty."""

    events: tuple[Event, ...] = attrs.field(converter=_to_events)


@attrs.frozen(kw_only=True)
class ReportStatus:
    """The client's state changed; show it to the application.

    Attributes:
        state: The new state.
        since: When it changed (the ``now`` of the input that changed it). While the state
            is not ``STREAMING`` or ``CONNECTED``, the application's data may be stale since
            this instant.
        reason: Why, when the change was not asked for (e.g. ``"connection lost"``).
    """

    state: ClientState
    since: float
    reason: str | None = None

    @property
    def ready_state(self) -> ReadyState:
        """The WHATWG ``readyState`` of :attr:`state`."""
        return self.state.ready_state


def _check_missing(instance: ReportGap, attribute: object, value: int | None) -> None:
    if (instance.first is None) != (instance.last is None):
        raise ValueError("first and last are both None or both set")
    if instance.first is not None and instance.last is not None and (
        type(instance.first) is not int or type(instance.last) is not int
        or not 0 <= instance.first <= instance.last
    ):
        raise ValueError(f"need 0 <= first <= last, got {instance.first!r}, {instance.last!r}")
    missed = instance.missed
    if missed is not None and (type(missed) is not int or missed < 0):
        raise ValueError(f"missed must be None or an int >= 0, got {missed!r}")
    if missed is not None and instance.first is not None:
        raise ValueError("missed is for a server's gap: first and last already say how many")


@attrs.frozen(kw_only=True)
class ReportGap:
    """Events were lost and cannot be recovered; tell the application.

    One record for both ways a client learns of lost events, so that one ``isinstance``
    check catches every loss:

    * the server could not replay from the client's ``Last-Event-ID`` (its gap signal,
      :data:`~sse_core.state.GAP_EVENT_TYPE`): ``reason`` is ``"unknown"`` (the server did not
      know the id) or ``"too_old"`` (it fell out of the server's replay window),
      ``last_event_id`` is the id the client resumed from, and ``missed`` how many events
      were lost when the server's log knows it (``too_old``); ``first`` and ``last`` are
      ``None``;
    * the client's sequencer gave up on numbers that never arrived: ``reason`` is
      ``"timeout"`` (not filled within ``gap_timeout``), ``"overflow"`` (the reorder buffer
      was full) or ``"flush"`` (the stream's numbering ended), and ``first`` .. ``last`` are
      the missing sequence numbers; ``last_event_id`` is ``None``.

    Attributes:
        reason: Why, as above.
        last_event_id: The id the client resumed from (server gaps), else ``None``.
        first: The first missing sequence number (sequencer gaps), else ``None``.
        last: The last missing sequence number (sequencer gaps), else ``None``.
        missed: How many events the server says were lost (server gaps, when its log
            knows), else ``None``.
    """

    reason: str
    last_event_id: str | None = None
    first: int | None = attrs.field(default=None, validator=_check_missing)
    last: int | None = None
    missed: int | None = None

    @property
    def count(self) -> int | None:
        """How many events are known to be missing (``last - first + 1`` for a sequencer's
        gap, :attr:`missed` for a server's), or ``None`` when nobody knows."""
        if self.first is None or self.last is None:
            return self.missed
        return self.last - self.first + 1

    def error(self) -> GapError:
        """The exception an adapter's plain loop raises for this gap."""
        return GapError(self)


class EndCause(enum.Enum):
    """Why a client session closed without the application asking (:class:`ReportFailure`)."""

    #: The server answered with something other than an event stream (an HTTP error status,
    #: another ``Content-Type``, an unsupported ``Content-Encoding``).
    REFUSED = "refused"
    #: The backoff policy stopped reconnecting (attempts or outage time used up).
    GAVE_UP = "gave up"
    #: The stream of a request that is not idempotent (``POST`` ...) was cut, and it could not
    #: resume: no event id came to send as ``Last-Event-ID``, and re-sending was not allowed.
    NOT_RESUMABLE = "not resumable"


@attrs.frozen(kw_only=True)
class ReportFailure:
    """The session is closing for a failure, not because the application asked; the
    ``CLOSED`` status follows. Adapters raise :meth:`error` where the application iterates.

    Attributes:
        cause: Which kind of failure.
        reason: What happened, for people (also the ``CLOSED`` status's reason).
        status: The HTTP status of a refused response, else ``None``.
        headers: The refused response's header fields, else empty.
        body: The first bytes of the refused response's body (at most the config's
            ``max_error_body_size``), as received, else empty.
    """

    cause: EndCause
    reason: str
    status: int | None = None
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    def error(self) -> StreamError:
        """The exception to raise: :class:`~sse_core.HTTPStatusError` for a refused response
        with a status other than 200, else :class:`~sse_core.StreamError`."""
        if self.status is not None and self.status != 200:
            return HTTPStatusError(
                self.reason, self, status=self.status, headers=self.headers, body=self.body
            )
        return StreamError(self.reason, self)


@attrs.frozen(kw_only=True)
class ReportDropped:
    """A chunked message could not be assembled and was dropped; tell the application.

    Attributes:
        message_id: The message's id, or ``None`` when the chunk was unreadable.
        reason: Why (a :class:`~sse_core.state.DropReason` value, or ``"limit"`` when the message
            crossed one of the assembler's limits).
        detail: A sentence for logs.
    """

    message_id: str | None
    reason: str
    detail: str


@attrs.frozen(kw_only=True)
class ReportTransport:
    """The client switched transport; show it to the application (or log it).

    Attributes:
        transport: The transport used from now on.
        since: When it switched (the ``now`` of the input that switched it).
        reason: Why (e.g. ``"no body bytes within 10 s of a 200 response, 2 times in a row"``).
    """

    transport: Transport
    since: float
    reason: str | None = None


@attrs.frozen(kw_only=True)
class ReportStale:
    """The client's data may be stale, or is fresh again (``ClientConfig.stale_after``).

    A UI can show "live" or "data may be stale" from it: ``is_stale`` comes ``True`` once no
    body byte (a heartbeat counts) arrived for ``stale_after`` seconds -- heartbeats stopped
    before the stall timeout noticed, or the client is reconnecting or offline -- and
    ``False`` with the next byte.

    Attributes:
        is_stale: Whether the data may be stale from now on.
        since: Stale: when the last byte arrived (or the session started, before any).
            Fresh: when the byte that ended it arrived.
    """

    is_stale: bool
    since: float


@attrs.frozen(kw_only=True)
class SendHead:
    """Server side: send the response status line and header fields."""

    status: int
    headers: tuple[tuple[str, str], ...]


@attrs.frozen(kw_only=True)
class Send:
    """Server side: send these body bytes."""

    data: bytes


#: Any action a session returns.
Action = (
    Connect
    | Disconnect
    | Deliver
    | DeliverBatch
    | ReportStatus
    | ReportGap
    | ReportDropped
    | ReportTransport
    | ReportFailure
    | ReportStale
    | SendHead
    | Send
)
