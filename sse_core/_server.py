"""The server session: one resumable event stream to one client, without I/O (floor 3).

:class:`ServerSession` answers a request: the response head (with the fields that keep
proxies from buffering), optional padding, a ``retry:`` hint, and the events the client
missed -- replayed from a :class:`~sse_core.ReplayLog` after its ``Last-Event-ID``, or, when
they are gone, an explicit gap signal (:data:`~sse_core.GAP_EVENT_TYPE`) followed by what the
log still has. Afterwards it sends what the application publishes, heartbeat comments when
the stream is idle, and compresses with gzip when the client accepts it, flushing after every
write so that compression never delays an event.

Fan-out: append each event to the shared :class:`~sse_core.ReplayLog` once (that encodes it
once), then hand the same :class:`~sse_core.StoredEvent` to every session's :meth:`send`.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Sequence
from urllib.parse import parse_qsl, urlsplit

import attrs

from ._actions import GAP_EVENT_TYPE, Action, Disconnect, Send, SendHead
from ._compression import Compressor, negotiate_encoding
from ._errors import InvalidConfigError, LocalProtocolError
from ._events import Event
from ._replay import Replay, ReplayLog, StoredEvent, TooOld
from ._serializer import HEARTBEAT, serialize
from ._timers import HeartbeatScheduler
from ._types import header_value

__all__ = ["ServerConfig", "ServerSession", "ServerState"]


class ServerState(enum.Enum):
    """Lifecycle of a server session: ``IDLE`` -> ``STREAMING`` -> ``CLOSED``."""

    IDLE = "idle"  # no request answered yet
    STREAMING = "streaming"
    CLOSED = "closed"


@attrs.frozen(kw_only=True)
class ServerConfig:
    """Every knob of a :class:`ServerSession`, validated on construction.

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
    """

    heartbeat_interval: float | None = 15.0
    retry: int | None = None
    padding: int = 0
    is_compression_enabled: bool = True
    compression_level: int = 6
    last_event_id_param: str | None = "lastEventId"
    headers: tuple[tuple[str, str], ...] = ()

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



class ServerSession:
    """One event stream to one client.

    Args:
        config: The session's configuration.
        replay_log: The log to resume from; ``None`` when the stream is not resumable.

    Raises:
        InvalidConfigError: ``config`` is not a :class:`ServerConfig`.
    """

    def __init__(self, config: ServerConfig, replay_log: ReplayLog | None = None) -> None:
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

    def next_deadline(self) -> float | None:
        """When the next heartbeat is due, or ``None``."""
        if self._state is not ServerState.STREAMING or self._heartbeat is None:
            return None
        return self._heartbeat.next_deadline()

    def on_request(
        self, target: str, headers: Sequence[tuple[str | bytes, str | bytes]], now: float
    ) -> list[Action]:
        """Answer the client's request: the head, then padding, ``retry:`` and the replay.

        Args:
            target: The request target (path and query), for ``last_event_id_param``.
            headers: The request header fields.
            now: The current monotonic time.

        Returns:
            :class:`~sse_core.SendHead` then one :class:`~sse_core.Send` (when there is
            anything to send at once).

        Raises:
            LocalProtocolError: the session already answered a request.
        """
        if self._state is not ServerState.IDLE:
            raise LocalProtocolError(f"on_request() in state {self._state.value!r}")
        config = self._config
        last_event_id = header_value(headers, "last-event-id")
        if last_event_id is None and config.last_event_id_param is not None:
            query = dict(parse_qsl(urlsplit(target).query, keep_blank_values=True))
            last_event_id = query.get(config.last_event_id_param)
        if last_event_id is not None and any(c in last_event_id for c in "\r\n\x00"):
            last_event_id = None  # not an id any stream could have sent
        self._last_event_id = last_event_id or ""

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
        if self._heartbeat is not None:
            self._heartbeat.start(now)

        parts: list[bytes] = []
        if config.padding:
            # A comment of exactly `padding` bytes, blank line included.
            parts.append(b":" + b" " * max(0, config.padding - 3) + b"\n\n")
        if config.retry is not None:
            parts.append(b"retry: %d\n\n" % config.retry)
        parts.append(self._replay(now))
        actions: list[Action] = [SendHead(status=200, headers=tuple(response_headers))]
        actions += self._send(b"".join(parts), now)
        return actions

    def send(self, event: StoredEvent | Event | bytes, now: float) -> list[Action]:
        """Send one event (or pre-encoded stream bytes) to this client.

        Pass the :class:`~sse_core.StoredEvent` that :meth:`ReplayLog.append` returned: its
        bytes were encoded once for every client.

        Raises:
            LocalProtocolError: the stream is not open.
        """
        if self._state is not ServerState.STREAMING:
            raise LocalProtocolError(f"send() in state {self._state.value!r}")
        if isinstance(event, StoredEvent):
            data = event.encoded
        elif isinstance(event, Event):
            data = serialize(event)
        else:
            data = bytes(event)
        return self._send(data, now)

    def on_timer(self, now: float) -> list[Action]:
        """Send a heartbeat if one is due."""
        if (
            self._state is ServerState.STREAMING
            and self._heartbeat is not None
            and self._heartbeat.is_due(now)
        ):
            return self._send(HEARTBEAT, now)
        return []

    def close(self, now: float) -> list[Action]:
        """End the stream: the gzip trailer if compressing, then disconnect.

        Closing a closed session does nothing.
        """
        if self._state is ServerState.CLOSED:
            return []
        actions: list[Action] = []
        if self._state is ServerState.STREAMING and self._compressor is not None:
            trailer = self._compressor.finish()
            self._bytes_sent += len(trailer)
            actions.append(Send(data=trailer))
        self._state = ServerState.CLOSED
        if self._heartbeat is not None:
            self._heartbeat.stop()
        actions.append(Disconnect(reason="closed by the server"))
        return actions

    # --- internals ------------------------------------------------------------------------

    def _send(self, data: bytes, now: float) -> list[Action]:
        if not data:
            return []
        if self._compressor is not None:
            data = self._compressor.compress(data)
        if self._heartbeat is not None:
            self._heartbeat.sent(now)
        self._bytes_sent += len(data)
        return [Send(data=data)]

    def _replay(self, now: float) -> bytes:
        log = self._replay_log
        if log is None:
            return b""
        if not self._last_event_id:
            # A new client: nothing to replay, but tell it where the stream stands. An id
            # field with no data sets its last event ID without dispatching an event (WHATWG
            # "dispatch the event" step 1), so a connection lost before its first event
            # still resumes from here instead of silently skipping what came meanwhile.
            return _position_block(log)
        result = log.resume(self._last_event_id, now)
        if isinstance(result, Replay):
            return result.encoded
        reason = "too_old" if isinstance(result, TooOld) else "unknown"
        signal = Event(
            data=json.dumps({"last_event_id": self._last_event_id, "reason": reason}),
            event=GAP_EVENT_TYPE,
        )
        # Everything the log still has follows (the client drops what it already has), then
        # the position, so that the client's next resumption starts from a known id.
        kept = b"".join([stored.encoded for stored in log.events()])
        return serialize(signal) + kept + _position_block(log)


def _position_block(log: ReplayLog) -> bytes:
    """The log's position as an event of :data:`~sse_core.POSITION_EVENT_TYPE` with empty data.

    An ``id:`` field alone would do for browsers (WHATWG sets ``lastEventId`` when it is
    parsed, dispatch or not), but some clients apply an id only when its block dispatches
    (launchdarkly-eventsource, npm ``eventsource``): the empty ``data:`` line makes it
    dispatch, and the reserved type keeps it away from ``onmessage`` and from listeners of
    other types. sse_core's client sessions take the id and deliver nothing.
    """
    from ._actions import POSITION_EVENT_TYPE

    return serialize(Event(data="", event=POSITION_EVENT_TYPE, id=log.position))
