"""The aiohttp.web response for one request's stream (floor 4): :class:`StreamResponse`.

Re-exported as :class:`sse_core.adapters.aiohttp.StreamResponse`. A
:class:`~sse_core.ServerSession` decides the head, padding, ``retry:``, the replay, gzip and
heartbeats; the loop shared with the ASGI response (``_async_response``) iterates the
application's async iterable in the request's task while a second task sends heartbeats and
watches for a write that waits too long; this module writes each action through aiohttp's
``StreamResponse`` and watches the connection for the client's going.

It is an ``aiohttp.web.StreamResponse`` whose :meth:`~StreamResponse.prepare` streams, as
the ``prepare`` of ``aiohttp.web.FileResponse`` sends the file: a handler returns it,
middlewares may add headers to it, and aiohttp prepares it once the handler is done.
"""

from __future__ import annotations

from typing import Any

import anyio
from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from .._actions import Action, Disconnect, Send, SendHead
from .._errors import LocalProtocolError
from ._async_response import AsyncResponseBase
from ._sockets import set_reset_on_close, set_send_timeout

__all__ = ["DISCONNECT_CHECK_INTERVAL", "StreamResponse"]

#: Seconds between looks at the connection for a client that went. aiohttp (3.x) tells a
#: response nothing when its client goes unless the server cancels handlers
#: (``handler_cancellation=True``), so the response looks at the connection this often.
DISCONNECT_CHECK_INTERVAL = 0.5

_OWN_HEADERS = ("Content-Type", "Content-Length", "Content-Encoding", "Transfer-Encoding")


class StreamResponse(AsyncResponseBase, web.StreamResponse):
    """One request's event stream, as an ``aiohttp.web.StreamResponse``.

    Return it from a handler: ``return StreamResponse(source)``; aiohttp then calls
    :meth:`prepare`, which streams until the source ends, raises or the client goes (as
    ``web.FileResponse`` sends its file there). Middlewares and ``on_response_prepare``
    signals see it as any response, and headers set on :attr:`headers` before then go out
    with the stream's own. Any method is served (a ``POST`` with a JSON body as well as
    ``GET``). Make one per request.

    The items rule, the head, heartbeats, gzip, resume (a function of the last event ID as
    the source, an optional ``replay_log``) and the ends of a stream are those of the ASGI
    :class:`sse_core.adapters.asgi.StreamResponse`. What is aiohttp's own:

    - the client's going is seen at once when the server cancels handlers
      (``web.run_app(..., handler_cancellation=True)`` or ``web.AppRunner(...,
      handler_cancellation=True)``), and otherwise within ``DISCONNECT_CHECK_INTERVAL``
      (half a second) or at the next write that fails, whichever comes first; either way
      the source is cancelled where it waits and its generator closed (its ``finally``
      runs);
    - ``options.send_timeout`` does both things it does elsewhere: a write that waits for
      longer (the client stopped reading) lets the client go, its connection reset; and the
      socket gets ``TCP_USER_TIMEOUT`` and keepalive, so the kernel drops a client that
      vanished without closing (a phone out of coverage) even while only heartbeats go out;
    - when the source raises, the client still gets a clean end of the stream, then the
      exception propagates to aiohttp, which logs it (``aiohttp.server``, "Unhandled
      exception") and closes the connection.

    Args:
        source: What the stream sends, as for the ASGI response: an async iterable of
            items, or a function of the last event ID returning one.
        config: The session's configuration; ``ServerConfig()`` when ``None``.
        options: ``send_timeout`` (see above) is what applies here; ``ServerOptions()``
            when ``None``.
        replay_log: A log to replay from and append to, or ``None``.
        clock: Monotonic seconds, ticking like the event loop's clock;
            :func:`time.monotonic` when ``None``.
        counters: A :class:`~sse_core.adapters.ResponseCounters` this response adds its
            figures to (shared by many responses), or ``None``; its own are in
            :attr:`metrics`, its lifecycle in :attr:`audit_trail`.

    Raises:
        InvalidConfigError: a bad argument.
        TypeError: ``source`` is neither an async iterable nor callable.
    """

    def _setup(self) -> None:
        super()._setup()
        web.StreamResponse.__init__(self)
        self._request: web.BaseRequest | None = None

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        """Serve ``request``: send the head, then stream until the source ends, raises, or
        the client goes (aiohttp calls this once the handler returned the response).

        Returns:
            ``None``: the body has ended when this returns.

        Raises:
            LocalProtocolError: the response was prepared for another request before.
            Exception: what the source raised, after the clean end of the stream.
        """
        if self._request is not None:
            if request is not self._request:
                raise LocalProtocolError("a StreamResponse serves one request")
            return await web.StreamResponse.prepare(self, request)  # aiohttp's second call
        self._request = request
        transport = request.transport
        sock = None if transport is None else transport.get_extra_info("socket")
        if sock is not None and self._options.send_timeout is not None:
            set_send_timeout(sock, self._options.send_timeout)

        async def write(action: Action) -> None:
            if isinstance(action, SendHead):
                self.set_status(action.status)
                for name in _OWN_HEADERS:
                    self.headers.popall(name, None)
                self.headers.update(action.headers)
                await web.StreamResponse.prepare(self, request)
            elif isinstance(action, Send):
                await self.write(action.data)
            elif isinstance(action, Disconnect):
                await self.write_eof()

        async def watch(scope: anyio.CancelScope) -> None:
            while True:
                transport = request.transport
                if transport is None or transport.is_closing():
                    scope.cancel()
                    return
                await anyio.sleep(DISCONNECT_CHECK_INTERVAL)

        await self._stream(request.raw_path, list(request.raw_headers), write, watch)
        return None

    def enable_compression(self, *args: Any, **kwargs: Any) -> None:
        """Do nothing: the session compresses the stream itself, when the client accepts
        gzip and ``config.is_compression_enabled`` allows it, flushed after every event
        (aiohttp's compression would hold events back in its buffer). So a middleware that
        enables compression on every response leaves this one as the session wrote it."""

    def _let_go(self) -> None:
        request = self._request
        transport = None if request is None else request.transport
        if transport is not None:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                set_reset_on_close(sock)
            transport.abort()
