"""httpx driver under trio (floor 4): an EventSource over the user's ``httpx.AsyncClient`` in
a trio program, exported as :class:`sse_core.adapters.httpx.TrioEventSource`.

The user's client carries every request (httpx runs on trio through anyio); the
:class:`~sse_core.ClientSession` decides everything else through the :class:`RequestDriver`
every driver uses, and the iteration is the trio adapter's loop (``_trio_client``). The body
is read as sent (``Response.aiter_raw()``) and decoded by the session, with the request the
asyncio driver sends (``_httpx_driver``).

Why a task per response, in a nursery the source owns. httpcore closes a connection whose
body read is cancelled (its stream closes itself on any exception, ``Cancelled``
included). A wait for the next event ends at each session deadline and whenever the
application cancels it (``trio.move_on_after`` around one step of the loop), and most of
those deadlines do not end the attempt; so the read must not run in the waiting task. One
task per request sends it, hands the response head over, then reads the body chunk by chunk
into a memory channel with no buffer; the waiting task only receives from the channel, and
a cancelled receive takes nothing (trio's channels promise it), so no byte is lost and the
connection stays open. The session's own decision to end an attempt (stall, a refused
response, close, ``ClientOptions.timeout``) cancels that task, which closes the response
(shielded, bounded by :data:`CLOSE_GRACE`). Memory stays bounded: the task holds at most one
chunk (what httpcore reads at once) until the loop takes it, so a slow application slows the
reads, as TCP would.

A task that outlives one wait needs a nursery that outlives the loop: ``async with source:``
opens it and leaving the block closes the source and waits for every task (every response
is closed when the block is left, by an exception or a cancellation too). Iterating without
the block raises :class:`RuntimeError` saying so. The alternatives were worse: a system task
(``trio.lowlevel.spawn_system_task``) escapes the caller's cancellation and crashes the run
on a bug; a nursery per wait would have to cancel the read at every deadline, which is what
closes the connection.

Why a class of its own, not the asyncio ``EventSource`` finding trio at run time (sniffio):
the two differ in what the application must write (the trio source needs ``async with``;
the asyncio one is also used with a bare :meth:`aclose`), in the default clock
(:func:`trio.current_time`) and in their waits (asyncio futures kept across waits, trio
tasks in a nursery). One class switching on the running library would give one name two
contracts that neither the type checker nor the reader can see; two names state it at the
constructor, as :mod:`sse_core.adapters.asyncio` and :mod:`sse_core.adapters.trio` do.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import TypeVar, cast

import httpx
import trio

from .._actions import Request
from ._base import Report
from ._httpx_driver import HttpxDriver, head_fields
from ._trio_client import TrioClientBase

__all__ = ["CLOSE_GRACE", "TrioEventSource"]

#: Seconds closing a response let go of may take (shielded from cancellation): an HTTP/1.1
#: connection closes at once; an HTTP/2 stream's reset may have to wait for its connection.
CLOSE_GRACE = 5.0

#: What the task of a request hands to the loop: the response head, a chunk of the body as
#: sent (``b""`` at its end), or what the request or the read raised.
_Item = httpx.Response | bytes | Exception

_Source = TypeVar("_Source", bound="TrioEventSource")


async def _next_chunk(chunks: AsyncIterator[bytes]) -> bytes | Exception:
    """The next non-empty chunk of a body, ``b""`` at its end, or what reading it raised."""
    try:
        async for chunk in chunks:
            if chunk:
                return chunk
    except Exception as error:  # handed to the loop: an httpx.HTTPError is a lost connection
        return error
    return b""


class _Exchange:
    """One request and its response, carried by a task in the source's nursery: the task
    sends the request, hands over the head and every chunk through :attr:`receive` (no
    buffer), and closes the response when it ends or is cancelled (:meth:`let_go`)."""

    def __init__(self, *, is_decoded: bool = False) -> None:
        self._is_decoded = is_decoded  # ClientConfig.is_body_decoded: httpx decodes
        self._scope = trio.CancelScope()
        self._send, self.receive = trio.open_memory_channel[_Item](0)
        self.is_answered = False  # the loop took the response head
        self.done = trio.Event()  # the response is closed (or was never there)

    def let_go(self) -> None:
        """Stop the request or the read, and take nothing more from it."""
        self.receive.close()
        self._scope.cancel()

    async def run(self, client: httpx.AsyncClient, request: httpx.Request) -> None:
        """The task: send, hand over, close. Never raises (a failure is handed over)."""
        try:
            with self._scope:
                await self._exchange(client, request)
        except trio.BrokenResourceError:
            pass  # the source let go of it before taking everything
        finally:
            self._send.close()
            self.done.set()

    async def _exchange(self, client: httpx.AsyncClient, request: httpx.Request) -> None:
        try:
            response = await client.send(request, stream=True)
        except Exception as error:
            await self._send.send(error)
            return
        # As sent, for the session to decode; or decoded by httpx when the config says so.
        body = response.aiter_bytes() if self._is_decoded else response.aiter_raw()
        chunks = cast(AsyncGenerator[bytes, None], body)
        try:
            await self._send.send(response)
            while True:
                item = await _next_chunk(chunks)
                await self._send.send(item)
                if not isinstance(item, bytes) or not item:
                    return
        finally:
            with trio.move_on_after(CLOSE_GRACE) as closing:
                closing.shield = True
                try:
                    try:
                        await chunks.aclose()
                    finally:
                        await response.aclose()
                except httpx.HTTPError:
                    pass  # the connection is gone either way


class TrioEventSource(HttpxDriver[httpx.AsyncClient], TrioClientBase):
    """A trio EventSource over the user's ``httpx.AsyncClient``.

    Use it as an ``async with`` block and iterate inside it: ``async for event in source``
    yields each :class:`~sse_core.Event` once, in order, as
    :class:`sse_core.adapters.trio.EventSource` does: it resumes with ``Last-Event-ID``
    after a lost connection, a gap raises :class:`~sse_core.GapError` (iterate again to go
    on), a failure raises :class:`~sse_core.StreamError` at the end
    (:class:`~sse_core.HTTPStatusError` for a status), and :meth:`aclose` (from any task),
    ``ClientOptions.timeout`` or a 204 end the iteration quietly. The block owns a nursery
    with one task per request, which reads the response body, so that cancelling a wait
    for the next event (``trio.move_on_after`` around one step) never cancels a read:
    nothing is lost and the connection stays open. Leaving the block, by any way, closes
    every response. The client is not closed with the source (it is yours).

    As with any nursery, do not ``yield`` inside the block from an async generator (use
    :func:`trio.as_safe_channel`, or a task and a memory channel).

    Of :class:`~sse_core.adapters.ClientOptions` only ``timeout`` applies: connecting, TLS,
    redirects (``follow_redirects``) and the connect, write and pool timeouts are the
    client's; the stream has no read timeout (``ClientConfig.stall_timeout`` replaces a
    silent connection).

    Arguments as for :class:`~sse_core.adapters.httpx.EventSource` (the client first);
    ``clock`` is :func:`trio.current_time`.

    Raises:
        InvalidConfigError: a bad argument.
    """

    _client_type = httpx.AsyncClient

    def _setup(self) -> None:
        self._block: AbstractAsyncContextManager[trio.Nursery] | None = None
        self._nursery: trio.Nursery | None = None  # while inside ``async with``
        self._exchange: _Exchange | None = None  # the request in flight and its response
        self._letting_go: list[_Exchange] = []  # exchanges dropped, maybe not closed yet

    async def __aenter__(self: _Source) -> _Source:
        """Open the nursery the source's tasks run in.

        Raises:
            RuntimeError: the source was entered before.
        """
        if self._block is not None:
            raise RuntimeError("a TrioEventSource is entered once (async with source: ...)")
        self._block = trio.open_nursery()
        self._nursery = await self._block.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close the source and wait until every response is closed. The block's own
        exception goes on as it was (not wrapped in an exception group)."""
        assert self._block is not None and self._nursery is not None
        nursery, self._nursery = self._nursery, None
        try:
            await self.aclose()
        finally:
            nursery.cancel_scope.cancel()  # what aclose() did not reach (it was interrupted)
            await self._block.__aexit__(None, None, None)

    # --- the loop -------------------------------------------------------------------------

    async def _next_report(self) -> Report:
        if self._nursery is None and not self._is_closing:
            raise RuntimeError(
                "iterate a TrioEventSource inside its block: async with source: "
                "async for event in source: ... (the block's nursery reads the responses)"
            )
        return await super()._next_report()

    async def _step(self) -> None:
        exchange = self._exchange
        if exchange is None:
            await self._sleep()
            return
        with trio.move_on_after(self._delay()):
            try:
                item = await exchange.receive.receive()
            except (trio.EndOfChannel, trio.ClosedResourceError):
                if exchange is self._exchange:  # ended without a word: cancelled from outside
                    self._failed("connection error: the response's task was cancelled")
                return
            self._take(exchange, item)
            return
        self._timer()

    def _take(self, exchange: _Exchange, item: _Item) -> None:
        """Take what the request's task handed over to the session."""
        if isinstance(item, httpx.Response):
            exchange.is_answered = True
            self._responded(item.status_code, head_fields(item))
        elif isinstance(item, bytes):
            self._received(item)
        elif isinstance(item, httpx.HTTPError):
            what = "connection error" if exchange.is_answered else "request failed"
            self._failed(f"{what}: {item!r}")
        else:
            raise item  # not a transport failure: a bug to see, not a reconnection

    def _send_request(self, request: Request) -> None:
        self._drop_connection()
        assert self._nursery is not None  # _next_report() checked it
        exchange = _Exchange(is_decoded=self.session.config.is_body_decoded)
        self._exchange = exchange
        self._nursery.start_soon(exchange.run, self._client, self._build(request))

    def _drop_connection(self) -> None:
        if self._exchange is not None:
            exchange, self._exchange = self._exchange, None
            exchange.let_go()
            self._letting_go = [e for e in self._letting_go if not e.done.is_set()]
            self._letting_go.append(exchange)

    async def _released(self) -> None:
        """Wait until every response let go of is closed."""
        while self._letting_go:
            await self._letting_go[0].done.wait()
            self._letting_go.pop(0)
        await trio.lowlevel.checkpoint()
