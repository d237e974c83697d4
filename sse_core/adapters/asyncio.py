"""asyncio adapter (floor 4): an EventSource client, and the event-stream server.

The client owns its socket, TLS, the clock and waiting, and nothing else: it carries out what
:class:`~sse_core.adapters.HTTPClient` (a :class:`~sse_core.ClientSession` plus h11) asks,
through the dispatch every adapter shares. The server lives in ``_asyncio_server`` and is
imported from here: :class:`EventStreamServer`.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator

from ._asyncio_server import EventStreamServer
from ._base import AsyncClientBase, Report
from ._http import Endpoint

__all__ = ["EventSource", "EventStreamServer"]


class EventSource(AsyncClientBase):
    """An asyncio EventSource: iterate to get events, across reconnections.

    ``async for event in source`` yields each :class:`~sse_core.Event` once, in order,
    resuming with ``Last-Event-ID`` after a lost connection, with backoff and stall
    detection as configured. A gap (events the server could no longer replay) raises
    :class:`~sse_core.GapError`: catch it and iterate again to go on. :meth:`reports`
    yields status changes and gap reports too. The iteration ends quietly after
    :meth:`aclose` (or a 204); when the session ends for a failure (an HTTP error status,
    the backoff gave up, a cut ``POST`` that may not be sent twice) it raises
    :class:`~sse_core.StreamError` (:class:`~sse_core.HTTPStatusError` for a status). Use it
    as an ``async with`` block (or call :meth:`aclose`) so that the socket is closed even
    when the loop is left early.

    Arguments as for every adapter (:doc:`/adapters/options`); ``clock`` is :func:`time.monotonic`.

    Raises:
        InvalidConfigError: a bad argument.
    """

    def _setup(self) -> None:
        self._connecting: asyncio.Task[tuple[asyncio.StreamReader, asyncio.StreamWriter]] | None
        self._connecting = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reading: asyncio.Task[bytes] | None = None  # a read kept across wake-ups
        self._wakeup: asyncio.Future[None] | None = None  # ends a wait with no socket

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

    # --- internals ------------------------------------------------------------------------

    async def _wait(self) -> None:
        """Wait for the connection, bytes or the next deadline; queue what the session says.

        Every wait is ``asyncio.wait`` on one future with the time to the next deadline: the
        deadline only ends the wait and cancels nothing, so no cancellation of the caller can
        be swallowed on any Python (``asyncio.wait_for`` on 3.10 and 3.11 returns a result
        that completed in the same loop iteration as the cancellation and drops the
        cancellation: CPython gh-86296). A read that a deadline interrupts is not cancelled
        either: it stays in flight and the next wait takes its bytes, so none are dropped.

        :meth:`aclose` (from another task) may close the socket during any wait: what the
        closed socket then reports is not the session's business.
        """
        timeout = self._timeout()
        if self._connecting is not None:
            task = self._connecting
            done, _ = await asyncio.wait({task}, timeout=timeout)
            if self._connecting is not task:  # cancelled by aclose()
                return
            if not done:
                self._timer()
                return
            self._connecting = None
            try:
                self._reader, self._writer = task.result()
            except (OSError, ssl.SSLError, asyncio.TimeoutError) as error:
                self._failed(f"connect failed: {error!r}")
                return
            self._connected()
        elif self._reader is not None:
            if self._reading is None:
                self._reading = asyncio.ensure_future(self._reader.read(self._options.read_size))
            reading = self._reading
            read, _ = await asyncio.wait({reading}, timeout=timeout)
            if self._reading is not reading:  # closed by aclose(): not the peer's doing
                return
            if not read:  # the deadline: the read goes on
                self._timer()
                return
            self._reading = None
            try:
                data = reading.result()
            except (OSError, ssl.SSLError) as error:
                self._failed(f"connection error: {error!r}")
                return
            self._received(data)
        else:
            if timeout is None:  # nothing scheduled and no connection: the session is done
                self._is_closing = True
                return
            self._wakeup = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait({self._wakeup}, timeout=timeout)  # or aclose()
            finally:
                self._wakeup = None
            self._timer()

    def _write(self, data: bytes) -> None:
        assert self._writer is not None  # Write comes right after on_connected()
        self._writer.write(data)

    def _open(self, endpoint: Endpoint) -> None:
        self._drop_connection()
        context: ssl.SSLContext | None = None
        if endpoint.is_tls:
            context = self._tls_context()
        self._connecting = asyncio.ensure_future(asyncio.open_connection(
            endpoint.host, endpoint.port, ssl=context,
            server_hostname=endpoint.host if context is not None else None,
            limit=self._options.read_size,
        ))

    def _drop_connection(self) -> None:
        if self._connecting is not None:
            task, self._connecting = self._connecting, None
            task.cancel()
            task.add_done_callback(_close_if_connected)
        if self._reading is not None:
            reading, self._reading = self._reading, None
            reading.cancel()
            reading.add_done_callback(_forget_read)
        if self._writer is not None:
            writer, self._writer, self._reader = self._writer, None, None
            writer.transport.abort()


def _close_if_connected(
    task: asyncio.Task[tuple[asyncio.StreamReader, asyncio.StreamWriter]],
) -> None:
    """A connect that finished as it was cancelled: close what it opened."""
    if not task.cancelled() and task.exception() is None:
        task.result()[1].transport.abort()


def _forget_read(task: asyncio.Task[bytes]) -> None:
    """A read given up with its connection: mark its outcome as seen (no log at exit)."""
    if not task.cancelled():
        task.exception()
