"""asyncio adapter (floor 4): an EventSource client, and the event-stream server.

The client owns its socket, TLS, the clock and waiting, and nothing else: it carries out what
:class:`~sse_core.adapters.HTTPClient` (a :class:`~sse_core.ClientSession` plus h11) asks,
through the dispatch every adapter shares. The servers live in ``_asyncio_server`` and are
imported from here: :class:`EventStreamServer`, and :class:`EventStreamRouter` for several
channels on one port.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from ._asyncio_client import AsyncioClientBase
from ._asyncio_server import EventStreamRouter, EventStreamServer
from ._http import Endpoint

__all__ = ["EventSource", "EventStreamRouter", "EventStreamServer"]


class EventSource(AsyncioClientBase):
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
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    # --- internals ------------------------------------------------------------------------

    _READ_ERRORS = (OSError, ssl.SSLError)

    def _opened(self, opening: asyncio.Future[Any]) -> None:
        try:
            self._reader, self._writer = opening.result()
        except (OSError, ssl.SSLError, asyncio.TimeoutError) as error:
            self._failed(f"connect failed: {error!r}")
            return
        self._connected()

    @property
    def _is_open(self) -> bool:
        return self._reader is not None

    async def _read(self) -> bytes:
        assert self._reader is not None
        return await self._reader.read(self._options.read_size)

    def _write(self, data: bytes) -> None:
        assert self._writer is not None  # Write comes right after on_connected()
        self._writer.write(data)

    def _open(self, endpoint: Endpoint) -> None:
        self._drop_connection()
        context: ssl.SSLContext | None = None
        if endpoint.is_tls:
            context = self._tls_context()
        self._opening = asyncio.ensure_future(asyncio.open_connection(
            endpoint.host, endpoint.port, ssl=context,
            server_hostname=endpoint.host if context is not None else None,
            limit=self._options.read_size,
        ))

    def _drop_connection(self) -> None:
        if self._opening is not None:
            task, self._opening = self._opening, None
            task.cancel()
            task.add_done_callback(_close_if_connected)
        if self._reading is not None:
            reading, self._reading = self._reading, None
            reading.cancel()
            reading.add_done_callback(_forget_read)
        if self._writer is not None:
            writer, self._writer, self._reader = self._writer, None, None
            writer.transport.abort()


def _close_if_connected(task: asyncio.Future[Any]) -> None:
    """A connect that finished as it was cancelled: close what it opened."""
    if not task.cancelled() and task.exception() is None:
        task.result()[1].transport.abort()


def _forget_read(task: asyncio.Future[bytes]) -> None:
    """A read given up with its connection: mark its outcome as seen (no log at exit)."""
    if not task.cancelled():
        task.exception()
