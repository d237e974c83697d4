"""The sessions' audit trails: their lifecycles as frozen, timed records (floor 3).

A :class:`~sse_core.ClientSession` notes what its inputs returned that an operator would want
to replay -- state changes with their reasons, the id each connection resumes from, gaps,
failures, transport switches, staleness -- and the platform's network signals, in an
:class:`AuditRecorder`: a bounded queue, the oldest record dropped (and counted) when full.
A :class:`~sse_core.ServerSession` notes its side in the same records: the request with the
id it resumes from, its state changes, gaps, the replay, and why the client was let go.
A :class:`~sse_core.LongPollSession` notes one poll the same way: the request, its gap,
the answer with how many events it carried, and why the poll closed.
The application reads an :class:`AuditTrail`, a frozen snapshot. Pure: the times are the
``now`` of the inputs, nothing is logged (the adapters log; see the logging docs page).
"""

from __future__ import annotations

import collections
import enum
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from . import _actions
from ._actions import Action, ClientState, Transport
from ._validators import MonotonicNow, non_negative_int

if TYPE_CHECKING:
    from ._longpoll import LongPollState
    from ._server import ServerState

__all__ = [
    "AUDITED", "DEFAULT_MAX_AUDIT_RECORDS", "AuditKind", "AuditRecord", "AuditRecorder",
    "AuditTrail", "AuditedSession",
]

#: Default for ``ClientConfig.max_audit_records`` and ``ServerConfig.max_audit_records``.
DEFAULT_MAX_AUDIT_RECORDS = 100


class AuditKind(enum.Enum):
    """What an :class:`AuditRecord` notes (and which of its fields are set).

    ``OFFLINE``, ``ONLINE`` and ``NETWORK_CHANGED`` are the platform's network signals
    (``on_offline``, ``on_online``, ``on_network_changed``), with their ``reason``.
    ``REQUEST`` and ``REPLAYED`` are a server session's (a stream's or a poll's);
    ``STATUS``, ``GAP`` and ``FAILURE`` are noted on both sides.
    """

    #: The state changed (:class:`~sse_core.ReportStatus`; a server session's
    #: :class:`~sse_core.state.ServerState`, a poll's :class:`~sse_core.state.LongPollState`):
    #: ``state``, ``reason``.
    STATUS = "status"
    #: A connection (or a poll) was asked for (:class:`~sse_core.Connect`):
    #: ``last_event_id`` is the id it resumes from (``""``: none), ``transport`` how.
    CONNECT = "connect"
    #: Events were lost (:class:`~sse_core.ReportGap`; on a server, the gap signal it sent):
    #: ``reason``, ``last_event_id`` (a server's gap), ``count`` (how many are missing, when
    #: known: a sequencer's gap, a server's ``missed``).
    GAP = "gap"
    #: The session closes for a failure (:class:`~sse_core.ReportFailure`): ``reason``,
    #: ``status`` (the HTTP status of a refused response). On a server: the client was let
    #: go for a failure of its connection (``reason``: a send timeout).
    FAILURE = "failure"
    #: The transport switched (:class:`~sse_core.ReportTransport`): ``transport``, ``reason``.
    TRANSPORT = "transport"
    #: The data may be stale, or is fresh again (:class:`~sse_core.ReportStale`): ``is_stale``.
    STALE = "stale"
    #: A chunked message was dropped (:class:`~sse_core.ReportDropped`): ``reason``.
    DROPPED = "dropped"
    # The platform's network signals, each with its ``reason``: there is no network
    # (``on_offline``), the network is back (``on_online``), the device moved to another
    # network (``on_network_changed``). Noted even when the session ignores the signal.
    OFFLINE = "offline"
    ONLINE = "online"
    NETWORK_CHANGED = "network changed"
    #: A server session answered a client's request (a stream or a poll):
    #: ``last_event_id`` is the id it resumes from (``""``: none).
    REQUEST = "request"
    #: A server session's replay (what the client missed) is over: ``count`` events went.
    #: A poll's answer went: ``count`` events (0 for an empty one).
    REPLAYED = "replayed"


