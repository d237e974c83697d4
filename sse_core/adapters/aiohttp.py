"""aiohttp adapter (floor 4): :class:`EventSource`, an asyncio EventSource that rides on the
user's ``aiohttp.ClientSession``; and :class:`StreamResponse`, one request's event stream for
an ``aiohttp.web`` handler (``return StreamResponse(source)``).

The user's session carries every request: proxies (its ``proxy=``, or ``trust_env=True`` for
``HTTP_PROXY`` / ``HTTPS_PROXY`` / ``NO_PROXY``), auth, cookies, TLS and the connector's
pool are its own. The :class:`~sse_core.ClientSession` decides everything else, through the
dispatch every adapter shares; the iteration rules are the asyncio adapter's.

Who decodes the body follows ``ClientConfig.is_body_decoded``: by default (``False``) each
request asks aiohttp for the body as sent (``auto_decompress=False``) and the session's
bounded gzip decoder reads it; with ``True`` aiohttp decodes (``auto_decompress=True``) and
the session takes the body as it comes. Either way the request's own setting overrides the
``ClientSession``'s, so the two can never disagree.
"""

from __future__ import annotations

import asyncio
import collections

import aiohttp

from .._actions import Request
from ._aiohttp_response import StreamResponse
from ._asyncio_client import AsyncioDriver
from ._client_base import request_headers

__all__ = ["EventSource", "StreamResponse"]


class EventSource(AsyncioDriver[aiohttp.ClientSession, aiohttp.ClientResponse]):
    """An asyncio EventSource over the user's ``aiohttp.ClientSession``.

    ``async for event in source`` yields each :class:`~sse_core.Event` once, in order, as
    :class:`sse_core.adapters.asyncio.EventSource` does: it resumes with ``Last-Event-ID``
    after a lost connection, a gap raises :class:`~sse_core.GapError` (iterate again to go
    on), a failure raises :class:`~sse_core.StreamError` at the end
    (:class:`~sse_core.HTTPStatusError` for a status), and :meth:`aclose` (or a 204) ends
    the iteration quietly. Each connection is one ``client.request(...)``; the session is
    not closed with the source (it is yours).

    Of :class:`~sse_core.adapters.ClientOptions` only ``timeout`` applies: connecting, TLS,
    proxies and redirects are the ``ClientSession``'s. Of its ``ClientTimeout`` the
    ``connect`` and ``sock_connect`` bounds apply (``total`` bounds the connect when
    ``connect`` is not set); ``total`` and ``sock_read`` do not bound the stream (a quiet
    stream is not a broken one, and aiohttp's default ``total`` of 5 minutes would end
    every stream): ``ClientConfig.stall_timeout`` replaces a silent connection. The
    session's ``raise_for_status`` is not used either: the status is the session's to
    judge (:class:`~sse_core.HTTPStatusError`).

    ``EventSource(client, config, ...)``: ``client`` is the ``aiohttp.ClientSession`` that
    sends every request; the other arguments are those of every adapter
    (:doc:`/adapters/options`); ``clock`` is :func:`time.monotonic`.

    Raises:
        InvalidConfigError: ``client`` is not an ``aiohttp.ClientSession``, or a bad argument.
    """

    _CLIENT = aiohttp.ClientSession
    _CLIENT_NAME = "aiohttp.ClientSession"

    # --- internals ------------------------------------------------------------------------

    _READ_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError)
    _salvaged: aiohttp.ClientResponse | None = None  # whose unread bytes were handed out

    async def _send(self, request: Request) -> aiohttp.ClientResponse:
        limits = self._client.timeout
        timeout = aiohttp.ClientTimeout(
            connect=limits.connect if limits.connect is not None else limits.total,
            sock_connect=limits.sock_connect,
            ceil_threshold=limits.ceil_threshold,
        )
        return await self._client.request(
            request.method, request.url, headers=request_headers(request), data=request.body,
            timeout=timeout, raise_for_status=False,
            auto_decompress=self.session.config.is_body_decoded,
        )

    def _head(self, response: aiohttp.ClientResponse) -> tuple[int, list[tuple[bytes, bytes]]]:
        return response.status, list(response.raw_headers)

    async def _read(self) -> bytes:
        """The next bytes of the body (as sent, or decoded by aiohttp), ``b""`` at its end.

        Raises:
            aiohttp.ClientPayloadError: the body broke off (once the bytes that came before
                the break are handed out).
        """
        response = self._response
        assert response is not None
        try:
            return await response.content.readany()
        except aiohttp.ClientPayloadError:
            if self._salvaged is response:
                raise
            self._salvaged = response
            left = _unread(response.content)
            if not left:
                raise
            return left  # the next read raises the break

    @property
    def _is_at_end(self) -> bool:
        return self._response is not None and self._response.content.at_eof()

    async def _close_response(self, response: aiohttp.ClientResponse) -> None:
        response.release()  # back to the pool after the body's end; shut before it


def _unread(content: aiohttp.StreamReader) -> bytes:
    """The bytes aiohttp received before a break it now raises, not yet read.

    aiohttp's reader raises a break (a cut chunked body, a short ``Content-Length``) before
    it hands out the bytes that arrived with it, and no public call returns them (aiohttp
    issue 3026): the last events before a cut would be lost whenever they came in the same
    segment as the cut. They are read from the reader's buffer (whole: the driver reads
    whole buffers only), a private attribute checked before use: ``b""`` when it is not
    there as expected (those bytes are then lost, and a resumable stream gets them again
    through ``Last-Event-ID``).
    """
    buffer = getattr(content, "_buffer", None)
    if not isinstance(buffer, collections.deque):
        return b""
    chunks = list(buffer)
    if not all(isinstance(chunk, bytes) for chunk in chunks):
        return b""
    return b"".join(chunks)
