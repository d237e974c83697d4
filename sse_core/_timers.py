"""Deadline timers: stall detection and heartbeat scheduling (floor 2: state objects).

Both objects turn "something happened at ``now``" into "wake me at this instant", so that an
adapter sleeps exactly until :meth:`next_deadline` instead of polling:

* :class:`StallDetector` (client side) -- the stream is stalled when nothing at all arrived
  for ``timeout`` seconds. Any bytes count, heartbeat comments included.
* :class:`HeartbeatScheduler` (server side) -- a heartbeat is due when nothing at all was sent
  for ``interval`` seconds. Any data sent counts, events included.

Both are stopped until :meth:`start` (the stream opened) and can be stopped again
(the stream closed); a stopped timer has no deadline and never fires.
"""

from __future__ import annotations

import math

from ._errors import InvalidConfigError, LocalProtocolError

__all__ = ["HeartbeatScheduler", "StallDetector"]


def _check_period(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidConfigError(f"{name} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise InvalidConfigError(f"{name} must be finite and > 0, got {value!r}")
    return float(value)


def _check_now(now: float, last_now: float) -> None:
    if not math.isfinite(now):
        raise LocalProtocolError(f"now must be a finite number of seconds, got {now!r}")
    if now < last_now:
        raise LocalProtocolError(
            f"now went backwards: got {now!r} after {last_now!r} (pass a monotonic clock)"
        )


class StallDetector:
    """Notices a stream on which nothing arrived for ``timeout`` seconds.

    Call :meth:`start` when the stream opens, :meth:`activity` whenever bytes arrive (any
    bytes: events, comments used as heartbeats, partial lines), and :meth:`stop` when it
    closes. Sleep until :meth:`next_deadline`; on waking, :meth:`is_stalled` says whether the
    stream really stalled or activity moved the deadline in the meantime.

    Before :meth:`start` (and after :meth:`stop`) the detector is stopped: it has no deadline
    and is never stalled, and :meth:`activity` is refused.

    Args:
        timeout: Seconds without activity after which the stream counts as stalled (> 0).

    Raises:
        InvalidConfigError: when ``timeout`` is not a finite number > 0.
    """

    __slots__ = ("_last_activity_at", "_last_now", "_timeout")

    def __init__(self, timeout: float) -> None:
        self._timeout = _check_period("timeout", timeout)
        self._last_activity_at: float | None = None
        self._last_now = -math.inf

    @property
    def timeout(self) -> float:
        """Seconds without activity that make a stall."""
        return self._timeout

    @property
    def is_running(self) -> bool:
        """Whether the detector was started and not stopped since."""
        return self._last_activity_at is not None

    @property
    def last_activity_at(self) -> float | None:
        """The instant of the last activity (or of :meth:`start`); ``None`` when stopped."""
        return self._last_activity_at

    def start(self, now: float) -> None:
        """Arm the detector as if activity had happened at ``now`` (the stream opened).

        Starting a running detector re-arms it from ``now``.

        Args:
            now: The current monotonic time.

        Raises:
            LocalProtocolError: when ``now`` is not finite or is earlier than a previous input.
        """
        _check_now(now, self._last_now)
        self._last_now = now
        self._last_activity_at = now

    def stop(self) -> None:
        """Disarm the detector (the stream closed): no deadline until the next :meth:`start`."""
        self._last_activity_at = None

    def activity(self, now: float) -> None:
        """Record that bytes arrived at ``now``; the deadline moves to ``now + timeout``.

        Args:
            now: The current monotonic time.

        Raises:
            LocalProtocolError: when the detector is stopped, or when ``now`` is not finite or
                is earlier than a previous input.
        """
        if self._last_activity_at is None:
            raise LocalProtocolError("activity() on a stopped StallDetector; call start(now)")
        _check_now(now, self._last_now)
        self._last_now = now
        self._last_activity_at = now

    def next_deadline(self) -> float | None:
        """The instant at which the stream will count as stalled, or ``None`` when stopped.

        Returns:
            ``last_activity_at + timeout``; sleep until then, then ask :meth:`is_stalled`.
        """
        if self._last_activity_at is None:
            return None
        return self._last_activity_at + self._timeout

    def is_stalled(self, now: float) -> bool:
        """Whether nothing arrived for ``timeout`` seconds by ``now``.

        Args:
            now: The current monotonic time (only read, so an earlier value is harmless).

        Returns:
            ``True`` exactly when running and ``now >= next_deadline()``.
        """
        deadline = self.next_deadline()
        return deadline is not None and now >= deadline


class HeartbeatScheduler:
    """Says when a server should send a heartbeat so that an idle stream stays alive.

    Call :meth:`start` when the response starts, :meth:`sent` whenever anything is written to
    the stream (events and heartbeats alike -- any data keeps proxies from timing out the
    connection), and :meth:`stop` when it ends. Sleep until :meth:`next_deadline`; when
    :meth:`is_due`, send a heartbeat (a comment) and call :meth:`sent`.

    Before :meth:`start` (and after :meth:`stop`) the scheduler is stopped: it has no deadline,
    a heartbeat is never due, and :meth:`sent` is refused.

    Args:
        interval: Seconds of silence after which a heartbeat is due (> 0).

    Raises:
        InvalidConfigError: when ``interval`` is not a finite number > 0.
    """

    __slots__ = ("_interval", "_last_now", "_last_sent_at")

    def __init__(self, interval: float) -> None:
        self._interval = _check_period("interval", interval)
        self._last_sent_at: float | None = None
        self._last_now = -math.inf

    @property
    def interval(self) -> float:
        """Seconds of silence after which a heartbeat is due."""
        return self._interval

    @property
    def is_running(self) -> bool:
        """Whether the scheduler was started and not stopped since."""
        return self._last_sent_at is not None

    @property
    def last_sent_at(self) -> float | None:
        """The instant data was last sent (or :meth:`start`); ``None`` when stopped."""
        return self._last_sent_at

    def start(self, now: float) -> None:
        """Arm the scheduler as if data had been sent at ``now`` (the response started).

        Starting a running scheduler re-arms it from ``now``.

        Args:
            now: The current monotonic time.

        Raises:
            LocalProtocolError: when ``now`` is not finite or is earlier than a previous input.
        """
        _check_now(now, self._last_now)
        self._last_now = now
        self._last_sent_at = now

    def stop(self) -> None:
        """Disarm the scheduler (the stream ended): no deadline until the next :meth:`start`."""
        self._last_sent_at = None

    def sent(self, now: float) -> None:
        """Record that data (an event, a heartbeat, anything) was sent at ``now``.

        Args:
            now: The current monotonic time.

        Raises:
            LocalProtocolError: when the scheduler is stopped, or when ``now`` is not finite
                or is earlier than a previous input.
        """
        if self._last_sent_at is None:
            raise LocalProtocolError("sent() on a stopped HeartbeatScheduler; call start(now)")
        _check_now(now, self._last_now)
        self._last_now = now
        self._last_sent_at = now

    def next_deadline(self) -> float | None:
        """The instant the next heartbeat is due, or ``None`` when stopped.

        Returns:
            ``last_sent_at + interval``.
        """
        if self._last_sent_at is None:
            return None
        return self._last_sent_at + self._interval

    def is_due(self, now: float) -> bool:
        """Whether a heartbeat should be sent at ``now``.

        Args:
            now: The current monotonic time (only read, so an earlier value is harmless).

        Returns:
            ``True`` exactly when running and ``now >= next_deadline()``.
        """
        deadline = self.next_deadline()
        return deadline is not None and now >= deadline