@attrs.frozen(kw_only=True)
class AuditRecord:
    """One entry of an :class:`AuditTrail`; the fields its :attr:`kind` does not use are
    ``None``.

    Attributes:
        at: When (the ``now`` of the session input that produced it).
        kind: What it notes (see :class:`AuditKind` for the fields each kind sets).
        state: The new state (``STATUS``): a :class:`~sse_core.ClientState`, a server
            session's :class:`~sse_core.state.ServerState`, or a poll's
            :class:`~sse_core.state.LongPollState`.
        reason: Why (``STATUS``, ``GAP``, ``FAILURE``, ``TRANSPORT``, ``DROPPED``, network
            signals).
        last_event_id: The id resumed from (``CONNECT``, ``REQUEST``; ``""`` for none), or
            the id a server could not replay from (``GAP``).
        count: How many events a gap lost (``GAP``), when known; how many a replay (or a
            poll's answer) sent (``REPLAYED``).
        transport: The transport (``CONNECT``, ``TRANSPORT``).
        is_stale: Whether the data may be stale (``STALE``).
        status: The HTTP status of a refused response (``FAILURE``).
    """

    at: float
    kind: AuditKind
    state: ClientState | ServerState | LongPollState | None = None
    reason: str | None = None
    last_event_id: str | None = None
    count: int | None = None
    transport: Transport | None = None
    is_stale: bool | None = None
    status: int | None = None

    def as_dict(self) -> dict[str, object]:
        """The record as a flat dict for a log line or JSON: ``at``, ``kind`` (its value),
        and each field that is set (enums as their values)."""
        out: dict[str, object] = {"at": self.at, "kind": self.kind.value}
        for name in ("state", "reason", "last_event_id", "count", "transport", "is_stale",
                     "status"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value.value if isinstance(value, enum.Enum) else value
        return out


@attrs.frozen(kw_only=True)
class AuditTrail:
    """A snapshot of a session's audit trail.

    Attributes:
        records: The records kept, oldest first (at most ``max_audit_records``).
        dropped: How many older records were dropped to keep the bound.
    """

    records: tuple[AuditRecord, ...] = ()
    dropped: int = attrs.field(default=0, validator=non_negative_int)

    def of_kind(self, kind: AuditKind) -> tuple[AuditRecord, ...]:
        """The records of one kind, oldest first."""
        return tuple(record for record in self.records if record.kind is kind)


def _status(
    action: _actions.ReportStatus, now: float, last_event_id: str, transport: Transport
) -> AuditRecord:
    return AuditRecord(at=now, kind=AuditKind.STATUS, state=action.state, reason=action.reason)


def _gap(
    action: _actions.ReportGap, now: float, last_event_id: str, transport: Transport
) -> AuditRecord:
    return AuditRecord(
        at=now, kind=AuditKind.GAP, reason=action.reason,
        last_event_id=action.last_event_id, count=action.count,
    )


def _failure(
    action: _actions.ReportFailure, now: float, last_event_id: str, transport: Transport
) -> AuditRecord:
    return AuditRecord(
        at=now, kind=AuditKind.FAILURE, reason=action.reason, status=action.status
    )


def _transport(
    action: _actions.ReportTransport, now: float, last_event_id: str, transport: Transport
) -> AuditRecord:
    return AuditRecord(
        at=now, kind=AuditKind.TRANSPORT, transport=action.transport, reason=action.reason
    )


def _stale(
    action: _actions.ReportStale, now: float, last_event_id: str, transport: Transport
) -> AuditRecord:
    return AuditRecord(at=now, kind=AuditKind.STALE, is_stale=action.is_stale)


def _dropped(
    action: _actions.ReportDropped, now: float, last_event_id: str, transport: Transport
) -> AuditRecord:
    return AuditRecord(at=now, kind=AuditKind.DROPPED, reason=action.reason)


def _connect(
    action: _actions.Connect, now: float, last_event_id: str, transport: Transport
) -> AuditRecord:
    return AuditRecord(
        at=now, kind=AuditKind.CONNECT, last_event_id=last_event_id, transport=transport
    )


# The actions an audit trail notes, and how (deliveries and socket work are left out).
_NOTES: dict[type, Callable[[Any, float, str, Transport], AuditRecord]] = {
    _actions.ReportStatus: _status,
    _actions.ReportGap: _gap,
    _actions.ReportFailure: _failure,
    _actions.ReportTransport: _transport,
    _actions.ReportStale: _stale,
    _actions.ReportDropped: _dropped,
    _actions.Connect: _connect,
}

#: The action types an audit trail notes.
AUDITED = frozenset(_NOTES)


class AuditRecorder:
    """The bounded queue a session notes its audit records in.

    Args:
        max_records: The most records kept; the oldest goes (and is counted) when a new one
            comes to a full queue.
    """

    def __init__(self, max_records: int) -> None:
        self._records: collections.deque[AuditRecord] = collections.deque(maxlen=max_records)
        self._noted = 0  # every record ever noted (dropped ones included)

    def note_actions(
        self, actions: Sequence[Action], now: float, last_event_id: str, transport: Transport
    ) -> None:
        """Note what an input returned (in order).

        Args:
            actions: The input's actions.
            now: The input's ``now``.
            last_event_id: The session's last event ID after the input: what a
                :class:`~sse_core.Connect` among ``actions`` resumes from.
            transport: The session's transport after the input: what such a connection uses.
        """
        notes = _NOTES
        for action in actions:
            note = notes.get(type(action))
            if note is not None:
                self._add(note(action, now, last_event_id, transport))

    def note_signal(self, kind: AuditKind, now: float, reason: str) -> None:
        """Note a network signal (``OFFLINE``, ``ONLINE``, ``NETWORK_CHANGED``)."""
        self._add(AuditRecord(at=now, kind=kind, reason=reason))

    def note(self, record: AuditRecord) -> None:
        """Note a record the session made itself (a server session's, a poll's)."""
        self._add(record)

    def _add(self, record: AuditRecord) -> None:
        self._records.append(record)
        self._noted += 1

    def snapshot(self) -> AuditTrail:
        """The trail so far, frozen."""
        records = tuple(self._records)
        return AuditTrail(records=records, dropped=self._noted - len(records))


class AuditedSession(MonotonicNow):
    """What the server's sessions (a stream's, a poll's) share for their audit trails: a
    recorder (``None`` when the trail is off) and the failures the I/O layer reports.

    A subclass sets ``self._audit`` in its ``__init__``.
    """

    __slots__ = ()

    _audit: AuditRecorder | None

    def note_failure(self, reason: str, now: float) -> None:
        """Note in the audit trail a failure only the I/O layer sees (the client's
        connection timed out, it took no bytes for ``send_timeout``); nothing else changes.

        Args:
            reason: What failed.
            now: The current monotonic time.

        Raises:
            ClockError: ``now`` is not finite or is earlier than a previous ``now``.
        """
        self._take_now(now)
        self._note(AuditRecord(at=now, kind=AuditKind.FAILURE, reason=reason))

    def _note(self, record: AuditRecord) -> None:
        if self._audit is not None:
            self._audit.note(record)

    def _trail(self) -> AuditTrail:
        """The trail so far (empty when it is off)."""
        return self._audit.snapshot() if self._audit is not None else AuditTrail()
