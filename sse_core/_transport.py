"""The client's transport fallback: streaming, long-polling, and back (floor 3).

:class:`TransportSwitch` is the second machine of a :class:`~sse_core.ClientSession`, kept
apart from the lifecycle (:data:`~sse_core.state.TRANSITIONS`): which kind of connection is in
flight -- its :class:`Leg` -- and on which :class:`~sse_core.Transport`. It holds the
fallback's timers and counts (the first-byte deadline, the blocked streams in a row, the next
poll, the next try at streaming) and decides from them; the session carries out its
decisions (connects, disconnects, reports). Every move is one row of :data:`LEG_TRANSITIONS`;
the docs' table (docs/longpoll.rst) is checked against it.

With no ``long_poll_url`` the switch only ever moves between ``STREAMING_IDLE`` and
``STREAM``.
"""

from __future__ import annotations

import enum

from ._actions import ReportTransport, Transport
from ._config import ClientConfig
from ._errors import LocalProtocolError

__all__ = ["LEG_TRANSITIONS", "Leg", "LegInput", "TransportSwitch"]


class Leg(enum.Enum):
    """What the client's connection in flight is, and on which transport."""

    STREAMING_IDLE = "streaming, idle"  # streaming; no connection (closed, reconnecting)
    STREAM = "stream"  # an event stream in flight
    POLLING_IDLE = "polling, idle"  # long-polling; no connection (closed, reconnecting)
    POLL = "poll"  # one long-poll request in flight
    POLL_WAIT = "between polls"  # long-polling; the next poll waits for min_poll_interval
    PROBE = "probe"  # a stream tried again while long-polling

    @property
    def transport(self) -> Transport:
        """The transport this leg belongs to."""
        if self in (Leg.STREAMING_IDLE, Leg.STREAM):
            return Transport.STREAMING
        return Transport.LONG_POLLING

    @property
    def is_in_flight(self) -> bool:
        """Whether a connection is being made or open."""
        return self in (Leg.STREAM, Leg.POLL, Leg.PROBE)

    @property
    def is_idle(self) -> bool:
        """Whether the session has no connection, not even one between two polls."""
        return self in (Leg.STREAMING_IDLE, Leg.POLLING_IDLE)


class LegInput(enum.Enum):
    """What moves a :class:`TransportSwitch` from one leg to another."""

    START = "start"  # the session starts
    CONNECT = "connect"  # the session reconnects after a lost connection
    BYTES = "bytes"  # a stream's body shows its first bytes
    BLOCKED = "blocked"  # a 200 stream showed no byte in time (fewer than switch_after in a row)
    SWITCH = "switch"  # ... the switch_after-th in a row: long-poll from now on
    ANSWERED = "answered"  # a poll was answered: poll again at once
    EARLY = "early"  # an empty answer came before min_poll_interval: wait
    POLL_DUE = "poll due"  # the wait between two polls is over
    PROBE_DUE = "probe due"  # retry_streaming_after passed: try the stream between two polls
    PROBE_FAILED = "probe failed"  # the try showed the symptom or failed: poll at once
    END = "end"  # the session ended the connection (lost, refused, gave up, closed)


_L = Leg
_N = LegInput

