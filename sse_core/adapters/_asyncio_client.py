"""The loop the asyncio clients share (floor 4): the socket adapter's ``EventSource`` and the
drivers' (httpx, aiohttp) run the same waits, reads and sleeps; each says only how it
connects. The drivers also share how a request is sent and its response let go of."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from .. import ClientConfig, ClientSession
from .._actions import ClientState, Request
from .._errors import InvalidConfigError
from ._base import Report
from ._client_base import AsyncClientBase, RequestDriver, SourceArgs
from ._options import ClientOptions

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["AsyncioClientBase", "AsyncioDriver"]

_Client = TypeVar("_Client")
_Response = TypeVar("_Response")


class AsyncioClientBase(AsyncClientBase):
    """An asyncio ``EventSource``'s loop: pump the outputs, yield the reports, wait.

    Each wait is ``asyncio.wait`` on one future bounded by the session's next deadline: the
    deadline only ends the wait and cancels nothing, so no cancellation of the caller can be
    swallowed on any Python (``asyncio.wait_for`` on 3.10 and 3.11 returns a result that
    completed in the same loop iteration as the cancellation and drops the cancellation:
    CPython gh-86296), and a read a deadline interrupts stays in flight for the next wait.
    """

    _wakeup: asyncio.Future[None] | None = None  # ends the wait in progress (aclose, signals)
    _opening: asyncio.Future[Any] | None = None  # the connect (or request) in flight
    _reading: asyncio.Future[bytes] | None = None  # a read kept across wake-ups
    #: What a failed read raises (a lost connection, not a bug).
    _READ_ERRORS: tuple[type[BaseException], ...] = (OSError,)


    async def reports(self) -> AsyncIterator[Report]:
        """Everything for the application, in order: :class:`~sse_core.Deliver` (events),
        :class:`~sse_core.ReportStatus`, :class:`~sse_core.ReportGap` and the other reports
        (:data:`~sse_core.adapters.Report`).

        Start iterating once per source (either this or the events).

        Raises:
            StreamError: at the end, when the session closed for a failure.
        """
        self._claim()
        self._begin()
        try:
            while True:
                report = self._pump()
                if report is not None:
                    yield report
                elif self._is_done:
                    break
                else:
                    await self._wait()
        finally:
            self._close_socket()
            await self._released()
        self._raise_failure()

    async def aclose(self) -> None:
        """Close the connection and end the iteration (the application's ``close()``)."""
        if self._is_closing:
            return
        self._is_closing = True
        self._close_session()
        self._close_socket()
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)
        await self._released()

    async def _wait(self) -> None:
        """Wait for the connection (the response), bytes or the next deadline; queue what
        the session says.

        :meth:`aclose` (from another task) may close the connection during any wait: what
        it then reports is not the session's business.
        """
        timeout = self._timeout()
        if self._opening is not None:
            opening = self._opening
            if not await self._wait_on(opening, timeout):
                return
            self._opening = None
            self._opened(opening)
        elif self._is_open:
            if self._reading is None:
                self._reading = asyncio.ensure_future(self._read())
            reading = self._reading
            if not await self._wait_on(reading, timeout):
                return
            self._reading = None
            try:
                data = reading.result()
            except self._READ_ERRORS as error:
                self._failed(f"connection error: {error!r}")
                return
            self._received(data)
            if data and self._is_at_end:
                self._received(b"")  # the end came with these bytes: no read waits for it
        else:
            await self._sleep(timeout)

    def _opened(self, opening: asyncio.Future[Any]) -> None:
        """The connect (or request) finished: take its outcome to the session."""
        raise NotImplementedError

    @property
    def _is_open(self) -> bool:
        """Whether a connection (a response body) is there to read from."""
        raise NotImplementedError

    async def _read(self) -> bytes:
        """The next bytes (``b""`` at the end)."""
        raise NotImplementedError

    @property
    def _is_at_end(self) -> bool:
        """Whether the bytes just read were the last (the end is known already, so that
        it reaches the session with them rather than at a read that may never come:
        the application may leave the loop after the last event)."""
        return False

    async def _released(self) -> None:
        """Wait until what was let go of is closed (by default nothing is left to wait on)."""

    async def _wait_on(self, future: asyncio.Future[Any], timeout: float | None) -> bool:
        """Wait for ``future`` until the deadline; whether its outcome is the session's
        business. ``False`` when the deadline came first (the session was woken; the future
        stays in flight), when a network signal ended the wait (the future stays in flight
        for the session to keep or drop) or when :meth:`aclose` dropped it meanwhile (what
        it then reports is not the peer's doing)."""
        woken = self._wakeup = asyncio.get_running_loop().create_future()
        try:
            done, _ = await asyncio.wait(
                {future, woken}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            self._wakeup = None
            woken.cancel()
        if future is not self._opening and future is not self._reading:
            return False
        if not done:
            self._timer()
            return False
        return future in done

    async def _sleep(self, timeout: float | None) -> None:
        """Nothing in flight: sleep until the deadline (or :meth:`aclose`, or a network
        signal), then wake the session. With no deadline either, the session is done,
        unless it waits offline for the network (:meth:`network_online`)."""
        if timeout is None and self.session.state is not ClientState.OFFLINE:
            self._is_closing = True
            return
        self._wakeup = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait({self._wakeup}, timeout=timeout)  # or aclose(), a signal
        finally:
            self._wakeup = None
        self._timer()

    def _interrupt(self, *, is_dropping: bool) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)


