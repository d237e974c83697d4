"""The Redis log over a blocking client (:class:`SyncRedisLog`) and its feed for the
threaded ``EventStreamServer`` (:class:`SyncRedisFeed`); imported from
:mod:`sse_core.adapters.redis`."""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import redis
import redis.exceptions

from .._errors import LogUnavailableError, RemoteProtocolError
from .._events import Event
from .._replay import Replay, ReplayConfig, ReplayResult, StoredEvent
from .._stream_log import CreateLog, ReadRows, TailStep, WaitRows, covers
from .._validators import instance_of
from ._redis_log import DEFAULT_IDEMPOTENCY_WINDOW, DEFAULT_READ_COUNT, Call, RedisLogBase
from ._redis_tail import TailConfig, TailFeed, woken_entries

__all__ = ["SyncRedisFeed", "SyncRedisLog"]

_T = TypeVar("_T")

# The most ids whose "never issued" answer waits for the server to take it (a client that
# went away meanwhile leaves its id behind: the oldest are forgotten past this), and the
# most ids waiting to be asked about (while Redis is down they pile up: one per request).
_MAX_ANSWERS = 1024


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
        idempotency_window: As for :class:`RedisLog`.

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
        idempotency_window: float = DEFAULT_IDEMPOTENCY_WINDOW,
    ) -> None:
        RedisLogBase.__init__(self, client, key, config, read_count, idempotency_window)

    @property
    def position(self) -> str:
        """As :meth:`RedisLog.position`."""
        return self._run(self._position_call())

    def append(
        self, event: Event, now: float, *, idempotency_key: str | None = None
    ) -> StoredEvent:
        """As :meth:`RedisLog.append` (``idempotency_key`` too)."""
        return self._run(self._append_call(event, now, idempotency_key))

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
            reply = call.script(
                keys=self._keys if call.keys is None else call.keys, args=call.args
            )
        except redis.exceptions.RedisError as error:
            raise call.failed(error) from error
        return call.finish(reply)


