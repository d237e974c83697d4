"""The ASGI response for one request's stream (floor 4): :class:`StreamResponse`.

Re-exported as :class:`sse_core.adapters.asgi.StreamResponse`. A :class:`~sse_core.ServerSession`
decides the head, padding, ``retry:``, the replay, gzip and heartbeats; this module runs the
application's async iterable in a task of its own, turns each item into the session's
``send`` and each action into an ASGI message, and owns the clock, the waiting and the
cancellation.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterable
from typing import Any

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectSendStream

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
_NOTHING = object()


class StreamResponse(ResponseBase[Source], _FrameworkResponse):
    """One request's event stream, as an ASGI application (a response, in Starlette's terms).

    Return it from a Starlette or FastAPI endpoint (with Starlette installed it is a
    ``starlette.responses.Response``), or call it from any ASGI framework or server:
    ``await StreamResponse(source)(scope, receive, send)``. Any method is served (a ``POST``
    with a JSON body as well as ``GET``). Make one per request.

    What the source yields follows one rule (:mod:`sse_core.adapters._response`): an
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
    ``options.send_timeout`` seconds because the client stopped reading), the source's task is
    cancelled and its generator closed, so its ``finally`` runs at once. When the source
    raises, the client still gets a clean end of the stream, then the exception propagates
    to the ASGI server, which logs it (the ASGI convention). A framework's background task
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
        target = scope.get("root_path", "") + scope["path"]
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
        if not await self._carry(send, self._begin(target, headers)):
            return
        while self._session.is_replaying:
            if not await self._carry(send, self._replay_step()):
                return
        try:
            iterable = self._iterable()
        except Exception as error:  # the application's function of the last event ID
            self._failure = error
            await self._carry(send, self._close())
            return
        items_in, items_out = anyio.create_memory_object_stream[object](0)
        producer = anyio.CancelScope()
        tasks.start_soon(self._produce, iterable, items_in, producer)
        with items_out:
            while True:
                item: object = _NOTHING
                delay = self._delay()
                with anyio.move_on_after(math.inf if delay is None else delay):
                    try:
                        item = await items_out.receive()
                    except anyio.EndOfStream:
                        break  # the source ended, or raised (self._failure)
                try:
                    actions = self._heartbeat() if item is _NOTHING else self._send_item(item)
                except Exception as error:  # the items rule, or a field the session refused
                    self._failure = error
                    producer.cancel()
                    break
                if not await self._carry(send, actions):
                    return
        await self._carry(send, self._close())

    async def _produce(
        self,
        iterable: AsyncIterable[Any],
        items: MemoryObjectSendStream[object],
        scope: anyio.CancelScope,
    ) -> None:
        """Run the application's iterable, one item at a time: each waits until taken."""
        iterator = aiter(iterable)
        try:
            with scope, items:
                async for item in iterator:
                    await items.send(item)
        except anyio.BrokenResourceError:
            pass  # the stream ended first
        except Exception as error:
            self._failure = error
            _log.debug("the event source raised", exc_info=True)
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                # Runs the generator's finally now, even when this task was cancelled.
                with anyio.move_on_after(CLOSE_TIMEOUT, shield=True):
                    await aclose()

    async def _carry(self, send: ASGISend, actions: list[Action]) -> bool:
        """Send the actions' messages; ``False`` when the client is gone."""
        timeout = self._options.send_timeout
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
            with anyio.move_on_after(math.inf if timeout is None else timeout) as waited:
                try:
                    await send(message)
                except OSError:
                    return False  # the connection is gone (ASGI 2.4 servers raise this)
            if waited.cancelled_caught:
                _log.debug("a client took no bytes for %s s: let go", timeout)
                return False
        return True
