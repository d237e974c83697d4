"""An event log for ``Last-Event-ID`` resumption shared by every worker, on Redis Streams.

:class:`RedisLog` keeps :class:`~sse_core.state.AsyncSharedLog`'s contract over the user's
``redis.asyncio.Redis`` client, :class:`SyncRedisLog` :class:`~sse_core.state.SharedLog`'s over
a ``redis.Redis`` client (the ``redis`` extra: ``pip install 'sse-core[redis]'``). Every call
is one script run by Redis atomically (``_redis_scripts.py``); the ids, the stored bytes and
the verdicts are decided by the pure core (``sse_core/_stream_log.py``). Redis errors come
out as :class:`~sse_core.state.LogUnavailableError`. See :doc:`/adapters/redis`.
"""

from __future__ import annotations

from typing import TypeVar

import redis
import redis.asyncio
import redis.exceptions

from .._errors import LogUnavailableError
from .._events import Event
from .._replay import Replay, ReplayConfig, ReplayResult, StoredEvent
from ._redis_log import DEFAULT_READ_COUNT, Call, RedisLogBase

__all__ = ["LogUnavailableError", "RedisLog", "SyncRedisLog"]

_T = TypeVar("_T")

class RedisLog(RedisLogBase):
    """Recent events of one stream, kept in Redis for every worker and host (asyncio).

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
        RedisLogBase.__init__(self, client, key, config, read_count)

    async def position(self) -> str:
        """An id that marks the end of the log now (``<epoch>-0-0`` before the first event);
        creates the log (and its epoch) when it does not exist.

        Raises:
            LogUnavailableError: Redis could not answer.
        """
        return await self._run(self._position_call())

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
        return await self._run(self._append_call(event, now))

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
        return await self._run(self._resume_call(last_event_id, now, max_bytes))

    async def oldest(self, *, max_bytes: int | None = None) -> Replay:
        """Return the oldest kept events, in steps of at most ``max_bytes``.

        Raises:
            InvalidConfigError: ``max_bytes`` is not ``None`` or an int >= 1.
            LogUnavailableError: Redis could not answer.
        """
        return await self._run(self._oldest_call(max_bytes))

    async def _run(self, call: Call[_T]) -> _T:
        if call.script is None:
            return call.finish(())
        try:
            reply = await call.script(keys=self._keys, args=call.args)
        except redis.exceptions.RedisError as error:
            raise call.failed(error) from error
        return call.finish(reply)


class SyncRedisLog(RedisLogBase):
    """:class:`RedisLog` over a blocking ``redis.Redis`` client, for threads and WSGI.

    The same calls, not awaited; :attr:`position` is a property (as on
    :class:`~sse_core.state.ReplayLog`, so that a :class:`~sse_core.ServerSession` can
    resume from this log directly), and each read of it is a round trip to Redis.

    Args:
        client: The application's ``redis.Redis`` client.
        key: As for :class:`RedisLog`.
        config: As for :class:`RedisLog`.
        read_count: As for :class:`RedisLog`.

    Raises:
        InvalidConfigError: a bad argument.
    """

    def __init__(
        self,
        client: redis.Redis,
        key: str,
        config: ReplayConfig | None = None,
        *,
        read_count: int = DEFAULT_READ_COUNT,
    ) -> None:
        RedisLogBase.__init__(self, client, key, config, read_count)

    @property
    def position(self) -> str:
        """As :meth:`RedisLog.position`."""
        return self._run(self._position_call())

    def append(self, event: Event, now: float) -> StoredEvent:
        """As :meth:`RedisLog.append`."""
        return self._run(self._append_call(event, now))

    def resume(
        self, last_event_id: str, now: float, *, max_bytes: int | None = None
    ) -> ReplayResult:
        """As :meth:`RedisLog.resume`."""
        return self._run(self._resume_call(last_event_id, now, max_bytes))

    def oldest(self, *, max_bytes: int | None = None) -> Replay:
        """As :meth:`RedisLog.oldest`."""
        return self._run(self._oldest_call(max_bytes))

    def _run(self, call: Call[_T]) -> _T:
        if call.script is None:
            return call.finish(())
        try:
            reply = call.script(keys=self._keys, args=call.args)
        except redis.exceptions.RedisError as error:
            raise call.failed(error) from error
        return call.finish(reply)
