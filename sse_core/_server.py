"""The server session: one resumable event stream to one client, without I/O (floor 3).

:class:`ServerSession` answers a request: the response head (with the fields that keep
proxies from buffering), optional padding, a ``retry:`` hint, and the events the client
missed -- replayed from a :class:`~sse_core.state.ReplayLog` after its ``Last-Event-ID``, or, when
they are gone, an explicit gap signal (:data:`~sse_core.state.GAP_EVENT_TYPE`). A long replay is
produced in steps of at most ``replay_chunk_size`` bytes, read from the shared log only when
the I/O layer asks for the next one (:meth:`ServerSession.continue_replay`), so a client that
does not read pins no copy of the log. Afterwards it sends what the application publishes,
heartbeat comments when the stream is idle, and compresses with gzip when the client accepts
it, flushing after every write so that compression never delays an event.

Fan-out: append each event to the shared :class:`~sse_core.state.ReplayLog` once (that encodes it
once), then hand the same :class:`~sse_core.state.StoredEvent` to every session's :meth:`send`.

Each session keeps its lifecycle in a bounded audit trail (:attr:`ServerSession.audit_trail`):
the request and the id it resumes from, state changes with their reasons, gap signals, the
end of the replay, and a failure the I/O layer reports.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from urllib.parse import parse_qsl, urlsplit

from ._actions import GAP_EVENT_TYPE, POSITION_EVENT_TYPE, Action, Disconnect, Send, SendHead
from ._audit import AuditedSession, AuditKind, AuditRecord, AuditRecorder, AuditTrail
from ._compression import Compressor, negotiate_encoding
from ._config import ServerConfig
from ._errors import InvalidConfigError, LocalProtocolError, sticky
from ._events import Event, Retry
from ._replay import Replay, StoredEvent, TooOld
from ._serializer import (
    HEARTBEAT,
    serialize,
    serialize_block,
    serialize_padding,
    serialize_stamp,
)
from ._shared_log import SharedLog
from ._timers import HeartbeatScheduler
from ._types import header_value
from ._validators import MonotonicNow, has_cr_lf_nul

__all__ = ["ServerConfig", "ServerSession", "ServerState"]


class ServerState(enum.Enum):
    """Lifecycle of a server session: ``IDLE`` -> ``STREAMING`` -> ``CLOSED``."""

    IDLE = "idle"  # no request answered yet
    STREAMING = "streaming"
    CLOSED = "closed"


class ServerSession(AuditedSession):
    """One event stream to one client.

    Misuse is final: once an input raised :class:`~sse_core.LocalProtocolError`, every later
    input but :meth:`close` raises it again, saying the session failed earlier and why.

    Args:
        config: The session's configuration.
        replay_log: The log to resume from (a :class:`~sse_core.state.ReplayLog`, or any
            :class:`~sse_core.state.SharedLog`); ``None`` when the stream is not resumable.

    Raises:
        InvalidConfigError: ``config`` is not a :class:`ServerConfig`.
    """

    def __init__(self, config: ServerConfig, replay_log: SharedLog | None = None) -> None:
        if not isinstance(config, ServerConfig):
            raise InvalidConfigError(f"config must be a ServerConfig, got {config!r}")
        self._config = config
        self._replay_log = replay_log
        self._state = ServerState.IDLE
        self._compressor: Compressor | None = None
        self._heartbeat = (
            HeartbeatScheduler(config.heartbeat_interval)
            if config.heartbeat_interval is not None
            else None
        )
        self._last_event_id = ""
        self._bytes_sent = 0
        self._cursor: str | None = None  # replaying: the id after which the next step starts
        self._sent_id = ""  # the last id the client was sent (or sent us)
        # How its resumption went, for the metrics: a replay from a known id, too-old gap
        # signals sent (at the start or during a long replay), an id the log could not place.
        self._replays_served = 0
        self._too_old_resumes = 0
        self._unknown_id_resumes = 0
        self._replayed = 0  # events the replay under way has sent, for its audit record
        self._audit = (
            AuditRecorder(config.max_audit_records) if config.max_audit_records else None
        )
        MonotonicNow.__init__(self)
        self._failure: LocalProtocolError | None = None  # the misuse that ended it (sticky)

    @property
    def state(self) -> ServerState:
        """The lifecycle state."""
        return self._state

    @property
    def last_event_id(self) -> str:
        """The last event ID the client sent (header or query parameter), or ``""``."""
        return self._last_event_id

    @property
    def content_encoding(self) -> str | None:
        """``"gzip"`` when the body is compressed, else ``None``."""
        return "gzip" if self._compressor is not None else None

    @property
    def bytes_sent(self) -> int:
        """Body bytes handed to :class:`~sse_core.Send` actions so far (after compression)."""
        return self._bytes_sent

    @property
    def audit_trail(self) -> AuditTrail:
        """The session's lifecycle so far, as timed records: the request with the id it
        resumes from (``REQUEST``), state changes with their reasons (``STATUS``), gap
        signals sent with how many events were lost when known (``GAP``), the end of the
        replay with how many events it sent (``REPLAYED``), and a failure the I/O layer
        reported (``FAILURE``: a send timeout). At most ``ServerConfig.max_audit_records``;
        see :ref:`audit-trail`."""
        return self._trail()

    @property
    def is_replaying(self) -> bool:
        """Whether a replay is under way: call :meth:`continue_replay` for its next step
        whenever the client can take more bytes."""
        return self._cursor is not None

    def next_deadline(self) -> float | None:
        """When the next heartbeat is due, or ``None``."""
        if (
            self._state is not ServerState.STREAMING
            or self._heartbeat is None
            or self._failure is not None
        ):
            return None
        return self._heartbeat.next_deadline()

    @sticky
    def on_request(
        self,
        target: str,
        headers: Sequence[tuple[str | bytes, str | bytes]],
        now: float,
        *,
        is_long_replay_allowed: bool = True,
    ) -> list[Action]:
        """Answer the client's request: the head, then padding, ``retry:`` and the replay.

        Args:
            target: The request target (path and query), for ``last_event_id_param``.
            headers: The request header fields.
            now: The current monotonic time.
            is_long_replay_allowed: Whether a replay longer than one step may start (a
                server-wide budget says). When it may not, the client gets the ``retry:``
                hint ``busy_retry`` and the end of the stream, and nothing else: it keeps
                its last event ID and comes back later.

        Returns:
            :class:`~sse_core.SendHead` then one :class:`~sse_core.Send` (when there is
            anything to send at once), then :class:`~sse_core.Disconnect` when the replay
            was put off. When :attr:`is_replaying` is true afterwards, the rest of the
            replay comes from :meth:`continue_replay`.

        Raises:
            LocalProtocolError: the session already answered a request.
        """
        self._take_now(now)
        if self._state is not ServerState.IDLE:
            raise LocalProtocolError(f"on_request() in state {self._state.value!r}")
        config = self._config
        last_event_id = header_value(headers, "last-event-id")
        if last_event_id is None and config.last_event_id_param is not None:
            query = dict(parse_qsl(urlsplit(target).query, keep_blank_values=True))
            last_event_id = query.get(config.last_event_id_param)
        if last_event_id is not None and has_cr_lf_nul(last_event_id):
            last_event_id = None  # not an id any stream could have sent
        self._last_event_id = self._sent_id = last_event_id or ""
        self._note(AuditRecord(at=now, kind=AuditKind.REQUEST, last_event_id=self._last_event_id))

        response_headers = [
            ("Content-Type", "text/event-stream; charset=utf-8"),
            # no-transform: intermediaries must not re-encode (and so buffer) the body.
            ("Cache-Control", "no-cache, no-transform"),
            # nginx and compatible proxies: pass each write through at once.
            ("X-Accel-Buffering", "no"),
        ]
        if config.is_compression_enabled and negotiate_encoding(
            header_value(headers, "accept-encoding")
        ):
            self._compressor = Compressor(level=config.compression_level)
            response_headers += [("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding")]
        response_headers += list(config.headers)
        self._state = ServerState.STREAMING
        self._note(AuditRecord(at=now, kind=AuditKind.STATUS, state=ServerState.STREAMING))
        if self._heartbeat is not None:
            self._heartbeat.start(now)

        parts: list[bytes] = []
        if config.padding:
            parts.append(serialize_padding(config.padding))
        replay = self._begin_replay(now)
        is_put_off = self.is_replaying and not is_long_replay_allowed
        if is_put_off:
            self._cursor = None
            self._sent_id = self._last_event_id
            self._replayed = 0  # its first step is not sent
            parts.append(serialize_block(Retry(milliseconds=config.busy_retry)))
        else:
            if config.retry is not None:
                parts.append(serialize_block(Retry(milliseconds=config.retry)))
            parts.append(replay)
        self._note_replay_end(now)
        actions: list[Action] = [SendHead(status=200, headers=tuple(response_headers))]
        actions += self._send(b"".join(parts), now)
        if is_put_off:
            actions += self.close(now, reason="replay put off: the server's replay budget is spent")
        return actions

    @sticky
    def continue_replay(self, now: float) -> list[Action]:
        """The next step of the replay, while :attr:`is_replaying`.

        Each step reads at most ``replay_chunk_size`` bytes from the log, starting after the
        last event sent; events appended meanwhile are part of the replay. When the log
        evicted events the client has not been sent yet, the gap signal (``too_old``, with how
        many were lost when the log says) comes first and the replay goes on from the oldest
        event kept.

        Args:
            now: The current monotonic time.

        Returns:
            One :class:`~sse_core.Send`, or nothing when no replay is under way.
        """
        self._take_now(now)
        cursor, log = self._cursor, self._replay_log
        if cursor is None or log is None or self._state is not ServerState.STREAMING:
            return []
        result = log.resume(cursor, now, max_bytes=self._config.replay_chunk_size)
        if isinstance(result, Replay):
            data = self._replay_step(log, result)
        else:
            self._too_old_resumes += 1
            missed = result.missed if isinstance(result, TooOld) else None
            data = self._gap_signal(cursor, "too_old", now, missed) + self._replay_oldest(log)
        self._note_replay_end(now)
        return self._send(data, now)

    @sticky
    def send(
        self, event: StoredEvent | Event | bytes, now: float, *, wall_now: float | None = None
    ) -> list[Action]:
        """Send one event (or pre-encoded stream bytes) to this client.

        With ``ServerConfig.is_send_time_stamped`` and ``wall_now`` (the wall clock, Unix
        seconds), an event goes out after its send-time stamp comment (pre-encoded bytes
        are sent as they are).

        Pass the :class:`~sse_core.state.StoredEvent` that :meth:`ReplayLog.append` returned: its
        bytes were encoded once for every client. While :attr:`is_replaying`, a
        :class:`~sse_core.state.StoredEvent` is not sent here: the replay reads it from the log,
        in order.

        Raises:
            LocalProtocolError: the stream is not open.
        """
        self._take_now(now)
        if self._state is not ServerState.STREAMING:
            raise LocalProtocolError(f"send() in state {self._state.value!r}")
        if isinstance(event, StoredEvent):
            if self._cursor is not None:
                return []
            data = event.encoded
        elif isinstance(event, Event):
            data = serialize(event)
        else:
            return self._send(bytes(event), now)
        if wall_now is not None and self._config.is_send_time_stamped:
            data = serialize_stamp(wall_now) + data
        return self._send(data, now)

    @sticky
    def on_timer(self, now: float) -> list[Action]:
        """Send a heartbeat if one is due."""
        self._take_now(now)
        if self.is_heartbeat_due(now):
            return self._send(HEARTBEAT, now)
        return []

    def is_heartbeat_due(self, now: float) -> bool:
        """Whether :meth:`on_timer` would send a heartbeat at ``now``."""
        self._read_now(now)
        return (
            self._state is ServerState.STREAMING
            and self._failure is None
            and self._heartbeat is not None
            and self._heartbeat.is_due(now)
        )

    def close(self, now: float, *, reason: str = "closed by the server") -> list[Action]:
        """End the stream: the gzip trailer if compressing, then disconnect.

        Closing a closed session does nothing.

        Args:
            now: The current monotonic time.
            reason: Why, for the :class:`~sse_core.Disconnect` and the audit trail (a
                :class:`~sse_core.Broadcaster` gives the reason it let the client go).
        """
        self._take_now(now)
        if self._state is ServerState.CLOSED:
            return []
        actions: list[Action] = []
        if self._state is ServerState.STREAMING and self._compressor is not None:
            trailer = self._compressor.finish()
            self._bytes_sent += len(trailer)
            actions.append(Send(data=trailer))
        self._state = ServerState.CLOSED
        self._cursor = None
        if self._heartbeat is not None:
            self._heartbeat.stop()
        self._note(AuditRecord(at=now, kind=AuditKind.STATUS, state=ServerState.CLOSED,
                               reason=reason))
        actions.append(Disconnect(reason=reason))
        return actions

    # --- what a Broadcaster uses to queue stream bytes and compress them later ------------

    def _encode(self, data: bytes) -> bytes:
        """Compress ``data`` (stream bytes, in stream order) as the body needs it."""
        if self._compressor is not None:
            data = self._compressor.compress(data)
        self._bytes_sent += len(data)
        return data

    def _mark_sent(self, now: float) -> None:
        """Record that data went out at ``now`` (the heartbeat waits from here)."""
        # Lenient: bytes queued at one instant may be taken a little later by another caller.
        if now > self._latest_now:
            self._latest_now = now
        if self._heartbeat is not None and self._state is ServerState.STREAMING:
            self._heartbeat.sent(self._latest_now)

    # --- internals ------------------------------------------------------------------------

    def _send(self, data: bytes, now: float) -> list[Action]:
        if not data:
            return []
        self._mark_sent(now)
        return [Send(data=self._encode(data))]

    def _begin_replay(self, now: float) -> bytes:
        """The replay's first step (or the gap signal, or the position)."""
        log = self._replay_log
        if log is None:
            return b""
        if not self._last_event_id:
            # A new client: nothing to replay, but tell it where the stream stands, so that a
            # connection lost before its first event still resumes from here instead of
            # silently skipping what came meanwhile.
            return _position_block(log)
        result = log.resume(self._last_event_id, now, max_bytes=self._config.replay_chunk_size)
        if isinstance(result, Replay):
            self._replays_served += bool(result.events)
            return self._replay_step(log, result)
        if isinstance(result, TooOld):
            self._too_old_resumes += 1
            # The id was ours: what the log still has is what the client can get.
            signal = self._gap_signal(result.last_event_id, "too_old", now, result.missed)
            return signal + self._replay_oldest(log)
        self._unknown_id_resumes += 1
        signal = self._gap_signal(result.last_event_id, "unknown", now)
        if self._config.is_unknown_id_replayed:
            return signal + self._replay_oldest(log)
        self._sent_id = log.position
        return signal + _position_block(log)

    def _replay_oldest(self, log: SharedLog) -> bytes:
        return self._replay_step(log, log.oldest(max_bytes=self._config.replay_chunk_size))

    def _replay_step(self, log: SharedLog, replay: Replay) -> bytes:
        """The bytes of one step; moves the cursor, or ends the replay with the position."""
        data = b"".join([stored.encoded for stored in replay.events])
        if replay.events:
            self._sent_id = replay.events[-1].id
            self._replayed += len(replay.events)
        if not replay.is_complete:
            self._cursor = self._sent_id
            return data
        self._cursor = None
        if self._sent_id != log.position:
            # The newest event was not kept (larger than the log), or the log is empty after
            # a gap: the client's next resumption must start from a known id.
            self._sent_id = log.position
            data += _position_block(log)
        return data

    def _note_replay_end(self, now: float) -> None:
        """Note a replay that sent events and is over."""
        if self._replayed and self._cursor is None:
            self._note(AuditRecord(at=now, kind=AuditKind.REPLAYED, count=self._replayed))
            self._replayed = 0

    def _gap_signal(
        self, last_event_id: str, reason: str, now: float, missed: int | None = None
    ) -> bytes:
        """The gap signal (noted in the audit trail); ``missed`` (how many events were
        lost) only when the log knows."""
        self._note(AuditRecord(at=now, kind=AuditKind.GAP, reason=reason,
                               last_event_id=last_event_id, count=missed))
        body: dict[str, object] = {"last_event_id": last_event_id, "reason": reason}
        if missed is not None:
            body["missed"] = missed  # an added key: clients that read the old form ignore it
        return serialize(Event(data=json.dumps(body), event=GAP_EVENT_TYPE))


def _position_block(log: SharedLog) -> bytes:
    """The log's position as a :data:`~sse_core.state.POSITION_EVENT_TYPE` event, empty data.

    An ``id:`` field alone would do for browsers (WHATWG sets ``lastEventId`` when it is
    parsed, dispatch or not), but some clients apply an id only when its block dispatches
    (launchdarkly-eventsource, npm ``eventsource``): the empty ``data:`` line makes it
    dispatch, and the reserved type keeps it away from ``onmessage`` and from listeners of
    other types. sse_core's client sessions take the id and deliver nothing.
    """
    return serialize(Event(data="", event=POSITION_EVENT_TYPE, id=log.position))
