"""An event log for ``Last-Event-ID`` resumption shared by every worker, on Redis Streams.

:class:`RedisLog` keeps :class:`~sse_core.state.AsyncSharedLog`'s contract over the user's
``redis.asyncio.Redis`` client, :class:`SyncRedisLog` :class:`~sse_core.state.SharedLog`'s over
a ``redis.Redis`` client (the ``redis`` extra: ``pip install 'sse-core[redis]'``). Every call
is one script run by Redis atomically (``_redis_scripts.py``); the ids, the stored bytes and
the verdicts are decided by the pure core (``sse_core/_stream_log.py``). Redis errors come
out as :class:`~sse_core.state.LogUnavailableError`.

:class:`RedisFeed` serves such a log to the clients of one worker: its live tail feeds the
server's broadcaster, so every worker delivers every event, in the log's order, once, and a
client resumes on any worker (:class:`SyncRedisFeed` for the blocking server,
:class:`TrioRedisFeed` for the trio one, both over a ``redis.Redis`` client). See
:doc:`/adapters/redis` and :doc:`/deploy`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import redis
import redis.asyncio
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from .._errors import (
    InvalidConfigError,
    LocalProtocolError,
    LogUnavailableError,
    RemoteProtocolError,
)
from .._events import Event
from .._replay import Replay, ReplayConfig, ReplayResult, StoredEvent
from .._stream_log import (
    CreateLog,
    ReadRows,
    TailStep,
    WaitRows,
    covers,
)
from .._validators import instance_of, positive_number
from . import _redis_log, _redis_tail
from ._logging import server_log
from ._redis_log import DEFAULT_READ_COUNT, Call, RedisLogBase
from ._redis_sync_feed import SyncRedisFeed, SyncRedisLog
from ._redis_tail import TailConfig, TailFeed, woken_entries

if TYPE_CHECKING:
    from ._redis_trio_feed import TrioRedisFeed

__all__ = [
    "DEFAULT_IDEMPOTENCY_WINDOW",
    "TAIL_BACKOFF",
    "LogUnavailableError",
    "RedisChannels",
    "RedisFeed",
    "RedisLog",
    "SyncRedisFeed",
    "SyncRedisLog",
    "TailConfig",
    "TrioRedisFeed",
    "is_channel_name",
]

_T = TypeVar("_T")


def __getattr__(name: str) -> Any:
    """``TrioRedisFeed``, imported on first use: it needs trio (the ``trio`` extra)."""
    if name == "TrioRedisFeed":
        from ._redis_trio_feed import TrioRedisFeed

        return TrioRedisFeed
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: Seconds Redis remembers the answer to an append under an ``idempotency_key`` unless told
#: otherwise (10 minutes): a publisher's retries of one event must fall within it.
DEFAULT_IDEMPOTENCY_WINDOW = _redis_log.DEFAULT_IDEMPOTENCY_WINDOW


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
        idempotency_window: Seconds Redis remembers the answer to an append under an
            ``idempotency_key`` (:data:`DEFAULT_IDEMPOTENCY_WINDOW`, 10 minutes; at most
            30 days).

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
        idempotency_window: float = DEFAULT_IDEMPOTENCY_WINDOW,
    ) -> None:
        RedisLogBase.__init__(self, client, key, config, read_count, idempotency_window)

    async def position(self) -> str:
        """An id that marks the end of the log now (``<epoch>-0-0`` before the first event);
        creates the log (and its epoch) when it does not exist.

        Raises:
            LogUnavailableError: Redis could not answer.
        """
        return await self._run(self._position_call())

    async def append(
        self, event: Event, now: float, *, idempotency_key: str | None = None
    ) -> StoredEvent:
        """Add an event; Redis numbers it after every event any worker appended before.

        Args:
            event: The event, with ``id=None``.
            now: The current monotonic time (checked, not stored: ages are Redis's clock).
            idempotency_key: A key of the publisher's own naming this one event (a uuid it
                keeps across its retries, ``"order-17-shipped"``): an append under a key
                Redis answered within :attr:`idempotency_window`, in this epoch, stores
                nothing and returns the first answer (the same id) -- retry a
                :class:`~sse_core.state.LogUnavailableError` with the same key and the
                event is stored once. ``None``: no key, nothing remembered.

        Returns:
            The stored event: its id ``<epoch>-<ms>-<n>`` and the bytes to send.

        Raises:
            InvalidFieldError: the event has an id, or cannot be encoded, or the key is not
                1 to 200 visible ASCII characters (nothing is sent).
            IdempotencyConflictError: the key was used for another event (nothing stored).
            ClockError: ``now`` is not finite or earlier than a previous ``now``.
            LogUnavailableError: Redis did not acknowledge the event.
        """
        return await self._run(self._append_call(event, now, idempotency_key))

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

    async def _rows(self, start: str, count: int) -> Sequence[Any]:
        """One raw read for a live tail (see :class:`RedisFeed`)."""
        return await self._run(self._rows_call(start, count))

    async def _run(self, call: Call[_T]) -> _T:
        if call.script is None:
            return call.finish(())
        try:
            reply = await call.script(
                keys=self._keys if call.keys is None else call.keys, args=call.args
            )
        except redis.exceptions.RedisError as error:
            raise call.failed(error) from error
        return call.finish(reply)


_STOP_ATTEMPTS = 20
_STOP_WAIT = 0.25

#: How a :class:`RedisFeed`'s tail retries while Redis is unreachable: from 0.1 s, doubling,
#: at most 5 s between attempts (with jitter), never giving up.
TAIL_BACKOFF = _redis_tail.TAIL_BACKOFF


class RedisFeed(TailFeed[redis.asyncio.Redis, RedisLog]):
    """A Redis log served to one worker's clients: pass it to the asyncio
    ``EventStreamServer`` or the ASGI ``EventStream`` as ``feed=``, in every worker.

    Publishing appends to Redis (:meth:`publish`, from any worker or any other process:
    Redis orders every append). Each worker runs one tail task that reads the log's new
    events (``XREAD BLOCK`` from the last id it saw) and hands each one, in the log's order,
    once, to its broadcaster, which writes it to the worker's clients. The worker keeps the
    newest events (within ``config``'s bounds) in :attr:`mirror`, which its clients resume
    from; a client whose ``Last-Event-ID`` is newer than the mirror (it was served by a
    faster worker) waits until the tail has caught up (at most ``catch_up_timeout``).

    When Redis is unreachable, :meth:`publish` raises
    :class:`~sse_core.state.LogUnavailableError` (nothing is acknowledged that Redis did not
    store; retry with the same ``idempotency_key`` to store it once); connected clients
    keep their streams and heartbeats; the tail retries with ``backoff`` and catches up
    from the last id it saw. When the events after that id are gone (a restart without
    persistence, a deleted key, events trimmed before the tail read them), every client's
    stream ends and its resume gets the explicit gap signal.

    The tail and :meth:`publish` run on asyncio (``redis.asyncio``); the client's
    ``socket_timeout``, if any, must be longer than the tail's ``block_timeout``.

    Args:
        client: The worker's ``redis.asyncio.Redis`` client.
        key: The stream's key (one per topic).
        config: Retention, as for :class:`RedisLog` (the mirror keeps the same bounds).
        tail: How the tail reads and retries (:class:`TailConfig`).
        rng: Where the backoff's jitter comes from (``random.Random()`` by default).

    Raises:
        InvalidConfigError: a bad argument.
    """

    def __init__(
        self,
        client: redis.asyncio.Redis,
        key: str,
        config: ReplayConfig | None = None,
        *,
        tail: TailConfig | None = None,
        rng: random.Random | None = None,
    ) -> None:
        tail = TailConfig() if tail is None else tail
        instance_of(TailConfig).check("tail", tail)
        log = RedisLog(
            client, key, config, read_count=tail.read_count,
            idempotency_window=tail.idempotency_window,
        )
        self._set_up(client, key, log, tail, rng)
        self._mirror = self._state.mirror
        self._follower = self._state.follower
        self._task: asyncio.Task[None] | None = None
        self._changed: asyncio.Event | None = None
        self._is_stopping = False

    async def publish(
        self, event: Event, *, idempotency_key: str | None = None
    ) -> StoredEvent:
        """Append an event to the Redis log; every worker's tail delivers it.

        Args:
            event: The event, with ``id=None`` (Redis numbers it).
            idempotency_key: Publish exactly once across retries (see
                :meth:`RedisLog.append`; the window is ``tail.idempotency_window``).

        Returns:
            The stored event, with its id.

        Raises:
            InvalidFieldError: the event has an id, or cannot be encoded, or a bad key.
            IdempotencyConflictError: the key was used for another event.
            LogUnavailableError: Redis did not acknowledge it.
        """
        return await self._log.append(
            event, time.monotonic(), idempotency_key=idempotency_key
        )

    def start(self) -> None:
        """Start the tail in the running loop, unless it runs already.

        Raises:
            LocalProtocolError: no asyncio loop runs (a trio server, say: the tail is
                ``redis.asyncio``).
        """
        if self._task is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                raise LocalProtocolError(
                    "RedisFeed runs on asyncio: serve it from an asyncio loop"
                ) from None
            self._task = loop.create_task(self._tail())

    async def ready(self, last_event_id: str | None) -> bool:
        """Start the tail if needed, and wait (at most ``catch_up_timeout``) until the mirror
        is loaded and has caught up with ``last_event_id`` if Redis issued it.

        Returns:
            Whether a client resuming from ``last_event_id`` can be served now: the mirror
            is loaded, and it has seen the id, or Redis says it never issued it (the mirror
            then answers with the gap). ``False`` -- answer 503, the client comes back --
            when the mirror is not loaded, or is still behind an id Redis issued, or Redis
            cannot say (it is unreachable: the id may be one the tail has not read yet).
        """
        self.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._catch_up_timeout
        mirror = self._mirror
        await self._until(lambda: mirror.is_loaded, deadline)
        if not mirror.is_loaded:
            return False
        if not last_event_id or not mirror.is_behind(last_event_id):
            return True
        try:
            position = await asyncio.wait_for(self._log.position(), deadline - loop.time())
        except (LogUnavailableError, asyncio.TimeoutError):
            pass  # Redis cannot say whether it issued the id: wait for the tail
        else:
            if not covers(position, last_event_id):
                return True  # never issued, or of a wiped epoch: the mirror says so
        await self._until(lambda: not mirror.is_behind(last_event_id), deadline)
        return not mirror.is_behind(last_event_id)

    async def aclose(self) -> None:
        """Stop the tail (it can be started again)."""
        task, self._task = self._task, None
        if task is None:
            return
        self._is_stopping = True
        try:
            # redis-py can absorb a cancellation that lands inside its connection handling
            # (the tail then sees an error and would back off and go on): the flag ends the
            # loop at its next turn, and a cancellation is repeated until the task is done.
            for _ in range(_STOP_ATTEMPTS):
                task.cancel()
                done, _ = await asyncio.wait({task}, timeout=_STOP_WAIT)
                if done:
                    if not task.cancelled():
                        task.exception()  # retrieved: the tail ends only by cancellation
                    return
            server_log(
                logging.WARNING, f"Redis tail of {self._key!r} did not stop",
                adapter="redis", event="tail_stuck",
            )
        finally:
            self._is_stopping = False

    async def _until(self, predicate: Callable[[], bool], deadline: float) -> None:
        loop = asyncio.get_running_loop()
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            if self._changed is None:
                self._changed = asyncio.Event()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                return

    def _notify(self) -> None:
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()

    async def _tail(self) -> None:
        """The tail: carry out the follower's requests; back off while Redis fails."""
        state = self._state
        while not self._is_stopping:
            request = state.follower.next_request()
            try:
                step = await self._carry_out(request)
            except (LogUnavailableError, RemoteProtocolError) as error:
                await asyncio.sleep(state.failed(error, time.monotonic()))
                continue
            state.succeeded(step, time.monotonic())
            self._notify()

    async def _carry_out(self, request: ReadRows | WaitRows | CreateLog) -> TailStep | None:
        follower = self._follower
        if isinstance(request, ReadRows):
            return follower.on_read(await self._log._rows(request.start, request.count))
        if isinstance(request, CreateLog):
            await self._log.position()
            follower.on_created()
            return None
        streams, count, block = self._xread_args(request)
        try:
            reply = await self._client.xread(streams, count=count, block=block)
        except redis.exceptions.RedisError as error:
            raise LogUnavailableError("wait", f"{type(error).__name__}: {error}") from error
        return follower.on_woken(woken_entries(reply))


#: What a channel name may hold: letters, digits and ``_ . : -`` (it becomes part of a key
#: and of a URL path), 1 to 200 of them.
_CHANNEL_CHARACTERS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-"
)
_MAX_CHANNEL_LENGTH = 200


