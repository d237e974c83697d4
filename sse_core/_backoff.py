"""Reconnection backoff: when to reconnect after a connection drops (floor 2: state object).

:class:`Backoff` answers one question each time a connection is lost or a connection attempt
fails: "reconnect after how long?" -- or, when the caller set a limit, "give up". It grows the
delay exponentially from the reconnection time (the server's ``retry:`` value once one was
received, the configured :attr:`BackoffConfig.base_delay` before), caps it, and spreads clients
apart with one of the jitter strategies of the AWS Architecture Blog note "Exponential Backoff
And Jitter".

The attempt counter is reset only after a connection stayed up for
:attr:`BackoffConfig.healthy_after` seconds, never merely on connect: a server that accepts and
drops at once keeps the client backing off instead of pulling it into a tight loop.

The object is sans-IO: every input takes ``now`` (monotonic seconds) and randomness comes from
the ``rng`` passed to the constructor.
"""

from __future__ import annotations

import enum
from typing import NoReturn

import attrs

from ._errors import InvalidConfigError, LocalProtocolError
from ._events import Retry
from ._types import RandomSource
from ._validators import (
    MonotonicNow,
    instance_of,
    is_bool,
    non_negative_int,
    non_negative_number,
    number_at_least,
)

__all__ = [
    "Backoff",
    "BackoffConfig",
    "BackoffState",
    "GiveUp",
    "GiveUpReason",
    "Jitter",
    "Reconnect",
]

#: Growth factor of decorrelated jitter, as in the AWS note (``previous_delay * 3``).
_DECORRELATED_FACTOR = 3.0


def _assert_never(value: NoReturn) -> NoReturn:
    # typing.assert_never is 3.11+; the package supports 3.10.
    raise AssertionError(f"unhandled value: {value!r}")  # pragma: no cover


class Jitter(enum.Enum):
    """How a delay is randomised around the exponential ceiling.

    With ``ceiling = min(max_delay, base * multiplier ** n)`` for the ``n``-th delay of an
    outage (``n`` from 0):

    * ``NONE``: ``ceiling`` -- every client waits the same; they all come back together.
    * ``FULL``: ``uniform(0, ceiling)``.
    * ``EQUAL``: ``ceiling / 2 + uniform(0, ceiling / 2)`` -- never less than half the
      ceiling, so a server's ``retry:`` is honoured at least by half.
    * ``DECORRELATED``: ``min(max_delay, uniform(base, previous_delay * 3))``, starting from
      ``previous_delay = base`` at each outage; it ignores ``multiplier`` and ``n``.
    """

    NONE = "none"
    FULL = "full"
    EQUAL = "equal"
    DECORRELATED = "decorrelated"


class BackoffState(enum.Enum):
    """Where a :class:`Backoff` stands.

    * ``IDLE``: no connection and no outage (new, or after :meth:`Backoff.reset`).
    * ``CONNECTED``: a connection is up (:meth:`Backoff.on_connected`).
    * ``WAITING``: a reconnect was scheduled; the next input is the attempt's outcome.
    * ``GAVE_UP``: a limit was reached; only :meth:`Backoff.reset` leaves this state.
    """

    IDLE = "idle"
    CONNECTED = "connected"
    WAITING = "waiting"
    GAVE_UP = "gave_up"


class GiveUpReason(enum.Enum):
    """Which limit ended the reconnection attempts."""

    MAX_ATTEMPTS = "max_attempts"
    MAX_ELAPSED = "max_elapsed"


