"""httpx driver (floor 4): an asyncio EventSource that rides on the user's ``httpx.AsyncClient``.

The user's client carries every request: proxies, HTTP/2, auth, cookies, TLS, timeouts for
connect and pool, and connection pooling are its own. The :class:`~sse_core.ClientSession`
decides everything else (reconnection with backoff and ``retry:``, ``Last-Event-ID``, stall
detection, dedup, status, the re-send rule for ``POST``), through the dispatch every adapter
shares; the iteration rules are the asyncio adapter's.

The body is read as sent (``Response.aiter_raw()``) and decoded by the session: its gzip
decoder is bounded (``ClientConfig.max_decompressed_size`` per chunk), and the request asks
for gzip only (``Accept-Encoding: identity`` when ``is_gzip_accepted`` is off), so a server
never answers with an encoding the session cannot read.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any, cast

import httpx

from .._actions import Request
from ._asyncio_client import AsyncioClientBase
from ._httpx_driver import HttpxDriver, head_fields
from ._httpx_sync import SyncEventSource

if TYPE_CHECKING:
    from ._httpx_trio import TrioEventSource

__all__ = ["EventSource", "SyncEventSource", "TrioEventSource"]


def __getattr__(name: str) -> object:
    """``TrioEventSource``, imported on first use: only it needs trio (the ``httpx`` extra
    alone serves the asyncio and the blocking drivers).

    Raises:
        ModuleNotFoundError: trio is not installed.
    """
    if name != "TrioEventSource":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        from ._httpx_trio import TrioEventSource
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            f"TrioEventSource needs trio: pip install 'sse-core[httpx,trio]' ({error})",
            name=error.name,
        ) from error
    return TrioEventSource


class EventSource(HttpxDriver[httpx.AsyncClient], AsyncioClientBase):
    """An asyncio EventSource over the user's ``httpx.AsyncClient``.

    ``async for event in source`` yields each :class:`~sse_core.Event` once, in order, as
    :class:`sse_core.adapters.asyncio.EventSource` does: it resumes with ``Last-Event-ID``
    after a lost connection, a gap raises :class:`~sse_core.GapError` (iterate again to go
    on), a failure raises :class:`~sse_core.StreamError` at the end
    (:class:`~sse_core.HTTPStatusError` for a status), and :meth:`aclose` (or a 204) ends
    the iteration quietly. Each connection is one ``client.send(..., stream=True)``; the
    client is not closed with the source (it is yours).

    Arguments: ``client``, your ``httpx.AsyncClient``, then those of every adapter
    (:doc:`/adapters/options`). Of the options only ``timeout`` applies: connecting, TLS,
    redirects and the connect, write and pool timeouts are the client's; its read timeout is
    not used for the stream (``ClientConfig.stall_timeout`` replaces a silent connection).

    Raises:
        InvalidConfigError: a bad argument.
    """

    _client_type = httpx.AsyncClient

    def _setup(self) -> None:
        self._response: httpx.Response | None = None
        self._chunks: AsyncGenerator[bytes, None] | None = None  # the response's body
        self._releasing: set[asyncio.Task[None]] = set()  # responses being closed

    # --- internals ------------------------------------------------------------------------

    _READ_ERRORS = (httpx.HTTPError,)

    def _opened(self, opening: asyncio.Future[Any]) -> None:
        try:
            response: httpx.Response = opening.result()
        except httpx.HTTPError as error:
            self._failed(f"request failed: {error!r}")
            return
        self._response = response
        self._chunks = cast(AsyncGenerator[bytes, None], response.aiter_raw())
        self._responded(response.status_code, head_fields(response))

    @property
    def _is_open(self) -> bool:
        return self._chunks is not None

    async def _read(self) -> bytes:
        """The next non-empty chunk of the body as sent, or ``b""`` at its end."""
        assert self._chunks is not None
        async for chunk in self._chunks:
            if chunk:
                return chunk
        return b""

    def _send_request(self, request: Request) -> None:
        self._drop_connection()
        self._opening = asyncio.ensure_future(
            self._client.send(self._build(request), stream=True)
        )

    def _drop_connection(self) -> None:
        sending, reading, response = self._opening, self._reading, self._response
        chunks = self._chunks
        self._opening = self._reading = None
        self._response = self._chunks = None
        if sending is None and reading is None and response is None:
            return
        release = asyncio.ensure_future(_release(sending, reading, response, chunks))
        self._releasing.add(release)
        release.add_done_callback(self._releasing.discard)

    async def _released(self) -> None:
        """Wait until every response let go of is closed (its connection back in the pool
        or shut)."""
        while self._releasing:
            await asyncio.wait(set(self._releasing))


async def _release(
    sending: asyncio.Future[Any] | None,
    reading: asyncio.Future[bytes] | None,
    response: httpx.Response | None,
    chunks: AsyncGenerator[bytes, None] | None,
) -> None:
    """Stop a request or a read in flight, and close its body's iterator and response."""
    tasks = [task for task in (sending, reading) if task is not None]
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks)
    if sending is not None and not sending.cancelled() and sending.exception() is None:
        response = sending.result()  # answered as it was dropped
    if reading is not None and not reading.cancelled():
        reading.exception()  # seen: no "exception never retrieved" at exit
    if response is not None:
        try:
            if chunks is not None:
                await chunks.aclose()
            await response.aclose()
        except httpx.HTTPError:
            pass  # the connection is gone either way
