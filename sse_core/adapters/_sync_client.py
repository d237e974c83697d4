"""The loop the blocking clients share (floor 4): the socket adapter's ``EventSource`` and
the httpx driver's ``SyncEventSource`` iterate in the caller's thread and close from any
thread the same way; each says only how it waits and how a blocked wait is woken."""

from __future__ import annotations

import threading
from collections.abc import Generator, Iterator
from typing import TypeVar

from .._events import Event
from ._base import Report
from ._client_base import ClientBase

__all__ = ["SyncClientBase"]

_Source = TypeVar("_Source", bound="SyncClientBase")


class SyncClientBase(ClientBase):
    """A blocking ``EventSource``'s loop: pump the outputs, yield the reports, wait.

    The iterating thread holds :attr:`_lock` except while a report is out with the caller;
    :meth:`close` wakes it (:meth:`_wake`), then takes the lock, so it never touches the
    session or a connection in use. Use it as a ``with`` block: leaving it calls
    :meth:`close`.
    """

    def _setup(self) -> None:
        self._lock = threading.RLock()
        self._is_closed = False  # close() finished its work

    def __enter__(self: _Source) -> _Source:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Event]:
        """The events (a gap raises :class:`~sse_core.GapError`; iterate again to go on)."""
        return self._plain_loop(self.reports)

    def reports(self) -> Generator[Report, None, None]:
        """Everything for the application, in order: :class:`~sse_core.Deliver` (events),
        :class:`~sse_core.ReportStatus`, :class:`~sse_core.ReportGap` and the other reports
        (:data:`~sse_core.adapters.Report`).

        Iterate once per source (either this or the events).

        Raises:
            RuntimeError: the source was iterated already.
            StreamError: at the end, when the session closed for a failure.
        """
        with self._lock:
            self._claim()
        return self._run()

    def close(self) -> None:
        """Close the connection and end the iteration (the application's ``close()``).

        Safe to call from any thread, and more than once. When another thread is blocked
        iterating, it is woken and its iteration ends; this call returns once it has let go
        of the connection, which is then closed.
        """
        self._wake()
        with self._lock:
            if self._is_closed:
                return
            self._is_closed = True
            try:
                self._close_session()
            finally:
                self._close_socket()
        self._released()

    def _run(self) -> Generator[Report, None, None]:
        self._lock.acquire()
        try:
            self._begin()
            while True:
                report = self._pump()
                if report is None:
                    if self._is_done:
                        break
                    self._wait()
                    continue
                if self._is_closing:  # the on_status callback closed the source
                    break
                self._lock.release()
                try:
                    yield report
                finally:
                    self._lock.acquire()
        finally:
            try:
                self._close_socket()
            finally:
                self._lock.release()
            self._released()
        self._raise_failure()

    def _wake(self) -> None:
        """Mark the source closing and wake the iterating thread from whatever it blocks in
        (any thread calls this)."""
        raise NotImplementedError

    def _wait(self) -> None:
        """The one blocking step due (the iterating thread, holding :attr:`_lock`); what it
        gives is queued for the session."""
        raise NotImplementedError

    def _released(self) -> None:
        """Wait until what was let go of is closed (by default nothing is left to wait on)."""