class SyncRedisFeed(TailFeed[redis.Redis, SyncRedisLog]):
    """A Redis log served to one blocking ``EventStreamServer``'s clients (``feed=``), in
    every worker: :class:`RedisFeed` for threads.

    :meth:`publish` appends to Redis (from any thread or process: Redis orders every
    append). A tail thread reads the log's new events (``XREAD BLOCK`` from the last id it
    saw, ``block_timeout`` at a time so that it can stop) and hands each one, in the log's
    order, once, to the server, which writes it to its clients; the server's clients resume
    from :attr:`mirror`. A client whose ``Last-Event-ID`` the mirror has not seen yet waits
    for the tail, at most ``catch_up_timeout``, then gets 503 (the tail also asks Redis
    whether it issued that id at all: a never-issued id, or one of a wiped epoch, is served
    the gap at once).

    When Redis is unreachable, :meth:`publish` raises
    :class:`~sse_core.state.LogUnavailableError`; connected clients keep their streams and
    heartbeats; the tail retries with ``backoff`` (measured on :func:`time.monotonic`) and
    catches up from the last id it saw. When the events after that id are gone, every
    client's stream ends and its resume gets the explicit gap signal.

    Args:
        client: The worker's ``redis.Redis`` client; its ``socket_timeout``, if any, must be
            longer than the tail's ``block_timeout``.
        key: The stream's key (one per topic).
        config: Retention, as for :class:`RedisLog` (the mirror keeps the same bounds).
        tail: How the tail reads and retries (:class:`TailConfig`).
        rng: Where the backoff's jitter comes from (``random.Random()`` by default).

    Raises:
        InvalidConfigError: a bad argument.
    """

    def __init__(
        self,
        client: redis.Redis,
        key: str,
        config: ReplayConfig | None = None,
        *,
        tail: TailConfig | None = None,
        rng: random.Random | None = None,
    ) -> None:
        tail = TailConfig() if tail is None else tail
        instance_of(TailConfig).check("tail", tail)
        log = SyncRedisLog(
            client, key, config, read_count=tail.read_count,
            idempotency_window=tail.idempotency_window,
        )
        self._set_up(client, key, log, tail, rng)
        # Guards the mirror (the server's lock once started) and the ids below.
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._wake: Callable[[], None] | None = None
        self._asked: set[str] = set()  # ids whose issuing the tail asks Redis about
        self._unissued: dict[str, None] = {}  # ... that Redis never issued (oldest first)
        self._stop = threading.Event()
        self._publishing = threading.Lock()  # orders the publishers' clock reads
        self._thread: threading.Thread | None = None

    @property
    def catch_up_timeout(self) -> float:
        """Seconds a client ahead of the mirror waits for the tail before its 503."""
        return self._catch_up_timeout

    def publish(self, event: Event, *, idempotency_key: str | None = None) -> StoredEvent:
        """Append an event to the Redis log; every worker's tail delivers it. Any thread.

        ``idempotency_key``: publish exactly once across retries (see
        :meth:`RedisLog.append`; the window is ``tail.idempotency_window``).

        Raises:
            InvalidFieldError: the event has an id, or cannot be encoded, or a bad key.
            IdempotencyConflictError: the key was used for another event.
            LogUnavailableError: Redis did not acknowledge it.
        """
        log = self._log
        # The clock is read and checked under a lock of its own, in the order the calls are
        # made: a thread that read it first cannot reach the log second (that would be a
        # clock going backwards). Redis itself is asked outside it, in parallel.
        with self._publishing:
            call = log._append_call(event, time.monotonic(), idempotency_key)
        return log._run(call)

    def start(
        self, lock: threading.Lock | None = None, wake: Callable[[], None] | None = None
    ) -> None:
        """Start the tail thread, unless it runs already (the server's ``on_step``, see
        :meth:`attach`, is called under ``lock``).

        Args:
            lock: The lock that guards the mirror (the server's: it reads the mirror under
                it), or ``None`` for the one it has (its own, or an earlier start's).
            wake: Called, under ``lock``, after each answer of Redis that may let a waiting
                client on (the server wakes its loop). Kept from an earlier start when
                ``None``: a tail stopped by :meth:`close` can be started again.
        """
        if self._thread is not None:
            return
        if lock is not None and lock is not self._lock:
            self._lock = lock
            self._changed = threading.Condition(lock)
        if wake is not None:
            self._wake = wake
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._tail, name=f"sse_core Redis tail {self._key}", daemon=True
        )
        self._thread.start()

    def ask(self, last_event_id: str) -> None:
        """Have the tail ask Redis (at its next turn) whether it issued ``last_event_id``;
        :meth:`is_unissued` then says. Call it under the lock. Past ``_MAX_ANSWERS`` ids
        waiting to be asked about, an id is not asked about: its client waits for the tail
        alone (a 503 at worst, never a false gap)."""
        if len(self._asked) < _MAX_ANSWERS:
            self._asked.add(last_event_id)

    def is_unissued(self, last_event_id: str) -> bool:
        """Whether Redis said it never issued ``last_event_id`` (forgets the answer). Call
        it under the lock."""
        return self._unissued.pop(last_event_id, 0) is None

    def ready(self, last_event_id: str | None) -> bool:
        """Start the tail if needed and wait (at most ``catch_up_timeout``) until the mirror
        is loaded and has caught up with ``last_event_id`` if Redis issued it (for a caller
        of its own; the server does not block on it).

        Returns:
            Whether a client resuming from ``last_event_id`` can be served now.
        """
        self.start()
        deadline = time.monotonic() + self._catch_up_timeout
        mirror = self._state.mirror
        with self._changed:
            if last_event_id:
                self.ask(last_event_id)

            def is_served() -> bool:
                if not mirror.is_loaded:
                    return False
                return (
                    not last_event_id
                    or not mirror.is_behind(last_event_id)
                    or last_event_id in self._unissued
                )

            while not is_served():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
            is_ready = is_served()
            if last_event_id:
                self.is_unissued(last_event_id)
            return is_ready

    def close(self) -> None:
        """Stop the tail thread and wait for it (at most ``block_timeout`` and a bit; it can
        be started again)."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        if thread is not threading.current_thread():
            thread.join()

    def _tail(self) -> None:
        """The tail thread: carry out the follower's requests; back off while Redis fails."""
        state = self._state
        while not self._stop.is_set():
            try:
                self._answer_asked()
                step = self._carry_out(state.follower.next_request())
            except (LogUnavailableError, RemoteProtocolError) as error:
                self._stop.wait(state.failed(error, time.monotonic()))
                continue
            with self._locked():
                state.succeeded(step, time.monotonic())

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the lock; on the way out wake whoever waits on the mirror."""
        with self._changed:
            try:
                yield
            finally:
                self._changed.notify_all()
                if self._wake is not None:
                    self._wake()

    def _answer_asked(self) -> None:
        with self._lock:
            asked, self._asked = self._asked, set()
        if not asked:
            return
        try:
            position = self._log.position
        except LogUnavailableError:
            with self._lock:  # asked again at the next turn, within the bound
                for last_event_id in asked:
                    self.ask(last_event_id)
            raise
        with self._locked():
            for last_event_id in asked:
                if not covers(position, last_event_id):
                    self._unissued[last_event_id] = None
            while len(self._unissued) > _MAX_ANSWERS:
                del self._unissued[next(iter(self._unissued))]

    def _carry_out(self, request: ReadRows | WaitRows | CreateLog) -> TailStep | None:
        follower, log = self._state.follower, self._log
        if isinstance(request, ReadRows):
            return follower.on_read(log._run(log._rows_call(request.start, request.count)))
        if isinstance(request, CreateLog):
            _ = log.position
            follower.on_created()
            return None
        streams, count, block = self._xread_args(request)
        try:
            reply = self._client.xread(streams, count=count, block=block)
        except redis.exceptions.RedisError as error:
            raise LogUnavailableError("wait", f"{type(error).__name__}: {error}") from error
        return follower.on_woken(woken_entries(reply))
