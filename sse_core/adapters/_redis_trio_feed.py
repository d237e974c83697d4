"""The Redis feed of the trio ``EventStreamServer`` (:class:`TrioRedisFeed`), imported from
:mod:`sse_core.adapters.redis`.

redis-py has no trio client: the feed runs the blocking client's calls in worker threads
(:func:`trio.to_thread.run_sync`), one request of the tail at a time, each the very request
:class:`~sse_core.adapters.redis.SyncRedisFeed` carries out in its thread; what the answers
lead to (the mirror, the server's broadcaster) is applied on the trio thread.
"""

from __future__ import annotations

import random
import time

import redis
import trio

from .._errors import LogUnavailableError, RemoteProtocolError
from .._events import Event
from .._replay import ReplayConfig, StoredEvent
from .._stream_log import TailStep, covers
from ._redis_sync_feed import SyncRedisFeed, SyncRedisLog
from ._redis_tail import TailConfig, TailFeed

__all__ = ["TrioRedisFeed"]


class TrioRedisFeed(TailFeed[redis.Redis, SyncRedisLog]):
    """A Redis log served to one trio ``EventStreamServer``'s clients (``feed=``), in every
    worker: :class:`RedisFeed` for trio, over a blocking ``redis.Redis`` client.

    :meth:`publish` appends to Redis (from any worker or process: Redis orders every
    append). The tail is a task of the server's nursery (:meth:`run`): it reads the log's
    new events (``XREAD BLOCK`` from the last id it saw, ``block_timeout`` at a time) in a
    worker thread, and hands each one, in the log's order, once, to the server on the trio
    thread; the server's clients resume from :attr:`mirror`. A client whose
    ``Last-Event-ID`` the mirror has not seen yet waits for the tail, at most
    ``catch_up_timeout``, then gets 503 (Redis is asked whether it issued that id at all: a
    never-issued id, or one of a wiped epoch, is served the gap at once).

    When Redis is unreachable, :meth:`publish` raises
    :class:`~sse_core.state.LogUnavailableError`; connected clients keep their streams and
    heartbeats; the tail retries with ``backoff`` and catches up from the last id it saw.
    When the events after that id are gone, every client's stream ends and its resume gets
    the explicit gap signal. Stopping the server stops the tail: it waits for the request
    under way (at most ``block_timeout``, or the client's ``socket_timeout`` while Redis
    does not answer), so no thread is left working.

    Arguments as for :class:`SyncRedisFeed`: the worker's ``redis.Redis`` client (its
    ``socket_timeout``, if any, longer than the tail's ``block_timeout``), the stream's
    ``key``, the retention ``config``, the ``tail`` (:class:`TailConfig`) and the backoff
    jitter's ``rng``.

    Raises:
        InvalidConfigError: a bad argument.
    """

    def __init__(
        self, client: redis.Redis, key: str, config: ReplayConfig | None = None, *,
        tail: TailConfig | None = None, rng: random.Random | None = None,
    ) -> None:
        # The blocking feed checks the arguments and carries out the tail's requests; its
        # own thread never starts. The two share one tail state: its requests move it.
        self._blocking = SyncRedisFeed(client, key, config, tail=tail, rng=rng)
        self._set_up(
            client, key, self._blocking.log, TailConfig() if tail is None else tail, rng
        )
        self._state = self._blocking._state
        self._limiter = trio.CapacityLimiter(1)  # the tail's thread, apart from the default's
        self._changed: trio.Event | None = None  # set (and replaced) after each answer
        self._scope: trio.CancelScope | None = None  # the running tail's
        self._stopped: trio.Event | None = None

    @property
    def catch_up_timeout(self) -> float:
        """Seconds a client ahead of the mirror waits for the tail before its 503."""
        return self._catch_up_timeout

    async def publish(
        self, event: Event, *, idempotency_key: str | None = None
    ) -> StoredEvent:
        """Append ``event`` (with ``id=None``: Redis numbers it) to the Redis log, in a
        worker thread; every worker's tail delivers it. ``idempotency_key``: publish exactly
        once across retries (see ``RedisLog.append``; the window is
        ``tail.idempotency_window``).

        Returns:
            The event as Redis stored it (its id, the bytes sent).

        Raises:
            InvalidFieldError: the event has an id, or cannot be encoded, or a bad key
                (nothing is sent).
            IdempotencyConflictError: the key was used for another event.
            LogUnavailableError: Redis did not acknowledge it (a cancelled call waits for
                Redis's answer first).
        """
        log = self._log
        # Checked here, in call order.
        call = log._append_call(event, time.monotonic(), idempotency_key)
        return await trio.to_thread.run_sync(log._run, call)

    async def run(self) -> None:
        """Run the tail until :meth:`aclose` or cancellation (the server runs it in its
        nursery; after :meth:`aclose` it can run again).

        Raises:
            RuntimeError: the tail runs already.
        """
        if self._scope is not None:
            raise RuntimeError(f"the tail of {self._key!r} runs already")
        scope = self._scope = trio.CancelScope()
        stopped = self._stopped = trio.Event()
        state = self._state
        try:
            with scope:
                while True:
                    # Not abandoned on cancellation: the request under way ends first.
                    step, delay = await trio.to_thread.run_sync(
                        self._turn, limiter=self._limiter
                    )
                    if delay is not None:
                        await trio.sleep(delay)
                        continue
                    state.succeeded(step, time.monotonic())
                    changed, self._changed = self._changed, None
                    if changed is not None:
                        changed.set()
        finally:
            self._scope = None
            stopped.set()

    def _turn(self) -> tuple[TailStep | None, float | None]:
        """One request of the tail, in a worker thread: the step its answer led to (to
        apply on the trio thread), or the seconds to wait after it failed."""
        state = self._state
        try:
            return self._blocking._carry_out(state.follower.next_request()), None
        except (LogUnavailableError, RemoteProtocolError) as error:
            return None, state.failed(error, time.monotonic())

    async def ready(self, last_event_id: str | None) -> bool:
        """Wait (at most ``catch_up_timeout``) until the mirror is loaded and has caught up
        with ``last_event_id`` if Redis issued it (the tail must run meanwhile).

        Returns:
            Whether a client resuming from ``last_event_id`` can be served now: the mirror
            is loaded, and it has seen the id, or Redis says it never issued it (the mirror
            then answers with the gap). ``False`` -- answer 503 -- otherwise, also when
            Redis cannot say (it is unreachable).
        """
        mirror = self.mirror
        wanted = last_event_id or ""
        is_unissued = False
        with trio.move_on_after(self._catch_up_timeout):
            while not mirror.is_loaded:
                await self._next_answer()
            if wanted and mirror.is_behind(wanted):
                is_unissued = await self._is_unissued(wanted)
                while not is_unissued and mirror.is_behind(wanted):
                    await self._next_answer()
        return mirror.is_loaded and (is_unissued or not wanted or not mirror.is_behind(wanted))

    async def _next_answer(self) -> None:
        """Wait until the tail has applied Redis's next answer."""
        if self._changed is None:
            self._changed = trio.Event()
        await self._changed.wait()

    async def _is_unissued(self, last_event_id: str) -> bool:
        """Whether Redis says it never issued ``last_event_id`` (``False`` when it cannot
        say)."""
        log = self._log
        try:
            position = await trio.to_thread.run_sync(log._run, log._position_call())
        except LogUnavailableError:
            return False
        return not covers(position, last_event_id)

    async def aclose(self) -> None:
        """Stop the tail and wait until it has stopped (its request under way ends first)."""
        scope, stopped = self._scope, self._stopped
        if scope is None or stopped is None:
            await trio.lowlevel.checkpoint()
            return
        scope.cancel()
        await stopped.wait()
