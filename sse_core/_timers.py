"""Deadline timers: stall detection and heartbeat scheduling (floor 2: state objects).

Both objects turn "something happened at ``now``" into "wake me at this instant", so that an
adapter sleeps exactly until :meth:`next_deadline` instead of polling:

* :class:`StallDetector` (client side) -- the stream is stalled when it made no progress for
  ``timeout`` seconds. Progress is a complete line (an event's field, a heartbeat comment, the
  blank line ending an event), not a byte: a peer dripping bytes does not keep it alive.
* :class:`HeartbeatScheduler` (server side) -- a heartbeat is due when nothing at all was sent
  for ``interval`` seconds. Any data sent counts, events included.

Both are stopped until :meth:`start` (the stream opened) and can be stopped again
(the stream closed); a stopped timer has no deadline and never fires.
"""

from __future__ import annotations

from typing import ClassVar

from ._errors import LocalProtocolError
from ._validators import MonotonicNow, positive_number

__all__ = ["HeartbeatScheduler", "StallDetector"]


class _IdleTimer(MonotonicNow):
    """A deadline ``period`` seconds after the last touch; the machinery of both timers.

    Stopped until :meth:`start` and after :meth:`stop`: no deadline then, and touching is
    refused (the subclass names the touch: ``activity`` or ``sent``).
    """

    __slots__ = ("_last_at", "_period")

    def __init__(self, name: str, period: float) -> None:
        MonotonicNow.__init__(self)
        self._period = float(positive_number.check(name, period))
        self._last_at: float | None = None

    @property
    def is_running(self) -> bool:
        """Whether it was started and not stopped since."""
        return self._last_at is not None

    def start(self, now: float) -> None:
        """Arm it as if touched at ``now``. Starting a running timer re-arms it from ``now``.

        Args:
            now: The current monotonic time.

        Raises:
            ClockError: when ``now`` is not finite or is earlier than a previous ``now``.
        """
        self._take_now(now)
        self._last_at = now

    def stop(self) -> None:
        """Disarm it: no deadline until the next :meth:`start`."""
        self._last_at = None

    def next_deadline(self) -> float | None:
        """The instant the period runs out (last touch + period), or ``None`` when stopped."""
        if self._last_at is None:
            return None
        return self._last_at + self._period

    def _input(self, now: float, what: str) -> None:
        """Take ``now`` (the clock is checked first, as everywhere), then refuse the input
        when stopped."""
        self._take_now(now)
        if self._last_at is None:
            raise LocalProtocolError(
                f"{what}() on a stopped {type(self).__name__}; call start(now)"
            )

    def _touch(self, now: float, what: str) -> None:
        self._input(now, what)
        self._last_at = now

    def _has_expired(self, now: float) -> bool:
        self._read_now(now)
        deadline = self.next_deadline()
        return deadline is not None and now >= deadline