@attrs.frozen(kw_only=True)
class BackoffConfig:
    """Every knob of :class:`Backoff`, validated on construction.

    Attributes:
        base_delay: The reconnection time in seconds used until the server sends ``retry:``
            (WHATWG leaves the initial value to the implementation, "probably in the region of
            a few seconds"; 3 s is what Chromium uses).
        min_base_delay: Floor applied to the reconnection time, whether configured or sent by
            the server, so that ``retry: 0`` cannot turn into a reconnect loop with no delay.
            Set it to 0 to follow such a server literally.
        multiplier: Growth of the ceiling per attempt (``>= 1``; 1 means no growth).
        max_delay: Cap on every delay. A server's ``retry:`` above it is cut down to it.
        jitter: The :class:`Jitter` strategy. The default, ``EQUAL``, never waits less than
            half the ceiling (so the server's reconnection time is respected at least by half)
            and still spreads a herd of clients; ``FULL`` spreads them twice as wide.
        is_first_retry_immediate: When a connection that was up drops and no outage is under
            way, make the first reconnect at once (delay 0). Off by default, because the
            WHATWG EventSource always waits the reconnection time. It never applies twice in a
            row: the attempt counter survives until a connection is healthy, so a server that
            accepts and drops at once gets the normal growing delays.
        healthy_after: Seconds a connection must stay up before the attempt counter and the
            outage clock are reset. Connecting, or receiving the first byte, is not enough.
            Keep it well above the time a failing server takes to drop a connection: with 0,
            every connection counts as healthy and the schedule restarts at each drop (and
            together with ``is_first_retry_immediate`` that is a reconnect loop with no
            delay, so that combination is refused).
        max_attempts: Give up when an outage already used this many reconnects (``None``: never;
            0: never reconnect).
        max_elapsed: Give up rather than schedule a reconnect that would start more than this
            many seconds after the outage's first failure (``None``: never).

    Raises:
        InvalidConfigError: when a duration is negative, not finite or not a number, when
            ``multiplier < 1``, when ``max_attempts`` is not a non-negative int, or when
            ``is_first_retry_immediate`` is set with ``healthy_after == 0``.
    """

    base_delay: float = attrs.field(default=3.0, validator=non_negative_number)
    min_base_delay: float = attrs.field(default=0.1, validator=non_negative_number)
    multiplier: float = attrs.field(default=2.0, validator=number_at_least(1))
    max_delay: float = attrs.field(default=60.0, validator=non_negative_number)
    jitter: Jitter = attrs.field(default=Jitter.EQUAL, validator=instance_of(Jitter))
    is_first_retry_immediate: bool = attrs.field(default=False, validator=is_bool)
    healthy_after: float = attrs.field(default=5.0, validator=non_negative_number)
    max_attempts: int | None = attrs.field(default=None, validator=non_negative_int.or_none())
    max_elapsed: float | None = attrs.field(
        default=None, validator=non_negative_number.or_none()
    )

    def __attrs_post_init__(self) -> None:
        if self.is_first_retry_immediate and self.healthy_after == 0:
            raise InvalidConfigError(
                "is_first_retry_immediate needs healthy_after > 0: otherwise a server that "
                "accepts and drops every connection gets reconnects with no delay at all"
            )


@attrs.frozen(kw_only=True)
class Reconnect:
    """Outcome of :meth:`Backoff.on_disconnected`: try again after ``delay``.

    Attributes:
        delay: Seconds to wait before the attempt, in ``[0, max_delay]``.
        at: The instant to attempt at (``now + delay``); sleep until then.
        attempt: Which reconnect of the current outage this is, from 1.
    """

    delay: float
    at: float
    attempt: int


@attrs.frozen(kw_only=True)
class GiveUp:
    """Outcome of :meth:`Backoff.on_disconnected`: stop reconnecting.

    Attributes:
        reason: The limit that was reached.
        attempts: Reconnects made during the outage before giving up.
        elapsed: Seconds from the outage's first failure to the give-up.
    """

    reason: GiveUpReason
    attempts: int
    elapsed: float


