"""httpx driver, blocking (floor 4): an EventSource that rides on the user's ``httpx.Client``.

The sync twin of :class:`sse_core.adapters.httpx.EventSource`: the user's client carries
every request (proxies, HTTP/2, auth, cookies, TLS, pooling), the
:class:`~sse_core.ClientSession` decides everything else through the dispatch every adapter
shares, and the iteration is the blocking socket adapter's (:mod:`._sync_client`). The body
is read as sent (``Response.iter_raw()``) and decoded by the session (:mod:`._httpx_driver`).

Why a thread per response. A blocking read on an httpx response cannot be bounded without
harm: a read timeout, or an interrupted read, makes httpcore close the connection, yet some
of the session's deadlines (a sequencer hole, a chunked message) must not end the attempt,
and all of them (the stall timeout, ``ClientOptions.timeout`` ...) must fire while a read is
blocked. So each
request is sent, read and closed by a thread of its own (:class:`_Response`), which reads
ahead of the iteration into a queue of at most :data:`_MAX_AHEAD` chunks (a full queue
stops its reading: back-pressure, bounded memory); the iterating thread waits on that queue
with the time left until the next deadline, so every deadline fires on time and a read in
flight stays in flight. Only that thread touches the response, so httpx is never used from
two threads at once.

Dropping a response (the session's ``Disconnect``, a new request, ``close()``) marks it
dropped and wakes its thread: one waiting on the full queue is notified; one blocked in a
read is woken by ``shutdown()`` of the socket under the connection (httpcore's
``network_stream`` extension, or the ``trace`` extension's ``connect_tcp`` and ``start_tls``
events while the request is still being sent). The thread then closes the response itself:
an unfinished HTTP/1.1 body closes its connection, a finished one goes back to the client's
pool. A shutdown (only for a thread blocked in the client) ends the whole connection: over
HTTP/2 the other streams on it too (httpcore cannot end one blocked stream alone; a read
timeout would end them all the same way).
Where no socket is known yet (name resolution, a TCP connect, a TLS handshake, waiting for
the response head on a connection reused from the pool, or a transport that is not
httpcore's), the thread cannot be woken: nobody waits for it, and it closes what it got as
soon as its call returns (the client's connect timeout bounds the TCP connect and the TLS
handshake). Every other dropped thread is joined before the iteration ends and before
:meth:`close` returns, so no thread and no connection outlives the source. The threads are
daemons: one left waiting for a server never keeps the interpreter from exiting.
"""

from __future__ import annotations

import collections
import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any, NamedTuple

import httpx

from .._actions import Request
from ._httpx_driver import HttpxDriver, head_fields
from ._sync_client import SyncClientBase

__all__ = ["SyncEventSource"]

#: How many chunks a response's thread reads ahead of the iteration (httpcore reads at most
#: 64 KiB at a time); a full queue stops it until the iteration takes one.
_MAX_AHEAD = 4
#: The name of the response threads.
_THREAD_NAME = "sse_core httpx response"
#: The trace events whose return value is the network stream of a new connection.
_CONNECTED = (".connect_tcp.complete", ".start_tls.complete")


class _Head(NamedTuple):
    """The response head arrived."""

    status: int
    headers: list[tuple[bytes, bytes]]


class _Broken(NamedTuple):
    """The request failed, or its response broke (the reason for the session)."""

    reason: str


#: What a response's thread hands the iteration: the head, body bytes (``b""``: the end),
#: a lost connection, or an exception that is not httpx's (raised where the user iterates).
_Item = _Head | bytes | _Broken | Exception