class AsyncioDriver(AsyncioClientBase, Generic[_Client, _Response]):
    """An asyncio ``EventSource`` over the user's HTTP client: each :class:`~sse_core.Connect`
    is one request sent with that client, and each response is closed in the background
    when let go of (the next request does not wait for it; :meth:`aclose` and the end of the
    iteration do).

    A driver names its client's class (``_CLIENT``, ``_CLIENT_NAME``) and says how to send
    (:meth:`_send`), what the head is (:meth:`_head`), how to read (:meth:`_read`) and how
    to close a response (:meth:`_close_response`); ``_READ_ERRORS`` are its client's
    errors, for a request as for a read.
    """

    _CLIENT: ClassVar[type[Any]]
    _CLIENT_NAME: ClassVar[str]

    def __init__(
        self, client: _Client, config: ClientConfig | str, **kwargs: Unpack[SourceArgs]
    ) -> None:
        """Drive a session over ``client``; the other arguments as for every adapter.

        Raises:
            InvalidConfigError: ``client`` is not of the driver's kind, or a bad argument.
        """
        if not isinstance(client, self._CLIENT):
            raise InvalidConfigError(f"client must be an {self._CLIENT_NAME}, got {client!r}")
        self._client = client
        super().__init__(config, **kwargs)

    def _glue(self, session: ClientSession, options: ClientOptions) -> RequestDriver:
        return RequestDriver(session)

    def _setup(self) -> None:
        self._response: _Response | None = None
        self._releasing: set[asyncio.Task[None]] = set()  # responses being closed

    async def _send(self, request: Request) -> _Response:
        """Send ``request`` with the user's client; the response, once its head is in."""
        raise NotImplementedError

    def _head(self, response: _Response) -> tuple[int, list[tuple[bytes, bytes]]]:
        """The response's status and header fields (after the client's redirects)."""
        raise NotImplementedError

    async def _close_response(self, response: _Response) -> None:
        """Close ``response`` (its connection back to the pool when the body ended, shut
        otherwise)."""
        raise NotImplementedError

    def _send_request(self, request: Request) -> None:
        self._drop_connection()
        self._opening = asyncio.ensure_future(self._send(request))

    def _opened(self, opening: asyncio.Future[Any]) -> None:
        try:
            response: _Response = opening.result()
        except self._READ_ERRORS as error:
            self._failed(f"request failed: {error!r}")
            return
        self._response = response
        status, headers = self._head(response)
        # Field names are case-insensitive (RFC 9110 section 5.1): lowercase, as h11 gives
        # them to the socket adapters, so that every adapter reports the same headers.
        self._responded(status, [(name.lower(), value) for name, value in headers])

    @property
    def _is_open(self) -> bool:
        return self._response is not None

    def _drop_connection(self) -> None:
        sending, reading, response = self._opening, self._reading, self._response
        self._opening = self._reading = self._response = None
        if sending is None and reading is None and response is None:
            return
        release = asyncio.ensure_future(self._release(sending, reading, response))
        self._releasing.add(release)
        release.add_done_callback(self._releasing.discard)

    async def _released(self) -> None:
        """Wait until every response let go of is closed."""
        while self._releasing:
            await asyncio.wait(set(self._releasing))

    async def _release(
        self,
        sending: asyncio.Future[Any] | None,
        reading: asyncio.Future[bytes] | None,
        response: _Response | None,
    ) -> None:
        """Stop a request or a read in flight, and close its response."""
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
            with contextlib.suppress(*self._READ_ERRORS):  # the connection is gone anyway
                await self._close_response(response)
