"""trio adapter (floor 4): an EventSource client, and the event-stream server.

The client owns its socket, TLS, the clock and waiting, and nothing else: it carries out what
:class:`~sse_core.adapters.HTTPClient` (a :class:`~sse_core.ClientSession` plus h11) asks,
through the dispatch every adapter shares. Sockets are closed synchronously on every way out,
so cancellation never leaves one open. The server lives in ``_trio_server`` and is imported
from here: :class:`EventStreamServer`, and :class:`EventStreamRouter` for several channels on
one port.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

from ._http import Endpoint
from ._trio_client import TrioClientBase, describe
from ._trio_server import (
    TRANSPORT_ERRORS,
    EventStreamRouter,
    EventStreamServer,
    Stream,
    close_now,
)

__all__ = ["EventSource", "EventStreamRouter", "EventStreamServer"]


class EventSource(TrioClientBase):
    """A trio EventSource: iterate to get events, across reconnections.

    ``async for event in source`` yields each :class:`~sse_core.Event` once, in order,
    resuming with ``Last-Event-ID`` after a lost connection, with backoff and stall
    detection as configured. A gap raises :class:`~sse_core.GapError` (catch it and iterate
    again to go on); :meth:`reports` yields status changes and gap reports too. The
    iteration ends quietly after :meth:`aclose` (or a 204) and raises
    :class:`~sse_core.StreamError` when the session ends for a failure, as every adapter's
    (:doc:`/adapters/options`). Use it as an ``async with`` block (or call :meth:`aclose`):
    leaving the block, normally, by an exception or by cancellation, closes the socket at
    once.

    Cancelling a wait for the next event (``trio.move_on_after`` around one step of the
    loop) keeps the connection while it was reading or sleeping; a cancelled connect or
    request write counts as a lost connection (the session reconnects as configured).

    Arguments as for every adapter (:doc:`/adapters/options`); ``clock`` is
    :func:`trio.current_time`.

    Raises:
        InvalidConfigError: a bad argument.
    """

    def _setup(self) -> None:
        self._stream: Stream | None = None

    # --- the loop -------------------------------------------------------------------------

    async def _step(self) -> None:
        if self._endpoint is not None:
            endpoint, self._endpoint = self._endpoint, None
            await self._connect(endpoint)
        elif self._unsent:
            data, self._unsent = self._unsent, b""
            await self._send(data)
        elif self._stream is not None:
            await self._read(self._stream)
        else:  # reconnecting
            await self._sleep()

    def _drop_connection(self) -> None:
        if self._stream is not None:
            stream, self._stream = self._stream, None
            close_now(stream)

    async def _read(self, stream: Stream) -> None:
        with trio.move_on_after(self._delay()):
            try:
                data = await stream.receive_some(self._options.read_size)
            except TRANSPORT_ERRORS as error:
                self._failed(f"connection error: {describe(error)}")
                return
            self._received(bytes(data))
            return
        self._timer()

    async def _with_timers(self, operation: Callable[[trio.CancelScope], Awaitable[None]]) -> bool:
        """Run a connect or a write while serving the session's deadlines.

        Returns:
            Whether a deadline ended the attempt first (the operation was then cancelled).
            Reports a deadline gives while the attempt goes on wait for the operation.
        """
        is_ended = False
        async with trio.open_nursery() as nursery:
            nursery.start_soon(operation, nursery.cancel_scope)
            while not is_ended:
                await trio.sleep(self._delay())
                is_ended = self._timer()
            nursery.cancel_scope.cancel()
        return is_ended

    async def _connect(self, endpoint: Endpoint) -> None:
        opened: list[Stream] = []
        failures: list[str] = []

        async def open_it(done: trio.CancelScope) -> None:
            try:
                opened.append(await self._open_stream(endpoint))
            except TRANSPORT_ERRORS as error:
                failures.append(f"connect failed: {describe(error)}")
            done.cancel()

        try:
            is_ended = await self._with_timers(open_it)
        except BaseException:
            for stream in opened:
                close_now(stream)
            self._failed("connect interrupted")
            raise
        if is_ended:
            for stream in opened:
                close_now(stream)
        elif failures:
            self._failed(failures[0])
        else:
            self._stream = opened[0]
            self._connected()

    async def _open_stream(self, endpoint: Endpoint) -> Stream:
        tcp = await trio.open_tcp_stream(endpoint.host, endpoint.port)
        if not endpoint.is_tls:
            return tcp
        tls = trio.SSLStream(
            tcp, self._tls_context(), server_hostname=endpoint.host, https_compatible=True
        )
        try:
            await tls.do_handshake()
        except BaseException:
            close_now(tcp)
            raise
        return tls

    async def _send(self, data: bytes) -> None:
        stream = self._stream
        assert stream is not None  # Write comes right after on_connected(), in one list
        failures: list[str] = []

        async def send_it(done: trio.CancelScope) -> None:
            try:
                await stream.send_all(data)
            except TRANSPORT_ERRORS as error:
                failures.append(f"connection error: {describe(error)}")
            done.cancel()

        try:
            await self._with_timers(send_it)  # a deadline that ends it queues the close
        except BaseException:
            self._close_socket()  # half a request went out: the connection is unusable
            self._failed("write interrupted")
            raise
        if failures:
            self._failed(failures[0])