class SyncEventSource(HttpxDriver[httpx.Client], SyncClientBase):
    """A blocking EventSource over the user's ``httpx.Client``.

    ``for event in source`` yields each :class:`~sse_core.Event` once, in order, as
    :class:`sse_core.adapters.sync.EventSource` does: it resumes with ``Last-Event-ID``
    after a lost connection, a gap raises :class:`~sse_core.GapError` (iterate again to go
    on), a failure raises :class:`~sse_core.StreamError` at the end
    (:class:`~sse_core.HTTPStatusError` for a status), and :meth:`close` (or a 204, or
    ``ClientOptions.timeout``) ends the iteration quietly. Each connection is one
    ``client.send(..., stream=True)``, sent and read by a thread of its own; the client is
    not closed with the source (it is yours).

    :meth:`close` may be called from any thread: it wakes a blocked iteration, which ends,
    and returns once the response in flight is closed (:doc:`/adapters/httpx` says which
    waits it cannot cut short). Callbacks (``on_status``) run in the iterating thread, or
    in the thread that calls :meth:`close` for the final ``CLOSED`` status.

    Arguments: ``client``, your ``httpx.Client``, then those of every adapter
    (:doc:`/adapters/options`), of whose options only ``timeout`` applies here too.

    Raises:
        InvalidConfigError: a bad argument.
    """

    _client_type = httpx.Client

    def _setup(self) -> None:
        super()._setup()
        # Guards every _Response's state, _response and _is_closing together; notified when
        # a response's thread queues something, when the iteration takes it, and by close().
        self._changed = threading.Condition()
        self._response: _Response | None = None  # the request in flight
        self._dropped: list[_Response] = []  # let go of, their threads maybe still running

    # --- internals ------------------------------------------------------------------------

    def _wake(self) -> None:
        with self._changed:
            self._is_closing = True
            self._changed.notify_all()

    def _interrupt(self, *, is_dropping: bool) -> None:
        # The wait ends; the response's thread reads on until the session drops it.
        with self._changed:
            self._changed.notify_all()

    def _send_request(self, request: Request) -> None:
        self._drop_connection()
        with self._changed:
            if not self._is_closing:
                is_decoded = self.session.config.is_body_decoded
                response = self._response = _Response(self._changed, is_decoded=is_decoded)
                response.start(self._client, self._build(request, trace=response.trace))

    def _drop_connection(self) -> None:
        with self._changed:
            response, self._response = self._response, None
            self._dropped = [r for r in self._dropped if r.thread.is_alive()]
            if response is not None:
                response.drop()
                self._dropped.append(response)

    def _released(self) -> None:
        """Wait for the threads of the responses let go of (their connections closed or back
        in the pool), except those blocked where no socket is known (the module's notes)."""
        with self._changed:
            waited = [r for r in self._dropped if not r.is_stuck]
        for response in waited:
            response.thread.join()

    def _wait(self) -> None:
        """Wait for what the response in flight brought, or until the next deadline (or
        :meth:`close`); hand the session every item there is, in order, as one read of a
        socket would (the end of a body that came with its last bytes included)."""
        timeout = self._timeout()
        with self._changed:
            response = self._response
            is_waiting = not (response is not None and response.items) and not self._signals
            if is_waiting and timeout != 0.0:
                self._changed.wait(timeout)  # or a network signal's notify
            if self._is_closing:
                return
            items = response.take() if response is not None else []
        if not items and self._timeout() == 0.0:  # due: the session says what it means
            self._timer()
        for item in items:
            if isinstance(item, _Head):
                self._responded(item.status, item.headers)
            elif isinstance(item, bytes):
                self._received(item)
            elif isinstance(item, _Broken):
                self._failed(item.reason)
            else:
                raise item  # not httpx's: a bug or a misuse (the auth flow, a closed client)