def is_channel_name(name: object) -> bool:
    """Whether ``name`` can name a channel: 1 to 200 of letters, digits and ``_ . : -``."""
    return (
        isinstance(name, str)
        and 0 < len(name) <= _MAX_CHANNEL_LENGTH
        and set(name) <= _CHANNEL_CHARACTERS
    )


class RedisChannels:
    """Several streams (channels, topics) on one Redis: one stream key per channel,
    ``prefix + name``, each with the same retention, timeouts and client.

    Make one per worker, then a :class:`RedisFeed` per channel the worker serves
    (:meth:`feed`: one per server, and an ``EventStreamRouter`` of those servers -- the ASGI
    one or the asyncio one -- serves them on one path or port), and publish with
    :meth:`publish` from anywhere.

    Args:
        client: The worker's ``redis.asyncio.Redis`` client (see :meth:`from_url`).
        prefix: Put before every channel's name to make its key (``"sse:"``: channel
            ``news`` is the stream ``sse:news`` and its hash ``sse:news:meta``). In Redis
            Cluster use a hash tag per channel instead (``"{sse}:"`` puts every channel on
            one slot).
        config: Every channel's retention (count, bytes, age), as for :class:`RedisLog`.
        tail: Every channel's tail (:class:`TailConfig`).

    Raises:
        InvalidConfigError: a bad argument.
    """

    def __init__(
        self,
        client: redis.asyncio.Redis,
        *,
        prefix: str = "sse:",
        config: ReplayConfig | None = None,
        tail: TailConfig | None = None,
    ) -> None:
        if not isinstance(prefix, str):
            raise InvalidConfigError(f"prefix must be a str, got {prefix!r}")
        config = ReplayConfig() if config is None else config
        instance_of(ReplayConfig).check("config", config)
        if config.epoch:
            raise InvalidConfigError("a Redis log keeps its epoch in Redis; leave epoch empty")
        tail = TailConfig() if tail is None else tail
        instance_of(TailConfig).check("tail", tail)
        self._client = client
        self._prefix = prefix
        self._config = config
        self._tail = tail
        self._logs: dict[str, RedisLog] = {}

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        socket_timeout: float = 5.0,
        connect_timeout: float = 2.0,
        **kwargs: Any,
    ) -> RedisChannels:
        """Channels over a new client for ``url`` (``redis://``, ``rediss://`` or
        ``unix://``): its commands time out after ``socket_timeout`` seconds (kept above
        ``block_timeout``), its connection attempts after ``connect_timeout``, and a command
        that finds its pooled connection dead (after a Redis restart) is retried once on a
        new one. The other arguments are :class:`RedisChannels`'.

        Raises:
            InvalidConfigError: a bad argument (``socket_timeout`` not above
                ``block_timeout``, say).
        """
        positive_number.check("socket_timeout", socket_timeout)
        positive_number.check("connect_timeout", connect_timeout)
        tail = kwargs.get("tail")
        block_timeout = tail.block_timeout if isinstance(tail, TailConfig) else 1.0
        if socket_timeout <= block_timeout:
            raise InvalidConfigError(
                f"socket_timeout={socket_timeout} must be above block_timeout={block_timeout}"
                " (the tail's XREAD BLOCK would time out)"
            )
        client = redis.asyncio.Redis.from_url(
            url, socket_timeout=socket_timeout, socket_connect_timeout=connect_timeout,
            retry=Retry(NoBackoff(), 1), retry_on_error=[redis.exceptions.ConnectionError],
        )
        return cls(client, **kwargs)

    @property
    def client(self) -> redis.asyncio.Redis:
        """The Redis client (close it with :meth:`aclose`)."""
        return self._client

    @property
    def config(self) -> ReplayConfig:
        """Every channel's retention."""
        return self._config

    def key(self, name: str) -> str:
        """The stream key of channel ``name``.

        Raises:
            InvalidConfigError: ``name`` is not a channel name (:func:`is_channel_name`).
        """
        if not is_channel_name(name):
            raise InvalidConfigError(
                f"a channel name is 1 to {_MAX_CHANNEL_LENGTH} of letters, digits and"
                f" '_.:-', got {name!r}"
            )
        return self._prefix + name

    def log(self, name: str) -> RedisLog:
        """Channel ``name``'s log (one per name, made on first use)."""
        log = self._logs.get(name)
        if log is None:
            log = RedisLog(
                self._client, self.key(name), self._config, read_count=self._tail.read_count,
                idempotency_window=self._tail.idempotency_window,
            )
            self._logs[name] = log
        return log

    def feed(self, name: str) -> RedisFeed:
        """A new feed of channel ``name``, for one server (``EventStream(feed=...)``)."""
        return RedisFeed(self._client, self.key(name), self._config, tail=self._tail)

    async def publish(
        self, name: str, event: Event, *, idempotency_key: str | None = None
    ) -> StoredEvent:
        """Append an event to channel ``name``; every worker serving it delivers it.

        ``idempotency_key``: publish exactly once across retries (see
        :meth:`RedisLog.append`; the window is ``tail.idempotency_window``). A key is the
        channel's own: the same key on two channels names two events.

        Raises:
            InvalidConfigError: ``name`` is not a channel name.
            InvalidFieldError: the event has an id, or cannot be encoded, or a bad key.
            IdempotencyConflictError: the key was used for another event.
            LogUnavailableError: Redis did not acknowledge it.
        """
        return await self.log(name).append(
            event, time.monotonic(), idempotency_key=idempotency_key
        )

    async def aclose(self) -> None:
        """Close the Redis client (stop the servers first)."""
        await self._client.aclose()