#: Every move of the transport fallback: ``(leg, input) -> new leg``. Anything else is misuse.
LEG_TRANSITIONS: dict[tuple[Leg, LegInput], Leg] = {
    (_L.STREAMING_IDLE, _N.START): _L.STREAM,
    (_L.POLLING_IDLE, _N.START): _L.POLL,
    (_L.STREAMING_IDLE, _N.CONNECT): _L.STREAM,
    (_L.POLLING_IDLE, _N.CONNECT): _L.POLL,
    (_L.STREAM, _N.BYTES): _L.STREAM,
    (_L.PROBE, _N.BYTES): _L.STREAM,
    (_L.STREAM, _N.BLOCKED): _L.STREAMING_IDLE,
    (_L.STREAM, _N.SWITCH): _L.POLLING_IDLE,
    (_L.POLL, _N.ANSWERED): _L.POLL,
    (_L.POLL, _N.EARLY): _L.POLL_WAIT,
    (_L.POLL_WAIT, _N.POLL_DUE): _L.POLL,
    (_L.POLL, _N.PROBE_DUE): _L.PROBE,
    (_L.POLL_WAIT, _N.PROBE_DUE): _L.PROBE,
    (_L.PROBE, _N.PROBE_FAILED): _L.POLL,
    (_L.STREAM, _N.END): _L.STREAMING_IDLE,
    (_L.POLL, _N.END): _L.POLLING_IDLE,
    (_L.POLL_WAIT, _N.END): _L.POLLING_IDLE,
    (_L.PROBE, _N.END): _L.POLLING_IDLE,
}