class StallDetector(_IdleTimer):
    """Notices a stream that made no progress for ``timeout`` seconds.

    Call :meth:`start` when the stream opens, :meth:`received` with the body as it arrives
    (decoded: after gzip), and :meth:`stop` when it closes. Progress is a complete line -- a
    field line, a comment used as a heartbeat, the blank line that ends an event -- or, within
    one long line, every :attr:`PROGRESS_BYTES` bytes of it; a byte alone is not. Sleep until
    :meth:`next_deadline`; on waking, :meth:`is_stalled` says whether the stream really
    stalled or progress moved the deadline in the meantime. :meth:`activity` records progress
    that the caller judged itself.

    Before :meth:`start` (and after :meth:`stop`) the detector is stopped: it has no deadline
    and is never stalled, and :meth:`received` and :meth:`activity` are refused.

    Args:
        timeout: Seconds without progress after which the stream counts as stalled (> 0).

    Raises:
        InvalidConfigError: when ``timeout`` is not a finite number > 0.
    """

    __slots__ = ("_unended",)

    #: Bytes without a line end that count as progress too (4 KiB), so that a long line on a
    #: slow link is not taken for a stall. A drip of a byte every few seconds takes hours.
    PROGRESS_BYTES: ClassVar[int] = 4096

    def __init__(self, timeout: float) -> None:
        super().__init__("timeout", timeout)
        self._unended = 0  # bytes received since the last progress

    @property
    def timeout(self) -> float:
        """Seconds without progress that make a stall."""
        return self._period

    @property
    def last_activity_at(self) -> float | None:
        """The instant of the last progress (or of :meth:`start`); ``None`` when stopped."""
        return self._last_at

    def start(self, now: float) -> None:
        """Arm it as if progress was made at ``now``; re-arms a running detector from ``now``.

        Args:
            now: The current monotonic time.

        Raises:
            ClockError: when ``now`` is not finite or is earlier than a previous ``now``.
        """
        super().start(now)
        self._unended = 0

    def received(self, data: bytes, now: float) -> bool:
        """Record decoded body bytes that arrived at ``now``; progress moves the deadline.

        They are progress when they hold a line end (CR or LF; WHATWG HTML 9.2.6 ends a line
        with either), or when :attr:`PROGRESS_BYTES` or more arrived without one since the
        last progress (a long line on a slow link still moves). The LF of a CRLF split
        across two calls counts again; that is harmless, as a lone LF would be a line.

        Args:
            data: Body bytes after content decoding (never the compressed bytes: their CR and
                LF mean nothing).
            now: The current monotonic time.

        Returns:
            Whether they counted as progress.

        Raises:
            LocalProtocolError: when the detector is stopped.
            ClockError: when ``now`` is not finite or is earlier than a previous ``now``.
        """
        self._input(now, "received")
        self._unended += len(data)
        if self._unended >= self.PROGRESS_BYTES or b"\n" in data or b"\r" in data:
            self._last_at = now
            self._unended = 0
            return True
        return False

    def activity(self, now: float) -> None:
        """Record progress at ``now``: the deadline moves to ``now + timeout``.

        Args:
            now: The current monotonic time.

        Raises:
            LocalProtocolError: when the detector is stopped.
            ClockError: when ``now`` is not finite or is earlier than a previous ``now``.
        """
        self._touch(now, "activity")
        self._unended = 0

    def is_stalled(self, now: float) -> bool:
        """Whether no progress was made for ``timeout`` seconds by ``now``.

        Args:
            now: The current monotonic time (only compared: a query does not move the
                timer's clock).

        Returns:
            ``True`` exactly when running and ``now >= next_deadline()``.

        Raises:
            ClockError: when ``now`` is not finite or is earlier than a previous ``now``.
        """
        return self._has_expired(now)


class HeartbeatScheduler(_IdleTimer):
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

    __slots__ = ()

    def __init__(self, interval: float) -> None:
        super().__init__("interval", interval)

    @property
    def interval(self) -> float:
        """Seconds of silence after which a heartbeat is due."""
        return self._period

    @property
    def last_sent_at(self) -> float | None:
        """The instant data was last sent (or :meth:`start`); ``None`` when stopped."""
        return self._last_at

    def sent(self, now: float) -> None:
        """Record that data (an event, a heartbeat, anything) was sent at ``now``.

        Args:
            now: The current monotonic time.

        Raises:
            LocalProtocolError: when the scheduler is stopped.
            ClockError: when ``now`` is not finite or is earlier than a previous ``now``.
        """
        self._touch(now, "sent")

    def is_due(self, now: float) -> bool:
        """Whether a heartbeat should be sent at ``now``.

        Args:
            now: The current monotonic time (only compared: a query does not move the
                timer's clock).

        Returns:
            ``True`` exactly when running and ``now >= next_deadline()``.

        Raises:
            ClockError: when ``now`` is not finite or is earlier than a previous ``now``.
        """
        return self._has_expired(now)
