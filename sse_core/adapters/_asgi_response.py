"""The ASGI response for one request's stream (floor 4): :class:`StreamResponse`.

Re-exported as :class:`sse_core.adapters.asgi.StreamResponse`. A :class:`~sse_core.ServerSession`
decides the head, padding, ``retry:``, the replay, gzip and heartbeats; this module iterates
the application's async iterable in the request's task, turns each item into the session's
``send`` and each action into an ASGI message, and owns the clock, the waiting and the
cancellation: a second task sends the heartbeats and watches for a send that waits too long,
a third watches ``receive`` for the client's going.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import anyio
from anyio.abc import TaskGroup

from .._actions import Action, SendHead
from .._errors import LocalProtocolError
from ._asgi_messages import ASGISend, Receive, Scope, message_of, response_start, watch_disconnect
from ._response import ResponseBase, Source

try:  # With Starlette (and so FastAPI) installed, a response their endpoints may return.
    from starlette.responses import Response as _FrameworkResponse
except ImportError:  # pragma: no cover - the asgi extra alone: a plain ASGI application
    _FrameworkResponse = object  # type: ignore[misc,assignment]

__all__ = ["StreamResponse"]

#: Seconds the application's generator has to run its ``finally`` once the stream ended.
CLOSE_TIMEOUT = 5.0

_log = logging.getLogger("sse_core.adapters.asgi")
_OWN_HEADERS = frozenset({b"content-type", b"content-length"})


class StreamResponse(ResponseBase[Source], _FrameworkResponse):
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

    Raises:
        InvalidConfigError: a bad argument.
        TypeError: ``source`` is neither an async iterable nor callable.
    """

    def _setup(self) -> None:
        self._failure: Exception | None = None
        self._sending_since: float | None = None  # when the send under way began
        self._beat: anyio.Event | None = None  # set while a heartbeat is being sent
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
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(watch_disconnect, receive, tasks.cancel_scope)
            try:
                await self._serve(target, scope["headers"], send, tasks)
            finally:
                tasks.cancel_scope.cancel()
        if self._failure is not None:
            raise self._failure
        if self.background is not None:
            await self.background()

    async def _serve(
        self, target: str, headers: Any, send: ASGISend, tasks: TaskGroup
    ) -> None:
        tasks.start_soon(self._tick, send, tasks.cancel_scope)
        if not await self._carry(send, self._begin(target, headers)):
            return
        while self._session.is_replaying:
            if not await self._carry(send, self._replay_step()):
                return
        try:
            iterator = aiter(self._iterable())
        except Exception as error:  # the application's function of the last event ID
            self._failure = error
            await self._carry(send, self._close())
            return
        try:
            # The source runs in this task, so nothing but the client's going (or a stuck
            # send, seen by _tick) cancels it; each item goes out as soon as it comes.
            async for item in iterator:
                actions = self._send_item(item)
                if self._beat is not None:
                    await self._beat.wait()  # a heartbeat is on its way out: keep the order
                if not await self._carry(send, actions):
                    return
        except Exception as error:  # from the source, or an item against the rule
            self._failure = error
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                # Runs the generator's finally now, even when this task was cancelled.
                with anyio.move_on_after(CLOSE_TIMEOUT, shield=True):
                    await aclose()
        if self._beat is not None:
            await self._beat.wait()
        await self._carry(send, self._close())

    async def _tick(self, send: ASGISend, scope: anyio.CancelScope) -> None:
        """The timers: a heartbeat when the source is silent for its interval, and letting
        go of a client whose send has waited ``send_timeout`` (checked every half of it, so
        a stuck client goes between one and one and a half times ``send_timeout``)."""
        timeout = self._options.send_timeout
        while True:
            since = self._sending_since
            if timeout is not None and since is not None and self._clock() - since >= timeout:
                _log.debug("a client took no bytes for %s s: let go", timeout)
                scope.cancel()
                return
            delay = self._delay() if since is None else None
            if delay == 0.0:
                actions = self._heartbeat()
                if actions:
                    self._beat = anyio.Event()
                    is_sent = False  # unless the send finishes within send_timeout
                    try:
                        with anyio.move_on_after(math.inf if timeout is None else timeout):
                            is_sent = await self._carry(send, actions)
                    finally:
                        self._beat.set()
                        self._beat = None
                    if not is_sent or self._sending_since is not None:
                        scope.cancel()  # gone, or stuck past send_timeout
                        return
                continue
            if timeout is not None:
                delay = timeout / 2 if delay is None else min(delay, timeout / 2)
            if delay is None:
                await anyio.sleep_forever()
            else:
                await anyio.sleep(delay)

    async def _carry(self, send: ASGISend, actions: list[Action]) -> bool:
        """Send the actions' messages; ``False`` when the client is gone."""
        for action in actions:
            if isinstance(action, SendHead):
                message = response_start(action)
                message["headers"] += [
                    (name.lower(), value)
                    for name, value in self.raw_headers
                    if name.lower() not in _OWN_HEADERS
                ]
            else:
                message = message_of(action)
            self._sending_since = self._clock()
            try:
                await send(message)
            except OSError:
                return False  # the connection is gone (ASGI 2.4 servers raise this)
            self._sending_since = None
        return True
