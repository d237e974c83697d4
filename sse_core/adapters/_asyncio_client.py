"""The loop the asyncio clients share (floor 4): the socket adapter's ``EventSource`` and the
httpx driver's run the same waits, reads and sleeps; each says only how it connects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from ._base import Report
from ._client_base import AsyncClientBase

__all__ = ["AsyncioClientBase"]


class AsyncioClientBase(AsyncClientBase):
    """An asyncio ``EventSource``'s loop: pump the outputs, yield the reports, wait.

    Each wait is ``asyncio.wait`` on one future bounded by the session's next deadline: the
    deadline only ends the wait and cancels nothing, so no cancellation of the caller can be
    swallowed on any Python (``asyncio.wait_for`` on 3.10 and 3.11 returns a result that
    completed in the same loop iteration as the cancellation and drops the cancellation:
    CPython gh-86296), and a read a deadline interrupts stays in flight for the next wait.
    """

    _wakeup: asyncio.Future[None] | None = None  # ends a wait with nothing in flight
    _opening: asyncio.Future[Any] | None = None  # the connect (or request) in flight
    _reading: asyncio.Future[bytes] | None = None  # a read kept across wake-ups
    #: What a failed read raises (a lost connection, not a bug).
    _READ_ERRORS: tuple[type[BaseException], ...] = (OSError,)


    async def reports(self) -> AsyncIterator[Report]:
        """Everything for the application, in order: :class:`~sse_core.Deliver` (events),
        :class:`~sse_core.ReportStatus`, :class:`~sse_core.ReportGap` and the other reports
        (:data:`~sse_core.adapters.Report`).

        Start iterating once per source (either this or the events).

        Raises:
            StreamError: at the end, when the session closed for a failure.
        """
        self._claim()
        self._begin()
        try:
            while True:
                report = self._pump()
                if report is not None:
                    yield report
                elif self._is_done:
                    break
                else:
                    await self._wait()
        finally:
            self._close_socket()
            await self._released()
        self._raise_failure()

    async def aclose(self) -> None:
        """Close the connection and end the iteration (the application's ``close()``)."""
        if self._is_closing:
            return
        self._is_closing = True
        self._close_session()
        self._close_socket()
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)
        await self._released()

    async def _wait(self) -> None:
        """Wait for the connection (the response), bytes or the next deadline; queue what
        the session says.

        :meth:`aclose` (from another task) may close the connection during any wait: what
        it then reports is not the session's business.
        """
        timeout = self._timeout()
        if self._opening is not None:
            opening = self._opening
            if not await self._wait_on(opening, timeout):
                return
            self._opening = None
            self._opened(opening)
        elif self._is_open:
            if self._reading is None:
                self._reading = asyncio.ensure_future(self._read())
            reading = self._reading
            if not await self._wait_on(reading, timeout):
                return
            self._reading = None
            try:
                data = reading.result()
            except self._READ_ERRORS as error:
                self._failed(f"connection error: {error!r}")
                return
            self._received(data)
        else:
            await self._sleep(timeout)

    def _opened(self, opening: asyncio.Future[Any]) -> None:
        """The connect (or request) finished: take its outcome to the session."""
        raise NotImplementedError

    @property
    def _is_open(self) -> bool:
        """Whether a connection (a response body) is there to read from."""
        raise NotImplementedError

    async def _read(self) -> bytes:
        """The next bytes (``b""`` at the end)."""
        raise NotImplementedError

    async def _released(self) -> None:
        """Wait until what was let go of is closed (by default nothing is left to wait on)."""

    async def _wait_on(self, future: asyncio.Future[Any], timeout: float | None) -> bool:
        """Wait for ``future`` until the deadline; whether its outcome is the session's
        business. ``False`` when the deadline came first (the session was woken; the future
        stays in flight) or when :meth:`aclose` dropped it meanwhile (what it then reports
        is not the peer's doing)."""
        done, _ = await asyncio.wait({future}, timeout=timeout)
        if future is not self._opening and future is not self._reading:
            return False
        if not done:
            self._timer()
            return False
        return True

    async def _sleep(self, timeout: float | None) -> None:
        """Nothing in flight: sleep until the deadline (or :meth:`aclose`), then wake the
        session; with no deadline either, the session is done."""
        if timeout is None:
            self._is_closing = True
            return
        self._wakeup = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait({self._wakeup}, timeout=timeout)  # or aclose()
        finally:
            self._wakeup = None
        self._timer()