class TransportSwitch:
    """Decides between streaming and long-polling for one client, without I/O.

    The session tells it what happened (:meth:`apply`, :meth:`on_head`) and asks it what is
    due (:meth:`due`, :meth:`after_answer`, :meth:`next_deadline`); the switch never acts.

    Args:
        config: The client's configuration: ``long_poll_url`` (``None`` keeps the switch on
            streaming), ``initial_transport``, ``first_byte_timeout``, ``switch_after``,
            ``retry_streaming_after``, ``long_poll_timeout``, ``min_poll_interval`` and
            ``stall_timeout``.
    """

    __slots__ = (
        "_blocked_in_a_row", "_config", "_first_byte_deadline", "_leg", "_poll_at",
        "_poll_deadline", "_poll_started_at", "_probe_at",
    )

    def __init__(self, config: ClientConfig) -> None:
        self._config = config
        is_polling = config.initial_transport is Transport.LONG_POLLING
        self._leg = Leg.POLLING_IDLE if is_polling else Leg.STREAMING_IDLE
        self._blocked_in_a_row = 0
        self._first_byte_deadline: float | None = None  # a 200 stream must show a byte
        self._poll_started_at = 0.0
        self._poll_deadline: float | None = None  # give up on the poll in flight
        self._poll_at: float | None = None  # start the next poll (none in flight)
        self._probe_at: float | None = None  # try streaming again (while polling)

    @property
    def leg(self) -> Leg:
        """The current leg."""
        return self._leg

    @property
    def transport(self) -> Transport:
        """How events are received now."""
        return self._leg.transport

    @property
    def blocked_in_a_row(self) -> int:
        """How many 200 streams in a row showed no body byte in time."""
        return self._blocked_in_a_row

    @property
    def poll_started_at(self) -> float:
        """When the last poll started."""
        return self._poll_started_at

    def next_deadline(self) -> float | None:
        """When :meth:`due` may next have something: the first-byte deadline of a stream or
        a try, the give-up deadline of a poll, or the next poll; ``None`` when idle."""
        match self._leg:
            case Leg.STREAM | Leg.PROBE:
                return self._first_byte_deadline
            case Leg.POLL:
                return self._poll_deadline
            case Leg.POLL_WAIT:
                return self._poll_at
            case Leg.STREAMING_IDLE | Leg.POLLING_IDLE:
                return None
            case _:  # pragma: no cover
                raise AssertionError(self._leg)

    def due(self, now: float, *, is_stalled: bool) -> LegInput | None:
        """Which input the clock brings at ``now``, if any.

        Args:
            now: The current monotonic time.
            is_stalled: Whether the session's stall detector ran out (a stream or a try).

        Returns:
            ``POLL_DUE`` or ``PROBE_DUE`` between polls; ``END`` for a poll unanswered too
            long or a stalled stream; ``PROBE_FAILED`` for a silent try; ``BLOCKED`` or
            ``SWITCH`` for a 200 stream with no byte in time (the stall counts the same);
            ``None`` when nothing is due.
        """
        match self._leg:
            case Leg.POLL_WAIT:
                if self._poll_at is not None and now >= self._poll_at:
                    return LegInput.PROBE_DUE if self._is_probe_due(now) else LegInput.POLL_DUE
            case Leg.POLL:
                if self._poll_deadline is not None and now >= self._poll_deadline:
                    return LegInput.END
            case Leg.PROBE:
                if is_stalled or self._is_first_byte_late(now):
                    return LegInput.PROBE_FAILED
            case Leg.STREAM:
                if self._first_byte_deadline is not None and (
                    is_stalled or self._is_first_byte_late(now)
                ):
                    if self._blocked_in_a_row + 1 >= self._config.switch_after:
                        return LegInput.SWITCH
                    return LegInput.BLOCKED
                if is_stalled:
                    return LegInput.END
            case Leg.STREAMING_IDLE | Leg.POLLING_IDLE:
                pass
            case _:  # pragma: no cover
                raise AssertionError(self._leg)
        return None

    def after_answer(self, now: float, *, is_empty: bool) -> LegInput:
        """What follows an answered poll: try streaming (``PROBE_DUE``), wait for
        ``min_poll_interval`` after a quick empty answer (``EARLY``), or poll again at once
        (``ANSWERED``)."""
        if self._is_probe_due(now):
            return LegInput.PROBE_DUE
        if is_empty and now < self._poll_started_at + self._config.min_poll_interval:
            return LegInput.EARLY
        return LegInput.ANSWERED

    def on_head(self, now: float) -> None:
        """A response head was accepted: a stream (with the fallback on) or a try at
        streaming must now show a body byte within ``first_byte_timeout``."""
        if self._leg in (Leg.STREAM, Leg.PROBE) and self._config.long_poll_url is not None:
            self._first_byte_deadline = now + self._config.first_byte_timeout

    def apply(self, event: LegInput, now: float, reason: str = "") -> ReportTransport | None:
        """Take one input: move as :data:`LEG_TRANSITIONS` says and set the timers.

        Args:
            event: What happened.
            now: The current monotonic time.
            reason: Why, for the report when the transport changes.

        Returns:
            The :class:`~sse_core.ReportTransport` when the transport changed, else ``None``.

        Raises:
            LocalProtocolError: the input is not allowed on the current leg.
        """
        new = LEG_TRANSITIONS.get((self._leg, event))
        if new is None:
            raise LocalProtocolError(f"{event.value!r} is not allowed on leg {self._leg.value!r}")
        old, self._leg = self._leg, new
        self._first_byte_deadline = None
        self._poll_deadline = None
        self._poll_at = None
        match event:
            case LegInput.START if new is Leg.POLL:
                self._schedule_probe(now)
            case LegInput.BYTES:
                self._blocked_in_a_row = 0
                self._probe_at = None
            case LegInput.BLOCKED:
                self._blocked_in_a_row += 1
            case LegInput.SWITCH:
                self._blocked_in_a_row = 0
                self._schedule_probe(now)
            case LegInput.EARLY:
                self._poll_at = self._poll_started_at + self._config.min_poll_interval
            case LegInput.PROBE_DUE:
                self._probe_at = None
            case LegInput.PROBE_FAILED:
                self._schedule_probe(now)
            case _:
                pass
        if new is Leg.POLL:
            self._poll_started_at = now
            stall_timeout = self._config.stall_timeout
            if stall_timeout is not None:
                self._poll_deadline = now + self._config.long_poll_timeout + stall_timeout
        if new.transport is old.transport:
            return None
        return ReportTransport(transport=new.transport, since=now, reason=reason)

    # --- internals ------------------------------------------------------------------------

    def _schedule_probe(self, now: float) -> None:
        after = self._config.retry_streaming_after
        self._probe_at = None if after is None else now + after

    def _is_probe_due(self, now: float) -> bool:
        return self._probe_at is not None and now >= self._probe_at

    def _is_first_byte_late(self, now: float) -> bool:
        return self._first_byte_deadline is not None and now >= self._first_byte_deadline
