"""The loop the trio clients share (floor 4): the socket adapter's ``EventSource`` and the
httpx driver's ``TrioEventSource`` run the same steps, waits and sleeps; each says only what
one waiting step does."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Generic, TypeVar

import trio

from ._base import Report
from ._client_base import AsyncClientBase

__all__ = ["TrioClientBase", "describe"]

_T = TypeVar("_T")


def describe(error: BaseException) -> str:
    """An error for a report's reason: trio's wrapper says less than what it wraps."""
    return repr(error.__cause__ if error.__cause__ is not None else error)


class _Iterator(Generic[_T]):
    """An async iterator over the results of ``step`` (a class, not an async generator, so
    that nothing is left to finalize when a loop is left early)."""

    def __init__(self, step: Callable[[], Awaitable[_T]]) -> None:
        self._step = step

    def __aiter__(self) -> _Iterator[_T]:
        return self

    async def __anext__(self) -> _T:
        return await self._step()


class TrioClientBase(AsyncClientBase):
    """A trio ``EventSource``'s loop: pump the outputs, hand out the reports, wait.

    Each wait is one step (:meth:`_step`) in a cancel scope that :meth:`aclose` (from
    another task) cancels; a step bounded by the session's next deadline wakes the session
    when it passes (:meth:`_timer`).
    """

    _scope: trio.CancelScope | None = None  # the wait in progress

    def _default_clock(self) -> float:
        return trio.current_time()

    def reports(self) -> AsyncIterator[Report]:
        """Everything for the application, in order: :class:`~sse_core.Deliver` (events),
        :class:`~sse_core.ReportStatus`, :class:`~sse_core.ReportGap` and the other reports
        (:data:`~sse_core.adapters.Report`).

        Iterate once per source (either this or the events).

        Raises:
            RuntimeError: the source is already being iterated.
            StreamError: at the end, when the session closed for a failure.
        """
        self._claim()
        return _Iterator(self._next_report)

    async def aclose(self) -> None:
        """Close the connection and end the iteration (the application's ``close()``).

        Safe to call from another task while one iterates, and more than once.
        """
        if not self._is_closing:
            self._is_closing = True
            self._close_session()
            if self._scope is not None:
                self._scope.cancel()
            self._close_socket()
        await self._released()

    async def _next_report(self) -> Report:
        """Carry out outputs in order until one is for the application; wait when none is
        left."""
        self._begin()
        while (report := self._pump()) is None:
            if self._is_done:
                self._close_socket()
                self._raise_failure()
                raise StopAsyncIteration
            with trio.CancelScope() as scope:
                self._scope = scope
                try:
                    await self._step()
                finally:
                    self._scope = None
        return report

    async def _step(self) -> None:
        """One wait: for the connection, bytes or the next deadline (:meth:`aclose` and the
        network signals may cancel it)."""
        raise NotImplementedError

    def _interrupt(self, *, is_dropping: bool) -> None:
        if self._scope is not None:
            self._scope.cancel()

    async def _released(self) -> None:
        """Wait until what was let go of is closed (by default a checkpoint: the socket
        adapter closes synchronously)."""
        await trio.lowlevel.checkpoint()

    def _delay(self) -> float:
        """Seconds until the next deadline (infinite when none)."""
        timeout = self._timeout()
        return math.inf if timeout is None else timeout

    async def _sleep(self) -> None:
        """Nothing in flight: sleep until the next deadline, then wake the session (a live
        session without a connection always has a deadline)."""
        await trio.sleep(self._delay())
        self._timer()
