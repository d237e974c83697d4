"""An event log for ``Last-Event-ID`` resumption shared by every worker, on Redis Streams.

:class:`RedisLog` keeps :class:`~sse_core.state.AsyncSharedLog`'s contract over the user's
``redis.asyncio.Redis`` client (the ``redis`` extra: ``pip install 'sse-core[redis]'``). Every
call is one script run by Redis atomically (``_redis_scripts.py``); the ids, the stored
bytes and the verdicts are decided by the pure core (``sse_core/_stream_log.py``). Redis
errors come out as :class:`~sse_core.state.LogUnavailableError`. See :doc:`/adapters/redis`.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

import redis.asyncio
import redis.exceptions

from .._errors import InvalidConfigError, LogUnavailableError
from .._events import Event
from .._replay import Replay, ReplayConfig, ReplayResult, StoredEvent, UnknownId
from .._stream_log import (
    appended,
    entry_fields,
    log_id,
    oldest_of,
    read_start,
    retention_args,
    stored_event,
    verdict,
)
from .._validators import MonotonicNow, positive_int
from ._redis_scripts import APPEND, POSITION, READ

__all__ = ["LogUnavailableError", "RedisLog"]

#: How many events one bounded read (``max_bytes`` given) fetches at most.
DEFAULT_READ_COUNT = 256


class RedisLog(MonotonicNow):
    """Recent events of one stream, kept in Redis for every worker and host.

    Events go into a Redis stream (``key``) with a hash beside it (``key + ":meta"``: the
    epoch, the last id, the bytes kept). In Redis Cluster, put a hash tag in ``key``
    (``"{news}"``) so that both land on one slot.

    Args:
        client: The application's ``redis.asyncio.Redis`` client (its URL, timeouts and
            retries apply; ``decode_responses`` may be either).
        key: The stream's key, one per stream of events (a topic).
        config: Retention: ``max_events``, ``max_bytes`` and ``max_age`` of
            :class:`~sse_core.state.ReplayConfig` (``max_age`` measured on Redis's clock).
            Its ``epoch`` must be empty: the log keeps its epoch in Redis.
        read_count: The most events one step of a bounded read (``max_bytes`` given) fetches.

    Raises:
        InvalidConfigError: a bad argument.
    """

    def __init__(
        self,
        client: redis.asyncio.Redis,
        key: str,
        config: ReplayConfig | None = None,
        *,
        read_count: int = DEFAULT_READ_COUNT,
    ) -> None:
        MonotonicNow.__init__(self)
        config = ReplayConfig() if config is None else config
        if config.epoch:
            raise InvalidConfigError(
                f"a RedisLog keeps its epoch in Redis; got ReplayConfig(epoch={config.epoch!r})"
            )
        if not isinstance(key, str) or not key:
            raise InvalidConfigError(f"key must be a non-empty str, got {key!r}")
        positive_int.check("read_count", read_count)
        self._config = config
        self._keys = [key, f"{key}:meta"]
        self._retention = retention_args(config)
        self._read_count = read_count
        self._append = client.register_script(APPEND)
        self._read = client.register_script(READ)
        self._position = client.register_script(POSITION)

    @property
    def config(self) -> ReplayConfig:
        """The retention this log was built with."""
        return self._config

    async def position(self) -> str:
        """An id that marks the end of the log now (``<epoch>-0-0`` before the first event);
        creates the log (and its epoch) when it does not exist.

        Raises:
            LogUnavailableError: Redis could not answer.
        """
        epoch, last = appended(await self._run("position", self._position, _epoch()))
        return log_id(epoch, last)

    async def append(self, event: Event, now: float) -> StoredEvent:
        """Add an event; Redis numbers it after every event any worker appended before.

        Args:
            event: The event, with ``id=None``.
            now: The current monotonic time (checked, not stored: ages are Redis's clock).

        Returns:
            The stored event: its id ``<epoch>-<ms>-<n>`` and the bytes to send.

        Raises:
            InvalidFieldError: the event has an id, or cannot be encoded (nothing is sent).
            ClockError: ``now`` is not finite or earlier than a previous ``now``.
            LogUnavailableError: Redis did not acknowledge the event.
        """
        self._take_now(now)
        size, event_type, data = entry_fields(event)
        reply = await self._run(
            "append", self._append, _epoch(), size, event_type, data, *self._retention
        )
        epoch, at = appended(reply)
        return stored_event(epoch, at, event_type, data)

    async def resume(
        self, last_event_id: str, now: float, *, max_bytes: int | None = None
    ) -> ReplayResult:
        """Find what a client that last saw ``last_event_id`` has missed (evicting what is
        past the bounds first).

        Args:
            last_event_id: The ``Last-Event-ID`` the client sent.
            now: The current monotonic time (checked only).
            max_bytes: Stop a :class:`~sse_core.state.Replay` before its bytes pass this (one
                event at least), or ``None`` for every kept event.

        Returns:
            :class:`~sse_core.state.Replay`, :class:`~sse_core.state.TooOld` (with the exact
            number of events missed) or :class:`~sse_core.state.UnknownId` (an id of another
            epoch, never issued, or not of this log's form).

        Raises:
            InvalidConfigError: ``max_bytes`` is not ``None`` or an int >= 1.
            ClockError: ``now`` is not finite or earlier than a previous ``now``.
            LogUnavailableError: Redis could not answer.
        """
        self._take_now(now)
        count = self._count(max_bytes)
        start = read_start(last_event_id)
        if isinstance(start, UnknownId):
            return start
        reply = await self._run("resume", self._read, f"({start}", count + 1, *self._retention)
        return verdict(last_event_id, reply, max_bytes, count)

    async def oldest(self, *, max_bytes: int | None = None) -> Replay:
        """Return the oldest kept events, in steps of at most ``max_bytes``.

        Raises:
            InvalidConfigError: ``max_bytes`` is not ``None`` or an int >= 1.
            LogUnavailableError: Redis could not answer.
        """
        count = self._count(max_bytes)
        reply = await self._run("read", self._read, "-", count + 1, *self._retention)
        return oldest_of(reply, max_bytes, count)

    def _count(self, max_bytes: int | None) -> int:
        if max_bytes is None:
            return self._config.max_events
        positive_int.check("max_bytes", max_bytes)
        return min(self._read_count, self._config.max_events)

    async def _run(self, operation: str, script: Any, *args: str | int) -> Sequence[Any]:
        try:
            reply = await script(keys=self._keys, args=list(args))
        except redis.exceptions.RedisError as error:
            raise LogUnavailableError(operation, f"{type(error).__name__}: {error}") from error
        return reply  # type: ignore[no-any-return]


def _epoch() -> str:
    """A new epoch, used by Redis only if the log has to start over."""
    return secrets.token_hex(8)
