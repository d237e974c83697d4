"""How a Redis feed's live tail is configured (:class:`TailConfig`) and what it does
around its I/O, shared by the asyncio ``RedisFeed`` and the blocking ``SyncRedisFeed``: the
follower and the mirror it fills, the backoff while Redis fails, and how a step of the tail
is applied. The requests themselves are carried out by each feed (``redis.asyncio`` or
``redis``); :mod:`sse_core.adapters.redis` exports what is public here."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar

import attrs

from .._backoff import Backoff, BackoffConfig, BackoffState, Reconnect
from .._errors import InvalidConfigError, RemoteProtocolError
from .._replay import ReplayConfig
from .._stream_log import Follower, StreamMirror, TailStep, WaitRows
from .._validators import instance_of, positive_int, positive_number
from ._logging import server_log
from ._redis_log import (
    DEFAULT_IDEMPOTENCY_WINDOW,
    DEFAULT_READ_COUNT,
    idempotency_window_check,
)


class _HasConfig(Protocol):
    @property
    def config(self) -> ReplayConfig: ...


_Client = TypeVar("_Client")
_Log = TypeVar("_Log", bound=_HasConfig)


class TailState:
    """One feed's tail, short of its I/O: :attr:`follower` says what to read next,
    :meth:`failed` how long to wait after a failed request, :meth:`succeeded` applies an
    answer (the mirror restarted as the step says, then the attached server's ``on_step``).

    Args:
        key: The stream's key (for the log lines).
        config: The log's retention (the mirror keeps the same bounds).
        read_count: The most events one read fetches.
        backoff: How to retry while Redis fails.
        rng: The backoff's jitter source (``random.Random()`` when ``None``).
    """

    def __init__(
        self,
        key: str,
        config: ReplayConfig,
        read_count: int,
        backoff: BackoffConfig,
        rng: random.Random | None,
    ) -> None:
        self.key = key
        self.mirror = StreamMirror(config)
        self.follower = Follower(read_count)
        self.backoff = Backoff(backoff, rng=rng if rng is not None else random.Random())
        self.on_step: Callable[[TailStep], None] | None = None
        self.failures = 0
        self.gaps = 0

    @property
    def is_connected(self) -> bool:
        """Whether the tail's last request to Redis succeeded."""
        return self.backoff.state is BackoffState.CONNECTED

    def attach(self, on_step: Callable[[TailStep], None], feed: str) -> None:
        """Have ``on_step`` called with each step (one server per feed).

        Raises:
            InvalidConfigError: a server is attached already.
        """
        if self.on_step is not None:
            raise InvalidConfigError(f"this {feed} already feeds a server; make one per server")
        self.on_step = on_step

    def failed(self, error: Exception, now: float) -> float:
        """Count and log a failed request; the seconds to wait before the next one (a tail
        never gives up: a backoff with limits starts over at its longest delay)."""
        self.failures += 1
        backoff = self.backoff
        outcome = backoff.on_disconnected(now)
        if isinstance(outcome, Reconnect):
            delay = outcome.delay
        else:
            delay = backoff.config.max_delay
            backoff.reset()
        server_log(
            logging.WARNING, f"Redis tail of {self.key!r} failed, retrying in"
            f" {delay:.2f} s: {error}", adapter="redis", event="tail_failed",
            reason=str(error),
        )
        return delay

    def succeeded(self, step: TailStep | None, now: float) -> None:
        """Note that Redis answered, and apply the step it led to, if any: count and log a
        gap, restart the mirror as the step says, hand the step to the server."""
        if self.backoff.state is not BackoffState.CONNECTED:
            self.backoff.on_connected(now)
        if step is None:
            return
        if step.gap is not None:
            self.gaps += 1
            server_log(
                logging.WARNING, f"Redis log {self.key!r} lost events ({step.gap}):"
                " every stream ends with a gap", adapter="redis", event="tail_gap",
                reason=step.gap,
            )
        if step.restart is not None:
            self.mirror.restart(*step.restart)
        if self.on_step is not None:
            self.on_step(step)


def woken_entries(reply: Any) -> Sequence[Any]:
    """The entries of the one stream an ``XREAD`` asked for, in each shape redis-py hands
    them over: ``[[key, entries]]`` (RESP2), ``{key: entries}`` or ``{key: [entries]}``
    (RESP3, by version); nothing (``None``, ``[]``, ``{}``) when its timeout passed.

    Raises:
        RemoteProtocolError: the reply is of none of these shapes.
    """
    if not reply:
        return ()
    try:
        streams = list(reply.values()) if isinstance(reply, Mapping) else [
            entries for _, entries in reply
        ]
        (entries,) = streams
        if entries and not isinstance(entries[0][0], (bytes, str)):
            (entries,) = entries  # RESP3 wraps the entries in one more list
    except (TypeError, ValueError, IndexError) as error:
        raise RemoteProtocolError(f"Redis answered XREAD with {reply!r}") from error
    return entries  # type: ignore[no-any-return]


class TailFeed(Generic[_Client, _Log]):
    """What :class:`RedisFeed` and :class:`SyncRedisFeed` share: their client, log and
    tail's state, set up by :meth:`_set_up`."""

    def _set_up(
        self, client: _Client, key: str, log: _Log, tail: TailConfig, rng: random.Random | None
    ) -> None:
        """Keep the client and the log, and make the tail's state."""
        self._client = client
        self._key = key
        self._log = log
        self._state = TailState(key, log.config, tail.read_count, tail.backoff, rng)
        self._block_ms = max(1, round(tail.block_timeout * 1000))
        self._catch_up_timeout = tail.catch_up_timeout

    def _xread_args(self, request: WaitRows) -> tuple[dict[Any, Any], int, int]:
        """``XREAD``'s streams, count and block (ms) for ``request``."""
        return {self._key: str(request.after)}, request.count, self._block_ms

    @property
    def client(self) -> _Client:
        """The Redis client given (close it when the server is closed)."""
        return self._client

    @property
    def log(self) -> _Log:
        """The Redis log itself (to publish, or resume, without a server)."""
        return self._log

    @property
    def mirror(self) -> StreamMirror:
        """This worker's copy of the newest events: the broadcaster's replay log."""
        return self._state.mirror

    @property
    def is_connected(self) -> bool:
        """Whether the tail's last request to Redis succeeded."""
        return self._state.is_connected

    @property
    def failures(self) -> int:
        """How many requests of the tail failed (Redis unreachable or answering badly)."""
        return self._state.failures

    @property
    def gaps(self) -> int:
        """How many times the tail found the events after its last one gone (each time every
        client's stream was ended with a gap to resume from)."""
        return self._state.gaps

    def attach(self, on_step: Callable[[TailStep], None]) -> None:
        """Have ``on_step`` called with each step of the tail, after :attr:`mirror` was
        restarted as the step says (the server does this: it ends every stream on a gap and
        publishes the step's events to its broadcaster, which appends them to the mirror).

        Raises:
            InvalidConfigError: a server is attached already (one feed per server).
        """
        self._state.attach(on_step, type(self).__name__)


#: How a ``RedisFeed``'s tail retries while Redis is unreachable: from 0.1 s, doubling,
#: at most 5 s between attempts (with jitter), never giving up.
TAIL_BACKOFF = BackoffConfig(base_delay=0.1, min_base_delay=0.05, max_delay=5.0, healthy_after=5.0)


@attrs.frozen(kw_only=True)
class TailConfig:
    """How a :class:`RedisFeed`'s tail reads the log, and how long clients wait for it.

    Attributes:
        block_timeout: Seconds one ``XREAD BLOCK`` waits for new events; the tail also
            checks the log's epoch this often when no event comes (a wiped Redis is noticed
            within it). The Redis client's ``socket_timeout`` must be longer.
        catch_up_timeout: Seconds a client whose id the worker's copy of the log has not
            seen yet waits for the tail (and a client of a worker whose tail has not loaded
            the log yet waits before it is refused with 503).
        backoff: How the tail retries while Redis is unreachable (:data:`TAIL_BACKOFF`).
        read_count: The most events one read of the tail fetches.
        idempotency_window: Seconds Redis remembers the answer to a ``publish`` under an
            ``idempotency_key`` (:data:`DEFAULT_IDEMPOTENCY_WINDOW`, 10 minutes): a
            publisher's retries of one event must fall within it; at most 30 days. (Kept here, with
            ``read_count``, because this is the record every feed and ``RedisChannels``
            already take for how they talk to Redis.)

    Raises:
        InvalidConfigError: a value out of range or of the wrong type.
    """

    block_timeout: float = attrs.field(default=1.0, validator=positive_number)
    catch_up_timeout: float = attrs.field(default=5.0, validator=positive_number)
    backoff: BackoffConfig = attrs.field(
        default=TAIL_BACKOFF, validator=instance_of(BackoffConfig)
    )
    read_count: int = attrs.field(default=DEFAULT_READ_COUNT, validator=positive_int)
    idempotency_window: float = attrs.field(
        default=DEFAULT_IDEMPOTENCY_WINDOW, validator=idempotency_window_check
    )
