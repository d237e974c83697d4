"""Long-polling fallback: the JSON wire record and the server's per-request session (floor 3).

Some networks deliver a ``text/event-stream`` only when it ends: a buffering proxy holds the
body until the response is complete. Long-polling gets through them, because every response
is complete. The client asks for the events after its last id; the server answers at once
when it has some, or holds the request until some arrive or a deadline passes.

The request::

    GET <long-poll URL>?lastEventId=<id>&timeout=<seconds>
    Accept: application/json

``lastEventId`` is the id of the last event the client received (omitted or empty for a new
client; a ``Last-Event-ID`` header, when present, wins over it, as on the stream).
``timeout`` is how long the client is willing to wait, in seconds (a decimal number); the
server holds at most ``min(timeout, max_hold)`` seconds, ``max_hold`` when it is absent or
not a number >= 0, and answers at once when it is 0.

The answer is always ``200`` with ``Content-Type: application/json`` and a UTF-8 JSON object
of exactly four members::

    {"events": [{"id": "boot7-3", "event": "message", "data": "41.9"}, ...],
     "last_event_id": "boot7-3",
     "gap": null,
     "retry": 2000}

* ``events`` -- the events after the client's id, oldest first, at most ``max_events`` of
  them and (but for the first) at most ``max_bytes`` of JSON; possibly empty (the hold timed
  out). Each has ``id`` (a string, or ``null`` for an event without one), ``event`` (the
  type) and ``data`` (a string). Ids are those of the :class:`~sse_core.state.ReplayLog`, the same
  as on the stream, so a client can move between the two without losing its place.
* ``last_event_id`` -- where the client resumes: the id to send with the next poll. It is the
  id of the last event in ``events``, or the client's own id when nothing was sent, or for a
  new client (and after a gap) the log's position (:attr:`~sse_core.state.ReplayLog.position`: the
  newest id, or the start marker ``"<epoch>-start"`` of a log that is still empty).
* ``gap`` -- ``null``, or ``{"last_event_id": <the client's id>, "reason": "unknown" |
  "too_old", "missed": <int>}`` when the log cannot resume from the client's id (the same
  signal as the stream's :data:`~sse_core.state.GAP_EVENT_TYPE` event). ``missed``, how many
  events the log evicted after the client's id, is there only when the log knows it
  (``too_old``); an answer without it (an older server, or ``unknown``) is a gap of unknown
  size. ``events`` then holds what the log still has, from its oldest event.
* ``retry`` -- the server's reconnection time in milliseconds (an int >= 0), or ``null``. A
  client uses it as the base of its backoff after a failed poll; after a good poll it polls
  again at once.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Iterable, Sequence
from urllib.parse import parse_qsl, urlsplit

import attrs

from ._actions import Action, Disconnect, ReportGap, Send, SendHead
from ._audit import AuditedSession, AuditKind, AuditRecord, AuditRecorder, AuditTrail
from ._compression import Compressor, negotiate_encoding
from ._config import DEFAULT_MAX_RESPONSE_SIZE, LongPollConfig
from ._errors import (
    InvalidConfigError,
    InvalidFieldError,
    LimitExceeded,
    LocalProtocolError,
    RemoteProtocolError,
    sticky,
)
from ._events import Event
from ._replay import Replay, ReplayLog, StoredEvent, TooOld
from ._types import header_value
from ._validators import (
    MonotonicNow,
    has_cr_lf_nul,
    instance_of,
    int_between,
    non_negative_int,
    positive_int,
)

__all__ = [
    "DEFAULT_MAX_RESPONSE_SIZE",
    "AnswerCache",
    "LONG_POLL_CONTENT_TYPE",
    "LongPollConfig",
    "LongPollResponse",
    "LongPollSession",
    "LongPollState",
]

#: The ``Content-Type`` of a long-poll answer.
LONG_POLL_CONTENT_TYPE = "application/json"

_GAP_REASONS = ("unknown", "too_old")
_CLOSED = "closed by the server"
_SEPARATORS = (",", ":")


def _event_json(event: Event) -> str:
    return json.dumps(
        {"id": event.id, "event": event.event, "data": event.data},
        ensure_ascii=False,
        separators=_SEPARATORS,
    )


def _tail_json(last_event_id: str, gap: ReportGap | None, retry: int | None) -> str:
    gap_value: dict[str, object] | None = None
    if gap is not None:
        gap_value = {"last_event_id": gap.last_event_id, "reason": gap.reason}
        if gap.missed is not None:
            gap_value["missed"] = gap.missed  # an added key: older clients ignore it
    tail = json.dumps(
        {"last_event_id": last_event_id, "gap": gap_value, "retry": retry},
        ensure_ascii=False,
        separators=_SEPARATORS,
    )
    return tail[1:]  # without the opening brace


def _encode(event_texts: Sequence[str], tail: str) -> bytes:
    return ('{"events":[' + ",".join(event_texts) + "]," + tail).encode("utf-8")


def _to_tuple(events: Iterable[Event]) -> tuple[Event, ...]:
    return tuple(events)


def _bad(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(f"bad long-poll response: {message}")


def _check_gap(gap: object) -> None:
    if gap is not None and not (
        isinstance(gap, ReportGap)
        and isinstance(gap.last_event_id, str)
        and gap.reason in _GAP_REASONS
    ):
        raise InvalidFieldError(
            "gap", gap, "expected None or a ReportGap with reason 'unknown' or 'too_old'"
        )


def _is_count_or_none(value: object) -> bool:
    return value is None or (type(value) is int and value >= 0)


@attrs.frozen(kw_only=True)
class LongPollResponse:
    """One long-poll answer, as it travels (JSON, see the module docs).

    Attributes:
        events: The events, oldest first.
        last_event_id: Where the client resumes (the id to send with the next poll).
        gap: The gap signal when the server could not resume from the client's id, or
            ``None``.
        retry: The server's reconnection time in milliseconds, or ``None``.

    Raises:
        InvalidFieldError: on construction, when a field cannot be sent (an id with CR, LF or
            NUL, a negative ``retry``, a gap with another reason).
    """

    events: tuple[Event, ...] = attrs.field(default=(), converter=_to_tuple)
    last_event_id: str = ""
    gap: ReportGap | None = None
    retry: int | None = None

    def __attrs_post_init__(self) -> None:
        for event in self.events:
            if not isinstance(event, Event):
                raise InvalidFieldError("events", event, "expected Event records")
        Event(data="", last_event_id=self.last_event_id)  # the id checks of the stream
        _check_gap(self.gap)
        non_negative_int.or_none().check("retry", self.retry, error=InvalidFieldError)

    def encode(self) -> bytes:
        """The JSON body, UTF-8.

        Raises:
            InvalidFieldError: a string holds a lone surrogate (not encodable as UTF-8).
        """
        try:
            return _encode(
                [_event_json(e) for e in self.events],
                _tail_json(self.last_event_id, self.gap, self.retry),
            )
        except UnicodeEncodeError as error:
            raise InvalidFieldError("data", error.object, "not encodable as UTF-8") from None

    @classmethod
    def decode(
        cls, body: bytes, *, max_size: int = DEFAULT_MAX_RESPONSE_SIZE, last_event_id: str = ""
    ) -> LongPollResponse:
        """Parse a long-poll answer, strictly.

        Args:
            body: The whole response body (decoded from any ``Content-Encoding``).
            max_size: Most bytes accepted.
            last_event_id: The client's last event ID before this answer; it becomes the
                ``last_event_id`` of leading events that carry no id (as on a stream).

        Returns:
            The answer, its events with ``last_event_id`` filled in as a stream would.

        Raises:
            LimitExceeded: ``body`` is longer than ``max_size`` (``limit="max_response_size"``).
            RemoteProtocolError: the body is not UTF-8 JSON of the documented shape (also for
                JSON nested too deeply to parse).
        """
        if len(body) > max_size:
            raise LimitExceeded("max_response_size", len(body), max_size)
        try:
            document = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as error:
            raise _bad(f"not UTF-8 JSON ({type(error).__name__})") from None
        if not isinstance(document, dict) or set(document) != {
            "events", "last_event_id", "gap", "retry",
        }:
            raise _bad("expected an object with events, last_event_id, gap and retry")
        raw_events, cursor = document["events"], document["last_event_id"]
        raw_gap, retry = document["gap"], document["retry"]
        if not isinstance(raw_events, list):
            raise _bad(f"events must be a list, got {type(raw_events).__name__}")
        if retry is not None and (type(retry) is not int or retry < 0):
            raise _bad(f"retry must be null or an int >= 0, got {retry!r}")
        gap = None
        if raw_gap is not None:
            if (
                not isinstance(raw_gap, dict)
                or not isinstance(raw_gap.get("last_event_id"), str)
                or raw_gap.get("reason") not in _GAP_REASONS
                or not _is_count_or_none(raw_gap.get("missed"))
            ):
                raise _bad(f"gap must be null or a gap object, got {raw_gap!r}")
            gap = ReportGap(last_event_id=raw_gap["last_event_id"], reason=raw_gap["reason"],
                            missed=raw_gap.get("missed"))
        events = []
        running = last_event_id
        try:
            for raw in raw_events:
                if not isinstance(raw, dict) or set(raw) != {"id", "event", "data"}:
                    raise _bad(f"an event must have exactly id, event and data, got {raw!r}")
                id = raw["id"]
                if id is not None:
                    running = id
                events.append(
                    Event(data=raw["data"], event=raw["event"], id=id, last_event_id=running)
                )
            return cls(events=events, last_event_id=cursor, gap=gap, retry=retry)
        except InvalidFieldError as error:
            raise _bad(str(error)) from None



# One encoded answer: its body (gzip-encoded or not), where the client resumes, how many
# events it carries.
_Answer = tuple[bytes, str, int]


class AnswerCache:
    """Encoded long-poll answers, shared by the polls that stand at the same place.

    When an event is published, every poll held at the end of the log gets the same answer:
    the same events, the same ``last_event_id``. Give every :class:`LongPollSession` on one
    log the same cache and that answer is encoded (and gzip-compressed) once, by the first
    session that needs it; the others send the same bytes. An entry is keyed by the log's
    position, the client's id and the content coding: it is valid until the log moves (the
    first lookup at a new position forgets every entry). Answers that signal a gap are not
    cached.

    Memory: at most ``max_entries`` answers, all for one log position; the oldest is
    forgotten first.

    Args:
        max_entries: The most answers kept.

    Raises:
        InvalidConfigError: ``max_entries`` is not an int >= 1.
    """

    __slots__ = ("_encoded", "_entries", "_max_entries", "_position")

    def __init__(self, max_entries: int = 64) -> None:
        positive_int.check("max_entries", max_entries)
        self._max_entries = max_entries
        self._position: str | None = None
        self._entries: dict[tuple[str, bool], _Answer] = {}
        self._encoded = 0

    @property
    def encoded(self) -> int:
        """How many answers were encoded in all (lookups that found none)."""
        return self._encoded

    def __len__(self) -> int:
        """The number of answers kept."""
        return len(self._entries)

    def _get(self, position: str, key: tuple[str, bool]) -> _Answer | None:
        if position != self._position:
            self._entries.clear()
            self._position = position
            return None
        return self._entries.get(key)

    def _put(self, key: tuple[str, bool], answer: _Answer) -> None:
        entries = self._entries
        if len(entries) >= self._max_entries:
            del entries[next(iter(entries))]
        entries[key] = answer

    def _count(self) -> None:
        self._encoded += 1


class LongPollState(enum.Enum):
    """Lifecycle of a :class:`LongPollSession`: ``IDLE`` -> (``HOLDING`` ->) ``ANSWERED``."""

    IDLE = "idle"  # no request yet
    HOLDING = "holding"  # no events yet: waiting for some, or for the deadline
    ANSWERED = "answered"  # the answer was sent (or the session closed)


class LongPollSession(AuditedSession):
    """Answers one long-poll request from a :class:`~sse_core.state.ReplayLog`, without I/O.

    Make one per request. :meth:`on_request` answers at once when the log has events after
    the client's id (or cannot resume from it: the gap signal); otherwise the session holds
    the request. Then call :meth:`on_published` after appending to the log (it answers when
    there is something new) and :meth:`on_timer` at :meth:`next_deadline` (it answers,
    possibly with no events). An answer is always ``SendHead``, ``Send`` (the whole JSON
    body, with ``Content-Length``) and ``Disconnect``, the last action of the session.

    Without a log (``replay_log=None``) the events come from the caller instead: one
    request's own stream, which produces the events after the client's id itself (the
    per-request responses of :doc:`/adapters/responses`). The session always holds, and
    :meth:`on_events` answers with the events given, ids as they are; an event without an
    id leaves the client's cursor where it was.

    Each session keeps the poll's lifecycle in a bounded audit trail (:attr:`audit_trail`)
    and counts how its resumption went, as a :class:`~sse_core.ServerSession` does (a
    :class:`~sse_core.Broadcaster`'s and a response's ``metrics`` read both).

    Memory: the session keeps the client's cursor and its audit trail (at most
    ``max_audit_records``); events stay in the log. Misuse is final: once an input raised
    :class:`~sse_core.LocalProtocolError`, every later input but :meth:`close` raises it
    again, saying the session failed earlier and why.

    Args:
        config: The session's configuration.
        replay_log: The log the stream sessions use (ids are the same on both transports),
            or ``None``: the events come through :meth:`on_events`.
        answers: A cache shared by every session on ``replay_log``, so that the polls at the
            same place send one encoding of the same answer (see :class:`AnswerCache`), or
            ``None``.
        compression_level: gzip the answer (``Content-Encoding: gzip``) when the request's
            ``Accept-Encoding`` allows it, at this zlib level (1 to 9); ``None`` never does.

    Raises:
        InvalidConfigError: ``config`` is not a :class:`LongPollConfig`, ``replay_log`` not
            a :class:`~sse_core.state.ReplayLog` or ``None``, ``answers`` not an
            :class:`AnswerCache` (or given without a log), or ``compression_level`` out of
            range.
    """

    __slots__ = (
        "_answers", "_asked", "_audit", "_bytes_sent", "_config", "_cursor", "_deadline",
        "_events_sent", "_failure", "_is_gzip", "_level", "_log", "_replays_served", "_state",
        "_too_old_resumes", "_unknown_id_resumes",
    )

    def __init__(
        self,
        config: LongPollConfig,
        replay_log: ReplayLog | None,
        *,
        answers: AnswerCache | None = None,
        compression_level: int | None = None,
    ) -> None:
        if not isinstance(config, LongPollConfig):
            raise InvalidConfigError(f"config must be a LongPollConfig, got {config!r}")
        instance_of(ReplayLog).or_none().check("replay_log", replay_log)
        if answers is not None and not isinstance(answers, AnswerCache):
            raise InvalidConfigError(f"answers must be an AnswerCache, got {answers!r}")
        if answers is not None and replay_log is None:
            raise InvalidConfigError("answers are shared by the polls of one log: give the log")
        int_between(1, 9).or_none().check("compression_level", compression_level)
        self._config = config
        self._log = replay_log
        self._answers = answers
        self._level = compression_level
        self._is_gzip = False
        self._state = LongPollState.IDLE
        self._cursor = ""
        self._asked = ""  # the id the request carried
        self._deadline: float | None = None
        self._events_sent = 0
        self._bytes_sent = 0
        # How its resumption went, counted as a ServerSession counts it (for the metrics).
        self._replays_served = 0
        self._too_old_resumes = 0
        self._unknown_id_resumes = 0
        self._audit = (
            AuditRecorder(config.max_audit_records) if config.max_audit_records else None
        )
        MonotonicNow.__init__(self)
        self._failure: LocalProtocolError | None = None  # the misuse that ended it (sticky)

    @property
    def state(self) -> LongPollState:
        """The lifecycle state."""
        return self._state

    @property
    def last_event_id(self) -> str:
        """Where the client stands: its id, or for a new client the log's position then
        (``""`` without a log)."""
        return self._cursor

    @property
    def events_sent(self) -> int:
        """How many events the answer carried (0 before it, or for an empty one)."""
        return self._events_sent

    @property
    def bytes_sent(self) -> int:
        """The answer's body bytes (after compression; 0 before it)."""
        return self._bytes_sent

    @property
    def audit_trail(self) -> AuditTrail:
        """The poll's lifecycle, as timed records: the request with the id it resumes from
        (``REQUEST``), ``HOLDING`` when it waits (``STATUS``), the gap signal with its
        reason and ``missed`` (``GAP``), the answer with how many events it carried
        (``REPLAYED``), ``ANSWERED`` with why (``STATUS``: ``"answered"``, ``"timed out"``,
        ``"closed by the server"``), and a failure the I/O layer reported (``FAILURE``). At
        most ``LongPollConfig.max_audit_records``; see :ref:`longpoll-observability`."""
        return self._trail()

    @property
    def client_last_event_id(self) -> str:
        """The last event ID the request carried (``""`` for a new client, or before
        :meth:`on_request`): what a stream that produces its own events resumes from."""
        return self._asked

    def next_deadline(self) -> float | None:
        """When the held request must be answered, or ``None`` when not holding."""
        is_holding = self._state is LongPollState.HOLDING and self._failure is None
        return self._deadline if is_holding else None

    @sticky
    def on_request(
        self, target: str, headers: Sequence[tuple[str | bytes, str | bytes]], now: float
    ) -> list[Action]:
        """Take the request: answer at once, or hold it.

        Args:
            target: The request target (path and query): ``lastEventId`` and ``timeout``.
            headers: The request header fields (``Last-Event-ID`` wins over the query).
            now: The current monotonic time.

        Returns:
            The answer (``SendHead``, ``Send``, ``Disconnect``), or ``[]`` while holding.

        Raises:
            LocalProtocolError: the session already took a request.
        """
        self._take_now(now)
        if self._state is not LongPollState.IDLE:
            raise LocalProtocolError(f"on_request() in state {self._state.value!r}")
        config = self._config
        query = dict(parse_qsl(urlsplit(target).query, keep_blank_values=True))
        last_event_id = header_value(headers, "last-event-id")
        if last_event_id is None:
            last_event_id = query.get(config.last_event_id_param)
        if last_event_id is None or has_cr_lf_nul(last_event_id):
            last_event_id = ""
        hold = config.max_hold
        try:
            timeout = float(query.get(config.timeout_param, "nan"))
        except ValueError:
            timeout = math.nan
        if timeout >= 0:  # False for NaN
            hold = min(hold, timeout)
        self._deadline = now + hold
        self._state = LongPollState.HOLDING
        self._is_gzip = self._level is not None and negotiate_encoding(
            header_value(headers, "accept-encoding")
        ) == "gzip"
        # A new client starts at the log's position: what is appended from now on is its.
        self._asked = last_event_id
        self._cursor = last_event_id or (self._log.position if self._log is not None else "")
        self._note(AuditRecord(at=now, kind=AuditKind.REQUEST, last_event_id=last_event_id))
        actions = self._answer(now, is_due=hold == 0)
        if not actions:
            self._note(AuditRecord(at=now, kind=AuditKind.STATUS, state=LongPollState.HOLDING))
        elif last_event_id and self._events_sent and not self._is_gap_answered:
            self._replays_served = 1  # answered from the log after the client's id
        return actions

    @sticky
    def on_published(self, now: float) -> list[Action]:
        """Events were appended to the log: answer a held request that has new ones.

        Returns:
            The answer, or ``[]`` (not holding, or nothing new for this client).
        """
        self._take_now(now)
        if self._state is not LongPollState.HOLDING:
            return []
        return self._answer(now, is_due=False)

    @sticky
    def on_events(self, events: Sequence[Event], now: float) -> list[Action]:
        """Answer a held request with these events (a session without a log).

        All of them are sent, however many bytes they make (they were taken from their
        source already: the caller passes at most ``max_events``). The client resumes from
        the last id among them, or stays where it was when none has an id.

        Args:
            events: The events the request's stream produced, oldest first.
            now: The current monotonic time.

        Returns:
            The answer; ``[]`` when ``events`` is empty or the session is not holding.

        Raises:
            LocalProtocolError: the session has a log (append to it and call
                :meth:`on_published`), or more than ``max_events`` events were given.
        """
        self._take_now(now)
        if self._log is not None:
            raise LocalProtocolError("on_events() without a log; with one, use on_published()")
        if len(events) > self._config.max_events:
            raise LocalProtocolError(
                f"on_events() with {len(events)} events, more than max_events="
                f"{self._config.max_events}"
            )
        for event in events:
            if not isinstance(event, Event):
                raise LocalProtocolError(f"on_events() takes Event records, got {event!r}")
        if self._state is not LongPollState.HOLDING or not events:
            return []
        return self._send(self._encode(events, None, is_cut=False), None, now, "answered")

    @sticky
    def on_timer(self, now: float) -> list[Action]:
        """Wake-up at :meth:`next_deadline`: answer with what there is (maybe nothing).

        Early or spurious calls return ``[]``.
        """
        self._take_now(now)
        deadline = self.next_deadline()
        if deadline is None or now < deadline:
            return []
        return self._answer(now, is_due=True)

    def close(self, now: float, *, reason: str = _CLOSED) -> list[Action]:
        """End the session (server shutdown): a held request is answered now.

        Args:
            now: The current monotonic time.
            reason: Why, for the audit trail (a per-request response says its event source
                ended, or the hold ran out).

        Returns:
            The answer when holding; ``Disconnect`` when no request came; ``[]`` afterwards.
        """
        self._take_now(now)
        match self._state:
            case LongPollState.HOLDING:
                return self._answer(now, is_due=True, reason=reason)
            case LongPollState.IDLE:
                self._state = LongPollState.ANSWERED
                self._note(AuditRecord(at=now, kind=AuditKind.STATUS,
                                       state=LongPollState.ANSWERED, reason=reason))
                return [Disconnect(reason=reason)]
            case LongPollState.ANSWERED:
                return []
            case _:  # pragma: no cover
                raise AssertionError(self._state)

    # --- internals ------------------------------------------------------------------------

    def _pending(self, now: float) -> tuple[tuple[StoredEvent, ...], ReportGap | None]:
        log = self._log
        if log is None:
            return (), None  # the events come through on_events()
        result = log.resume(self._cursor, now)
        if isinstance(result, Replay):
            return result.events, None
        if isinstance(result, TooOld):
            gap = ReportGap(last_event_id=self._cursor, reason="too_old", missed=result.missed)
        else:
            gap = ReportGap(last_event_id=self._cursor, reason="unknown")
        if gap.reason == "unknown" and not self._config.is_unknown_id_replayed:
            return (), gap  # the gap and the log's position: a made-up id buys nothing
        return log.events(), gap

    @property
    def _is_gap_answered(self) -> bool:
        return bool(self._too_old_resumes or self._unknown_id_resumes)

    def _answer(self, now: float, *, is_due: bool, reason: str | None = None) -> list[Action]:
        """The answer, or ``[]`` to keep holding; ``reason``: why the poll closes (by
        default, answered, or timed out when ``is_due`` and there is nothing)."""
        answers = self._answers
        key = (self._cursor, self._is_gzip)
        answer = None
        gap = None
        if answers is not None and self._log is not None:
            answer = answers._get(self._log.position, key)
        if answer is None:
            stored, gap = self._pending(now)
            if not stored and gap is None and not is_due:
                return []
            answer = self._encode([item.event for item in stored], gap, is_cut=True)
            if answers is not None:
                answers._count()
                if gap is None:
                    answers._put(key, answer)
        elif not answer[2] and not is_due:
            return []  # an empty answer (cached by a poll that was due): keep holding
        if reason is None:
            reason = "answered" if answer[2] or gap is not None else "timed out"
        return self._send(answer, gap, now, reason)

    def _send(
        self, answer: _Answer, gap: ReportGap | None, now: float, reason: str
    ) -> list[Action]:
        """Send the answer: counted (a gap, the bytes) and noted in the audit trail."""
        body, cursor, self._events_sent = answer
        self._state = LongPollState.ANSWERED
        self._cursor = cursor
        self._bytes_sent = len(body)
        if gap is not None:
            if gap.reason == "too_old":
                self._too_old_resumes = 1
            else:
                self._unknown_id_resumes = 1
            self._note(AuditRecord(at=now, kind=AuditKind.GAP, reason=gap.reason,
                                   last_event_id=gap.last_event_id, count=gap.missed))
        self._note(AuditRecord(at=now, kind=AuditKind.REPLAYED, count=self._events_sent))
        self._note(AuditRecord(at=now, kind=AuditKind.STATUS, state=LongPollState.ANSWERED,
                               reason=reason))
        headers = [
            ("Content-Type", LONG_POLL_CONTENT_TYPE),
            ("Cache-Control", "no-cache, no-store"),
            ("Content-Length", str(len(body))),
        ]
        if self._is_gzip:
            headers += [("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding")]
        return [
            SendHead(status=200, headers=(*headers, *self._config.headers)),
            Send(data=body),
            Disconnect(reason="long-poll answered"),
        ]

    def _encode(self, events: Sequence[Event], gap: ReportGap | None, *, is_cut: bool) -> _Answer:
        """The answer's body (compressed when agreed), the client's new id, the event count;
        ``is_cut``: at most ``max_events`` and ``max_bytes`` of the events (the rest stay
        in the log)."""
        config = self._config
        texts: list[str] = []
        size = 0
        # After a gap the client's id is worthless: it resumes from what it is sent, or from
        # the log's position when nothing is sent, rather than meeting the same gap again.
        cursor = self._cursor
        if gap is not None and self._log is not None:
            cursor = self._log.position
        max_bytes = config.max_bytes if is_cut else None
        for event in events[: config.max_events]:
            text = _event_json(event)
            if max_bytes is not None:
                length = len(text.encode("utf-8"))
                if texts and size + length > max_bytes:
                    break
                size += length
            texts.append(text)
            if event.id is not None:
                cursor = event.id
        body = _encode(texts, _tail_json(cursor, gap, config.retry))
        if self._is_gzip and self._level is not None:
            compressor = Compressor(level=self._level)
            body = compressor.compress(body) + compressor.finish()
        return body, cursor, len(texts)
