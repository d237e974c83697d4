"""httpx driver (floor 4): an asyncio EventSource that rides on the user's ``httpx.AsyncClient``.

The user's client carries every request: proxies, HTTP/2, auth, cookies, TLS, timeouts for
connect and pool, and connection pooling are its own. The :class:`~sse_core.ClientSession`
decides everything else (reconnection with backoff and ``retry:``, ``Last-Event-ID``, stall
detection, dedup, status, the re-send rule for ``POST``), through the dispatch every adapter
shares; the iteration rules are the asyncio adapter's.

The body is read as sent (``Response.aiter_raw()``) and decoded by the session: its gzip
decoder is bounded (``ClientConfig.max_decompressed_size`` per chunk), and the request asks
for gzip only (``Accept-Encoding: identity`` when ``is_gzip_accepted`` is off), so a server
never answers with an encoding the session cannot read. With ``ClientConfig.is_body_decoded``
httpx decodes it instead (``Response.aiter_bytes()``).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, NamedTuple, cast

import httpx

from .._actions import Request
from ._asyncio_client import AsyncioDriver
from ._httpx_driver import build_request
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


class _Answer(NamedTuple):
    """A response and the iterator over its body as sent."""

    response: httpx.Response
    chunks: AsyncGenerator[bytes, None]


class EventSource(AsyncioDriver[httpx.AsyncClient, _Answer]):
    """An asyncio EventSource over the user's ``httpx.AsyncClient``.

    ``async for event in source`` yields each :class:`~sse_core.Event` once, in order, as
    :class:`sse_core.adapters.asyncio.EventSource` does: it resumes with ``Last-Event-ID``
    after a lost connection, a gap raises :class:`~sse_core.GapError` (iterate again to go
    on), a failure raises :class:`~sse_core.StreamError` at the end
    (:class:`~sse_core.HTTPStatusError` for a status), and :meth:`aclose` (or a 204) ends
    the iteration quietly. Each connection is one ``client.send(..., stream=True)``; the
    client is not closed with the source (it is yours).

    Of :class:`~sse_core.adapters.ClientOptions` only ``timeout`` applies: connecting, TLS,
    redirects (``follow_redirects``) and the connect, write and pool timeouts are the
    client's. Its read timeout is not used for the stream (a quiet stream is not a broken
    one): ``ClientConfig.stall_timeout`` replaces a silent connection.

    Args:
        client: The ``httpx.AsyncClient`` that sends every request.
        config: The session configuration (URL, method, headers, body ...), or just the URL.
        options: As for every adapter; only ``timeout`` applies.
        on_status: Called with each :class:`~sse_core.ReportStatus`.
        rng: Randomness for backoff jitter.
        clock: Monotonic clock in seconds (:func:`time.monotonic`).

    Raises:
        InvalidConfigError: a bad argument.
    """

    _CLIENT = httpx.AsyncClient
    _CLIENT_NAME = "httpx.AsyncClient"

    # --- internals ------------------------------------------------------------------------

    _READ_ERRORS = (httpx.HTTPError,)

    async def _send(self, request: Request) -> _Answer:
        response = await self._client.send(build_request(self._client, request), stream=True)
        # As sent, for the session to decode; or decoded by httpx when the config says so.
        is_decoded = self.session.config.is_body_decoded
        chunks = response.aiter_bytes() if is_decoded else response.aiter_raw()
        return _Answer(response, cast(AsyncGenerator[bytes, None], chunks))

    def _head(self, response: _Answer) -> tuple[int, list[tuple[bytes, bytes]]]:
        return response.response.status_code, response.response.headers.raw

    async def _read(self) -> bytes:
        """The next non-empty chunk of the body as sent, or ``b""`` at its end."""
        assert self._response is not None
        async for chunk in self._response.chunks:
            if chunk:
                return chunk
        return b""

    async def _close_response(self, response: _Answer) -> None:
        await response.chunks.aclose()
        await response.response.aclose()