class _Response:
    """One request on the user's client and its response, carried out by a thread of its
    own: it sends the request, reads the body ahead of the iteration (at most
    :data:`_MAX_AHEAD` items queued) and closes the response. Its state is guarded by the
    source's condition ``changed``; the thread is the only one that touches the response."""

    thread: threading.Thread  # made by start()

    def __init__(self, changed: threading.Condition, *, is_decoded: bool = False) -> None:
        self._is_decoded = is_decoded  # ClientConfig.is_body_decoded: httpx decodes
        self._changed = changed
        self.items: collections.deque[_Item] = collections.deque()
        self._is_dropped = False
        self._is_blocked = False  # in a call that only a shutdown of its socket ends
        self._is_woken = False  # dropped, and the thread will see it soon (not stuck)
        self._stream: Any = None  # httpcore's network stream under the response, once known

    def start(self, client: httpx.Client, request: httpx.Request) -> None:
        """Send ``request`` (built with :meth:`trace`) on ``client`` in the thread."""
        self.thread = threading.Thread(
            target=self._run, args=(client, request), name=_THREAD_NAME, daemon=True
        )
        self.thread.start()

    @property
    def is_stuck(self) -> bool:
        """Whether the thread is blocked where no shutdown can reach it (the caller holds
        ``changed``; asked once dropped)."""
        return self._is_dropped and not self._is_woken

    def take(self) -> list[_Item]:
        """Every item queued, in order (the caller holds ``changed``)."""
        items = list(self.items)
        self.items.clear()
        self._changed.notify_all()  # room in the queue
        return items

    def drop(self) -> None:
        """Stop: wake the thread, which closes the response (the caller holds ``changed``)."""
        self._is_dropped = True
        self._is_woken = not self._is_blocked or _shut_down(self._stream)
        self._changed.notify_all()

    # --- the response's thread ------------------------------------------------------------

    def _run(self, client: httpx.Client, request: httpx.Request) -> None:
        try:
            if not self._block():
                return
            try:
                response = client.send(request, stream=True)
            finally:
                self._unblock()
        except httpx.HTTPError as error:
            self._put(_Broken(f"request failed: {error!r}"))
            return
        except Exception as error:  # raised where the user iterates
            self._put(error)
            return
        try:
            with self._changed:
                self._stream = response.extensions.get("network_stream", self._stream)
            if self._put(_Head(response.status_code, head_fields(response))):
                # As sent, for the session to decode; or decoded by httpx if the config says.
                self._read(response.iter_bytes() if self._is_decoded else response.iter_raw())
        except httpx.HTTPError as error:
            self._put(_Broken(f"connection error: {error!r}"))
        except Exception as error:  # raised where the user iterates
            self._put(error)
        finally:
            with self._changed:
                self._stream = None  # closed now: never shut down again
                with contextlib.suppress(httpx.HTTPError):
                    response.close()

    def _read(self, chunks: Iterator[bytes]) -> None:
        """Queue the body's chunks, then ``b""`` at its end, until dropped."""
        while self._block():
            try:
                chunk = next(chunks, None)
            finally:
                self._unblock()
            if chunk is None:
                self._put(b"")
                return
            if chunk and not self._put(chunk):
                return

    def _block(self) -> bool:
        """About to block in the client: whether to go on (not dropped)."""
        with self._changed:
            self._is_blocked = not self._is_dropped
            return self._is_blocked

    def _unblock(self) -> None:
        with self._changed:
            self._is_blocked = False

    def _put(self, item: _Item) -> bool:
        """Queue ``item`` once there is room; ``False`` when dropped meanwhile."""
        with self._changed:
            while len(self.items) >= _MAX_AHEAD and not self._is_dropped:
                self._changed.wait()
            if self._is_dropped:
                return False
            self.items.append(item)
            self._changed.notify_all()
            return True

    def trace(self, name: str, info: dict[str, Any]) -> None:
        """httpcore's trace: note the stream of a new connection (shut down at once when
        dropped while connecting)."""
        if name.endswith(_CONNECTED):
            with self._changed:
                self._stream = info.get("return_value")
                if self._is_dropped and _shut_down(self._stream):
                    self._is_woken = True


def _socket_of(stream: Any) -> socket.socket | None:
    """The open socket under an httpcore network stream, if it says."""
    get_extra_info = getattr(stream, "get_extra_info", None)
    sock = get_extra_info("socket") if get_extra_info is not None else None
    if isinstance(sock, socket.socket) and sock.fileno() != -1:
        return sock
    return None


def _shut_down(stream: Any) -> bool:
    """Shut the socket under ``stream`` down: a read or write blocked on it returns.
    Whether there was an open socket to shut down."""
    sock = _socket_of(stream)
    if sock is None:
        return False
    with contextlib.suppress(OSError):
        # The plain socket's shutdown (an SSL socket's would also drop its TLS state under
        # the reading thread).
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    return True