class Backoff(MonotonicNow):
    """Decides the delay before each reconnect, and when to stop.

    Feed it the connection's life: :meth:`on_connected` when a connection is up,
    :meth:`on_disconnected` when it drops *or* when a connection attempt fails (that is a
    disconnect without a connect), and :meth:`on_retry` for each ``retry:`` the server sends.
    Each :meth:`on_disconnected` returns a :class:`Reconnect` or a :class:`GiveUp`.

    An *outage* starts at the first failure after a healthy period (or the first failure
    ever) and lasts until a connection stays up :attr:`~BackoffConfig.healthy_after` seconds;
    attempts and :attr:`~BackoffConfig.max_elapsed` are counted per outage.

    Args:
        config: The settings; see :class:`BackoffConfig`.
        rng: Where jitter comes from, e.g. ``random.Random()`` (a seeded one in tests). The
            same seed and the same inputs give the same schedule.
    """

    __slots__ = (
        "_attempts",
        "_config",
        "_connected_at",
        "_gave_up",
        "_outage_started_at",
        "_previous_delay",
        "_rng",
        "_server_time",
        "_state",
        "_step",
    )

    def __init__(self, config: BackoffConfig, *, rng: RandomSource) -> None:
        if not isinstance(config, BackoffConfig):
            raise InvalidConfigError(f"config must be a BackoffConfig, got {config!r}")
        MonotonicNow.__init__(self)
        self._config = config
        self._rng = rng
        self._state = BackoffState.IDLE
        self._server_time: float | None = None
        self._connected_at: float | None = None
        self._gave_up: GiveUp | None = None
        self._clear_outage()

    def _clear_outage(self) -> None:
        self._attempts = 0
        self._step = 0
        self._outage_started_at: float | None = None
        self._previous_delay: float | None = None

    # --- queries --------------------------------------------------------------------------

    @property
    def config(self) -> BackoffConfig:
        """The configuration this object was built with."""
        return self._config

    @property
    def state(self) -> BackoffState:
        """The current :class:`BackoffState`."""
        return self._state

    @property
    def attempts(self) -> int:
        """Reconnects scheduled in the current outage (0 when none is under way).

        A connection that is up does not reset it by itself; the reset happens when that
        connection is found to have lasted :attr:`~BackoffConfig.healthy_after` seconds, at
        its :meth:`on_disconnected` (see :attr:`healthy_at`).
        """
        return self._attempts

    @property
    def reconnection_time(self) -> float:
        """Base of the schedule in seconds (the server's ``retry`` value, else the configured one).

        :attr:`~BackoffConfig.min_base_delay` is applied on top of this value.
        """
        if self._server_time is not None:
            return self._server_time
        return self._config.base_delay

    @property
    def healthy_at(self) -> float | None:
        """When the current connection counts as healthy; ``None`` when not connected."""
        if self._connected_at is None:
            return None
        return self._connected_at + self._config.healthy_after

    @property
    def outage_started_at(self) -> float | None:
        """The instant of the current outage's first failure; ``None`` outside an outage."""
        return self._outage_started_at

    # --- inputs ---------------------------------------------------------------------------

    def on_retry(self, retry: Retry | int) -> None:
        """Take the server's new reconnection time (a ``retry:`` field).

        Args:
            retry: The :class:`~sse_core.Retry` record from the parser, or its value in
                milliseconds.

        Raises:
            InvalidFieldError: when ``retry`` is an int that is negative (or not an int).
        """
        if not isinstance(retry, Retry):
            retry = Retry(milliseconds=retry)
        self._server_time = retry.delay

    def on_connected(self, now: float) -> None:
        """Record that a connection is up (the response was accepted as an event stream).

        This does not reset the attempt counter; staying up for
        :attr:`~BackoffConfig.healthy_after` seconds does.

        Args:
            now: The current monotonic time.

        Raises:
            LocalProtocolError: when already connected, or after a :class:`GiveUp` (call
                :meth:`reset` first).
            ClockError: when ``now`` is not finite or earlier than a previous ``now``.
        """
        self._take_now(now)
        match self._state:
            case BackoffState.CONNECTED:
                raise LocalProtocolError("on_connected() while already connected")
            case BackoffState.GAVE_UP:
                raise LocalProtocolError("on_connected() after giving up; call reset() first")
            case BackoffState.IDLE | BackoffState.WAITING:
                pass
            case _:  # pragma: no cover
                _assert_never(self._state)
        self._connected_at = now
        self._state = BackoffState.CONNECTED

    def on_disconnected(self, now: float) -> Reconnect | GiveUp:
        """Record a lost connection or a failed attempt, and decide what to do next.

        Args:
            now: The current monotonic time.

        Returns:
            :class:`Reconnect` with the delay to wait, or :class:`GiveUp` once a limit is
            reached. After a :class:`GiveUp`, every call returns the same :class:`GiveUp`
            until :meth:`reset`.

        Raises:
            ClockError: when ``now`` is not finite or earlier than a previous ``now``.
        """
        self._take_now(now)
        if self._state is BackoffState.GAVE_UP:
            assert self._gave_up is not None
            return self._gave_up
        was_up = self._leave_connected(now)

        config = self._config
        if self._outage_started_at is None:
            self._outage_started_at = now
        elapsed = now - self._outage_started_at

        if config.max_attempts is not None and self._attempts >= config.max_attempts:
            return self._give_up(GiveUpReason.MAX_ATTEMPTS, elapsed)

        if config.is_first_retry_immediate and was_up and self._attempts == 0:
            delay = 0.0
        else:
            delay = self._next_delay()
        if config.max_elapsed is not None and elapsed + delay > config.max_elapsed:
            return self._give_up(GiveUpReason.MAX_ELAPSED, elapsed)

        self._attempts += 1
        self._state = BackoffState.WAITING
        return Reconnect(delay=delay, at=now + delay, attempt=self._attempts)

    def on_dropped(self, now: float) -> None:
        """Record a connection let go of for a reason that is no failure (the platform said
        the network went away or changed): no attempt is counted, no delay decided.

        A connection that was up for :attr:`~BackoffConfig.healthy_after` ends the outage, as
        :meth:`on_disconnected` would; a wait in progress is called off. After a
        :class:`GiveUp` nothing changes.

        Args:
            now: The current monotonic time.

        Raises:
            ClockError: when ``now`` is not finite or earlier than a previous ``now``.
        """
        self._take_now(now)
        if self._state is not BackoffState.GAVE_UP:
            self._leave_connected(now)
            self._state = BackoffState.IDLE

    def _leave_connected(self, now: float) -> bool:
        """A connection ends (from any state but ``GAVE_UP``): one that was up for
        ``healthy_after`` ends the outage. Whether one was up."""
        if self._state is not BackoffState.CONNECTED:
            return False
        assert self._connected_at is not None
        if now - self._connected_at >= self._config.healthy_after:
            self._clear_outage()
        self._connected_at = None
        return True

    def reset(self) -> None:
        """Forget the current outage and any give-up, as if the connection had been healthy.

        A connection that is up stays up; the server's reconnection time is kept (it belongs
        to the stream, as on a WHATWG EventSource). Build a new :class:`Backoff` to forget it.
        """
        self._clear_outage()
        self._gave_up = None
        if self._state is not BackoffState.CONNECTED:
            self._state = BackoffState.IDLE

    # --- the schedule ---------------------------------------------------------------------

    def _give_up(self, reason: GiveUpReason, elapsed: float) -> GiveUp:
        outcome = GiveUp(reason=reason, attempts=self._attempts, elapsed=elapsed)
        self._gave_up = outcome
        self._state = BackoffState.GAVE_UP
        return outcome

    def _next_delay(self) -> float:
        config = self._config
        cap = config.max_delay
        base = max(self.reconnection_time, config.min_base_delay)
        rng = self._rng
        match config.jitter:
            case Jitter.NONE:
                delay = self._ceiling(base)
            case Jitter.FULL:
                delay = rng.uniform(0.0, self._ceiling(base))
            case Jitter.EQUAL:
                half = self._ceiling(base) / 2
                delay = half + rng.uniform(0.0, half)
            case Jitter.DECORRELATED:
                previous = base if self._previous_delay is None else self._previous_delay
                delay = rng.uniform(base, max(base, previous * _DECORRELATED_FACTOR))
            case _:  # pragma: no cover
                _assert_never(config.jitter)
        # Clamp: float rounding (or an odd RandomSource) must never leave [0, cap].
        delay = min(cap, max(0.0, delay))
        self._step += 1
        self._previous_delay = delay
        return delay

    def _ceiling(self, base: float) -> float:
        """``min(max_delay, base * multiplier ** step)``, without overflowing."""
        cap = self._config.max_delay
        try:
            return min(cap, base * self._config.multiplier**self._step)
        except OverflowError:
            return cap
