"""The ASGI response for one request's stream (floor 4): :class:`StreamResponse`.

Re-exported as :class:`sse_core.adapters.asgi.StreamResponse`. A :class:`~sse_core.ServerSession`
decides the head, padding, ``retry:``, the replay, gzip and heartbeats; the loop shared with
the aiohttp response (``_async_response``) iterates the application's async iterable in the
request's task while a second task sends the heartbeats and watches for a send that waits
too long; this module turns each action into an ASGI message, and a third task watches
``receive`` for the client's going.
"""

from __future__ import annotations

from functools import partial

from .._actions import Action, SendHead
from .._errors import LocalProtocolError
from ._asgi_messages import (
    ASGISend,
    Message,
    Receive,
    Scope,
    message_of,
    response_start,
    watch_disconnect,
)
from ._async_response import AsyncResponseBase

try:  # With Starlette (and so FastAPI) installed, a response their endpoints may return.
    from starlette.responses import Response as _FrameworkResponse
except ImportError:  # pragma: no cover - the asgi extra alone: a plain ASGI application
    _FrameworkResponse = object  # type: ignore[misc,assignment]

__all__ = ["StreamResponse"]

_OWN_HEADERS = frozenset({b"content-type", b"content-length"})


class StreamResponse(AsyncResponseBase, _FrameworkResponse):
    """One request's event stream, as an ASGI application (a response, in Starlette's terms).

    Return it from a Starlette or FastAPI endpoint (with Starlette installed it is a
    ``starlette.responses.Response``), or call it from any ASGI framework or server:
    ``await StreamResponse(source)(scope, receive, send)``. Any method is served (a ``POST``
    with a JSON body as well as ``GET``). Make one per request.

    What the source yields follows one rule (:doc:`/adapters/responses`): an
    :class:`~sse_core.Event`, a ``str`` (the data of a ``message`` event) or a mapping of
    ``data``/``event``/``id``/``retry``; anything else is a :class:`TypeError`.

    The stream: the session's proxy-safe head (``Content-Type``, ``Cache-Control:
    no-cache, no-transform``, ``X-Accel-Buffering: no``; gzip with ``Vary`` when the client
    accepts it and ``config`` allows it) plus any header the framework put in
    :attr:`raw_headers`; padding and ``retry:`` as ``config`` says; then each item as it
    comes, and a heartbeat comment whenever the source is silent for
    ``config.heartbeat_interval``. Resume: the request's ``Last-Event-ID`` (or the
    ``config.last_event_id_param`` query parameter) is handed to the application when the
    source is a function of it; with a ``replay_log``, what the log holds after that id is
    replayed first and every event the source yields is appended to it (an event without an
    id gets one from the log).

    The end: when the source is exhausted the client gets the end of the stream (the gzip
    trailer, then the end of the body). When the client goes (``http.disconnect``, a
    ``send`` that raises :class:`OSError`, or a ``send`` still waiting after
    ``options.send_timeout`` seconds -- checked every half of it -- because the client stopped
    reading), the source is cancelled where it waits and its generator closed, so its
    ``finally`` runs at once. When the source raises, the client still gets a clean end of
    the stream, then the exception propagates to the ASGI server, which logs it (the ASGI
    convention). A framework's background task
    (``self.background``) runs after the stream.

    Args:
        source: An async iterable of items, or a function taking the last event ID (``""``
            for a new client) that returns one -- an ``async def`` generator function
            with one ``str`` parameter is one.
        config: The session's configuration (heartbeats, ``retry:``, padding, gzip, extra
            headers); ``ServerConfig()`` when ``None``.
        options: Only ``send_timeout`` applies here (``None``: wait for the client as long
            as the ASGI server does); ``ServerOptions()`` when ``None``.
        replay_log: A log to replay from and append to, shared by the requests that resume
            the same stream (a job's progress, say), or ``None``.
        clock: Monotonic seconds (:func:`time.monotonic` when ``None``); it must tick like
            the event loop's clock.
        counters: A :class:`~sse_core.adapters.ResponseCounters` this response adds its
            figures to (shared by many responses), or ``None``; its own are in
            :attr:`metrics`, its lifecycle in :attr:`audit_trail`.

    Raises:
        InvalidConfigError: a bad argument.
        TypeError: ``source`` is neither an async iterable nor callable.
    """

    def _setup(self) -> None:
        super()._setup()
        # What a framework reads or sets on a response (Starlette, FastAPI).
        self.status_code = 200
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: ASGISend) -> None:
        """Serve the request: stream until the source ends, raises, or the client goes.

        Raises:
            LocalProtocolError: ``scope`` is not an ``http`` request, or the response was
                called before.
            Exception: what the source raised, after the clean end of the stream.
        """
        if scope["type"] != "http":
            raise LocalProtocolError(f"StreamResponse answers http requests, not {scope['type']!r}")
        target = scope["path"]
        if scope.get("query_string"):
            target += "?" + scope["query_string"].decode("latin-1")

        async def write(action: Action) -> None:
            await send(self._message(action))

        await self._stream(target, scope["headers"], write, partial(watch_disconnect, receive))
        if self.background is not None:
            await self.background()

    def _message(self, action: Action) -> Message:
        """An action as its ASGI message; the head with the framework's extra headers."""
        if not isinstance(action, SendHead):
            return message_of(action)
        message = response_start(action)
        message["headers"] += [
            (name.lower(), value)
            for name, value in self.raw_headers
            if name.lower() not in _OWN_HEADERS
        ]
        return message
