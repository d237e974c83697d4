"""The contract every event log for ``Last-Event-ID`` resumption keeps (floor 3).

Two shapes of one contract: :class:`SharedLog`, called directly (the in-memory
:class:`~sse_core.state.ReplayLog`), and :class:`AsyncSharedLog`, awaited (a log kept in
another server, such as :class:`sse_core.adapters.redis.RedisLog`). Both answer with the same
records (:class:`~sse_core.state.StoredEvent`, :class:`~sse_core.state.Replay`,
:class:`~sse_core.state.TooOld`, :class:`~sse_core.state.UnknownId`), so what a server decides
from an answer does not depend on where the log lives.

The rules, kept by every implementation and checked by one contract test suite
(``tests/adapters/test_shared_log_contract.py``):

* **Ids order events.** :meth:`SharedLog.append` gives an event without an id an id of the
  log's own form; the log has one order, the order of its appends, the same for every
  publisher that appends to it (several processes on one Redis stream included). A resume
  answers in that order.
* **Resume is exact or says why not.** ``resume(id)`` answers :class:`Replay` with every event
  after ``id`` (in steps when ``max_bytes`` is given; ``is_complete`` says whether the step
  reaches the newest event), :class:`TooOld` when events after ``id`` were evicted (with how
  many), or :class:`UnknownId` when the log cannot place ``id``. Never a silent skip: when in
  doubt, the answer is one of the last two.
* **Retention is bounded** in count (``max_events``), encoded bytes (``max_bytes``, the sum of
  :attr:`~sse_core.state.StoredEvent.encoded` lengths) and age (``max_age``). Eviction is
  oldest first, so the kept events are the newest contiguous run. Age is measured on the log's
  clock: the ``now`` passed in for an in-memory log, the Redis server's clock for a Redis log
  (``now`` differs between worker processes, so it cannot age a shared log).
* **An epoch tells a wiped log from an intact one.** Every assigned id carries the log's
  epoch. A log that lost its events (a restart without persistence, a deleted key) starts a
  new epoch, and an id from another epoch is :class:`UnknownId` -- never matched to new,
  unrelated events. (An in-memory log gets its epoch from
  :attr:`~sse_core.state.ReplayConfig.epoch`; without one it cannot tell a restart apart.)
* **position** is an id marking the end of the log: resuming from it replays exactly what is
  appended afterwards.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ._events import Event
from ._replay import Replay, ReplayResult, StoredEvent

__all__ = ["AsyncSharedLog", "SharedLog"]


@runtime_checkable
class SharedLog(Protocol):
    """An event log for resumption, called directly (see the module's rules).

    :class:`~sse_core.state.ReplayLog` is one.
    """

    @property
    def position(self) -> str:
        """An id that marks the end of the log now."""

    def append(self, event: Event, now: float) -> StoredEvent:
        """Add an event (``id=None``: the log assigns one) and return it as stored.

        Raises:
            InvalidFieldError: the event cannot be stored; the log is unchanged.
            ClockError: ``now`` is not finite or earlier than a previous ``now``.
        """

    def resume(
        self, last_event_id: str, now: float, *, max_bytes: int | None = None
    ) -> ReplayResult:
        """Answer what a client that last saw ``last_event_id`` has missed.

        Returns:
            :class:`~sse_core.state.Replay`, :class:`~sse_core.state.TooOld` or
            :class:`~sse_core.state.UnknownId`.
        """

    def oldest(self, *, max_bytes: int | None = None) -> Replay:
        """Return the oldest kept events (what to send after a gap), in steps of
        ``max_bytes``."""


@runtime_checkable
class AsyncSharedLog(Protocol):
    """An event log for resumption kept in another server: :class:`SharedLog`'s contract,
    awaited.

    Besides the errors of :class:`SharedLog`, every method may raise
    :class:`~sse_core.state.LogUnavailableError` when the server cannot carry it out; an
    ``append`` that raised was not acknowledged.
    """

    async def position(self) -> str:
        """An id that marks the end of the log now."""

    async def append(self, event: Event, now: float) -> StoredEvent:
        """Add an event (``id=None``) and return it as stored."""

    async def resume(
        self, last_event_id: str, now: float, *, max_bytes: int | None = None
    ) -> ReplayResult:
        """Answer what a client that last saw ``last_event_id`` has missed."""

    async def oldest(self, *, max_bytes: int | None = None) -> Replay:
        """Return the oldest kept events, in steps of ``max_bytes``."""
