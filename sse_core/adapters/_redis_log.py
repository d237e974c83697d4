"""What the Redis logs share, awaited or not: checks, script calls, answers (edge, floor 4).

Each public method of :class:`~sse_core.adapters.redis.RedisLog` (asyncio) and
:class:`~sse_core.adapters.redis.SyncRedisLog` is one :class:`Call` built here, run by the
log's own ``_run`` (the only line that differs: ``await`` or not), and finished here by the
pure core's verdict.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import attrs
import redis.exceptions

from .._errors import InvalidConfigError, LogUnavailableError
from .._events import Event
from .._replay import Replay, ReplayConfig, ReplayResult, StoredEvent, UnknownId
from .._stream_log import (
    appended,
    appended_once,
    check_idempotency_key,
    entry_fields,
    event_digest,
    log_id,
    oldest_of,
    read_start,
    retention_args,
    stored_event,
    verdict,
    window_ms,
)
from .._validators import Check, MonotonicNow, positive_int
from ._redis_scripts import APPEND, POSITION, READ

__all__ = [
    "DEFAULT_IDEMPOTENCY_WINDOW", "DEFAULT_READ_COUNT", "MAX_IDEMPOTENCY_WINDOW", "Call",
    "RedisLogBase", "idempotency_window_check", "once_key",
]

#: How many events one bounded read (``max_bytes`` given) fetches at most.
DEFAULT_READ_COUNT = 256

#: Seconds Redis remembers an idempotency key's answer (10 minutes): a publisher's retries
#: of one event must fall within it.
DEFAULT_IDEMPOTENCY_WINDOW = 600.0

#: The longest idempotency window: 30 days (in seconds).
MAX_IDEMPOTENCY_WINDOW = 30 * 24 * 3600.0

#: What an idempotency window may be: more than 0 seconds, 30 days at most (a longer one
#: is no retry's, and Redis would refuse the expiry of a huge one).
idempotency_window_check = Check(
    lambda value: isinstance(value, (int, float)) and not isinstance(value, bool)
    and 0 < value <= MAX_IDEMPOTENCY_WINDOW,
    "a number > 0 and at most 2592000 (30 days)",
)

_T = TypeVar("_T")


@attrs.frozen
class Call(Generic[_T]):
    """One script run and how to read its reply; ``script=None``: answered without Redis;
    ``keys=None``: the log's own two keys."""

    operation: str
    script: Any
    args: list[str | int]
    finish: Callable[[Sequence[Any]], _T]
    keys: list[str] | None = None

    def failed(self, error: redis.exceptions.RedisError) -> LogUnavailableError:
        """The error to raise (chained to ``error``) when Redis did not carry it out."""
        return LogUnavailableError(self.operation, f"{type(error).__name__}: {error}")


class RedisLogBase(MonotonicNow):
    """The arguments, checks and answers of both Redis logs (see their docstrings)."""

    def __init__(
        self,
        client: Any,
        key: str,
        config: ReplayConfig | None,
        read_count: int,
        idempotency_window: float = DEFAULT_IDEMPOTENCY_WINDOW,
    ) -> None:
        MonotonicNow.__init__(self)
        config = ReplayConfig() if config is None else config
        if config.epoch:
            raise InvalidConfigError(
                f"a Redis log keeps its epoch in Redis; got ReplayConfig(epoch={config.epoch!r})"
            )
        if not isinstance(key, str) or not key:
            raise InvalidConfigError(f"key must be a non-empty str, got {key!r}")
        positive_int.check("read_count", read_count)
        idempotency_window_check.check("idempotency_window", idempotency_window)
        self._idempotency_window = idempotency_window
        self._window_ms = window_ms(idempotency_window)
        self._config = config
        self._keys = [key, f"{key}:meta"]
        self._retention = retention_args(config)
        self._read_count = read_count
        self._append_script = client.register_script(APPEND)
        self._read_script = client.register_script(READ)
        self._position_script = client.register_script(POSITION)

    @property
    def config(self) -> ReplayConfig:
        """The retention this log was built with."""
        return self._config

    @property
    def idempotency_window(self) -> float:
        """Seconds Redis remembers the answer to an append under an idempotency key."""
        return self._idempotency_window

    def _position_call(self) -> Call[str]:
        def finish(reply: Sequence[Any]) -> str:
            return log_id(*appended(reply))

        return Call("position", self._position_script, [_epoch()], finish)

    def _append_call(
        self, event: Event, now: float, idempotency_key: str | None = None
    ) -> Call[StoredEvent]:
        """The append of ``event``; with a key, idempotent (see ``_redis_scripts.APPEND``)."""
        if idempotency_key is not None:
            check_idempotency_key(idempotency_key)
        self._take_now(now)
        size, event_type, data = entry_fields(event)
        args: list[str | int] = [_epoch(), size, event_type, data, *self._retention]
        if idempotency_key is None:

            def finish(reply: Sequence[Any]) -> StoredEvent:
                return stored_event(*appended(reply), event_type, data)

            return Call("append", self._append_script, args, finish)
        key = idempotency_key

        def finish_once(reply: Sequence[Any]) -> StoredEvent:
            return appended_once(reply, key, event_type, data)

        args += [self._window_ms, event_digest(event_type, data)]
        keys = [*self._keys, once_key(self._keys[0], key)]
        return Call("append", self._append_script, args, finish_once, keys)

    def _resume_call(
        self, last_event_id: str, now: float, max_bytes: int | None
    ) -> Call[ReplayResult]:
        self._take_now(now)
        count = self._count(max_bytes)
        start = read_start(last_event_id)
        if isinstance(start, UnknownId):
            return Call("resume", None, [], lambda _: start)

        def finish(reply: Sequence[Any]) -> ReplayResult:
            return verdict(last_event_id, reply, max_bytes, count)

        args: list[str | int] = [f"({start}", count + 1, *self._retention]
        return Call("resume", self._read_script, args, finish)

    def _oldest_call(self, max_bytes: int | None) -> Call[Replay]:
        count = self._count(max_bytes)

        def finish(reply: Sequence[Any]) -> Replay:
            return oldest_of(reply, max_bytes, count)

        return Call("read", self._read_script, ["-", count + 1, *self._retention], finish)

    def _rows_call(self, start: str, count: int) -> Call[Sequence[Any]]:
        """The raw read a live tail carries out (``[]`` or ``[epoch, newest id, rows]``; the
        pure :class:`~sse_core._stream_log.Follower` reads it)."""
        return Call("read", self._read_script, [start, count, *self._retention], _raw)

    def _count(self, max_bytes: int | None) -> int:
        if max_bytes is None:
            return self._config.max_events
        positive_int.check("max_bytes", max_bytes)
        return min(self._read_count, self._config.max_events)


def once_key(stream: str, idempotency_key: str) -> str:
    """The key of an idempotency key's record: ``<stream>#once:<key>`` (a channel's name
    holds no ``#``, so no channel's stream is named so)."""
    return f"{stream}#once:{idempotency_key}"


def _raw(reply: Sequence[Any]) -> Sequence[Any]:
    return reply


def _epoch() -> str:
    """A new epoch, used by Redis only if the log has to start over."""
    return secrets.token_hex(8)
