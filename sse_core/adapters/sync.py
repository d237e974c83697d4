"""Blocking-sockets adapter (floor 4): an EventSource client, and the event-stream server.

The client carries out what :class:`~sse_core.adapters.HTTPClient` (a
:class:`~sse_core.ClientSession` plus h11) asks, through the dispatch every adapter shares, in
the thread that iterates it, on plain blocking sockets whose timeout is the time left until
the session's next deadline; :meth:`EventSource.close` wakes it from any thread with
:meth:`socket.socket.shutdown`. The server (one background thread with a :mod:`selectors`
loop) lives in ``_sync_server`` and is imported from here: :class:`EventStreamServer`, and
:class:`EventStreamRouter` for several channels on one port.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import socket
import threading
from collections.abc import Callable
from typing import TypeVar

from ._http import Endpoint
from ._sync_client import SyncClientBase
from ._sync_server import EventStreamRouter, EventStreamServer

__all__ = ["EventSource", "EventStreamRouter", "EventStreamServer"]

_T = TypeVar("_T")


class _Ended(enum.Enum):
    """Why a blocking step did not finish."""

    #: A deadline ended the attempt, or :meth:`EventSource.close` was called.
    ENDED = "ended"
    #: A deadline of the session's own (not the attempt's) fell inside a connect, which
    #: cannot go on after a timeout: connect again.
    AGAIN = "again"


_ENDED, _AGAIN = _Ended.ENDED, _Ended.AGAIN


class EventSource(SyncClientBase):
    """A blocking EventSource: iterate to get events, across reconnections.

    ``for event in source`` yields each :class:`~sse_core.Event` once, in order, resuming
    with ``Last-Event-ID`` after a lost connection, with backoff and stall detection as
    configured. A gap raises :class:`~sse_core.GapError` (catch it and iterate again to go
    on); :meth:`reports` yields status changes and gap reports too. The iteration blocks
    the thread that runs it; it ends quietly after :meth:`close`, a 204 or
    ``ClientOptions.timeout``, and raises :class:`~sse_core.StreamError` when the session
    ends for a failure, as every adapter's (:doc:`/adapters/options`). Use it as a ``with``
    block (or call :meth:`close`) so that the socket is closed even when the loop is left
    early.

    :meth:`close` may be called from any thread: it shuts the socket down, which wakes a
    blocked connect, TLS handshake, write or read, or it ends a wait between connections;
    the iteration then ends. Name resolution (:func:`socket.getaddrinfo`) is the only wait
    it cannot cut short. Callbacks (``on_status``) run in the iterating thread, or in the
    thread that calls :meth:`close` for the final ``CLOSED`` status.

    Arguments as for every adapter (:doc:`/adapters/options`); ``clock`` is :func:`time.monotonic`.

    Raises:
        InvalidConfigError: a bad argument.
    """

    def _setup(self) -> None:
        super()._setup()
        # Guards _sock and _is_closing together: close() shuts down the socket in use, and
        # never one whose descriptor was closed (and maybe given to another socket).
        self._sock_lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._woken = threading.Event()  # set by close(): ends a wait between connections

    # --- the loop -------------------------------------------------------------------------

    def _wake(self) -> None:
        with self._sock_lock:
            self._is_closing = True
        self._interrupt(is_dropping=True)

    def _interrupt(self, *, is_dropping: bool) -> None:
        with self._sock_lock:
            if is_dropping and self._sock is not None:
                with contextlib.suppress(OSError):
                    # The plain socket's shutdown (an SSL socket's would also drop its TLS
                    # state under the reading thread): the peer sees the end, a blocked call
                    # returns at once.
                    socket.socket.shutdown(self._sock, socket.SHUT_RDWR)
        self._woken.set()

    def _wait(self) -> None:
        """The one blocking step due: connect, write the request, read, or sleep until the
        next deadline. What it gives is queued for the session."""
        if self._endpoint is not None:
            endpoint, self._endpoint = self._endpoint, None
            self._connect(endpoint)
        elif self._sock is not None and self._unsent:
            self._send(self._sock)
        elif self._sock is not None:
            self._read(self._sock)
        else:  # reconnecting, or offline until network_online()
            self._woken.wait(self._timeout())
            if not self._is_closing:
                self._woken.clear()  # a network signal woke it: the loop takes it next
                self._timer()

    def _drop_connection(self) -> None:
        with self._sock_lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def _install(self, sock: socket.socket) -> bool:
        """Make ``sock`` the one :meth:`close` shuts down; ``False`` (and ``sock`` closed)
        when the source is closing already."""
        with self._sock_lock:
            if not self._is_closing:
                self._sock = sock
                return True
        sock.close()
        return False

    # --- socket work ----------------------------------------------------------------------

    def _connect(self, endpoint: Endpoint) -> None:
        """Connect to the first resolved address that takes it, and shake hands for TLS."""
        try:
            infos = socket.getaddrinfo(endpoint.host, endpoint.port, type=socket.SOCK_STREAM)
        except OSError as error:
            self._failed(f"connect failed: {error!r}")
            return
        failure: OSError | ValueError | None = None
        for family, kind, proto, _, address in infos:
            outcome = self._connect_to(family, kind, proto, address)
            if isinstance(outcome, _Ended):
                return
            if isinstance(outcome, socket.socket):
                if endpoint.is_tls:
                    self._handshake(outcome, endpoint)
                else:
                    self._connected()
                return
            failure = outcome
        self._failed(f"connect failed: {failure!r}")

    def _connect_to(
        self, family: int, kind: int, proto: int, address: tuple[object, ...]
    ) -> socket.socket | OSError | ValueError | _Ended:
        """A new socket connected to ``address``, the error, or ``_ENDED``."""
        while True:
            try:
                sock = socket.socket(family, kind, proto)
            except OSError as error:
                return error
            if not self._install(sock):
                return _ENDED

            def connect(sock: socket.socket = sock) -> None:
                sock.connect(address)

            outcome = self._blocking(sock, connect, is_resumable=False)
            if outcome is None:
                return sock
            self._close_socket()
            if outcome is not _AGAIN:
                return outcome

    def _handshake(self, sock: socket.socket, endpoint: Endpoint) -> None:
        with self._sock_lock:  # close() must shut down the socket that stays open
            if self._is_closing:
                return
            try:
                tls = self._tls_context().wrap_socket(
                    sock, server_hostname=endpoint.host, do_handshake_on_connect=False
                )
            except (OSError, ValueError) as error:
                failure: str | None = f"TLS failed: {error!r}"
            else:
                self._sock, failure = tls, None
        if failure is not None:
            self._failed(failure)
            return
        outcome = self._blocking(tls, tls.do_handshake)
        if isinstance(outcome, (OSError, ValueError)):  # certificate errors are ValueErrors too
            self._failed(f"TLS handshake failed: {outcome!r}")
        elif outcome is not _ENDED:
            self._connected()

    def _send(self, sock: socket.socket) -> None:
        view = memoryview(self._unsent)
        while view:
            sent = self._blocking(sock, functools.partial(sock.send, view))
            if isinstance(sent, (OSError, ValueError)):
                self._failed(f"connection error: {sent!r}")
            if not isinstance(sent, int):
                return
            view = view[sent:]
        self._unsent = b""

    def _blocking(
        self, sock: socket.socket, operation: Callable[[], _T], *, is_resumable: bool = True
    ) -> _T | OSError | ValueError | _Ended:
        """Run a connect, handshake or write with the time to the next deadline as the
        socket's timeout. At each deadline wake the session, and go on unless that ended the
        attempt: the reports of the session's other deadlines (a sequencer hole, a chunked
        message) wait for the step to finish.

        Returns:
            What ``operation`` returned, the error it raised, or why it did not finish.
        """
        while not self._is_closing:
            timeout = self._timeout()
            try:
                if timeout is not None and timeout <= 0.0:
                    raise TimeoutError  # already due
                sock.settimeout(timeout)
                return operation()
            except TimeoutError:
                if self._timer():
                    return _ENDED
                if not is_resumable:
                    return _AGAIN
            except (OSError, ValueError) as error:
                return _ENDED if self._is_closing else error
        return _ENDED

    def _read(self, sock: socket.socket) -> None:
        timeout = self._timeout()
        try:
            if timeout is not None and timeout <= 0.0:
                raise TimeoutError
            sock.settimeout(timeout)
            data = sock.recv(self._options.read_size)
        except TimeoutError:  # a deadline: the session says what it means
            if not self._is_closing:
                self._timer()
            return
        except (OSError, ValueError) as error:
            if not self._is_closing and not self._signals:  # a signal's shutdown: its own
                self._failed(f"connection error: {error!r}")
            return
        if not self._is_closing and (data or not self._signals):
            self._received(data)
